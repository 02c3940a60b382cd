//! What can be wrong with bytes on the wire, or with values that cannot
//! become bytes.

use std::fmt;
use std::io;

/// The peer's bytes break the wire format; a connection cannot go on
/// reading after one.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtocolError {
    /// A BSUInt whose value does not fit in 64 bits.
    VarintOverflow,
    /// A BSUInt encoded in more than ten bytes.
    VarintTooLong,
    /// A frame whose length prefix exceeds the maximum packet size.
    PacketTooLarge {
        /// The length the frame claimed.
        len: u64,
        /// The maximum in force.
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
        }
    }
}

impl std::error::Error for ProtocolError {}

/// A value too large for its field on the wire: nothing was encoded.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueTooLarge {
    /// Flags over [`MAX_REQUEST_FLAGS`](super::MAX_REQUEST_FLAGS) for a
    /// request, or [`MAX_RESPONSE_FLAGS`](super::MAX_RESPONSE_FLAGS) for a
    /// response.
    Flags {
        /// The flags given.
        flags: u64,
        /// The largest that fits.
        max: u64,
    },
    /// A request type over [`MAX_RQ_TYPE`](super::MAX_RQ_TYPE).
    RqType(u64),
}

impl fmt::Display for ValueTooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueTooLarge::Flags { flags, max } => write!(f, "flags {flags} do not fit on the wire (at most {max})"),
            ValueTooLarge::RqType(rq_type) => write!(f, "request type {rq_type} does not fit on the wire"),
        }
    }
}

impl std::error::Error for ValueTooLarge {}

/// Why [`PacketReader::read_packet`](super::PacketReader::read_packet)
/// returned no packet.
#[derive(Debug)]
pub enum ReadError {
    /// Reading the stream failed.
    Io(io::Error),
    /// The bytes read break the wire format.
    Protocol(ProtocolError),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Io(error) => write!(f, "i/o error: {error}"),
            ReadError::Protocol(error) => write!(f, "protocol error: {error}"),
        }
    }
}

impl std::error::Error for ReadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ReadError::Io(error) => Some(error),
            ReadError::Protocol(error) => Some(error),
        }
    }
}

impl From<io::Error> for ReadError {
    fn from(error: io::Error) -> Self {
        ReadError::Io(error)
    }
}

impl From<ProtocolError> for ReadError {
    fn from(error: ProtocolError) -> Self {
        ReadError::Protocol(error)
    }
}
