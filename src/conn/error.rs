//! Errors per operation, so that a caller matches only what can happen:
//! a submit can find the connection gone or a request it cannot send
//! but never a failed answer; a wait can get a failed answer but never a
//! request that cannot be sent. [`ConnectionError`] is the part they share: why the
//! connection no longer carries requests.
//!
//! The timed and non-blocking variants of an operation hand back what they
//! could not finish with (crossbeam's style): a submit that timed out gives
//! the payload back, a wait that timed out gives the
//! [`Pending`](crate::Pending) back.

use std::fmt;
use std::io;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Duration;

use super::answer::Failure;
use crate::wire::{ProtocolError, ValueTooLarge};

/// Why a connection no longer carries requests: every waiting caller gets
/// the same one, so it is cheap to clone.
#[non_exhaustive]
#[derive(Debug, Clone)]
pub enum ConnectionError {
    /// This side closed the connection, or (for new requests) ended its
    /// requests with [`end_requests`](crate::PacketConnection::end_requests).
    Closed,
    /// The peer ended its stream (EOF packet, or end of input) before it
    /// answered; with the reason it gave, if it quit with one.
    PeerClosed {
        /// The peer's quit reason (see
        /// [`Config::extensions`](crate::ConfigBuilder::extensions)).
        reason: Option<Arc<str>>,
    },
    /// Reading or writing the stream failed.
    Io(Arc<io::Error>),
    /// The peer broke the wire format.
    Protocol(ProtocolError),
    /// The peer had more requests in service at once than
    /// [`Config::max_incoming`](crate::Config::max_incoming) allows.
    TooManyIncoming {
        /// The limit in force.
        limit: usize,
    },
    /// The peer's bytes broke the format, and they look like text: most
    /// often a peer writing log lines to the stream (a child printing to
    /// its stdout).
    NotPackets {
        /// What the format check found.
        error: ProtocolError,
        /// The start of the bytes, quoted.
        text: String,
    },
    /// Nothing came from the peer for this long, not even the answer to a
    /// keepalive ping (see [`ConfigBuilder::keepalive`](crate::ConfigBuilder::keepalive)):
    /// the connection was given up.
    Unresponsive {
        /// How long the peer had been silent.
        silent_for: Duration,
        /// How many of this side's requests were waiting for an answer.
        waiting: usize,
    },
    /// The stream to the child process at the other end ended or broke, and
    /// the child exited (or left lines on stderr): how it ended, with the
    /// last lines it wrote to stderr when they were kept (see
    /// [`Transport::spawn_forwarding_stderr`](crate::Transport::spawn_forwarding_stderr)).
    /// The cause is inside.
    Child(Arc<ChildEnd>),
}

/// How the child process at the other end of a connection ended.
#[derive(Debug)]
pub struct ChildEnd {
    /// The program, as it was started.
    pub program: String,
    /// Its exit status; `None` if it was still running when its stream
    /// ended.
    pub status: Option<ExitStatus>,
    /// The last lines it wrote to stderr, oldest first (empty unless they
    /// were kept).
    pub stderr: Vec<String>,
    /// What ended the stream.
    pub cause: ConnectionError,
}

impl fmt::Display for ChildEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.status {
            Some(status) => write!(f, "{}; the child {:?} {}", self.cause, self.program, describe_status(status))?,
            None => write!(f, "{}; the child {:?} is still running", self.cause, self.program)?,
        }
        if let Some(last) = self.stderr.last() {
            if self.stderr.len() == 1 {
                write!(f, "; its last line on stderr: {last:?}")?;
            } else {
                write!(f, "; its last {} lines on stderr: {:?}", self.stderr.len(), self.stderr)?;
            }
        }
        Ok(())
    }
}

/// `exited with status 3`, `was killed by signal 9`.
fn describe_status(status: ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return format!("was killed by signal {signal}");
        }
    }
    match status.code() {
        Some(code) => format!("exited with status {code}"),
        None => format!("ended ({status})"),
    }
}

impl ConnectionError {
    /// The peer's quit reason, for [`ConnectionError::PeerClosed`] (also
    /// when a child's end wraps it).
    pub fn quit_reason(&self) -> Option<&str> {
        match self {
            ConnectionError::PeerClosed { reason } => reason.as_deref(),
            ConnectionError::Child(end) => end.cause.quit_reason(),
            _ => None,
        }
    }
}

