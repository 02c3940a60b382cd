//! Helpers for the fault and hostile-input tests: transports on pipes and on
//! sockets, a raw peer that reads and writes bytes by hand, and what the
//! process holds (threads, file descriptors, memory) from `/proc/self`.
//!
//! Shared by `tests/faults.rs` and `tests/hostile.rs`; each uses a part.
#![allow(dead_code)]

/// The helpers `tests/connection.rs` uses; the pieces that overlap (transport
/// pairs, raw ends, thread listing, the random generator) live there.
#[path = "../common/mod.rs"]
pub mod common;

use std::io::{Read, Write};
use std::net::Shutdown;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use packetstream::codec::{self, PacketReader};
use packetstream::{Error, Packet, Transport};

pub use common::threads_of;

/// A generous bound for anything that should happen "at once" on a noisy,
/// shared two-core machine. Tests report the real times.
pub const PROMPT: Duration = Duration::from_secs(5);

/// What a connection runs over in a test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Two pipes joined crosswise.
    Pipe,
    /// A Unix socket pair.
    Socket,
}

impl Kind {
    pub const ALL: [Kind; 2] = [Kind::Pipe, Kind::Socket];

    /// One letter, for thread names (Linux keeps 15 bytes of a name).
    pub fn letter(self) -> char {
        match self {
            Kind::Pipe => 'p',
            Kind::Socket => 's',
        }
    }

    /// The same transport in the terms of [`common`].
    pub fn common(self) -> common::Kind {
        match self {
            Kind::Pipe => common::Kind::Pipe,
            Kind::Socket => common::Kind::Unix,
        }
    }
}

/// Transports for two connections talking to each other.
pub fn transport_pair(kind: Kind) -> (Transport, Transport) {
    common::transport_pair(kind.common())
}

/// The far end of a connection, driven by hand: raw bytes in and out.
pub struct RawPeer {
    /// What the connection writes; `None` once handed to [`RawPeer::start_reading`].
    pub rx: Option<Box<dyn Read + Send>>,
    /// What the connection reads; `None` once ended.
    pub tx: Option<Box<dyn Write + Send>>,
    /// Shuts the socket down; `None` for pipes.
    shutdown: Option<common::Shutter>,
}

/// A transport for a connection under test, and its raw peer.
pub fn raw_pair(kind: Kind) -> (Transport, RawPeer) {
    let common::RawEnds { transport, reader, writer, shutdown } = common::raw_ends(kind.common());
    (transport, RawPeer { rx: Some(reader), tx: Some(writer), shutdown })
}

impl RawPeer {
    /// Writes bytes to the connection.
    pub fn send(&mut self, bytes: &[u8]) {
        let tx = self.tx.as_mut().expect("the peer's output is still open");
        tx.write_all(bytes).expect("write to the connection");
        tx.flush().expect("flush");
    }

    /// Writes one packet to the connection.
    pub fn send_packet(&mut self, packet: &Packet) {
        self.send(&frame(packet));
    }

    /// Ends what the connection reads (its reader sees the end of the
    /// stream), while the peer may still read.
    pub fn end_output(&mut self) {
        drop(self.tx.take());
        if let Some(shutdown) = &self.shutdown {
            shutdown(Shutdown::Write);
        }
    }

    /// Goes away entirely: both directions closed.
    pub fn vanish(mut self) {
        self.end_output();
        if let Some(shutdown) = &self.shutdown {
            shutdown(Shutdown::Both);
        }
    }

    /// Starts a thread that decodes what the connection writes.
    pub fn start_reading(&mut self) -> Feed {
        let rx = self.rx.take().expect("the peer is not reading yet");
        feed(rx)
    }
}

/// Packets from a stream, decoded on a helper thread, taken with bounded waits.
pub struct Feed {
    packets: Receiver<Result<Packet, Error>>,
}

/// Decodes `rx` on a helper thread. The thread ends with the stream.
pub fn feed(rx: Box<dyn Read + Send>) -> Feed {
    let (tx, packets) = crossbeam_channel::unbounded();
    thread::Builder::new()
        .name("raw-peer-rx".into())
        .spawn(move || {
            let mut reader = PacketReader::new(rx, usize::MAX);
            loop {
                match reader.read_packet() {
                    Ok(Some(packet)) => {
                        if tx.send(Ok(packet)).is_err() {
                            return;
                        }
                    }
                    Ok(None) => return,
                    Err(error) => {
                        let _ = tx.send(Err(error));
                        return;
                    }
                }
            }
        })
        .expect("spawn the peer's reader");
    Feed { packets }
}

