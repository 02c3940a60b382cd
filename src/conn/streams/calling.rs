//! The caller's end of a stream: opening one, the conversation filed in
//! the tag map that takes the serving end's messages, and the final reply
//! the caller waits on.

use std::fmt;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::handles::{Owner, StreamReceiver, StreamSender};
use super::state::{Ended, StreamState};
use crate::conn::answer::{Failure, Response};
use crate::conn::calls::{Calls, Conversation, Delivered, Key};
use crate::conn::error::{ConnectionError, InvalidRequest};
use crate::conn::link::Link;
use crate::conn::stats::Counters;
use crate::ext::negotiation::{PlainReason, State as Extensions};
use crate::ext::Feature;
use crate::stream::message::{Message, Open, Reply, UP};
use crate::stream::{Code, Credit, Overflow};
use crate::wire::{check_request, Packet};

/// How long opening a stream waits for the negotiation of extensions to
/// settle. A peer answers the probe from its reading thread, so one that
/// has not answered by then is not reading at all.
const NEGOTIATION_WAIT: Duration = Duration::from_secs(5);

/// How a stream is opened: which way items go, and how this end receives
/// them. Start from [`receive`](Self::receive), [`send`](Self::send) or
/// [`both`](Self::both).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamOptions {
    /// Whether the caller sends items (the handler gets a receiver).
    pub sends: bool,
    /// Whether the caller takes items (the handler gets a sender).
    pub receives: bool,
    /// The caller's window for the items it takes: the serving end never
    /// has more than this many items, or bytes of items, unread by the
    /// caller in flight. Default 64 items, 1 MiB.
    pub window: Credit,
    /// What the caller's end does when its application falls behind.
    pub overflow: Overflow,
    /// The caller's time budget for the whole conversation, which the
    /// handler sees ([`Context::budget`](crate::Context::budget)).
    pub budget: Option<Duration>,
}

pub use crate::stream::credit::{DEFAULT_WINDOW_BYTES, DEFAULT_WINDOW_ITEMS};

impl Default for StreamOptions {
    /// Items both ways.
    fn default() -> Self {
        StreamOptions {
            sends: true,
            receives: true,
            window: Credit { items: DEFAULT_WINDOW_ITEMS, bytes: DEFAULT_WINDOW_BYTES },
            overflow: Overflow::Block,
            budget: None,
        }
    }
}

impl StreamOptions {
    /// The serving end streams items to the caller.
    pub fn receive() -> Self {
        StreamOptions { sends: false, ..StreamOptions::default() }
    }

    /// The caller streams items to the serving end.
    pub fn send() -> Self {
        StreamOptions { receives: false, ..StreamOptions::default() }
    }

    /// Items both ways at once.
    pub fn both() -> Self {
        StreamOptions::default()
    }

    /// The caller's receive window, in items and in bytes (each at least 1).
    #[must_use]
    pub fn window(mut self, items: u64, bytes: u64) -> Self {
        self.window = Credit { items: items.max(1), bytes: bytes.max(1) };
        self
    }

    /// What the caller's end does when its application falls behind.
    #[must_use]
    pub fn overflow(mut self, overflow: Overflow) -> Self {
        self.overflow = overflow;
        self
    }

    /// The caller's time budget, for the handler to see.
    #[must_use]
    pub fn budget(mut self, budget: Duration) -> Self {
        self.budget = Some(budget);
        self
    }
}

/// An open stream, as its caller holds it: the ends it asked for, and the
/// final reply. When all three are dropped before the reply came, the
/// conversation is called off (the peer is told).
#[non_exhaustive]
#[derive(Debug)]
pub struct Stream {
    /// Sends items to the serving end, if the caller sends.
    pub sender: Option<StreamSender>,
    /// The serving end's items, if the caller takes them.
    pub receiver: Option<StreamReceiver>,
    /// The final reply.
    pub reply: StreamReply,
}

/// Why a stream could not be opened.
#[non_exhaustive]
#[derive(Debug)]
pub enum StreamOpenError {
    /// The peer cannot stream: extensions are off at one end, or the peer
    /// is a plain cs.packetstream peer, or one without the feature. Nothing
    /// was sent.
    Unsupported(Extensions),
    /// The negotiation of extensions had not settled in time. Nothing was
    /// sent.
    Undecided,
    /// The request type or flags do not fit on the wire.
    Invalid(InvalidRequest),
    /// The connection has ended.
    Connection(ConnectionError),
}

