//! The one helper module the integration tests share: transports of every
//! kind, unique connection names, bounded waits, a raw peer that speaks the
//! wire format by hand ([`raw`]), what the process holds ([`process`]), and
//! the Python peer ([`python`]). The command-line tool's tests (`cli/tests`)
//! use it too, through `#[path]`.
//!
//! Every wait here is bounded: a hang fails the test that hangs.

#![allow(dead_code)]

pub mod process;
pub mod python;
pub mod raw;

use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use packetstream::{CloseError, CloseOptions, Finished, PacketConnection, Transport};

#[allow(unused_imports)]
pub use process::{assert_no_threads, await_threads, threads_of};
#[allow(unused_imports)]
pub use raw::{raw_pair, Feed, RawPeer};

/// The repository's root, where the library's manifest, examples and
/// Python peers are, from the tests of any crate of the workspace.
pub fn repo() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .find(|dir| dir.join("tests/util/mod.rs").is_file())
        .unwrap_or_else(|| panic!("no tests/util/mod.rs in or above {}", manifest.display()))
        .to_path_buf()
}

/// How long any single wait in a test may take before the test fails: far
/// more than anything takes on a loaded two-core machine.
pub const LONG: Duration = Duration::from_secs(10);

/// A generous bound for what should happen "at once" (tests print the real
/// times).
pub const PROMPT: Duration = Duration::from_secs(5);

/// The byte streams a scenario runs over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Two pipes joined crosswise.
    Pipe,
    /// A Unix socketpair.
    Unix,
    /// A TCP connection on 127.0.0.1.
    Tcp,
    /// The in-memory transport (no file descriptors).
    Memory,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 4] = [Kind::Pipe, Kind::Unix, Kind::Tcp, Kind::Memory];

    /// One letter per kind.
    pub fn letter(self) -> char {
        match self {
            Kind::Pipe => 'p',
            Kind::Unix => 'u',
            Kind::Tcp => 't',
            Kind::Memory => 'm',
        }
    }

    /// A connection name unique in this test binary: the kind's letter, a
    /// serial number and `role`, for example `p0a7c`. Short, since Linux
    /// keeps 15 bytes of a thread's name and the library appends
    /// `-worker-<i>`.
    pub fn name(self, role: char) -> String {
        unique_name(self.letter(), role)
    }
}

/// A name unique in this test binary: `prefix`, a serial number in base 36
/// (three digits), `role`.
pub fn unique_name(prefix: char, role: char) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let mut n = NEXT.fetch_add(1, Ordering::Relaxed);
    assert!(n < 36 * 36 * 36, "more than 46,656 connection names in one test binary");
    let mut digits = [b'0'; 3];
    for digit in digits.iter_mut().rev() {
        *digit = b"0123456789abcdefghijklmnopqrstuvwxyz"[(n % 36) as usize];
        n /= 36;
    }
    format!("{prefix}{}{role}", std::str::from_utf8(&digits).expect("ascii digits"))
}

pub(crate) fn tcp_pair() -> (TcpStream, TcpStream) {
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
        Kind::Memory => Transport::memory_pair(),
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

/// Runs `f` on a thread bound to one CPU (the lowest it may use, as
/// `taskset -c N`), which every thread it starts inherits, and returns its
/// result: a connection made there runs as on a one-CPU machine.
#[cfg(target_os = "linux")]
pub fn on_one_cpu<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    thread::scope(|scope| {
        scope
            .spawn(|| {
                let size = std::mem::size_of::<libc::cpu_set_t>();
                // SAFETY: zeroed cpu_set_t values are empty sets; the kernel
                // fills `allowed` (at most `size` bytes) and reads `one`;
                // the CPU_* helpers stay within a set.
                unsafe {
                    let mut allowed: libc::cpu_set_t = std::mem::zeroed();
                    assert_eq!(libc::sched_getaffinity(0, size, &mut allowed), 0, "the thread's CPUs");
                    let first = (0..libc::CPU_SETSIZE as usize).find(|&cpu| libc::CPU_ISSET(cpu, &allowed));
                    let mut one: libc::cpu_set_t = std::mem::zeroed();
                    libc::CPU_SET(first.expect("some CPU is allowed"), &mut one);
                    assert_eq!(libc::sched_setaffinity(0, size, &one), 0, "bound to one CPU");
                }
                f()
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// `conn.close()`, failing the test if it does not return within [`LONG`].
pub fn close(conn: PacketConnection) -> Result<Finished, CloseError> {
    let name = conn.name().to_owned();
    within(LONG, &format!("close of {name}"), move || conn.close())
}

/// Closes two connected connections at once (each waits for the other's
/// EOF), failing the test if either takes longer than [`LONG`].
pub fn close_both(
    a: PacketConnection,
    b: PacketConnection,
) -> (Result<Finished, CloseError>, Result<Finished, CloseError>) {
    let (a, b) = (start_close(a), start_close(b));
    (a.result(), b.result())
}

/// Closes both connections and expects both closes to succeed.
pub fn close_both_ok(a: PacketConnection, b: PacketConnection) -> (Finished, Finished) {
    let (a, b) = close_both(a, b);
    (a.expect("first close"), b.expect("second close"))
}

/// A close running on its own thread, for tests that must act while it runs.
pub struct Closing {
    name: String,
    result: Receiver<Result<Finished, CloseError>>,
    started: Instant,
}

/// Starts `conn.close()` on its own thread.
pub fn start_close(conn: PacketConnection) -> Closing {
    start_close_with(conn, CloseOptions::new())
}

/// Starts `conn.close_with(options)` on its own thread.
pub fn start_close_with(conn: PacketConnection, options: CloseOptions) -> Closing {
    let name = conn.name().to_owned();
    let (tx, result) = crossbeam_channel::bounded(1);
    thread::spawn(move || {
        let _ = tx.send(conn.close_with(options));
    });
    Closing { name, result, started: Instant::now() }
}

impl Closing {
    /// What close returned, waiting at most [`LONG`] from its start.
    pub fn result(self) -> Result<Finished, CloseError> {
        match self.result.recv_deadline(self.started + LONG) {
            Ok(result) => result,
            Err(e) => panic!("close of {}: {e}", self.name),
        }
    }
}

/// Waits until `done` holds or `timeout` passes, looking every millisecond:
/// for what only the kernel can tell (a thread gone from `/proc`, a child
/// that exited), which no channel announces.
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

/// A path for a Unix socket that no other test (or test process) uses,
/// short enough for `sun_path`; nothing is created there.
pub fn socket_path(role: &str) -> std::path::PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("ps-{}-{n}-{role}.sock", std::process::id()))
}

/// Whether this machine can listen on [::1]; if not, says so loudly on
/// stderr (a line with SKIPPED) for `test`.
pub fn ipv6_loopback(test: &str) -> bool {
    match TcpListener::bind("[::1]:0") {
        Ok(_) => true,
        Err(error) => {
            let line = format!("\n*** SKIPPED the IPv6 part of {test}: cannot listen on [::1]: {error}\n");
            let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
            false
        }
    }
}