impl Feed {
    /// The next packet; panics if none comes within [`PROMPT`].
    pub fn next(&self) -> Packet {
        match self.packets.recv_timeout(PROMPT) {
            Ok(Ok(packet)) => packet,
            Ok(Err(error)) => panic!("the peer read an error: {error}"),
            Err(RecvTimeoutError::Timeout) => panic!("no packet within {PROMPT:?}"),
            Err(RecvTimeoutError::Disconnected) => panic!("the stream ended"),
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

    /// Packets until the stream ends; panics if it does not end within `PROMPT`.
    pub fn until_end(&self) -> Vec<Packet> {
        let deadline = Instant::now() + PROMPT;
        let mut packets = Vec::new();
        loop {
            match self.packets.recv_deadline(deadline) {
                Ok(Ok(packet)) => packets.push(packet),
                Ok(Err(error)) => panic!("the peer read an error: {error}"),
                Err(RecvTimeoutError::Timeout) => panic!("the stream did not end within {PROMPT:?}"),
                Err(RecvTimeoutError::Disconnected) => return packets,
            }
        }
    }

    /// Packets that arrive within `wait`, or until the stream ends.
    pub fn until_end_or(&self, wait: Duration) -> Vec<Packet> {
        let deadline = Instant::now() + wait;
        let mut packets = Vec::new();
        while let Ok(Ok(packet)) = self.packets.recv_deadline(deadline) {
            packets.push(packet);
        }
        packets
    }

    /// Whether a packet arrives within `wait` (for "nothing is sent" checks).
    pub fn poll(&self, wait: Duration) -> Option<Packet> {
        match self.packets.recv_timeout(wait) {
            Ok(Ok(packet)) => Some(packet),
            Ok(Err(error)) => panic!("the peer read an error: {error}"),
            Err(_) => None,
        }
    }
}

/// The frame of one packet.
pub fn frame(packet: &Packet) -> Vec<u8> {
    let mut out = Vec::new();
    codec::encode(packet, &mut out);
    out
}

/// A BSUInt.
pub fn varint(value: u64) -> Vec<u8> {
    let mut out = Vec::new();
    packetstream::encode_varint(value, &mut out);
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

/// Waits until `done` holds or `timeout` passes, looking every millisecond:
/// for what only the kernel can tell (a thread gone from `/proc`).
pub fn wait_for(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(1));
    }
}

/// Asserts that every thread named after connection `name` ends within [`PROMPT`].
pub fn assert_threads_end(name: &str) {
    let gone = wait_for(PROMPT, || threads_of(name).is_empty());
    assert!(gone, "threads of {name} still running: {:?}", threads_of(name));
}

pub fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task").map(|d| d.count()).unwrap_or(0)
}

pub fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0)
}

/// A field of `/proc/self/status` in KiB (`VmRSS`, `VmHWM`).
pub fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Resets the peak resident memory (`VmHWM`) to the current one, so that a
/// test measures its own peak (Linux 4.0 and later).
pub fn reset_peak_memory() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Current and peak resident memory, in MiB.
pub fn memory_mib() -> (u64, u64) {
    (status_kib("VmRSS") / 1024, status_kib("VmHWM") / 1024)
}

/// The resident memory of this process's children (in KiB), by pid: for a
/// server started with `Transport::spawn`, whose pid the test does not see.
pub fn children_rss_kib() -> Vec<(u32, u64)> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    let mut children: Vec<u32> = tasks
        .filter_map(Result::ok)
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|list| list.split_whitespace().filter_map(|pid| pid.parse().ok()).collect::<Vec<u32>>())
        .collect();
    children.sort_unstable();
    children
        .into_iter()
        .map(|pid| {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            let kib = status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .unwrap_or(0);
            (pid, kib)
        })
        .collect()
}

/// Tests that count the process's threads and fds take this exclusively;
/// every other test of the binary takes it shared, so that counts are not
/// disturbed by tests running alongside.
pub static PROCESS: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// For tests that do not count: runs alongside each other.
pub fn shared() -> std::sync::RwLockReadGuard<'static, ()> {
    PROCESS.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// For tests that count threads or fds: runs alone.
pub fn alone() -> std::sync::RwLockWriteGuard<'static, ()> {
    PROCESS.write().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The `echo_server` example next to this test binary
/// (`target/<profile>/deps/<test>-HASH` → `target/<profile>/examples/echo_server`),
/// built first if it is missing or older than the crate's sources (`cargo
/// test --test X` builds no examples).
pub fn echo_server() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    static BUILD: Mutex<()> = Mutex::new(());
    PATH.get_or_init(|| {
        let _building = BUILD.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let exe = std::env::current_exe().expect("the test binary's path");
        let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>");
        let path = profile_dir.join("examples").join("echo_server");
        let built = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
        let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        let sources = newest_mtime(&manifest_dir.join("src")).max(newest_mtime(&manifest_dir.join("examples")));
        if built.is_none_or(|built| sources.is_some_and(|sources| sources > built)) {
            let mut cargo = Command::new(env!("CARGO"));
            cargo.args(["build", "--quiet", "--example", "echo_server", "--manifest-path"]);
            cargo.arg(manifest_dir.join("Cargo.toml"));
            if profile_dir.file_name().is_some_and(|name| name == "release") {
                cargo.arg("--release");
            }
            let mut child = cargo.spawn().expect("run cargo build --example echo_server");
            let mut status = None;
            let done = wait_for(Duration::from_secs(600), || {
                status = child.try_wait().expect("cargo build");
                status.is_some()
            });
            if !done {
                let _ = child.kill();
                let _ = child.wait();
            }
            assert!(status.is_some_and(|s| s.success()) || path.exists(), "cargo build --example echo_server failed");
        }
        assert!(path.exists(), "{} is missing", path.display());
        path
    })
}

/// The newest modification time of the files under `dir`.
fn newest_mtime(dir: &Path) -> Option<std::time::SystemTime> {
    let mut newest = None;
    for entry in std::fs::read_dir(dir).ok()?.filter_map(Result::ok) {
        let path = entry.path();
        let time = if path.is_dir() { newest_mtime(&path) } else { entry.metadata().and_then(|m| m.modified()).ok() };
        newest = newest.max(time);
    }
    newest
}

/// Panics whose message contains this are expected (handlers that panic on
/// purpose) and not printed; every other panic is reported as usual.
pub const EXPECTED_PANIC: &str = "expected handler panic";

/// Installs, once, a panic hook that keeps expected handler panics quiet.
pub fn quiet_expected_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let message = info
                .payload()
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| info.payload().downcast_ref::<&str>().copied())
                .unwrap_or("");
            if !message.contains(EXPECTED_PANIC) {
                default(info);
            }
        }));
    });
}
