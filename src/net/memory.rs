//! In-process listeners: a [`MemoryListener`] that in-process clients
//! connect to through a [`MemoryConnector`], over the in-memory transport
//! (no file descriptors). A [`Server`](super::Server) serves it like a
//! socket.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, SendTimeoutError, Sender};

use super::addr::Peer;
use crate::transport::Transport;

/// How many connections may wait to be accepted, by default.
const DEFAULT_BACKLOG: usize = 128;

/// A connection made to a memory listener, not yet accepted.
pub(crate) struct MemoryConn {
    pub transport: Transport,
    pub peer: u64,
}

/// An in-process listener: clients in this process connect to it through
/// its [`connector`](Self::connector), and it accepts them, by hand
/// ([`accept_timeout`](Self::accept_timeout)) or served by a
/// [`Server`](super::Server) ([`ServerBuilder::listen_memory`](super::ServerBuilder::listen_memory)).
///
/// ```
/// use std::time::Duration;
/// use packetstream::net::MemoryListener;
/// use packetstream::{Config, PacketConnection};
/// # fn main() -> Result<(), packetstream::Error> {
/// let listener = MemoryListener::new();
/// let client = listener.connector().connect(Duration::from_secs(1))?;
/// let (server, _peer) = listener.accept_timeout(Duration::from_secs(1))?;
/// let server = PacketConnection::with_handler(server, Config::default(), |rq: packetstream::Request| rq.payload)?;
/// let client = PacketConnection::new(client, Config::default())?;
/// assert_eq!(client.call(0, 0, b"hi".to_vec())?.payload, b"hi");
/// # drop(client); drop(server);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct MemoryListener {
    incoming: Receiver<MemoryConn>,
    connector: MemoryConnector,
}

/// Connects to a [`MemoryListener`]; cheap to clone.
#[derive(Debug, Clone)]
pub struct MemoryConnector {
    queue: Sender<MemoryConn>,
    serial: Arc<AtomicU64>,
}

impl std::fmt::Debug for MemoryConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MemoryConn({})", self.peer)
    }
}

impl Default for MemoryListener {
    fn default() -> Self {
        MemoryListener::new()
    }
}

impl MemoryListener {
    /// A listener on which 128 connections may wait to be accepted.
    pub fn new() -> Self {
        MemoryListener::with_backlog(DEFAULT_BACKLOG)
    }

    /// A listener on which `backlog` connections may wait to be accepted
    /// (at least 1).
    pub fn with_backlog(backlog: usize) -> Self {
        let (queue, incoming) = crossbeam_channel::bounded(backlog.max(1));
        MemoryListener { incoming, connector: MemoryConnector { queue, serial: Arc::new(AtomicU64::new(0)) } }
    }

    /// What clients connect with.
    pub fn connector(&self) -> MemoryConnector {
        self.connector.clone()
    }

    /// Accepts a connection, waiting at most `timeout`.
    ///
    /// # Errors
    /// `TimedOut` when none came.
    pub fn accept_timeout(&self, timeout: Duration) -> io::Result<(Transport, Peer)> {
        match self.incoming.recv_timeout(timeout) {
            Ok(conn) => Ok((conn.transport, Peer::Memory(conn.peer))),
            Err(RecvTimeoutError::Timeout) => Err(io::ErrorKind::TimedOut.into()),
            // The listener holds a sender itself, so this does not happen.
            Err(RecvTimeoutError::Disconnected) => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    /// The queue a server accepts from.
    pub(crate) fn into_incoming(self) -> Receiver<MemoryConn> {
        // Dropping our sender lets connects fail once the server is gone.
        self.incoming
    }
}

impl MemoryConnector {
    /// Connects, waiting at most `timeout` for room in the listener's
    /// backlog; returns this end of the connection.
    ///
    /// # Errors
    /// `ConnectionRefused` when the listener (or the server serving it) is
    /// gone; `TimedOut` when its backlog stayed full.
    pub fn connect(&self, timeout: Duration) -> io::Result<Transport> {
        let (ours, theirs) = Transport::memory_pair();
        let peer = self.serial.fetch_add(1, Ordering::Relaxed);
        match self.queue.send_timeout(MemoryConn { transport: theirs, peer }, timeout) {
            Ok(()) => Ok(ours),
            Err(SendTimeoutError::Timeout(_)) => {
                Err(io::Error::new(io::ErrorKind::TimedOut, "the memory listener's backlog is full"))
            }
            Err(SendTimeoutError::Disconnected(_)) => {
                Err(io::Error::new(io::ErrorKind::ConnectionRefused, "the memory listener is gone"))
            }
        }
    }
}
