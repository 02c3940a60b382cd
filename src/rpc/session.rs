//! A connection whose registry handshake is done: typed calls go out under
//! the numbers the handshake settled.

use std::fmt;
use std::ops::Deref;
use std::time::{Duration, Instant};

use super::agreement::Numbering;
use super::call::sealed::Numbers;
use super::call::CallTyped;
use super::error::InvalidTyped;
use super::handshake::{Handshake, HandshakeError};
use crate::conn::close::{CloseError, CloseOptions, Finished};
use crate::conn::PacketConnection;

const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);

/// A [`PacketConnection`] whose registry [`Handshake`] has run. It derefs
/// to the connection; its typed calls ([`CallTyped`]) send each request
/// type under the number the handshake settled, and refuse request types
/// its registry lacks.
pub struct Session {
    conn: PacketConnection,
    handshake: Handshake,
    numbering: Numbering,
}

/// Why [`Session::start`] gave no session: the handshake's error, and the
/// connection back (still open) to close or use as it is.
pub struct HandshakeFailed {
    error: HandshakeError,
    // Boxed: a connection is large, and errors should be small to move.
    connection: Box<PacketConnection>,
}

impl HandshakeFailed {
    /// What went wrong.
    pub fn error(&self) -> &HandshakeError {
        &self.error
    }

    /// The connection, still open.
    pub fn into_connection(self) -> PacketConnection {
        *self.connection
    }

    /// Both.
    pub fn into_parts(self) -> (HandshakeError, PacketConnection) {
        (self.error, *self.connection)
    }
}

impl fmt::Debug for HandshakeFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandshakeFailed").field("error", &self.error).field("connection", &self.connection).finish()
    }
}

impl fmt::Display for HandshakeFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error, f)
    }
}

impl std::error::Error for HandshakeFailed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl Session {
    /// Runs `handshake` on `conn`, whose configuration came from
    /// [`Handshake::configure`], for at most `timeout`: waits for the
    /// protocol extensions to settle (one round trip) and, when the peer
    /// has a registry too, exchanges registries (one more). Against a peer
    /// without one, such as a plain cs.packetstream peer, no handshake
    /// happens and numbers travel as they are ([`Numbering::AsIs`]).
    ///
    /// # Errors
    /// [`HandshakeFailed`], with the connection back: the registries do not
    /// agree ([`HandshakeError::Mismatch`], naming the request types), the
    /// peer refused, the connection ended, or time ran out.
    pub fn start(conn: PacketConnection, handshake: &Handshake, timeout: Duration) -> Result<Session, HandshakeFailed> {
        let now = Instant::now();
        // A timeout too long to represent is as good as a year.
        let deadline = now.checked_add(timeout).or_else(|| now.checked_add(YEAR)).unwrap_or(now);
        match handshake.run(&conn, deadline) {
            Ok(numbering) => Ok(Session { conn, handshake: handshake.clone(), numbering }),
            Err(error) => Err(HandshakeFailed { error, connection: Box::new(conn) }),
        }
    }

    /// The numbering the handshake settled.
    pub fn numbering(&self) -> &Numbering {
        &self.numbering
    }

    /// The handshake.
    pub fn handshake(&self) -> &Handshake {
        &self.handshake
    }

    /// The connection.
    pub fn connection(&self) -> &PacketConnection {
        &self.conn
    }

    /// The connection, taken back; its typed calls then use plain numbers.
    pub fn into_connection(self) -> PacketConnection {
        self.conn
    }

    /// Closes the connection: [`PacketConnection::close`].
    ///
    /// # Errors
    /// As [`PacketConnection::close`].
    pub fn close(self) -> Result<Finished, CloseError> {
        self.conn.close()
    }

    /// Closes the connection with options: [`PacketConnection::close_with`].
    ///
    /// # Errors
    /// As [`PacketConnection::close`].
    pub fn close_with(self, options: CloseOptions) -> Result<Finished, CloseError> {
        self.conn.close_with(options)
    }
}

impl Deref for Session {
    type Target = PacketConnection;

    fn deref(&self) -> &PacketConnection {
        &self.conn
    }
}

impl Numbers for Session {
    fn connection(&self) -> &PacketConnection {
        &self.conn
    }

    fn wire_number(&self, name: &'static str, rq_type: u64) -> Result<u64, InvalidTyped> {
        let unregistered = InvalidTyped::Unregistered { name, rq_type };
        if self.handshake.registry().name(rq_type) != Some(name) {
            return Err(unregistered);
        }
        self.numbering.to_peer(rq_type).ok_or(unregistered)
    }
}

impl CallTyped for Session {}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session").field("conn", &self.conn).field("numbering", &self.numbering).finish()
    }
}