impl fmt::Display for ConnectionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectionError::Closed => write!(f, "connection closed"),
            ConnectionError::PeerClosed { reason: None } => write!(f, "the peer closed the connection"),
            ConnectionError::PeerClosed { reason: Some(reason) } => {
                write!(f, "the peer closed the connection: {reason}")
            }
            ConnectionError::Io(error) => write!(f, "i/o error: {error}"),
            ConnectionError::Protocol(error) => write!(f, "protocol error: {error}"),
            ConnectionError::TooManyIncoming { limit } => {
                write!(f, "protocol error: the peer has more than {limit} requests in service")
            }
            ConnectionError::NotPackets { error, text } => write!(
                f,
                "protocol error: {error}; the bytes look like text, not packets (a peer writing to the stream?): {text}"
            ),
            ConnectionError::Unresponsive { silent_for, waiting } => write!(
                f,
                "the peer answered nothing for {:.1} s, a keepalive ping included; {waiting} request{} waited",
                silent_for.as_secs_f64(),
                if *waiting == 1 { "" } else { "s" }
            ),
            ConnectionError::Child(end) => fmt::Display::fmt(end, f),
        }
    }
}

impl std::error::Error for ConnectionError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConnectionError::Io(error) => Some(&**error),
            ConnectionError::Protocol(error) | ConnectionError::NotPackets { error, .. } => Some(error),
            ConnectionError::Child(end) => Some(&end.cause),
            _ => None,
        }
    }
}

impl From<io::Error> for ConnectionError {
    fn from(error: io::Error) -> Self {
        ConnectionError::Io(Arc::new(error))
    }
}

impl From<ProtocolError> for ConnectionError {
    fn from(error: ProtocolError) -> Self {
        ConnectionError::Protocol(error)
    }
}

/// Implements `Display`, `Error` and the `From`s of a per-operation error
/// whose variants each wrap one error (a variant named `Failed` wraps a
/// [`Failure`], shown as the peer's failure and with no source), plus unit
/// variants with a fixed text. The typed requests' errors use it too.
macro_rules! operation_error {
    ($name:ident { $($wrap:ident($ty:ty)),* $(; $unit:ident => $text:literal)* }) => {
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $($name::$wrap(inner) => operation_error!(@show f, $wrap, inner),)*
                    $($name::$unit => f.write_str($text),)*
                }
            }
        }

        impl std::error::Error for $name {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                match self {
                    $($name::$wrap(inner) => operation_error!(@source $wrap, inner),)*
                    #[allow(unreachable_patterns)]
                    _ => None,
                }
            }
        }

        $(impl From<$ty> for $name {
            fn from(inner: $ty) -> Self {
                $name::$wrap(inner)
            }
        })*
    };
    (@show $f:ident, Failed, $inner:ident) => { $inner.describe($f) };
    (@show $f:ident, $wrap:ident, $inner:ident) => { fmt::Display::fmt($inner, $f) };
    (@source Failed, $inner:ident) => {{
        let _ = $inner;
        None
    }};
    (@source $wrap:ident, $inner:ident) => { Some($inner) };
}
pub(crate) use operation_error;

/// A request that cannot be sent as given.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidRequest {
    /// Its type or flags do not fit on the wire.
    TooLarge(ValueTooLarge),
    /// Its channel is reserved for the protocol extensions
    /// ([`ext::RESERVED_CHANNELS`](crate::ext::RESERVED_CHANNELS)).
    ReservedChannel(u64),
}

impl fmt::Display for InvalidRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InvalidRequest::TooLarge(error) => fmt::Display::fmt(error, f),
            InvalidRequest::ReservedChannel(channel) => {
                write!(f, "channel {channel} is reserved for the protocol extensions")
            }
        }
    }
}

impl std::error::Error for InvalidRequest {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            InvalidRequest::TooLarge(error) => Some(error),
            InvalidRequest::ReservedChannel(_) => None,
        }
    }
}

impl From<ValueTooLarge> for InvalidRequest {
    fn from(error: ValueTooLarge) -> Self {
        InvalidRequest::TooLarge(error)
    }
}

/// Why [`PacketConnection::submit`](crate::PacketConnection::submit) sent
/// nothing.
#[non_exhaustive]
#[derive(Debug, Clone)]
pub enum SubmitError {
    /// The request cannot be sent as given; nothing was sent.
    Invalid(InvalidRequest),
    /// The connection takes no new requests.
    Connection(ConnectionError),
}

operation_error!(SubmitError { Invalid(InvalidRequest), Connection(ConnectionError) });

/// Why [`PacketConnection::submit_timeout`](crate::PacketConnection::submit_timeout)
/// sent nothing.
#[non_exhaustive]
#[derive(Debug, Clone)]
pub enum SubmitTimeoutError {
    /// The send queue had no room in time; here is the payload back.
    Timeout(Vec<u8>),
    /// The request cannot be sent as given; nothing was sent.
    Invalid(InvalidRequest),
    /// The connection takes no new requests.
    Connection(ConnectionError),
}

