//! What making a request needs of a connection: its tag map, its send path
//! and where the negotiation of extensions stands. Every [`Peer`](crate::Peer)
//! and [`Pending`](crate::Pending) of a connection shares one, in one `Arc`:
//! a request in flight costs one reference count, and a handle dropped early
//! can still tell the peer.

use std::sync::Arc;

use super::calls::Calls;
use super::control::Control;
use super::send::SendPath;

pub(crate) struct Link {
    pub calls: Arc<Calls>,
    pub send: Arc<SendPath>,
    pub control: Arc<Control>,
}

impl Link {
    pub fn new(calls: Arc<Calls>, send: Arc<SendPath>, control: Arc<Control>) -> Arc<Link> {
        Arc::new(Link { calls, send, control })
    }
}
