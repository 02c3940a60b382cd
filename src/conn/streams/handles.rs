//! The two ends an application holds of a stream, at either end of the
//! conversation: a [`StreamSender`] whose `send` waits for credit, and a
//! [`StreamReceiver`] that is an iterator of items; with the errors they
//! can meet.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::state::{Ended, SendFailure, StreamState};
use crate::conn::error::ConnectionError;
use crate::stream::message::{Message, Warning};
use crate::stream::Code;

/// Why a direction of a stream ended before its items did.
#[non_exhaustive]
#[derive(Debug, Clone)]
pub enum StreamEnd {
    /// The receiving end asked for no more items (`stop`, or its drop), with
    /// its code and text.
    Stopped {
        /// Why (moat-lib-cmd's code: [`Code::Stop`] for a plain stop).
        code: Code,
        /// What it said.
        text: String,
    },
    /// The conversation was called off.
    Cancelled {
        /// Whether the other end called it off (else this one did).
        by_peer: bool,
        /// Why.
        code: Code,
        /// What it said.
        text: String,
    },
    /// The serving end has given its final reply: it takes no more items.
    Replied,
    /// The connection ended.
    Connection(ConnectionError),
    /// The peer broke the stream's rules (items past its credit, a message
    /// that cannot be read).
    Broken(String),
}

impl fmt::Display for StreamEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamEnd::Stopped { code, text } if text.is_empty() => {
                write!(f, "the receiver stopped the stream ({code})")
            }
            StreamEnd::Stopped { code, text } => write!(f, "the receiver stopped the stream ({code}): {text}"),
            StreamEnd::Cancelled { by_peer, code, text } => {
                let who = if *by_peer { "the peer" } else { "this end" };
                write!(f, "{who} cancelled the stream ({code})")?;
                if !text.is_empty() {
                    write!(f, ": {text}")?;
                }
                Ok(())
            }
            StreamEnd::Replied => write!(f, "the serving end has replied: the stream is over"),
            StreamEnd::Connection(error) => fmt::Display::fmt(error, f),
            StreamEnd::Broken(what) => write!(f, "the peer broke the stream: {what}"),
        }
    }
}

impl std::error::Error for StreamEnd {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StreamEnd::Connection(error) => Some(error),
            _ => None,
        }
    }
}

/// `Finished` when the peer's items ended as they should; the early end
/// otherwise.
fn split(ended: Ended) -> Result<(), StreamEnd> {
    match ended {
        Ended::Finished => Ok(()),
        Ended::Replied => Err(StreamEnd::Replied),
        Ended::Stopped(code, text) => Err(StreamEnd::Stopped { code, text }),
        Ended::Cancelled { by_peer, code, text } => Err(StreamEnd::Cancelled { by_peer, code, text }),
        Ended::Connection(error) => Err(StreamEnd::Connection(error)),
        Ended::Broken(what) => Err(StreamEnd::Broken(what)),
    }
}

macro_rules! stream_error {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident $(($field:ty))? => $text:literal),* $(,)? }) => {
        $(#[$doc])*
        #[non_exhaustive]
        #[derive(Debug)]
        pub enum $name {
            $($(#[$vdoc])* $variant $(($field))?,)*
            /// The stream ended early.
            Ended(StreamEnd),
        }

        impl fmt::Display for $name {
            #[allow(unused_variables)]
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $($name::$variant { .. } => f.write_str($text),)*
                    $name::Ended(end) => fmt::Display::fmt(end, f),
                }
            }
        }

        impl std::error::Error for $name {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                match self {
                    $name::Ended(end) => Some(end),
                    #[allow(unreachable_patterns)]
                    _ => None,
                }
            }
        }
    };
}

stream_error!(
    /// Why [`StreamReceiver::recv`] returned no item.
    StreamRecvError {
        /// The peer's items ended as they should: there are no more.
        Finished => "the stream's items have ended",
    }
);

stream_error!(
    /// Why [`StreamReceiver::recv_timeout`] returned no item.
    StreamRecvTimeoutError {
        /// None came in time; more may come.
        Timeout => "no item in time",
        /// The peer's items ended as they should.
        Finished => "the stream's items have ended",
    }
);

stream_error!(
    /// Why [`StreamReceiver::try_recv`] returned no item.
    StreamTryRecvError {
        /// None is there now; more may come.
        Empty => "no item yet",
        /// The peer's items ended as they should.
        Finished => "the stream's items have ended",
    }
);

stream_error!(
    /// Why [`StreamSender::send`] did not send.
    StreamSendError {
        /// The item is larger than the receiver's whole byte window, so it
        /// can never be sent.
        TooLarge(Vec<u8>) => "the item is larger than the receiver's window",
    }
);