impl fmt::Display for SubmitTimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubmitTimeoutError::Timeout(_) => f.write_str("timed out waiting for room in the send queue"),
            SubmitTimeoutError::Invalid(error) => fmt::Display::fmt(error, f),
            SubmitTimeoutError::Connection(error) => fmt::Display::fmt(error, f),
        }
    }
}

impl std::error::Error for SubmitTimeoutError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SubmitTimeoutError::Timeout(_) => None,
            SubmitTimeoutError::Invalid(error) => Some(error),
            SubmitTimeoutError::Connection(error) => Some(error),
        }
    }
}

impl From<SubmitError> for SubmitTimeoutError {
    fn from(error: SubmitError) -> Self {
        match error {
            SubmitError::Invalid(error) => SubmitTimeoutError::Invalid(error),
            SubmitError::Connection(error) => SubmitTimeoutError::Connection(error),
        }
    }
}

/// Why a request got no ok answer: [`Pending::wait`](crate::Pending::wait).
#[non_exhaustive]
#[derive(Debug, Clone)]
pub enum RequestError {
    /// The peer answered ok = 0.
    Failed(Failure),
    /// The connection ended before an answer came.
    Connection(ConnectionError),
}

operation_error!(RequestError { Failed(Failure), Connection(ConnectionError) });

impl RequestError {
    /// The peer's failure, for [`RequestError::Failed`].
    pub fn failure(&self) -> Option<&Failure> {
        match self {
            RequestError::Failed(failure) => Some(failure),
            RequestError::Connection(_) => None,
        }
    }
}

/// Why [`PacketConnection::call`](crate::PacketConnection::call) returned no
/// ok answer: what [`SubmitError`] and [`RequestError`] can say.
#[non_exhaustive]
#[derive(Debug, Clone)]
pub enum CallError {
    /// The peer answered ok = 0.
    Failed(Failure),
    /// The request cannot be sent as given; nothing was sent.
    Invalid(InvalidRequest),
    /// The connection takes no new requests, or ended before an answer came.
    Connection(ConnectionError),
}

operation_error!(CallError { Failed(Failure), Invalid(InvalidRequest), Connection(ConnectionError) });

impl CallError {
    /// The peer's failure, for [`CallError::Failed`].
    pub fn failure(&self) -> Option<&Failure> {
        match self {
            CallError::Failed(failure) => Some(failure),
            _ => None,
        }
    }
}

impl From<SubmitError> for CallError {
    fn from(error: SubmitError) -> Self {
        match error {
            SubmitError::Invalid(error) => CallError::Invalid(error),
            SubmitError::Connection(error) => CallError::Connection(error),
        }
    }
}

impl From<RequestError> for CallError {
    fn from(error: RequestError) -> Self {
        match error {
            RequestError::Failed(failure) => CallError::Failed(failure),
            RequestError::Connection(error) => CallError::Connection(error),
        }
    }
}

/// Why [`PacketConnection::call_timeout`](crate::PacketConnection::call_timeout)
/// returned no ok answer.
#[non_exhaustive]
#[derive(Debug, Clone)]
pub enum CallTimeoutError {
    /// No answer in time; the request was given up.
    Timeout,
    /// The peer answered ok = 0.
    Failed(Failure),
    /// The request cannot be sent as given; nothing was sent.
    Invalid(InvalidRequest),
    /// The connection takes no new requests, or ended before an answer came.
    Connection(ConnectionError),
}

operation_error!(CallTimeoutError { Failed(Failure), Invalid(InvalidRequest), Connection(ConnectionError); Timeout => "timed out" });

impl CallTimeoutError {
    /// The peer's failure, for [`CallTimeoutError::Failed`].
    pub fn failure(&self) -> Option<&Failure> {
        match self {
            CallTimeoutError::Failed(failure) => Some(failure),
            _ => None,
        }
    }
}

impl From<CallError> for CallTimeoutError {
    fn from(error: CallError) -> Self {
        match error {
            CallError::Failed(failure) => CallTimeoutError::Failed(failure),
            CallError::Invalid(error) => CallTimeoutError::Invalid(error),
            CallError::Connection(error) => CallTimeoutError::Connection(error),
        }
    }
}

/// Why [`PacketConnection::join_recv_timeout`](crate::PacketConnection::join_recv_timeout)
/// returned before a clean end of the peer's stream.
#[non_exhaustive]
#[derive(Debug, Clone)]
pub enum JoinTimeoutError {
    /// The peer's stream had not ended by then.
    Timeout,
    /// Reading ended with this error.
    Connection(ConnectionError),
}

operation_error!(JoinTimeoutError { Connection(ConnectionError); Timeout => "timed out" });