impl fmt::Display for StreamOpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamOpenError::Unsupported(Extensions::Off) => {
                write!(f, "cannot stream: protocol extensions are off at this end")
            }
            StreamOpenError::Unsupported(Extensions::Plain(PlainReason::Refused(text))) => write!(
                f,
                "cannot stream: the peer does not speak the protocol extensions (a plain cs.packetstream peer?): it refused the probe: {text}"
            ),
            StreamOpenError::Unsupported(Extensions::Plain(reason)) => {
                write!(f, "cannot stream: the connection runs in plain mode: {reason:?}")
            }
            StreamOpenError::Unsupported(Extensions::Agreed(features)) => {
                write!(f, "cannot stream: the peer does not offer streams (agreed on: {features})")
            }
            StreamOpenError::Unsupported(Extensions::Probing) | StreamOpenError::Undecided => {
                write!(f, "cannot stream yet: the peer has not answered the extension probe")
            }
            StreamOpenError::Invalid(error) => fmt::Display::fmt(error, f),
            StreamOpenError::Connection(error) => fmt::Display::fmt(error, f),
        }
    }
}

impl std::error::Error for StreamOpenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StreamOpenError::Invalid(error) => Some(error),
            StreamOpenError::Connection(error) => Some(error),
            _ => None,
        }
    }
}

/// Why a stream's final reply is not an ok answer.
#[non_exhaustive]
#[derive(Debug, Clone)]
pub enum ReplyError {
    /// The handler failed the request.
    Failed(Failure),
    /// The conversation was called off.
    Cancelled {
        /// Whether the serving end called it off (else this end did).
        by_peer: bool,
        /// Why.
        code: Code,
        /// What it said.
        text: String,
    },
    /// The connection ended before the reply.
    Connection(ConnectionError),
    /// The peer broke the stream's rules.
    Broken(String),
}

impl fmt::Display for ReplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplyError::Failed(failure) => failure.describe(f),
            ReplyError::Cancelled { by_peer, code, text } => {
                let who = if *by_peer { "the serving end" } else { "this end" };
                write!(f, "{who} cancelled the stream ({code})")?;
                if !text.is_empty() {
                    write!(f, ": {text}")?;
                }
                Ok(())
            }
            ReplyError::Connection(error) => fmt::Display::fmt(error, f),
            ReplyError::Broken(what) => write!(f, "the peer broke the stream: {what}"),
        }
    }
}

impl std::error::Error for ReplyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ReplyError::Connection(error) => Some(error),
            _ => None,
        }
    }
}

/// Why [`StreamReply::wait_timeout`] returned no ok answer.
#[non_exhaustive]
#[derive(Debug)]
pub enum ReplyTimeoutError {
    /// No reply yet; here is the handle back.
    Timeout(StreamReply),
    /// The reply came, and is not ok (or never will come).
    Reply(ReplyError),
}

impl fmt::Display for ReplyTimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplyTimeoutError::Timeout(_) => f.write_str("timed out waiting for the stream's reply"),
            ReplyTimeoutError::Reply(error) => fmt::Display::fmt(error, f),
        }
    }
}

impl std::error::Error for ReplyTimeoutError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ReplyTimeoutError::Reply(error) => Some(error),
            ReplyTimeoutError::Timeout(_) => None,
        }
    }
}

/// The caller's conversation: filed in the tag map under `(UP, tag)`, it
/// takes the serving end's messages on the reading thread.
struct CallerStream {
    key: Key,
    state: Arc<StreamState>,
    outcome: Mutex<Settlement>,
    settled: Condvar,
    /// The tag map lets go of this conversation at its end; a `Weak`, as
    /// the map holds this.
    calls: Weak<Calls>,
}

/// Where the conversation's outcome is: still to come, there, or taken by
/// the reply's one wait that got it (the conversation stays settled).
enum Settlement {
    Waiting,
    Settled(Result<Response, ReplyError>),
    Taken,
}

impl CallerStream {
    /// The conversation's outcome; only the first counts.
    fn settle(&self, outcome: Result<Response, ReplyError>) {
        let mut slot = self.outcome.lock();
        if matches!(*slot, Settlement::Waiting) {
            *slot = Settlement::Settled(outcome);
            self.settled.notify_all();
        }
    }

    fn is_settled(&self) -> bool {
        !matches!(*self.outcome.lock(), Settlement::Waiting)
    }

