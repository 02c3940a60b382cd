//! Helpers shared by the integration tests: a pair of transports of each kind,
//! a raw peer that speaks the wire format by hand, bounded waits, and a check
//! that a connection left no thread behind.

#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use packetstream::codec::{self, PacketReader};
use packetstream::{Error, Finished, Packet, PacketConnection, Transport};

/// How long any single wait in a test may take before the test fails.
pub const LONG: Duration = Duration::from_secs(10);

/// The byte streams a scenario runs over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Two pipes joined crosswise.
    Pipe,
    /// A Unix socketpair.
    Unix,
    /// A TCP connection on 127.0.0.1.
    Tcp,
}

impl Kind {
    /// One letter per kind, to keep thread names unique across kinds.
    pub fn letter(self) -> char {
        match self {
            Kind::Pipe => 'p',
            Kind::Unix => 'u',
            Kind::Tcp => 't',
        }
    }

    /// A connection name unique to this test and kind: `<letter><id><role>`,
    /// for example `p07c`. Short, since Linux cuts thread names to 15 bytes
    /// and the library appends `-worker-<i>`.
    pub fn name(self, id: u32, role: char) -> String {
        format!("{}{id:02}{role}", self.letter())
    }
}

fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let address = listener.local_addr().expect("listener address");
    let client = TcpStream::connect(address).expect("connect");
    let (server, _) = listener.accept().expect("accept");
    (client, server)
}

/// Two transports joined to each other: what one writes the other reads.
pub fn transport_pair(kind: Kind) -> (Transport, Transport) {
    match kind {
        Kind::Pipe => Transport::pipe_pair().expect("pipe pair"),
        Kind::Unix => {
            let (a, b) = UnixStream::pair().expect("socketpair");
            (Transport::unix(a).expect("unix transport"), Transport::unix(b).expect("unix transport"))
        }
        Kind::Tcp => {
            let (a, b) = tcp_pair();
            (Transport::tcp(a).expect("tcp transport"), Transport::tcp(b).expect("tcp transport"))
        }
    }
}

/// The far end of a transport, worked by hand: frames written with
/// [`codec::encode`] and read with a [`PacketReader`] on a helper thread, so
/// that every read can be waited for with a timeout.
pub struct RawPeer {
    kind: Kind,
    writer: Option<Box<dyn Write + Send>>,
    /// The read end, until the reading thread starts (on the first `recv`).
    reader: Option<Box<dyn Read + Send>>,
    packets: Option<Receiver<Result<Option<Packet>, Error>>>,
    /// Shuts a socket down, which wakes the reading thread.
    shutdown: Option<Shutter>,
}

/// Shuts the far end of a socket down (in the given directions).
pub type Shutter = Box<dyn Fn(Shutdown) + Send>;

/// A transport for a connection, and the raw byte ends of its other side.
pub struct RawEnds {
    pub transport: Transport,
    /// What the connection writes.
    pub reader: Box<dyn Read + Send>,
    /// What the connection reads.
    pub writer: Box<dyn Write + Send>,
    /// For a socket, shuts the far end down; `None` for pipes.
    pub shutdown: Option<Shutter>,
}

/// A transport for a connection, and the raw ends of its peer: two pipes
/// joined crosswise, or the far end of a socket (with a clone to read from
/// and one to shut it down with).
pub fn raw_ends(kind: Kind) -> RawEnds {
    match kind {
        Kind::Pipe => {
            let (our_read, their_write) = io::pipe().expect("pipe");
            let (their_read, our_write) = io::pipe().expect("pipe");
            RawEnds {
                transport: Transport::new(our_read, our_write),
                reader: Box::new(their_read),
                writer: Box::new(their_write),
                shutdown: None,
            }
        }
        Kind::Unix => {
            let (ours, theirs) = UnixStream::pair().expect("socketpair");
            let reader = theirs.try_clone().expect("clone");
            let killer = theirs.try_clone().expect("clone");
            RawEnds {
                transport: Transport::unix(ours).expect("unix transport"),
                reader: Box::new(reader),
                writer: Box::new(theirs),
                shutdown: Some(Box::new(move |how| {
                    let _ = killer.shutdown(how);
                })),
            }
        }
        Kind::Tcp => {
            let (ours, theirs) = tcp_pair();
            let reader = theirs.try_clone().expect("clone");
            let killer = theirs.try_clone().expect("clone");
            RawEnds {
                transport: Transport::tcp(ours).expect("tcp transport"),
                reader: Box::new(reader),
                writer: Box::new(theirs),
                shutdown: Some(Box::new(move |how| {
                    let _ = killer.shutdown(how);
                })),
            }
        }
    }
}

