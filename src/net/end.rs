//! Why a server's connection ended, as its end hook learns it.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use crate::conn::error::{ConnectionError, JoinTimeoutError};
use crate::conn::PacketConnection;

/// Why a connection ended: given to the end hook, once per connection.
#[non_exhaustive]
#[derive(Debug, Clone)]
pub enum EndReason {
    /// The peer ended its stream (EOF packet, or end of input) without a
    /// reason.
    PeerClosed,
    /// The peer closed with a reason (it has the extensions, as the server's
    /// connections must too).
    PeerQuit(String),
    /// Reading or writing the socket failed.
    Io(Arc<io::Error>),
    /// The peer broke the wire format, wrote text where packets belong, or
    /// had too many requests in service: the error says which.
    Protocol(ConnectionError),
    /// The keepalive gave the peer up (see
    /// [`ConfigBuilder::keepalive`](crate::ConfigBuilder::keepalive)).
    Unresponsive {
        /// How long the peer had been silent.
        silent_for: Duration,
        /// How many of the server's requests waited for it.
        waiting: usize,
    },
    /// No request moved either way for this long (see
    /// [`ServerConfigBuilder::idle_timeout`](super::ServerConfigBuilder::idle_timeout)).
    Idle(Duration),
    /// The server shut down.
    ShutDown,
}

impl EndReason {
    /// How `conn`'s reading ended, once it has.
    pub(crate) fn of(conn: &PacketConnection) -> EndReason {
        match conn.join_recv_timeout(Duration::ZERO) {
            Ok(()) => match conn.peer_quit_reason() {
                Some(reason) => EndReason::PeerQuit(reason),
                None => EndReason::PeerClosed,
            },
            Err(JoinTimeoutError::Connection(error)) => EndReason::from_error(error),
            // Not ended after all (the caller looked too early): the server
            // is ending it.
            Err(_) => EndReason::ShutDown,
        }
    }

    fn from_error(error: ConnectionError) -> EndReason {
        match error {
            ConnectionError::Io(error) => EndReason::Io(error),
            ConnectionError::Unresponsive { silent_for, waiting } => EndReason::Unresponsive { silent_for, waiting },
            ConnectionError::PeerClosed { reason: Some(reason) } => EndReason::PeerQuit(reason.to_string()),
            ConnectionError::PeerClosed { reason: None } => EndReason::PeerClosed,
            ConnectionError::Closed => EndReason::ShutDown,
            other => EndReason::Protocol(other),
        }
    }
}

impl fmt::Display for EndReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndReason::PeerClosed => f.write_str("the peer closed the connection"),
            EndReason::PeerQuit(reason) => write!(f, "the peer quit: {reason}"),
            EndReason::Io(error) => write!(f, "i/o error: {error}"),
            EndReason::Protocol(error) => fmt::Display::fmt(error, f),
            EndReason::Unresponsive { silent_for, waiting } => {
                let error = ConnectionError::Unresponsive { silent_for: *silent_for, waiting: *waiting };
                fmt::Display::fmt(&error, f)
            }
            EndReason::Idle(after) => write!(f, "idle for {:.1} s", after.as_secs_f64()),
            EndReason::ShutDown => f.write_str("the server shut down"),
        }
    }
}
