//! Framing: packets to bytes and back, as plain functions over buffers and
//! [`Read`]ers, with no threads and no connection state.
//!
//! `frame = BSUInt(len(body)) body`, and `body` is the header fields followed
//! by the payload (see `docs/` and the crate documentation for the layout).

use std::io::{self, Read};

use crate::error::{Error, ProtocolError};
use crate::packet::Packet;
use crate::varint::{decode_varint, encode_varint, varint_len, MAX_VARINT_LEN};

/// The default largest frame body accepted from a peer: 16 MiB.
pub const DEFAULT_MAX_PACKET_SIZE: usize = 16 << 20;

/// A header is at most four integers: tag, bits, channel, wire type.
const MAX_HEADER_LEN: usize = 4 * MAX_VARINT_LEN;

/// How far ahead of the bytes that have arrived a payload buffer may be
/// allocated. A peer that claims a huge length and then stalls costs at most
/// this much memory.
const MAX_PREALLOC: usize = 1 << 20;

/// The read buffer of a [`PacketReader`].
const READ_BUFFER: usize = 64 << 10;

fn bits(packet: &Packet) -> u64 {
    (packet.wire_flags << 2) | (u64::from(packet.wire_type.is_some()) << 1) | u64::from(packet.channel != 0)
}

fn header_len(packet: &Packet) -> usize {
    let channel = if packet.channel != 0 { varint_len(packet.channel) } else { 0 };
    let wire_type = packet.wire_type.map_or(0, varint_len);
    varint_len(packet.tag) + varint_len(bits(packet)) + channel + wire_type
}

/// The number of bytes [`encode`] writes for `packet`.
pub fn encoded_len(packet: &Packet) -> usize {
    let body = header_len(packet) + packet.payload.len();
    varint_len(body as u64) + body
}

/// Appends the frame's length prefix and the packet header, but not the
/// payload, to `out`. A writer that sends the payload from its own buffer
/// (to avoid copying a large one) writes these bytes first.
pub fn encode_header(packet: &Packet, out: &mut Vec<u8>) {
    let body = header_len(packet) + packet.payload.len();
    encode_varint(body as u64, out);
    encode_varint(packet.tag, out);
    encode_varint(bits(packet), out);
    if packet.channel != 0 {
        encode_varint(packet.channel, out);
    }
    if let Some(wire_type) = packet.wire_type {
        encode_varint(wire_type, out);
    }
}

/// Appends the whole frame of `packet` to `out`.
pub fn encode(packet: &Packet, out: &mut Vec<u8>) {
    out.reserve(encoded_len(packet));
    encode_header(packet, out);
    out.extend_from_slice(&packet.payload);
}

/// The header fields of a body, before its payload.
struct Header {
    channel: u64,
    tag: u64,
    wire_flags: u64,
    wire_type: Option<u64>,
}

/// Parses the header at the front of `body` and returns it with its length.
/// `body` may be the whole body or a prefix of at least [`MAX_HEADER_LEN`]
/// bytes of it.
fn parse_header(body: &[u8]) -> Result<(Header, usize), ProtocolError> {
    let mut at = 0;
    let mut next = || -> Result<u64, ProtocolError> {
        let (value, used) = decode_varint(&body[at..])?.ok_or(ProtocolError::TruncatedHeader)?;
        at += used;
        Ok(value)
    };
    let tag = next()?;
    let bits = next()?;
    let channel = if bits & 1 == 1 { next()? } else { 0 };
    let wire_type = if bits & 2 == 2 { Some(next()?) } else { None };
    Ok((Header { channel, tag, wire_flags: bits >> 2, wire_type }, at))
}

impl Header {
    fn with_payload(self, payload: Vec<u8>) -> Packet {
        Packet { channel: self.channel, tag: self.tag, wire_flags: self.wire_flags, wire_type: self.wire_type, payload }
    }
}

fn check_len(len: u64, max: usize) -> Result<usize, ProtocolError> {
    match usize::try_from(len) {
        Ok(len) if len <= max => Ok(len),
        _ => Err(ProtocolError::PacketTooLarge { len, max }),
    }
}

/// Decodes one frame from the front of `buf`.
///
/// Returns `Ok(None)` when `buf` holds only part of a frame (more bytes are
/// needed), or the packet and the number of bytes its frame used.
///
/// # Errors
/// A [`ProtocolError`] for a frame that can never become valid, however many
/// bytes follow: a bad integer, a length over `max_packet_size`, a body that
/// ends inside its header.
pub fn decode(buf: &[u8], max_packet_size: usize) -> Result<Option<(Packet, usize)>, ProtocolError> {
    let Some((len, prefix)) = decode_varint(buf)? else {
        return Ok(None);
    };
    let len = check_len(len, max_packet_size)?;
    let Some(body) = prefix.checked_add(len).and_then(|end| buf.get(prefix..end)) else {
        return Ok(None);
    };
    let (header, at) = parse_header(body)?;
    Ok(Some((header.with_payload(body[at..].to_vec()), prefix + len)))
}

