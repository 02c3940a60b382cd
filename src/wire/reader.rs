//! The streaming reader: packets from any [`Read`], with as few read calls
//! and as little memory as the frames allow.

use std::io::{self, Read};

use super::error::{ProtocolError, ReadError};
use super::frame::{check_len, parse_header, Header, MAX_HEADER_LEN};
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
///
/// A read of the stream that fails with [`io::ErrorKind::WouldBlock`] (a
/// non-blocking stream, or a [gate](Self::read_packet_gated) that gives up
/// at a deadline) suspends the frame being read: the read returns that
/// error, and the next call goes on where it stopped, so a thread can give
/// reading up in the middle of a frame and another can finish it.
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
    /// A frame whose payload was being read into a buffer of its own when a
    /// read would have blocked.
    partial: Option<Partial>,
    /// A buffer to read the next payload that does not fit in `buf` into.
    spare: Option<Vec<u8>>,
}

/// A frame suspended in its payload.
struct Partial {
    header: Header,
    payload: Vec<u8>,
    filled: usize,
    len: usize,
}

/// Asked before each read of the stream by
/// [`read_packet_gated`](PacketReader::read_packet_gated), with the buffer
/// the read would fill (empty where the reader reads otherwise): either how
/// many bytes may be read now without blocking ([`Gated::Ready`]), or that
/// the gate has read them into that buffer itself ([`Gated::Read`]), or an
/// error (such as [`WouldBlock`](io::ErrorKind::WouldBlock), to suspend).
/// With `exact` false, any count that lets one read call return at once
/// will do (the reader then makes one call); with `exact` true it must be
/// a count of bytes that are there, as the reader may read until it has
/// them all.
pub type Gate<'a> = dyn FnMut(&mut [u8], bool) -> io::Result<Gated> + 'a;

/// What a [`Gate`] says before a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gated {
    /// Read at most this many bytes (at least one is read): a read of them
    /// returns at once.
    Ready(usize),
    /// The gate read this many bytes into the buffer it was given, from the
    /// start (a read that could not block); 0 is the end of the stream.
    Read(usize),
}

