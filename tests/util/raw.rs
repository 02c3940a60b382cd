//! The far end of a connection, worked by hand: frames written with
//! [`wire::encode`] (or raw bytes), and what the connection writes decoded
//! on a helper thread so that every read can be waited for with a bound.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use packetstream::wire::{self, PacketReader, ReadError};
use packetstream::{memory_pipe, Finished, Packet, PacketConnection, Transport};

use super::{start_close, tcp_pair, Kind, LONG};

/// Shuts the far end of a socket down (in the given directions).
pub type Shutter = Box<dyn Fn(Shutdown) + Send>;

/// A transport for a connection, and the raw byte ends of its other side.
pub struct RawEnds {
    pub transport: Transport,
    /// What the connection writes.
    pub reader: Box<dyn Read + Send>,
    /// What the connection reads.
    pub writer: Box<dyn Write + Send>,
    /// For a socket, shuts the far end down; `None` for pipes and memory.
    pub shutdown: Option<Shutter>,
}

/// The far end of a socket: one clone to read, one to shut it down with.
macro_rules! socket_ends {
    ($ours:expr, $theirs:expr) => {{
        let theirs = $theirs;
        let reader = theirs.try_clone().expect("clone a socket");
        let killer = theirs.try_clone().expect("clone a socket");
        RawEnds {
            transport: $ours,
            reader: Box::new(reader),
            writer: Box::new(theirs),
            shutdown: Some(Box::new(move |how| {
                let _ = killer.shutdown(how);
            })),
        }
    }};
}

/// A transport for a connection, and the raw ends of its peer: two pipes
/// (or two in-memory directions) joined crosswise, or the far end of a
/// socket (with a clone to read from and one to shut it down with).
pub fn raw_ends(kind: Kind) -> RawEnds {
    match kind {
        Kind::Pipe => {
            let (our_read, their_write) = io::pipe().expect("pipe");
            let (their_read, our_write) = io::pipe().expect("pipe");
            RawEnds {
                transport: Transport::from_fd_reader(our_read, our_write),
                reader: Box::new(their_read),
                writer: Box::new(their_write),
                shutdown: None,
            }
        }
        Kind::Memory => {
            let (our_read, their_write) = memory_pipe();
            let (their_read, our_write) = memory_pipe();
            RawEnds {
                transport: Transport::new(our_read, our_write),
                reader: Box::new(their_read),
                writer: Box::new(their_write),
                shutdown: None,
            }
        }
        Kind::Unix => {
            let (ours, theirs) = UnixStream::pair().expect("socketpair");
            socket_ends!(Transport::unix(ours).expect("unix transport"), theirs)
        }
        Kind::Tcp => {
            let (ours, theirs) = tcp_pair();
            socket_ends!(Transport::tcp(ours).expect("tcp transport"), theirs)
        }
    }
}

/// The far end of a connection, driven by hand.
pub struct RawPeer {
    /// What the connection reads; `None` once ended.
    writer: Option<Box<dyn Write + Send>>,
    /// What the connection writes, until [`RawPeer::start_reading`] takes it.
    reader: Option<Box<dyn Read + Send>>,
    /// Started by the first `recv`.
    feed: Option<Feed>,
    shutdown: Option<Shutter>,
}

/// A transport for a connection, and the raw peer at its other end.
pub fn raw_pair(kind: Kind) -> (Transport, RawPeer) {
    let RawEnds { transport, reader, writer, shutdown } = raw_ends(kind);
    (transport, RawPeer { writer: Some(writer), reader: Some(reader), feed: None, shutdown })
}

impl RawPeer {
    /// Writes raw bytes and flushes.
    pub fn send_bytes(&mut self, bytes: &[u8]) {
        let writer = self.writer.as_mut().expect("the raw peer's output is still open");
        writer.write_all(bytes).expect("raw peer write");
        writer.flush().expect("raw peer flush");
    }

    /// Writes one packet's frame and flushes.
    pub fn send_packet(&mut self, packet: &Packet) {
        self.send_bytes(&frame(packet));
    }

    /// Ends what the connection reads (its reader sees the end of the
    /// stream), while the peer may still read.
    pub fn end_output(&mut self) {
        drop(self.writer.take());
        if let Some(shutdown) = &self.shutdown {
            shutdown(Shutdown::Write);
        }
    }

    /// Goes away entirely: both directions closed.
    pub fn hang_up(&mut self) {
        self.end_output();
        self.reader = None;
        self.feed = None;
        if let Some(shutdown) = self.shutdown.take() {
            shutdown(Shutdown::Both);
        }
    }

    /// Starts decoding what the connection writes, and hands the decoded
    /// packets over to be read apart from this peer.
    pub fn start_reading(&mut self) -> Feed {
        feed(self.reader.take().expect("the peer is not reading yet"))
    }

    fn feed(&mut self) -> &Feed {
        if self.feed.is_none() {
            self.feed = Some(self.start_reading());
        }
        self.feed.as_ref().expect("started above")
    }

    /// The next packet from the connection, waiting at most [`LONG`].
    pub fn recv(&mut self) -> Packet {
        self.feed().next()
    }

    /// The next packet, if one arrives within `timeout`.
    pub fn recv_within(&mut self, timeout: Duration) -> Option<Packet> {
        self.feed().poll(timeout)
    }

    /// Expects the connection to end its stream (clean end of input).
    pub fn recv_end(&mut self) {
        self.feed().end()
    }
}

impl Drop for RawPeer {
    fn drop(&mut self) {
        self.hang_up();
    }
}

