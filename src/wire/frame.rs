//! Framing: packets to bytes and back, as plain functions over slices.
//!
//! `frame = BSUInt(len(body)) body`, and `body` is the header fields followed
//! by the payload (`docs/protocol.md` has the layout).

use super::error::ProtocolError;
use super::packet::Packet;
use super::varint::{decode_varint, put_varint, varint_len, MAX_VARINT_LEN};

/// The default largest frame body accepted from a peer: 16 MiB.
pub const DEFAULT_MAX_PACKET_SIZE: usize = 16 << 20;

/// A header is at most four integers: tag, bits, channel, wire type.
pub(super) const MAX_HEADER_LEN: usize = 4 * MAX_VARINT_LEN;

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
    // The fields go after room for the longest length prefix, which is
    // known once they are: then prefix and fields leave in one copy.
    let mut head = [0u8; MAX_VARINT_LEN + MAX_HEADER_LEN];
    let mut at = MAX_VARINT_LEN;
    at += put_varint(packet.tag, &mut head[at..]);
    at += put_varint(bits(packet), &mut head[at..]);
    if packet.channel != 0 {
        at += put_varint(packet.channel, &mut head[at..]);
    }
    if let Some(wire_type) = packet.wire_type {
        at += put_varint(wire_type, &mut head[at..]);
    }
    let body = (at - MAX_VARINT_LEN + packet.payload.len()) as u64;
    let begin = MAX_VARINT_LEN - varint_len(body);
    put_varint(body, &mut head[begin..]);
    out.extend_from_slice(&head[begin..at]);
}

/// Appends the whole frame of `packet` to `out`.
pub fn encode(packet: &Packet, out: &mut Vec<u8>) {
    out.reserve(MAX_VARINT_LEN + MAX_HEADER_LEN + packet.payload.len());
    encode_header(packet, out);
    out.extend_from_slice(&packet.payload);
}

/// The header fields of a body, before its payload.
pub(super) struct Header {
    channel: u64,
    tag: u64,
    wire_flags: u64,
    wire_type: Option<u64>,
}

/// Parses the header at the front of `body` and returns it with its length.
/// `body` may be the whole body or a prefix of at least [`MAX_HEADER_LEN`]
/// bytes of it.
pub(super) fn parse_header(body: &[u8]) -> Result<(Header, usize), ProtocolError> {
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
    pub(super) fn with_payload(self, payload: Vec<u8>) -> Packet {
        Packet { channel: self.channel, tag: self.tag, wire_flags: self.wire_flags, wire_type: self.wire_type, payload }
    }
}

pub(super) fn check_len(len: u64, max: usize) -> Result<usize, ProtocolError> {
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
