//! The streaming reader: packets from any [`Read`], with as few read calls
//! and as little memory as the frames allow.

use std::io::{self, Read};

use super::error::{ProtocolError, ReadError};
use super::frame::{check_len, parse_header, MAX_HEADER_LEN};
use super::packet::Packet;
use super::varint::decode_varint;

/// How far ahead of the bytes that have arrived a payload buffer may be
/// allocated. A peer that claims a huge length and then stalls costs at most
/// this much memory.
const MAX_PREALLOC: usize = 1 << 20;

/// The read buffer of a [`PacketReader`].
const READ_BUFFER: usize = 64 << 10;

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
    /// Where in `buf` the frame being read begins, kept so that a frame
    /// that turns out malformed can be shown ([`frame_start`](Self::frame_start)).
    frame_begin: usize,
    /// The first bytes of the frame being read, once its payload has moved
    /// to a buffer of its own and they have left `buf`.
    head: Vec<u8>,
    head_saved: bool,
    max_packet_size: usize,
    bytes_read: u64,
}

/// How many of a frame's first bytes [`PacketReader::frame_start`] keeps.
pub const FRAME_START_LEN: usize = 64;

impl<R: Read> PacketReader<R> {
    /// A reader refusing frames longer than `max_packet_size`.
    pub fn new(inner: R, max_packet_size: usize) -> Self {
        PacketReader {
            inner,
            buf: vec![0; READ_BUFFER].into_boxed_slice(),
            start: 0,
            end: 0,
            frame_begin: 0,
            head: Vec::new(),
            head_saved: false,
            max_packet_size,
            bytes_read: 0,
        }
    }

    /// The first bytes (at most [`FRAME_START_LEN`]) of the frame that
    /// [`read_packet`](Self::read_packet) read last, or is reading: after an
    /// error, the bytes that broke the format, to show them (a peer that
    /// writes text to the stream, say).
    pub fn frame_start(&self) -> &[u8] {
        if self.head_saved {
            return &self.head;
        }
        let begin = self.frame_begin.min(self.end);
        &self.buf[begin..self.end.min(begin + FRAME_START_LEN)]
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
    /// The bytes of the frame being read stay (its prefix and header, for
    /// [`frame_start`](Self::frame_start)); what came before it goes.
    fn fill(&mut self) -> io::Result<usize> {
        let keep = self.frame_begin.min(self.start);
        if keep == self.end {
            self.start = 0;
            self.end = 0;
            self.frame_begin = 0;
        } else if self.end == self.buf.len() {
            self.buf.copy_within(keep..self.end, 0);
            self.end -= keep;
            self.start -= keep;
            self.frame_begin -= keep;
        }
        let n = read_retrying(&mut self.inner, &mut self.buf[self.end..])?;
        self.end += n;
        self.bytes_read += n as u64;
        Ok(n)
    }

    /// Fills until at least `want` bytes are buffered.
    fn fill_to(&mut self, want: usize) -> Result<(), ReadError> {
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
    /// [`ReadError::Io`] when reading fails, [`ReadError::Protocol`] for a
    /// malformed frame or a stream that ends inside one.
    pub fn read_packet(&mut self) -> Result<Option<Packet>, ReadError> {
        self.frame_begin = self.start;
        self.head_saved = false;
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

    fn read_payload(&mut self, len: usize) -> Result<Vec<u8>, ReadError> {
        let buffered = self.end - self.start;
        if buffered >= len {
            let payload = self.buf[self.start..self.start + len].to_vec();
            self.start += len;
            return Ok(payload);
        }
        // The frame's prefix and header leave the buffer now: keep them,
        // and on an error the start of the payload after them.
        self.head.clear();
        self.head.extend_from_slice(&self.buf[self.frame_begin..self.start]);
        self.head_saved = true;
        let mut payload = Vec::with_capacity(len.min(buffered + MAX_PREALLOC));
        payload.extend_from_slice(&self.buf[self.start..self.end]);
        self.start = 0;
        self.end = 0;
        self.frame_begin = 0;
        match self.finish_payload(&mut payload, len) {
            Ok(()) => Ok(payload),
            Err(error) => {
                let room = FRAME_START_LEN.saturating_sub(self.head.len());
                self.head.extend_from_slice(&payload[..payload.len().min(room)]);
                Err(error)
            }
        }
    }

    /// Reads the rest of a payload that is not all in the buffer.
    fn finish_payload(&mut self, payload: &mut Vec<u8>, len: usize) -> Result<(), ReadError> {
        while payload.len() < len {
            let missing = len - payload.len();
            if missing < self.buf.len() / 2 {
                // A short tail: read it through the buffer, which also picks
                // up the frames behind it in the same read call.
                if let Err(error) = self.fill_to(missing) {
                    payload.extend_from_slice(&self.buf[self.start..self.end]);
                    return Err(error);
                }
                payload.extend_from_slice(&self.buf[..missing]);
                self.start = missing;
                return Ok(());
            }
            // Room grows (at most doubling) only as bytes arrive, and is read
            // into without being zeroed first.
            payload.reserve(missing.min(payload.len().max(MAX_PREALLOC)));
            let room = payload.capacity() - payload.len();
            let before = payload.len();
            (&mut self.inner).take(room.min(missing) as u64).read_to_end(payload)?;
            let n = payload.len() - before;
            if n == 0 {
                return Err(ProtocolError::UnexpectedEof.into());
            }
            self.bytes_read += n as u64;
        }
        Ok(())
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