stream_error!(
    /// Why [`StreamSender::send_timeout`] did not send; the item is given
    /// back when it could still go.
    StreamSendTimeoutError {
        /// No credit came in time; the item back.
        Timeout(Vec<u8>) => "no credit in time",
        /// The item is larger than the receiver's whole byte window.
        TooLarge(Vec<u8>) => "the item is larger than the receiver's window",
    }
);

stream_error!(
    /// Why [`StreamSender::try_send`] did not send; the item is given back
    /// when it could still go.
    StreamTrySendError {
        /// No credit now; the item back.
        NoCredit(Vec<u8>) => "no credit now",
        /// The item is larger than the receiver's whole byte window.
        TooLarge(Vec<u8>) => "the item is larger than the receiver's window",
    }
);

/// The end of a conversation that holds a stream's handles, when calling
/// it off takes more than telling the peer: the caller's end also settles
/// its reply and lets go of its tag. Shared by the caller's handles; when
/// the last of them goes with the reply unsettled, the conversation is
/// called off.
pub(crate) trait Owner: Send + Sync {
    /// Calls the conversation off.
    fn cancel(&self, code: Code, text: &str);
}

fn cancel(state: &StreamState, owner: Option<&Arc<dyn Owner>>, code: Code, text: &str) {
    match owner {
        Some(owner) => owner.cancel(code, text),
        None => {
            state.cancel(code, text);
        }
    }
}

/// Receives the items of a stream. An iterator too: it ends when the
/// peer's items do, and yields the early end as its last, erring item.
/// Dropping it before the items end asks the peer to stop (politely: a
/// STOP, not a cancel).
pub struct StreamReceiver {
    state: Arc<StreamState>,
    owner: Option<Arc<dyn Owner>>,
}

impl StreamReceiver {
    pub(crate) fn new(state: Arc<StreamState>, owner: Option<Arc<dyn Owner>>) -> Self {
        StreamReceiver { state, owner }
    }

    /// The next item, waiting for it.
    ///
    /// # Errors
    /// [`StreamRecvError::Finished`] once the items have ended;
    /// [`StreamRecvError::Ended`] if the stream ended early.
    pub fn recv(&self) -> Result<Vec<u8>, StreamRecvError> {
        match self.state.recv(None) {
            Ok(Some(item)) => Ok(item),
            Ok(None) => unreachable!("an unbounded wait ends with an item or the end"),
            Err(ended) => Err(split(ended).map_or_else(StreamRecvError::Ended, |()| StreamRecvError::Finished)),
        }
    }

    /// The next item, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`StreamRecvTimeoutError::Timeout`] if none came; otherwise as
    /// [`recv`](Self::recv).
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Vec<u8>, StreamRecvTimeoutError> {
        let deadline = Instant::now().checked_add(timeout);
        match self.state.recv(deadline) {
            Ok(Some(item)) => Ok(item),
            Ok(None) => Err(StreamRecvTimeoutError::Timeout),
            Err(ended) => {
                Err(split(ended).map_or_else(StreamRecvTimeoutError::Ended, |()| StreamRecvTimeoutError::Finished))
            }
        }
    }

    /// The next item if one is there, without waiting.
    ///
    /// # Errors
    /// [`StreamTryRecvError::Empty`] if none is; otherwise as [`recv`](Self::recv).
    pub fn try_recv(&self) -> Result<Vec<u8>, StreamTryRecvError> {
        match self.state.recv(Some(Instant::now())) {
            Ok(Some(item)) => Ok(item),
            Ok(None) => Err(StreamTryRecvError::Empty),
            Err(ended) => Err(split(ended).map_or_else(StreamTryRecvError::Ended, |()| StreamTryRecvError::Finished)),
        }
    }

    /// The warnings that arrived (out of band) since the last call: the
    /// peer's, and this end's own data-loss warnings when the stream drops
    /// items.
    pub fn warnings(&self) -> Vec<Warning> {
        self.state.take_warnings()
    }

    /// Asks the peer to send no more items, with a reason.
    pub fn stop_with(self, code: Code, text: &str) {
        self.state.stop_receiving(code, text);
    }

    /// Asks the peer to send no more items ([`Code::Stop`]).
    pub fn stop(self) {
        self.state.stop_receiving(Code::Stop, "");
    }

    /// Calls the whole conversation off, both directions and the reply:
    /// the peer is told at once (its blocked send or iteration returns),
    /// and what is held for it is freed.
    pub fn cancel(self, code: Code, text: &str) {
        cancel(&self.state, self.owner.as_ref(), code, text);
    }
}