/// The gate of a plain blocking read: anything, waiting if need be.
fn ungated(_buf: &mut [u8], _exact: bool) -> io::Result<Gated> {
    Ok(Gated::Ready(usize::MAX))
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
            partial: None,
            spare: None,
        }
    }

    /// Gives the reader a buffer to read the next large payload into (one
    /// that is not all in the read buffer already) if its capacity is
    /// enough, instead of allocating one: a buffer the application is done
    /// with, say. Replaces the one it was given before, if unused. Given
    /// with its bytes (its length at least the payload's), it is read into
    /// in place, each read call taking all that has arrived; an emptied one
    /// grows as the bytes arrive, which starts with smaller read calls.
    pub fn give_spare(&mut self, buffer: Vec<u8>) {
        self.spare = Some(buffer);
    }

    /// Whether the reader holds a buffer given by
    /// [`give_spare`](Self::give_spare) that it has not used yet.
    pub fn has_spare(&self) -> bool {
        self.spare.is_some()
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
    fn fill(&mut self, gate: &mut Gate<'_>) -> io::Result<usize> {
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
        let n = gated_read(&mut self.inner, &mut self.buf[self.end..], false, gate)?;
        self.end += n;
        self.bytes_read += n as u64;
        Ok(n)
    }

    /// Fills until at least `want` bytes are buffered.
    fn fill_to(&mut self, want: usize, gate: &mut Gate<'_>) -> Result<(), ReadError> {
        while self.end - self.start < want {
            if self.fill(gate)? == 0 {
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
    /// malformed frame or a stream that ends inside one. An I/O error of
    /// kind [`WouldBlock`](io::ErrorKind::WouldBlock) only suspends the
    /// frame: call again to go on.
    pub fn read_packet(&mut self) -> Result<Option<Packet>, ReadError> {
        self.read_packet_gated(&mut ungated)
    }

    /// [`read_packet`](Self::read_packet), asking `gate` before each read of
    /// the stream how much may be read without blocking (see [`Gate`]): a
    /// read that must give up at a deadline. The stream's own reads still
    /// fill the payload buffers directly (no zeroing first), which a wrapper
    /// implementing only [`Read::read`] would lose.
    ///
    /// # Errors
    /// As [`read_packet`](Self::read_packet), and the gate's.
    pub fn read_packet_gated(&mut self, gate: &mut Gate<'_>) -> Result<Option<Packet>, ReadError> {
        if let Some(partial) = self.partial.take() {
            let Partial { header, mut payload, mut filled, len } = partial;
            return match self.finish_payload(&mut payload, &mut filled, len, gate) {
                Ok(()) => Ok(Some(header.with_payload(payload))),
                Err(error) => Err(self.payload_failed(header, payload, filled, len, error)),
            };
        }
        self.frame_begin = self.start;
        self.head_saved = false;
        let (len, prefix) = loop {
            if let Some(found) = decode_varint(&self.buf[self.start..self.end])? {
                break found;
            }
            if self.fill(gate)? == 0 {
                if self.start == self.end {
                    return Ok(None);
                }
                return Err(ProtocolError::UnexpectedEof.into());
            }
        };
        let len = check_len(len, self.max_packet_size)?;
        // Nothing is consumed before the header is whole: a read that
        // suspends until then leaves the frame to be decoded afresh.
        self.fill_to(prefix + len.min(MAX_HEADER_LEN), gate)?;
        self.start += prefix;
        let visible = len.min(self.end - self.start);
        let (header, at) = parse_header(&self.buf[self.start..self.start + visible])?;
        self.start += at;
        self.read_payload(header, len - at, gate).map(Some)
    }

    fn read_payload(&mut self, header: Header, len: usize, gate: &mut Gate<'_>) -> Result<Packet, ReadError> {
        let buffered = self.end - self.start;
        if buffered >= len {
            let payload = self.buf[self.start..self.start + len].to_vec();
            self.start += len;
            return Ok(header.with_payload(payload));
        }
        // The frame's prefix and header leave the buffer now: keep them,
        // and on an error the start of the payload after them.
        self.head.clear();
        self.head.extend_from_slice(&self.buf[self.frame_begin..self.start]);
        self.head_saved = true;
        let mut payload = match self.spare.take() {
            // Its bytes are those of a payload as long at least: read over
            // them as they are, each read call taking all that has arrived.
            Some(mut spare) if spare.len() >= len => {
                spare.truncate(len);
                spare
            }
            Some(mut spare) if spare.capacity() >= len => {
                spare.clear();
                spare
            }
            unfit => {
                self.spare = unfit;
                Vec::with_capacity(len.min(buffered + MAX_PREALLOC))
            }
        };
        let mut filled = 0;
        put(&mut payload, &mut filled, &self.buf[self.start..self.end]);
        self.start = 0;
        self.end = 0;
        self.frame_begin = 0;
        match self.finish_payload(&mut payload, &mut filled, len, gate) {
            Ok(()) => Ok(header.with_payload(payload)),
            Err(error) => Err(self.payload_failed(header, payload, filled, len, error)),
        }
    }

    /// A payload that could not be finished: suspended if the read would
    /// have blocked; else the error, with the payload's start kept for
    /// [`frame_start`](Self::frame_start).
    fn payload_failed(
        &mut self,
        header: Header,
        payload: Vec<u8>,
        filled: usize,
        len: usize,
        error: ReadError,
    ) -> ReadError {
        if is_would_block(&error) {
            self.partial = Some(Partial { header, payload, filled, len });
            return error;
        }
        let room = FRAME_START_LEN.saturating_sub(self.head.len());
        self.head.extend_from_slice(&payload[..filled.min(room)]);
        error
    }

    /// Reads the rest of a payload that is not all in the buffer: its first
    /// `filled` bytes are there. A payload as long as `len` already (a spare
    /// buffer's) is read into in place; a shorter one grows.
    fn finish_payload(
        &mut self,
        payload: &mut Vec<u8>,
        filled: &mut usize,
        len: usize,
        gate: &mut Gate<'_>,
    ) -> Result<(), ReadError> {
        while *filled < len {
            let missing = len - *filled;
            if missing < self.buf.len() / 2 {
                // A short tail: read it through the buffer, which also picks
                // up the frames behind it in the same read call. The buffer
                // begins with the tail here (it was emptied for the payload).
                match self.fill_to(missing, gate) {
                    Ok(()) => {}
                    Err(error) if is_would_block(&error) => return Err(error),
                    Err(error) => {
                        put(payload, filled, &self.buf[self.start..self.end]);
                        return Err(error);
                    }
                }
                put(payload, filled, &self.buf[..missing]);
                self.start = missing;
                return Ok(());
            }
            // Reads until it has them all: only as many as are there.
            if payload.len() == len {
                let n = gated_read(&mut self.inner, &mut payload[*filled..len], true, gate)?;
                if n == 0 {
                    return Err(ProtocolError::UnexpectedEof.into());
                }
                *filled += n;
                self.bytes_read += n as u64;
                continue;
            }
            // Room grows (at most doubling) only as bytes arrive, and is read
            // into without being zeroed first: the gate has no buffer to
            // fill, and only says how much is there.
            let ready = match gate(&mut [], true)? {
                Gated::Ready(ready) => ready.max(1),
                Gated::Read(n) => return Err(gate_overran(n, 0).into()),
            };
            payload.reserve(missing.min(payload.len().max(MAX_PREALLOC)));
            let room = payload.capacity() - payload.len();
            let before = payload.len();
            // Bytes read before a read that would block stay in `payload`.
            let read = (&mut self.inner).take(room.min(missing).min(ready) as u64).read_to_end(payload);
            let n = payload.len() - before;
            *filled = payload.len();
            self.bytes_read += n as u64;
            read?;
            if n == 0 {
                return Err(ProtocolError::UnexpectedEof.into());
            }
        }
        Ok(())
    }
}

/// Puts `bytes` into `payload` after its first `filled` bytes: in place in
/// a payload read into in place (as long as the frame's), else at its end
/// (a growing payload holds just the bytes filled).
fn put(payload: &mut Vec<u8>, filled: &mut usize, bytes: &[u8]) {
    let end = *filled + bytes.len();
    if payload.len() >= end {
        payload[*filled..end].copy_from_slice(bytes);
    } else {
        payload.extend_from_slice(bytes);
    }
    *filled = end;
}

fn is_would_block(error: &ReadError) -> bool {
    matches!(error, ReadError::Io(error) if error.kind() == io::ErrorKind::WouldBlock)
}

/// One read of the stream into `buf`, as `gate` allows (see [`Gate`]).
fn gated_read(inner: &mut impl Read, buf: &mut [u8], exact: bool, gate: &mut Gate<'_>) -> io::Result<usize> {
    match gate(buf, exact)? {
        Gated::Ready(ready) => {
            let room = buf.len().min(ready.max(1));
            read_retrying(inner, &mut buf[..room])
        }
        Gated::Read(n) if n <= buf.len() => Ok(n),
        Gated::Read(n) => Err(gate_overran(n, buf.len())),
    }
}

/// A gate said it read more than the buffer it was given holds.
fn gate_overran(read: usize, room: usize) -> io::Error {
    let message = format!("a gate said it read {read} bytes into a buffer of {room}");
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

fn read_retrying(inner: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match inner.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}
