//! The error values of the crate.
//!
//! One [`Error`] covers everything a caller can meet, so that `?` works
//! everywhere; its variants keep the cases apart that a caller handles
//! differently: the peer said no ([`Error::Failed`]), the connection is gone
//! ([`Error::Closed`], [`Error::Io`], [`Error::Protocol`]), or the caller gave
//! up ([`Error::Timeout`], [`Error::Cancelled`]).

use std::borrow::Cow;
use std::fmt;
use std::io;
use std::sync::Arc;

/// A response with ok = 0: the peer could not fulfil the request.
///
/// `cs.packetstream` peers send flags 0 and a short UTF-8 text; a Rust
/// handler may choose both (see [`Failure::with_flags`]).
#[derive(Clone, PartialEq, Eq)]
pub struct Failure {
    /// The application flags of the failed response.
    pub flags: u64,
    /// The payload of the failed response, usually a UTF-8 message.
    pub payload: Vec<u8>,
}

impl Failure {
    /// A failure with flags 0 and `text` as its payload, as cs.packetstream sends.
    pub fn new(text: impl Into<String>) -> Self {
        Failure { flags: 0, payload: text.into().into_bytes() }
    }

    /// A failure with chosen flags and payload.
    pub fn with_flags(flags: u64, payload: impl Into<Vec<u8>>) -> Self {
        Failure { flags, payload: payload.into() }
    }

    /// The payload read as UTF-8, with any invalid bytes replaced.
    pub fn text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.payload)
    }
}

impl fmt::Debug for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Failure").field("flags", &self.flags).field("text", &self.text()).finish()
    }
}

impl From<String> for Failure {
    fn from(text: String) -> Self {
        Failure::new(text)
    }
}

impl From<&str> for Failure {
    fn from(text: &str) -> Self {
        Failure::new(text)
    }
}

/// The peer broke the wire format; the connection cannot go on.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtocolError {
    /// A BSUInt whose value does not fit in 64 bits.
    VarintOverflow,
    /// A BSUInt encoded in more than ten bytes.
    VarintTooLong,
    /// A frame whose length prefix exceeds the configured maximum packet size.
    PacketTooLarge {
        /// The length the frame claimed.
        len: u64,
        /// The configured maximum.
        max: usize,
    },
    /// A frame whose body ends inside the packet header (this includes an
    /// empty frame).
    TruncatedHeader,
    /// The stream ended in the middle of a frame.
    UnexpectedEof,
    /// A request with wire type 0 that is neither the EOF nor the ERQ packet.
    BadControlPacket {
        /// The channel it came on.
        channel: u64,
        /// Its tag.
        tag: u64,
    },
    /// The peer has more requests in service than the configured limit allows
    /// (see [`Config::max_incoming`](crate::Config::max_incoming)).
    TooManyIncoming {
        /// The configured limit.
        limit: usize,
    },
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::VarintOverflow => write!(f, "integer does not fit in 64 bits"),
            ProtocolError::VarintTooLong => write!(f, "integer encoded in more than 10 bytes"),
            ProtocolError::PacketTooLarge { len, max } => {
                write!(f, "packet of {len} bytes exceeds the maximum of {max}")
            }
            ProtocolError::TruncatedHeader => write!(f, "packet ends inside its header"),
            ProtocolError::UnexpectedEof => write!(f, "stream ended inside a packet"),
            ProtocolError::BadControlPacket { channel, tag } => {
                write!(f, "malformed control packet (channel {channel}, tag {tag})")
            }
            ProtocolError::TooManyIncoming { limit } => {
                write!(f, "peer has more than {limit} requests in service")
            }
        }
    }
}

impl std::error::Error for ProtocolError {}

/// Everything that can go wrong with a connection or a request.
#[non_exhaustive]
#[derive(Debug, Clone)]
pub enum Error {
    /// The peer answered the request with ok = 0.
    Failed(Failure),
    /// The connection ended (closed here, or the peer sent EOF or ended its
    /// stream) before the request was answered, or no longer takes requests.
    Closed,
    /// Reading or writing the stream failed. Shared, since one broken stream
    /// fails every waiting caller.
    Io(Arc<io::Error>),
    /// The peer broke the wire format.
    Protocol(ProtocolError),
    /// A timed wait or a timed submit ran out of time. The request, if one was
    /// made, is still outstanding.
    Timeout,
    /// The request was cancelled before its answer arrived.
    Cancelled,
    /// A wait asked again for a response that an earlier wait already returned.
    AlreadyTaken,
    /// Flags too large for the wire: requests carry at most
    /// [`MAX_REQUEST_FLAGS`](crate::MAX_REQUEST_FLAGS), responses at most
    /// [`MAX_RESPONSE_FLAGS`](crate::MAX_RESPONSE_FLAGS).
    FlagsTooLarge {
        /// The flags given.
        flags: u64,
        /// The largest that fits.
        max: u64,
    },
    /// A request type too large for the wire (at most
    /// [`MAX_RQ_TYPE`](crate::MAX_RQ_TYPE)).
    RqTypeTooLarge(u64),
    /// Close could not finish in its deadline; the text says what was still
    /// running. Threads that could not be stopped were left running detached.
    CloseTimeout(String),
    /// One of the connection's threads panicked.
    ThreadPanicked {
        /// The thread's name.
        thread: String,
        /// The panic message, if it was a string.
        message: String,
    },
    /// The child process could not be reaped.
    Child(Arc<io::Error>),
}

impl Error {
    /// The failure the peer answered with, if this is [`Error::Failed`].
    pub fn failure(&self) -> Option<&Failure> {
        match self {
            Error::Failed(failure) => Some(failure),
            _ => None,
        }
    }

    /// Whether the connection is unusable after this error (as opposed to one
    /// request failing or one wait timing out).
    pub fn is_connection_error(&self) -> bool {
        matches!(self, Error::Closed | Error::Io(_) | Error::Protocol(_) | Error::ThreadPanicked { .. })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Failed(failure) => {
                write!(f, "request failed: {}", failure.text())?;
                if failure.flags != 0 {
                    write!(f, " (flags {})", failure.flags)?;
                }
                Ok(())
            }
            Error::Closed => write!(f, "connection closed"),
            Error::Io(error) => write!(f, "i/o error: {error}"),
            Error::Protocol(error) => write!(f, "protocol error: {error}"),
            Error::Timeout => write!(f, "timed out"),
            Error::Cancelled => write!(f, "request cancelled"),
            Error::AlreadyTaken => write!(f, "response already taken by an earlier wait"),
            Error::FlagsTooLarge { flags, max } => {
                write!(f, "flags {flags} do not fit on the wire (at most {max})")
            }
            Error::RqTypeTooLarge(rq_type) => write!(f, "request type {rq_type} does not fit on the wire"),
            Error::CloseTimeout(what) => write!(f, "close timed out: {what}"),
            Error::ThreadPanicked { thread, message } => write!(f, "thread {thread} panicked: {message}"),
            Error::Child(error) => write!(f, "child process: {error}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(error) | Error::Child(error) => Some(&**error),
            Error::Protocol(error) => Some(error),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(error: io::Error) -> Self {
        Error::Io(Arc::new(error))
    }
}

impl From<ProtocolError> for Error {
    fn from(error: ProtocolError) -> Self {
        Error::Protocol(error)
    }
}

impl From<Failure> for Error {
    fn from(failure: Failure) -> Self {
        Error::Failed(failure)
    }
}