/// Packets from a stream, decoded on a helper thread, taken with bounded
/// waits.
pub struct Feed {
    packets: Receiver<Result<Option<Packet>, ReadError>>,
}

/// Decodes `stream` on a helper thread, which ends with the stream.
pub fn feed(stream: Box<dyn Read + Send>) -> Feed {
    let (tx, packets) = crossbeam_channel::unbounded();
    thread::Builder::new()
        .name("raw-peer-rx".into())
        .spawn(move || {
            let mut reader = PacketReader::new(stream, usize::MAX);
            loop {
                let next = reader.read_packet();
                let last = !matches!(next, Ok(Some(_)));
                if tx.send(next).is_err() || last {
                    return;
                }
            }
        })
        .expect("spawn the raw peer's reader");
    Feed { packets }
}

impl Feed {
    /// The next packet; panics if none comes within [`LONG`].
    pub fn next(&self) -> Packet {
        match self.packets.recv_timeout(LONG) {
            Ok(Ok(Some(packet))) => packet,
            Ok(Ok(None)) => panic!("raw peer: the stream ended, a packet was expected"),
            Ok(Err(error)) => panic!("raw peer: read failed: {error}"),
            Err(RecvTimeoutError::Timeout) => panic!("raw peer: no packet within {LONG:?}"),
            Err(RecvTimeoutError::Disconnected) => panic!("raw peer: the reader already ended"),
        }
    }

    /// The next packet that is not a control packet (EOF, ERQ).
    pub fn next_ordinary(&self) -> Packet {
        loop {
            let packet = self.next();
            if packet.control().is_none() {
                return packet;
            }
        }
    }

    /// Expects a clean end of the stream within [`LONG`].
    pub fn end(&self) {
        match self.packets.recv_timeout(LONG) {
            Ok(Ok(None)) => {}
            other => panic!("raw peer: expected the end of the stream, got {other:?}"),
        }
    }

    /// Packets until the stream ends; panics if it does not end within [`LONG`].
    pub fn until_end(&self) -> Vec<Packet> {
        let deadline = Instant::now() + LONG;
        let mut packets = Vec::new();
        loop {
            match self.packets.recv_deadline(deadline) {
                Ok(Ok(Some(packet))) => packets.push(packet),
                Ok(Ok(None)) | Err(RecvTimeoutError::Disconnected) => return packets,
                Ok(Err(error)) => panic!("raw peer: read failed: {error}"),
                Err(RecvTimeoutError::Timeout) => panic!("raw peer: the stream did not end within {LONG:?}"),
            }
        }
    }

    /// Packets that arrive within `wait`, or until the stream ends.
    pub fn until_end_or(&self, wait: Duration) -> Vec<Packet> {
        let deadline = Instant::now() + wait;
        let mut packets = Vec::new();
        while let Ok(Ok(Some(packet))) = self.packets.recv_deadline(deadline) {
            packets.push(packet);
        }
        packets
    }

    /// The next packet if one arrives within `wait` (for "nothing is sent"
    /// checks); panics on a read error.
    pub fn poll(&self, wait: Duration) -> Option<Packet> {
        match self.packets.recv_timeout(wait) {
            Ok(Ok(Some(packet))) => Some(packet),
            Ok(Ok(None)) => None,
            Ok(Err(error)) => panic!("raw peer: read failed: {error}"),
            Err(_) => None,
        }
    }
}

/// The frame of one packet.
pub fn frame(packet: &Packet) -> Vec<u8> {
    let mut out = Vec::new();
    wire::encode(packet, &mut out);
    out
}

/// A BSUInt.
pub fn varint(value: u64) -> Vec<u8> {
    let mut out = Vec::new();
    wire::encode_varint(value, &mut out);
    out
}

/// A frame around `body` (raw header fields and payload).
pub fn raw_frame(body: &[u8]) -> Vec<u8> {
    let mut out = varint(body.len() as u64);
    out.extend_from_slice(body);
    out
}

/// The body of a frame from raw fields: tag, bits, optional channel,
/// optional wire type, payload.
pub fn raw_body(tag: u64, bits: u64, channel: Option<u64>, wire_type: Option<u64>, payload: &[u8]) -> Vec<u8> {
    let mut body = varint(tag);
    body.extend(varint(bits));
    if let Some(channel) = channel {
        body.extend(varint(channel));
    }
    if let Some(wire_type) = wire_type {
        body.extend(varint(wire_type));
    }
    body.extend_from_slice(payload);
    body
}

/// A response the way the peer would send it.
pub fn ok_response(channel: u64, tag: u64, flags: u64, payload: &[u8]) -> Packet {
    Packet::response(channel, tag, true, flags, payload.to_vec()).expect("a valid response")
}

/// The raw peer ends first (its EOF), then `conn` closes: its ERQ and EOF
/// are all that arrive, and the close is clean.
pub fn close_after_peer_eof(conn: PacketConnection, raw: &mut RawPeer) -> Finished {
    raw.send_packet(&Packet::eof());
    let closing = start_close(conn);
    assert_eq!(raw.recv(), Packet::erq(), "nothing but the close's ERQ and EOF");
    assert_eq!(raw.recv(), Packet::eof());
    closing.result().expect("clean close")
}

/// Bytes written as hex pairs separated by spaces (`"0b 01 ff"`).
pub fn hex(text: &str) -> Vec<u8> {
    text.split_whitespace().map(|pair| u8::from_str_radix(pair, 16).expect("a hex byte")).collect()
}