/// A transport for a connection, and the raw peer at its other end.
pub fn raw_pair(kind: Kind) -> (Transport, RawPeer) {
    let RawEnds { transport, reader, writer, shutdown } = raw_ends(kind);
    let peer = RawPeer { kind, writer: Some(writer), reader: Some(reader), packets: None, shutdown };
    (transport, peer)
}

impl RawPeer {
    /// Writes one packet's frame and flushes.
    pub fn send(&mut self, packet: &Packet) {
        let mut bytes = Vec::new();
        codec::encode(packet, &mut bytes);
        self.send_bytes(&bytes);
    }

    /// Writes raw bytes and flushes.
    pub fn send_bytes(&mut self, bytes: &[u8]) {
        let writer = self.writer.as_mut().expect("raw peer writer already closed");
        writer.write_all(bytes).expect("raw peer write");
        writer.flush().expect("raw peer flush");
    }

    fn packets(&mut self) -> &Receiver<Result<Option<Packet>, Error>> {
        if self.packets.is_none() {
            let reader = self.reader.take().expect("raw peer reader");
            let (tx, rx) = crossbeam_channel::unbounded();
            thread::Builder::new()
                .name(format!("raw-{}", self.kind.letter()))
                .spawn(move || {
                    let mut packets = PacketReader::new(reader, codec::DEFAULT_MAX_PACKET_SIZE);
                    loop {
                        let next = packets.read_packet();
                        let last = !matches!(next, Ok(Some(_)));
                        if tx.send(next).is_err() || last {
                            break;
                        }
                    }
                })
                .expect("spawn raw reader");
            self.packets = Some(rx);
        }
        self.packets.as_ref().expect("started above")
    }

    /// The next packet from the connection, waiting at most [`LONG`].
    pub fn recv(&mut self) -> Packet {
        match self.packets().recv_timeout(LONG) {
            Ok(Ok(Some(packet))) => packet,
            Ok(Ok(None)) => panic!("raw peer: stream ended, a packet was expected"),
            Ok(Err(error)) => panic!("raw peer: read failed: {error}"),
            Err(RecvTimeoutError::Timeout) => panic!("raw peer: no packet within {LONG:?}"),
            Err(RecvTimeoutError::Disconnected) => panic!("raw peer: reader already ended"),
        }
    }

    /// The next packet, if one arrives within `timeout`.
    pub fn recv_within(&mut self, timeout: Duration) -> Option<Packet> {
        match self.packets().recv_timeout(timeout) {
            Ok(Ok(Some(packet))) => Some(packet),
            Ok(other) => panic!("raw peer: expected a packet, got {other:?}"),
            Err(_) => None,
        }
    }

    /// Expects the connection to end its stream (clean end of input).
    pub fn recv_end(&mut self) {
        match self.packets().recv_timeout(LONG) {
            Ok(Ok(None)) => {}
            other => panic!("raw peer: expected the end of the stream, got {other:?}"),
        }
    }

    /// Closes the raw peer's sending side (and for a socket shuts it down in
    /// both directions): the connection reads the end of its input.
    pub fn hang_up(&mut self) {
        self.writer = None;
        self.reader = None;
        if let Some(shutdown) = self.shutdown.take() {
            shutdown(Shutdown::Both);
        }
    }
}

impl Drop for RawPeer {
    fn drop(&mut self) {
        self.hang_up();
    }
}

/// Runs `f` on its own thread and returns its result, failing the test if it
/// takes longer than `timeout` (the thread is then left behind).
pub fn within<T: Send + 'static>(timeout: Duration, what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = crossbeam_channel::bounded(1);
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(timeout) {
        Ok(value) => value,
        Err(RecvTimeoutError::Timeout) => panic!("{what}: still running after {timeout:?}"),
        Err(RecvTimeoutError::Disconnected) => panic!("{what}: panicked"),
    }
}

/// `conn.close()`, failing the test if it does not return within [`LONG`].
pub fn close(conn: PacketConnection) -> Result<Finished, Error> {
    let name = conn.name().to_owned();
    within(LONG, &format!("close of {name}"), move || conn.close())
}