/// Reads packets from a byte stream.
///
/// Small frames are cut out of one read buffer, so many packets cost one read
/// call; a large payload is read straight into its own buffer, which grows
/// only as its bytes arrive.
pub struct PacketReader<R> {
    inner: R,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    max_packet_size: usize,
    bytes_read: u64,
}

impl<R: Read> PacketReader<R> {
    /// A reader refusing frames longer than `max_packet_size`.
    pub fn new(inner: R, max_packet_size: usize) -> Self {
        PacketReader {
            inner,
            buf: vec![0; READ_BUFFER].into_boxed_slice(),
            start: 0,
            end: 0,
            max_packet_size,
            bytes_read: 0,
        }
    }

    /// How many bytes have been read from the stream so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    /// Gives back the stream and the bytes read from it but not yet decoded.
    pub fn into_parts(self) -> (R, Vec<u8>) {
        (self.inner, self.buf[self.start..self.end].to_vec())
    }

    /// Whether a whole frame is already buffered, so that
    /// [`read_packet`](Self::read_packet) will return without reading.
    pub fn has_buffered_packet(&self) -> bool {
        match decode_varint(&self.buf[self.start..self.end]) {
            Ok(Some((len, prefix))) => (len as usize).saturating_add(prefix) <= self.end - self.start,
            // A bad length is found without reading too.
            Err(_) => true,
            Ok(None) => false,
        }
    }

    /// Reads more bytes into the buffer; `Ok(0)` at the end of the stream.
    fn fill(&mut self) -> io::Result<usize> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let n = read_retrying(&mut self.inner, &mut self.buf[self.end..])?;
        self.end += n;
        self.bytes_read += n as u64;
        Ok(n)
    }

    /// Fills until at least `want` bytes are buffered.
    fn fill_to(&mut self, want: usize) -> Result<(), Error> {
        while self.end - self.start < want {
            if self.fill()? == 0 {
                return Err(ProtocolError::UnexpectedEof.into());
            }
        }
        Ok(())
    }

    /// Reads the next packet.
    ///
    /// Returns `Ok(None)` when the stream ends cleanly between frames.
    ///
    /// # Errors
    /// [`Error::Io`] when reading fails, [`Error::Protocol`] for a malformed
    /// frame or a stream that ends inside one.
    pub fn read_packet(&mut self) -> Result<Option<Packet>, Error> {
        let (len, prefix) = loop {
            if let Some(found) = decode_varint(&self.buf[self.start..self.end])? {
                break found;
            }
            if self.fill()? == 0 {
                if self.start == self.end {
                    return Ok(None);
                }
                return Err(ProtocolError::UnexpectedEof.into());
            }
        };
        let len = check_len(len, self.max_packet_size)?;
        self.start += prefix;
        self.fill_to(len.min(MAX_HEADER_LEN))?;
        let visible = len.min(self.end - self.start);
        let (header, at) = parse_header(&self.buf[self.start..self.start + visible])?;
        self.start += at;
        let payload = self.read_payload(len - at)?;
        Ok(Some(header.with_payload(payload)))
    }

    fn read_payload(&mut self, len: usize) -> Result<Vec<u8>, Error> {
        let buffered = self.end - self.start;
        if buffered >= len {
            let payload = self.buf[self.start..self.start + len].to_vec();
            self.start += len;
            return Ok(payload);
        }
        let mut payload = Vec::with_capacity(len.min(buffered + MAX_PREALLOC));
        payload.extend_from_slice(&self.buf[self.start..self.end]);
        self.start = 0;
        self.end = 0;
        while payload.len() < len {
            let missing = len - payload.len();
            if missing < self.buf.len() / 2 {
                // A short tail: read it through the buffer, which also picks
                // up the frames behind it in the same read call.
                self.fill_to(missing)?;
                payload.extend_from_slice(&self.buf[..missing]);
                self.start = missing;
                break;
            }
            // Room grows (at most doubling) only as bytes arrive, and is read
            // into without being zeroed first.
            payload.reserve(missing.min(payload.len().max(MAX_PREALLOC)));
            let room = payload.capacity() - payload.len();
            let before = payload.len();
            (&mut self.inner).take(room.min(missing) as u64).read_to_end(&mut payload)?;
            let n = payload.len() - before;
            if n == 0 {
                return Err(ProtocolError::UnexpectedEof.into());
            }
            self.bytes_read += n as u64;
        }
        Ok(payload)
    }
}

fn read_retrying(inner: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match inner.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}
