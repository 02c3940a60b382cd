//! What a handler can learn about the request it serves beyond its bytes,
//! and what it can do about it: [`Context`].

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::notes::Notes;
use crate::conn::caller::Peer;
use crate::conn::calls::Key;
use crate::conn::streams::handles::{StreamReceiver, StreamSender};
use crate::conn::streams::served::ServedStream;

/// What a handler can learn about its request beyond its bytes: whether
/// the caller gave it up, what time it gave, whether the peer is gone; a
/// [`Peer`] to call back; and, for a streaming request, the stream's two
/// ends. Got from [`Request::context`](crate::Request::context); clones
/// share it.
#[derive(Clone)]
pub struct Context {
    key: Key,
    /// `None` for a request made with [`Request::new`](crate::Request::new).
    notes: Option<Arc<Notes>>,
    stream: Option<Arc<StreamPart>>,
}

/// A streaming request's part of its context.
pub(crate) struct StreamPart {
    served: Arc<ServedStream>,
    sender: Mutex<Option<StreamSender>>,
    receiver: Mutex<Option<StreamReceiver>>,
}

impl Context {
    /// The context of a plain request from the peer.
    pub(crate) fn plain(key: Key, notes: &Arc<Notes>) -> Self {
        Context { key, notes: Some(Arc::clone(notes)), stream: None }
    }

    /// The context of a request that did not come from a connection.
    pub(crate) fn detached(key: Key) -> Self {
        Context { key, notes: None, stream: None }
    }

    /// The context of a streaming request, with the ends its caller asked
    /// for.
    pub(crate) fn stream(
        key: Key,
        notes: &Arc<Notes>,
        served: Arc<ServedStream>,
        sender: Option<StreamSender>,
        receiver: Option<StreamReceiver>,
    ) -> Self {
        let part = StreamPart { served, sender: Mutex::new(sender), receiver: Mutex::new(receiver) };
        Context { key, notes: Some(Arc::clone(notes)), stream: Some(Arc::new(part)) }
    }

    /// Whether the caller gave the request up (it cancelled it, dropped
    /// its handle, or, for a stream, called the conversation off), or the
    /// connection failed under it: either way nobody will read the answer.
    /// A stream is also over once the peer has sent its last packet. A
    /// plain cs.packetstream caller cannot say, so its requests are
    /// cancelled only by a failed connection.
    pub fn is_cancelled(&self) -> bool {
        match (&self.stream, &self.notes) {
            (Some(part), _) => part.served.state.is_cancelled_by_peer(),
            (None, Some(notes)) => notes.is_cancelled(self.key),
            (None, None) => false,
        }
    }

    /// Waits at most `timeout` for the request to be cancelled (as
    /// [`is_cancelled`](Self::is_cancelled) says); whether it was. A handler
    /// that waits for something else can poll this instead.
    pub fn wait_cancelled(&self, timeout: Duration) -> bool {
        let deadline = Instant::now().checked_add(timeout);
        match (&self.stream, &self.notes) {
            (Some(part), _) => part.served.state.wait_cancelled(deadline),
            (None, Some(notes)) => notes.wait_cancelled(self.key, deadline),
            (None, None) => {
                if let Some(deadline) = deadline {
                    std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
                }
                false
            }
        }
    }

    /// The time the caller said it waits for the answer, if it said (a
    /// `packetstream` caller with a timeout or a budget does).
    pub fn budget(&self) -> Option<Duration> {
        self.budget_and_start().map(|(budget, _)| budget)
    }

    /// When the caller's budget runs out, by this end's clock: the budget
    /// counted from when the request arrived.
    pub fn deadline(&self) -> Option<Instant> {
        self.budget_and_start().and_then(|(budget, start)| start.checked_add(budget))
    }

    /// What is left of the caller's budget (zero once it has run out).
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline().map(|deadline| deadline.saturating_duration_since(Instant::now()))
    }

    fn budget_and_start(&self) -> Option<(Duration, Instant)> {
        match (&self.stream, &self.notes) {
            (Some(part), _) => part.served.budget.map(|budget| (budget, part.served.opened)),
            (None, Some(notes)) => notes.budget_of(self.key),
            (None, None) => None,
        }
    }

    /// Whether the peer is gone: it sent its last packet (its EOF), its
    /// stream ended or failed, or the connection was given up. After a
    /// clean EOF the peer still reads this end's answers until this end
    /// closes too.
    pub fn is_peer_gone(&self) -> bool {
        self.notes.as_ref().is_some_and(|notes| notes.is_peer_gone())
    }

    /// A handle for making requests to the peer: a handler may call back
    /// into the peer that called it. `None` only for a request made with
    /// [`Request::new`](crate::Request::new).
    pub fn peer(&self) -> Option<Peer> {
        self.notes.as_ref().map(|notes| notes.peer.clone())
    }

    /// Whether the request is a stream's.
    pub fn is_stream(&self) -> bool {
        self.stream.is_some()
    }

    /// The sender of a streaming request whose caller takes items, the
    /// first time it is asked for. Dropped untaken, the caller's items end
    /// at once (an END).
    pub fn take_sender(&self) -> Option<StreamSender> {
        self.stream.as_ref().and_then(|part| part.sender.lock().take())
    }

    /// The receiver of a streaming request whose caller sends items, the
    /// first time it is asked for. Dropped untaken, the caller is asked to
    /// stop (a STOP).
    pub fn take_receiver(&self) -> Option<StreamReceiver> {
        self.stream.as_ref().and_then(|part| part.receiver.lock().take())
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("stream", &self.is_stream())
            .field("cancelled", &self.is_cancelled())
            .field("budget", &self.budget())
            .finish()
    }
}