/// Closes two connected connections at once (each waits for the other's
/// EOF), failing the test if either takes longer than [`LONG`].
pub fn close_both(a: PacketConnection, b: PacketConnection) -> (Result<Finished, Error>, Result<Finished, Error>) {
    let (a_name, b_name) = (a.name().to_owned(), b.name().to_owned());
    let (a_tx, a_rx) = crossbeam_channel::bounded(1);
    let (b_tx, b_rx) = crossbeam_channel::bounded(1);
    thread::spawn(move || {
        let _ = a_tx.send(a.close());
    });
    thread::spawn(move || {
        let _ = b_tx.send(b.close());
    });
    let deadline = Instant::now() + LONG;
    let a = a_rx.recv_deadline(deadline).unwrap_or_else(|e| panic!("close of {a_name}: {e}"));
    let b = b_rx.recv_deadline(deadline).unwrap_or_else(|e| panic!("close of {b_name}: {e}"));
    (a, b)
}

/// Closes both connections and expects both closes to succeed.
pub fn close_both_ok(a: PacketConnection, b: PacketConnection) -> (Finished, Finished) {
    let (a, b) = close_both(a, b);
    (a.expect("first close"), b.expect("second close"))
}

/// The names of this process's threads.
pub fn thread_names() -> Vec<String> {
    let mut found = Vec::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return found;
    };
    for task in tasks.flatten() {
        // A thread may end between listing and reading: skip it.
        if let Ok(comm) = std::fs::read_to_string(task.path().join("comm")) {
            found.push(comm.trim_end().to_owned());
        }
    }
    found
}

/// The names of this process's threads that belong to connection `name`
/// (its threads are called `<name>-reader`, `<name>-writer`,
/// `<name>-worker-<i>`).
pub fn threads_of(name: &str) -> Vec<String> {
    let prefix = format!("{name}-");
    thread_names().into_iter().filter(|comm| comm.starts_with(&prefix)).collect()
}

/// Fails the test if a thread of connection `name` is still running.
///
/// A joined thread can stay listed in /proc for a moment after its join
/// returned (the kernel reaps it just after waking the joiner), and a thread
/// that close had to leave running ends once the peer goes away; so this
/// polls for up to a few seconds. There is no channel to wait on for "the
/// kernel has reaped this thread", hence the polling.
pub fn assert_no_threads(name: &str) {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let left = threads_of(name);
        if left.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "threads of connection {name} still running: {left:?}");
        thread::yield_now();
    }
}

/// A small deterministic permutation of `items` (xorshift), for collecting
/// answers in an order unrelated to the order of submission.
pub fn shuffle<T>(items: &mut [T], mut seed: u64) {
    for i in (1..items.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let j = (seed % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}

/// A close running on its own thread, for tests that must act while it runs.
pub struct Closing {
    name: String,
    result: Receiver<Result<Finished, Error>>,
}

/// Starts `conn.close()` on its own thread.
pub fn start_close(conn: PacketConnection) -> Closing {
    let name = conn.name().to_owned();
    let (tx, result) = crossbeam_channel::bounded(1);
    thread::spawn(move || {
        let _ = tx.send(conn.close());
    });
    Closing { name, result }
}

impl Closing {
    /// What close returned, waiting at most [`LONG`].
    pub fn result(self) -> Result<Finished, Error> {
        match self.result.recv_timeout(LONG) {
            Ok(result) => result,
            Err(e) => panic!("close of {}: {e}", self.name),
        }
    }
}

/// Waits (polling, for at most [`LONG`]) until connection `name` has a
/// thread called `<name>-<suffix>` for every one of `suffixes`: a new thread
/// names itself only once it runs, so a check right after start may not see
/// it yet. Shows that [`assert_no_threads`] looks at the right threads.
pub fn await_threads(name: &str, suffixes: &[&str]) {
    let deadline = Instant::now() + LONG;
    loop {
        let running = threads_of(name);
        if suffixes.iter().all(|suffix| running.contains(&format!("{name}-{suffix}"))) {
            return;
        }
        assert!(Instant::now() < deadline, "connection {name}: expected threads {suffixes:?}, found {running:?}");
        thread::yield_now();
    }
}

/// xorshift64*: varied, reproducible values without a dependency.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A value in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// `len` bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}