    /// Calls the conversation off from this end.
    fn cancel(&self, code: Code, text: &str) {
        // Late messages for it are dropped quietly from now on.
        self.forget();
        self.settle(Err(ReplyError::Cancelled { by_peer: false, code, text: text.to_owned() }));
        self.state.cancel(code, text);
    }

    /// Out of the tag map, before whoever waits learns the end: a caller
    /// woken by it finds the conversation gone.
    fn forget(&self) {
        if let Some(calls) = self.calls.upgrade() {
            calls.forget(self.key);
        }
    }

    fn broken(&self, what: String, replies: &mut Vec<Packet>) {
        self.forget();
        self.state.end_both(Ended::Broken(what.clone()));
        if self.state.claim_final() {
            replies.extend(self.state.packet(Message::Cancel(Code::Cancel, what.clone())));
        }
        self.settle(Err(ReplyError::Broken(what)));
    }
}

impl Conversation for CallerStream {
    fn deliver(&self, packet: Packet, replies: &mut Vec<Packet>) -> Delivered {
        if !packet.is_request() {
            // An answer to the open: a peer that did not take it as a
            // stream refused it as a request. It knows of no stream to end.
            let text = String::from_utf8_lossy(packet.payload()).into_owned();
            self.forget();
            self.state.end_both(Ended::Broken(format!("the peer refused the stream: {text}")));
            self.settle(Err(ReplyError::Broken(format!("the peer refused the stream: {text}"))));
            return Delivered::Last;
        }
        let message = match Message::from_packet(packet) {
            Ok(message) => message,
            Err(error) => {
                self.broken(error.to_string(), replies);
                return Delivered::Last;
            }
        };
        match message {
            Message::Reply(Reply { ok, flags, payload }) => {
                // Its items are over with its reply, and it takes no more.
                self.forget();
                self.state.end_inbound(Ended::Finished);
                self.state.end_outbound(Ended::Replied);
                self.settle(if ok {
                    Ok(Response { flags, payload })
                } else {
                    Err(ReplyError::Failed(Failure { flags, payload }))
                });
                Delivered::Last
            }
            Message::Cancel(code, text) => {
                self.forget();
                self.state.on_cancel(code, text.clone());
                self.settle(Err(ReplyError::Cancelled { by_peer: true, code, text }));
                Delivered::Last
            }
            message => {
                let mut messages = Vec::new();
                self.state.on_message(message, &mut messages);
                replies.extend(messages.into_iter().filter_map(|message| self.state.packet(message)));
                Delivered::More
            }
        }
    }

    fn fail(&self, error: ConnectionError) {
        self.state.on_connection_end(error.clone());
        self.settle(Err(ReplyError::Connection(error)));
    }
}

/// Shared by the caller's handles: when the last goes with the reply
/// unsettled, the conversation is called off.
struct CallerHold(Arc<CallerStream>);

impl Owner for CallerHold {
    fn cancel(&self, code: Code, text: &str) {
        self.0.cancel(code, text);
    }
}

impl Drop for CallerHold {
    fn drop(&mut self) {
        if !self.0.is_settled() {
            self.0.cancel(Code::Cancel, "the caller let go of the stream");
        }
    }
}

/// The final reply of a stream, for its caller to wait on. Dropping it does
/// not end the stream; dropping it with the stream's ends, before the reply
/// came, calls the conversation off.
#[must_use = "the reply says whether the stream's request succeeded"]
pub struct StreamReply {
    conversation: Arc<CallerStream>,
    hold: Arc<CallerHold>,
}

impl StreamReply {
    /// The conversation's tag.
    pub fn tag(&self) -> u64 {
        self.conversation.key.1
    }

    /// Waits for the final reply.
    ///
    /// # Errors
    /// [`ReplyError::Failed`] when the handler failed; the other variants
    /// when the conversation was called off, broken, or cut by the
    /// connection's end.
    pub fn wait(self) -> Result<Response, ReplyError> {
        match self.take(None) {
            Some(outcome) => outcome,
            None => unreachable!("an unbounded wait ends with an outcome"),
        }
    }

    /// Waits at most `timeout` for the final reply.
    ///
    /// # Errors
    /// [`ReplyTimeoutError::Timeout`] with the handle back if it has not
    /// come; otherwise as [`wait`](Self::wait).
    pub fn wait_timeout(self, timeout: Duration) -> Result<Response, ReplyTimeoutError> {
        let deadline = Instant::now().checked_add(timeout);
        match self.take(deadline) {
            Some(outcome) => outcome.map_err(ReplyTimeoutError::Reply),
            None => Err(ReplyTimeoutError::Timeout(self)),
        }
    }

