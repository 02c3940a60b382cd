//! What a server tells about one of its connections.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::addr::{Addr, Peer};
use crate::conn::stats::Stats;

/// One of a server's connections: who, since when, and its counters (a
/// snapshot, from [`ServerHandle::connections`](super::ServerHandle::connections)
/// and the hooks).
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    pub(crate) id: u64,
    pub(crate) name: Arc<str>,
    pub(crate) peer: Peer,
    pub(crate) local: Option<Addr>,
    pub(crate) opened: Instant,
    pub(crate) stats: Stats,
    pub(crate) in_service: usize,
}

impl ConnectionInfo {
    /// The connection's number, unique in its server (from 1).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The connection's name, `<server>-<id>`: its threads are named after it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Who is at the other end.
    pub fn peer(&self) -> &Peer {
        &self.peer
    }

    /// The address it came in on; `None` for an in-process listener.
    pub fn local_addr(&self) -> Option<&Addr> {
        self.local.as_ref()
    }

    /// When the server accepted it.
    pub fn opened(&self) -> Instant {
        self.opened
    }

    /// How long it has been open (for the end hook: how long it was, up to
    /// its close).
    pub fn age(&self) -> Duration {
        self.opened.elapsed()
    }

    /// Its counters when the snapshot was taken (for the end hook: as
    /// close began).
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// How many of the peer's requests its handler was serving then.
    pub fn in_service(&self) -> usize {
        self.in_service
    }
}