impl Iterator for StreamReceiver {
    type Item = Result<Vec<u8>, StreamEnd>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.recv() {
            Ok(item) => Some(Ok(item)),
            Err(StreamRecvError::Finished) => None,
            Err(StreamRecvError::Ended(end)) => Some(Err(end)),
        }
    }
}

impl Drop for StreamReceiver {
    fn drop(&mut self) {
        self.state.stop_receiving(Code::Stop, "");
    }
}

impl fmt::Debug for StreamReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamReceiver").field("tag", &self.state.tag).finish()
    }
}

/// Sends the items of a stream: `send` waits while the receiver has
/// granted no credit. Dropping it (or [`finish`](Self::finish)) tells the
/// peer the items are over.
pub struct StreamSender {
    state: Arc<StreamState>,
    owner: Option<Arc<dyn Owner>>,
}

impl StreamSender {
    pub(crate) fn new(state: Arc<StreamState>, owner: Option<Arc<dyn Owner>>) -> Self {
        StreamSender { state, owner }
    }

    /// Sends `item`, waiting for credit.
    ///
    /// # Errors
    /// [`StreamSendError::Ended`] once the stream is over for this end (the
    /// receiver stopped, the conversation was called off or replied to, the
    /// connection ended); [`StreamSendError::TooLarge`] for an item larger
    /// than the receiver's window.
    pub fn send(&self, item: impl Into<Vec<u8>>) -> Result<(), StreamSendError> {
        match self.state.send_item(item.into(), None) {
            Ok(()) => Ok(()),
            Err(SendFailure::Ended(ended)) => Err(StreamSendError::Ended(ended_early(ended))),
            Err(SendFailure::TooLarge(item)) => Err(StreamSendError::TooLarge(item)),
            Err(SendFailure::Timeout(_)) => unreachable!("an unbounded send does not time out"),
        }
    }

    /// [`send`](Self::send), waiting at most `timeout` for credit.
    ///
    /// # Errors
    /// [`StreamSendTimeoutError::Timeout`] with the item back if no credit
    /// came; otherwise as [`send`](Self::send).
    pub fn send_timeout(&self, item: impl Into<Vec<u8>>, timeout: Duration) -> Result<(), StreamSendTimeoutError> {
        let deadline = Instant::now().checked_add(timeout);
        match self.state.send_item(item.into(), deadline) {
            Ok(()) => Ok(()),
            Err(SendFailure::Ended(ended)) => Err(StreamSendTimeoutError::Ended(ended_early(ended))),
            Err(SendFailure::TooLarge(item)) => Err(StreamSendTimeoutError::TooLarge(item)),
            Err(SendFailure::Timeout(item)) => Err(StreamSendTimeoutError::Timeout(item)),
        }
    }

    /// Sends `item` if there is credit for it now.
    ///
    /// # Errors
    /// [`StreamTrySendError::NoCredit`] with the item back without credit;
    /// otherwise as [`send`](Self::send).
    pub fn try_send(&self, item: impl Into<Vec<u8>>) -> Result<(), StreamTrySendError> {
        match self.state.send_item(item.into(), Some(Instant::now())) {
            Ok(()) => Ok(()),
            Err(SendFailure::Ended(ended)) => Err(StreamTrySendError::Ended(ended_early(ended))),
            Err(SendFailure::TooLarge(item)) => Err(StreamTrySendError::TooLarge(item)),
            Err(SendFailure::Timeout(item)) => Err(StreamTrySendError::NoCredit(item)),
        }
    }

    /// The warnings that arrived (out of band) since the last call: the
    /// receiver's, such as its data-loss warnings when it drops items.
    pub fn warnings(&self) -> Vec<Warning> {
        self.state.take_warnings()
    }

    /// Sends a warning: out-of-band news for the receiver.
    pub fn warn(&self, code: Code, text: impl Into<String>) {
        self.state.send_message(Message::Warn(Warning { code, text: text.into() }), false);
    }

    /// Tells the peer the items are over.
    pub fn finish(self) {
        self.state.finish_sending();
    }

    /// Calls the whole conversation off (see [`StreamReceiver::cancel`]).
    pub fn cancel(self, code: Code, text: &str) {
        cancel(&self.state, self.owner.as_ref(), code, text);
    }
}

/// The early end of a sender; a sender's "finished" means this end
/// finished, which `send` cannot meet (finish consumes the sender).
fn ended_early(ended: Ended) -> StreamEnd {
    match split(ended) {
        Err(end) => end,
        Ok(()) => StreamEnd::Replied,
    }
}

impl Drop for StreamSender {
    fn drop(&mut self) {
        self.state.finish_sending();
    }
}

impl fmt::Debug for StreamSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamSender").field("tag", &self.state.tag).finish()
    }
}
