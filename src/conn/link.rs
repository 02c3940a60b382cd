//! What making a request needs of a connection: its tag map, its send path
//! and where the negotiation of extensions stands. Every [`Peer`](crate::Peer)
//! and [`Pending`](crate::Pending) of a connection shares one, in one `Arc`:
//! a request in flight costs one reference count, and a handle dropped early
//! can still tell the peer.

use std::sync::{Arc, OnceLock, Weak};
use std::time::Instant;

use super::calls::{Calls, Slot};
use super::control::Control;
use super::send::SendPath;

pub(crate) struct Link {
    pub calls: Arc<Calls>,
    pub send: Arc<SendPath>,
    pub control: Arc<Control>,
    /// Where a waiting caller may read the stream for itself; set once the
    /// serving side exists (a `Weak`, as that side holds a `Link`).
    reading: OnceLock<Weak<dyn Reading>>,
}

/// The part of the serving side a waiting caller meets: it counts the
/// caller as waiting, and lets it read the stream itself while nobody else
/// does (see `serve::lead`).
pub(crate) trait Reading: Send + Sync {
    /// The calling thread starts waiting until `slot` has its answer or
    /// `deadline` passes; it may read the stream meanwhile, and returns when
    /// it stops. It counts as waiting until the answer is delivered or
    /// [`leave_wait`](Self::leave_wait), whichever comes first.
    fn enter_wait(self: Arc<Self>, slot: &Slot, deadline: Option<Instant>);
    /// The calling thread is done waiting on `slot`.
    fn leave_wait(&self, slot: &Slot);
}

impl Link {
    pub fn new(calls: Arc<Calls>, send: Arc<SendPath>, control: Arc<Control>) -> Arc<Link> {
        Arc::new(Link { calls, send, control, reading: OnceLock::new() })
    }

    /// Tells waiting callers where the stream is read.
    pub fn set_reading(&self, reading: Weak<dyn Reading>) {
        let _ = self.reading.set(reading);
    }

    /// Where the stream is read, while the connection lives.
    pub fn reading(&self) -> Option<Arc<dyn Reading>> {
        self.reading.get().and_then(Weak::upgrade)
    }
}