    /// Whether the reply (or the conversation's end) has come.
    pub fn is_ready(&self) -> bool {
        self.conversation.is_settled()
    }

    /// Calls the conversation off: the serving end is told at once, its
    /// handler sees it, and its blocked sends and iterations return.
    pub fn cancel(self) {
        self.hold.cancel(Code::Cancel, "");
    }

    /// [`cancel`](Self::cancel) with a code and text for the serving end.
    pub fn cancel_with(self, code: Code, text: &str) {
        self.hold.cancel(code, text);
    }

    fn take(&self, deadline: Option<Instant>) -> Option<Result<Response, ReplyError>> {
        let conversation = &self.conversation;
        if !conversation.is_settled() {
            // The serving end may wait for what this end staged.
            conversation.state.flush();
        }
        let mut outcome = conversation.outcome.lock();
        while matches!(*outcome, Settlement::Waiting) {
            match deadline {
                None => conversation.settled.wait(&mut outcome),
                Some(deadline) => {
                    if conversation.settled.wait_until(&mut outcome, deadline).timed_out() {
                        break;
                    }
                }
            }
        }
        match std::mem::replace(&mut *outcome, Settlement::Taken) {
            Settlement::Settled(outcome) => Some(outcome),
            // Not yet (timed out): left as it was. Taken cannot be seen, as
            // the wait that takes consumes the reply.
            other => {
                *outcome = other;
                None
            }
        }
    }
}

impl fmt::Debug for StreamReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamReply").field("tag", &self.tag()).field("ready", &self.is_ready()).finish()
    }
}

/// Opens a stream over `link`.
pub(crate) fn open(
    link: &Link,
    rq_type: u64,
    flags: u64,
    payload: Vec<u8>,
    options: StreamOptions,
) -> Result<Stream, StreamOpenError> {
    check_request(rq_type, flags).map_err(|error| StreamOpenError::Invalid(error.into()))?;
    let Link { calls, send, control, .. } = link;
    if !control.is_on() {
        return Err(StreamOpenError::Unsupported(Extensions::Off));
    }
    let extensions = control.wait_settled(Instant::now().checked_add(NEGOTIATION_WAIT));
    if !control.agreed(Feature::Stream) {
        if let Some(reason) = calls.refusal() {
            return Err(StreamOpenError::Connection(reason));
        }
        return Err(match extensions {
            Extensions::Probing => StreamOpenError::Undecided,
            other => StreamOpenError::Unsupported(other),
        });
    }
    let receives = options.receives.then_some((options.window, options.overflow));
    let name = calls.name();
    let mut made = None;
    let tag = calls
        .register_with(UP, |tag| {
            let (state, first_grant) = StreamState::new(tag, UP, Arc::clone(send), name, options.sends, receives);
            let conversation = Arc::new(CallerStream {
                key: (UP, tag),
                state,
                outcome: Mutex::new(Settlement::Waiting),
                settled: Condvar::new(),
                calls: Arc::downgrade(calls),
            });
            made = Some((Arc::clone(&conversation), first_grant));
            conversation
        })
        .map_err(StreamOpenError::Connection)?;
    let (conversation, first_grant) = made.expect("register_with builds the conversation");
    let open = Open {
        rq_type,
        flags,
        caller_sends: options.sends,
        caller_receives: options.receives,
        credit: first_grant.unwrap_or_default(),
        budget: options.budget,
        payload,
    };
    let sent = conversation.state.packet(Message::Open(open)).map(|packet| send.send(packet, true, None));
    if !matches!(sent, Some(Ok(()))) {
        calls.forget((UP, tag));
        return Err(StreamOpenError::Connection(send.ended_reason()));
    }
    Counters::add(&send.counters.streams_out, 1);
    let hold = Arc::new(CallerHold(Arc::clone(&conversation)));
    let owner = || Some(Arc::clone(&hold) as Arc<dyn Owner>);
    let state = &conversation.state;
    let sender = options.sends.then(|| StreamSender::new(Arc::clone(state), owner()));
    let receiver = options.receives.then(|| StreamReceiver::new(Arc::clone(state), owner()));
    Ok(Stream { sender, receiver, reply: StreamReply { conversation, hold } })
}
