//! Transport benchmark: packetstream against hand-written baselines and
//! limits, between a parent and a child process over the child's
//! stdin/stdout, and over a Unix socketpair inside one process.
//!
//!     cargo bench --bench transport
//!     PACKETSTREAM_BENCH_QUICK=1 cargo bench --bench transport     (a few seconds)
//!
//! Optional overrides: PACKETSTREAM_BENCH_ROUNDS (rounds per scenario),
//! PACKETSTREAM_BENCH_SECS (seconds per measured run) and
//! PACKETSTREAM_BENCH_ONLY (a comma-separated list of the sections to run:
//! pipes, pinned, socket, scaling, streams, grace, pause, costs, peaks).
//!
//! Scenarios, each with 16-byte payloads unless said otherwise:
//! - A sequential: one caller, each call waits for its answer;
//! - B pipelined: one caller keeping 64 (or 512) requests outstanding;
//! - C concurrent: 4 caller threads, each sequential;
//! - D bulk: 1 MiB payloads echoed, sequential (MB/s of payload one way).
//!
//! Comparators, all framing each message as a 12-byte header (u32 payload
//! length, u64 request id, little-endian) and the payload:
//! - the baseline: a reader thread in the parent matches answers by id to
//!   waiting callers (a mutex-held map of slots, each a mutex and a
//!   condvar); callers write under a mutex into a `BufWriter` and flush it
//!   only when they are about to block for an answer; over Linux's default
//!   64 KiB pipes, or over 1 MiB pipes as the library's;
//! - the direct caller: one thread writes a request and reads its own
//!   answer, with no reader thread and no locks to speak of, over 1 MiB
//!   pipes: the limit for a sequential caller.
//!
//! Streams: a child pushes 16-byte, 64 KiB and 1 MiB items to the parent,
//! on a packetstream stream, or as length-prefixed frames written by hand
//! over a pipe of the same size.
//!
//! The echo child of every comparator is the same: it answers in order
//! through a `BufReader`/`BufWriter`, flushing whenever its input buffer is
//! empty. Buffers are 64 KiB, the size of packetstream's read buffer.
//!
//! Every measured run reports its figure and the CPU time (user + system)
//! of the parent and the child process together per request, from the
//! processes' CPU clocks (`clock_getcpuclockid`), read just before and
//! after the timed part. The pinned configuration runs the same scenarios
//! with the parent's main thread bound to one CPU before anything of the
//! run starts, so that every thread and the child inherit the binding.
//!
//! Each scenario runs on a fresh connection (and child) per implementation
//! and round; the order of the implementations rotates from round to round,
//! and the medians of the rounds are printed with the median of the
//! per-round ratios.
//!
//! The binary re-executes itself with a first argument of `__child`,
//! `__push`, `__hold` or `__peak` to act as an echo child, a child pushing
//! items, a peer that holds requests, or a process whose peak memory is
//! measured. Without `--bench` (as under `cargo test --benches`) it runs
//! the quick mode. It never asserts timings.

// ---------------------------------------------------------------------------
// Servers over TCP loopback: packetstream's `net::Server` against a
// thread-per-connection server with the baseline's framing, each in a child
// process, driven from this one.

/// The stack of this process's client connections' threads: the scale run
/// holds a thousand of them here.
const CLIENT_STACK: usize = 256 << 10;
/// How many threads open, call and close connections at once in E.
const CONNECTING_THREADS: usize = 4;

/// `__server ps|raw [--stack BYTES] [--queue PACKETS]`: listens on 127.0.0.1:0, prints
/// `listening on ADDR`, serves echo until its stdin ends, then prints
/// `served connections=N requests=M` (ps only).
fn server_main(args: &[String]) -> Result<(), String> {
    let option = |name: &str| {
        args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse::<usize>().ok())
    };
    let (stack, queue) = (option("--stack"), option("--queue"));
    match args.first().map(String::as_str) {
        Some("ps") => {
            let mut connection = ServerConfig::connection_defaults();
            if let Some(stack) = stack {
                connection = connection.thread_stack_size(stack);
            }
            if let Some(queue) = queue {
                connection = connection.send_queue(queue);
            }
            let config = ServerConfig::builder().name("bs").connection(connection);
            let server = Server::builder()
                .config(config)
                .listen("127.0.0.1:0".parse().expect("an address"))
                .serve(|_: &ConnectionInfo| echo_handler)
                .map_err(|e| e.to_string())?;
            println!("listening on {}", server.local_addrs()[0]);
            let handle = server.handle();
            let stdin = thread::spawn(move || {
                let _ = io::stdin().read_to_end(&mut Vec::new());
                handle.shutdown(Instant::now() + Duration::from_secs(5))
            });
            server.run();
            let report = stdin.join().map_err(|_| "the stdin thread panicked")?;
            println!("served connections={} requests={}", report.totals.connections, report.totals.requests);
            Ok(())
        }
        Some("raw") => {
            let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
            println!("listening on {}", listener.local_addr().map_err(|e| e.to_string())?);
            thread::spawn(|| {
                let _ = io::stdin().read_to_end(&mut Vec::new());
                std::process::exit(0);
            });
            for stream in listener.incoming() {
                let stream = stream.map_err(|e| e.to_string())?;
                stream.set_nodelay(true).map_err(|e| e.to_string())?;
                let input = stream.try_clone().map_err(|e| e.to_string())?;
                let mut builder = thread::Builder::new().name("raw-conn".into());
                if let Some(stack) = stack {
                    builder = builder.stack_size(stack);
                }
                builder
                    .spawn(move || {
                        let _ = serve_raw(input, stream);
                    })
                    .map_err(|e| e.to_string())?;
            }
            Ok(())
        }
        other => Err(format!("unknown server {other:?}: ps or raw")),
    }
}

/// A server child and the address it listens on.
struct ServerChild {
    child: Child,
    addr: SocketAddr,
}

impl ServerChild {
    fn start(imp: Impl, options: &[String]) -> ServerChild {
        let mut args = vec!["__server", if imp == Impl::Ps { "ps" } else { "raw" }];
        args.extend(options.iter().map(String::as_str));
        let mut child =
            self_command(&args).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("start a server child");
        let mut line = String::new();
        // One line, and nothing more until its stdin ends.
        io::BufRead::read_line(&mut BufReader::new(child.stdout.as_mut().expect("piped stdout")), &mut line)
            .expect("the server's address");
        let addr = line.trim().strip_prefix("listening on ").and_then(|addr| addr.parse().ok());
        let addr = addr.unwrap_or_else(|| panic!("not an address line: {line:?}"));
        ServerChild { child, addr }
    }

    /// A field of the server's /proc status (`VmRSS` in KiB, `Threads`).
    fn status(&self, field: &str) -> u64 {
        let status = fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        status
            .lines()
            .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    fn finish(mut self) {
        drop(self.child.stdin.take());
        let status = self.child.wait().expect("wait for the server child");
        assert!(status.success(), "server child: {status}");
    }
}

#[derive(Clone, Copy)]
enum ServerScenario {
    /// Connect, one call, close, from a few threads at once.
    Connects,
    /// This many connections, each with a thread of sequential calls.
    Clients(usize),
}

impl ServerScenario {
    fn label(self) -> String {
        match self {
            ServerScenario::Connects => format!("E connect+call+close x{CONNECTING_THREADS} (conn/s)"),
            ServerScenario::Clients(n) => format!("F {n} connections 16 B (req/s)"),
        }
    }
}

/// One connection's life in E.
fn connect_call_close(imp: Impl, addr: SocketAddr, stamp: u64) {
    match imp {
        Impl::Ps => {
            let transport = net::connect(&Addr::Tcp(addr), Duration::from_secs(10)).expect("connect");
            let config = Config::builder().name("pc").thread_stack_size(CLIENT_STACK);
            let conn = PacketConnection::new(transport, config).expect("start packetstream");
            check(&conn.call(0, 0, small_payload(stamp)).expect("call").payload, SMALL, stamp);
            conn.close().expect("close");
        }
        Impl::Raw => {
            let mut stream = TcpStream::connect(addr).expect("connect");
            stream.set_nodelay(true).expect("nodelay");
            let payload = small_payload(stamp);
            let mut request = baseline_header(payload.len(), stamp).to_vec();
            request.extend_from_slice(&payload);
            stream.write_all(&request).expect("write");
            let mut answer = [0; 12 + SMALL];
            stream.read_exact(&mut answer).expect("read");
            check(&answer[12..], SMALL, stamp);
            // As packetstream's close does: our end, then the server's.
            stream.shutdown(std::net::Shutdown::Write).expect("shutdown");
            let _ = stream.read_to_end(&mut Vec::new());
        }
        other => unreachable!("the server section measures ps and baseline only, not {other:?}"),
    }
}

fn measure_connects(imp: Impl, addr: SocketAddr, time: Duration) -> f64 {
    let start = Instant::now();
    let deadline = start + time;
    let total: u64 = thread::scope(|scope| {
        let threads: Vec<_> = (0..CONNECTING_THREADS as u64)
            .map(|t| {
                scope.spawn(move || {
                    let mut n = 0;
                    while n == 0 || Instant::now() < deadline {
                        connect_call_close(imp, addr, (t << 40) + n);
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().expect("a connecting thread")).sum()
    });
    total as f64 / start.elapsed().as_secs_f64()
}

/// Sequential calls on each client from a thread of its own; requests/s.
fn drive_clients<E: Echo>(clients: &[E], time: Duration) -> f64 {
    let barrier = Barrier::new(clients.len() + 1);
    thread::scope(|scope| {
        let callers: Vec<_> = clients
            .iter()
            .enumerate()
            .map(|(i, client)| {
                let barrier = &barrier;
                thread::Builder::new()
                    .stack_size(CLIENT_STACK)
                    .spawn_scoped(scope, move || {
                        barrier.wait();
                        sequential(client, (i as u64) << 40, time).ops
                    })
                    .expect("a calling thread")
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        let ops: u64 = callers.into_iter().map(|c| c.join().expect("a calling thread")).sum();
        ops as f64 / start.elapsed().as_secs_f64()
    })
}

/// One measured run against a fresh server child.
fn measure_server(imp: Impl, scenario: ServerScenario, plan: &Plan) -> f64 {
    let server = ServerChild::start(imp, &[]);
    let figure = match scenario {
        ServerScenario::Connects => {
            measure_connects(imp, server.addr, plan.warmup);
            measure_connects(imp, server.addr, plan.time)
        }
        ServerScenario::Clients(n) => match imp {
            Impl::Ps => {
                let clients: Vec<PsClient> =
                    (0..n).map(|_| PsClient::open(Link::Tcp(server.addr), Config::builder())).collect();
                drive_clients(&clients, plan.warmup);
                let figure = drive_clients(&clients, plan.time);
                clients.into_iter().for_each(PsClient::finish);
                figure
            }
            Impl::Raw => {
                let clients: Vec<RawClient> = (0..n).map(|_| RawClient::open(Link::Tcp(server.addr), false)).collect();
                drive_clients(&clients, plan.warmup);
                let figure = drive_clients(&clients, plan.time);
                clients.into_iter().for_each(RawClient::finish);
                figure
            }
            other => unreachable!("the server section measures ps and baseline only, not {other:?}"),
        },
    };
    server.finish();
    figure
}

fn print_servers(plan: &Plan) {
    let scenarios = [
        ServerScenario::Connects,
        ServerScenario::Clients(1),
        ServerScenario::Clients(16),
        ServerScenario::Clients(128),
    ];
    // Per scenario, the figures of packetstream and of the baseline, one per round.
    let mut results: Vec<(Vec<f64>, Vec<f64>)> = scenarios.iter().map(|_| (Vec::new(), Vec::new())).collect();
    for round in 0..plan.rounds {
        for (scenario, (ps, raw)) in scenarios.iter().zip(&mut results) {
            let order = if round % 2 == 0 { [Impl::Ps, Impl::Raw] } else { [Impl::Raw, Impl::Ps] };
            for imp in order {
                let figure = measure_server(imp, *scenario, plan);
                if imp == Impl::Ps {
                    ps.push(figure);
                } else {
                    raw.push(figure);
                }
            }
        }
    }
    println!("\nServers over TCP loopback (server in a child process; baseline: a thread per connection)");
    println!("{:<36} {:>14} {:>14} {:>7}  {:<13}", "scenario", "packetstream", "baseline", "ratio", "ratio range");
    for (scenario, (ps, raw)) in scenarios.iter().zip(&results) {
        let ratios: Vec<f64> = ps.iter().zip(raw).map(|(ps, raw)| ps / raw).collect();
        let (lo, hi) = min_max(&ratios);
        println!(
            "{:<36} {:>14} {:>14} {:>7.3}  {:<13}",
            scenario.label(),
            fmt_figure(median(ps)),
            fmt_figure(median(raw)),
            median(&ratios),
            format!("{lo:.2}..{hi:.2}")
        );
    }
}

/// `__scale [ps|raw] [--stack BYTES] [--queue PACKETS] [--connections N] [--secs S]`: N
/// connections (default 1,000) held by one server child, each making a
/// call every 100 ms for S seconds (default 20) after a warm-up; prints the
/// server's memory and threads and the calls' latency.
fn scale_main(args: &[String]) -> Result<(), String> {
    let imp = match args.first().map(String::as_str) {
        Some("raw") => Impl::Raw,
        _ => Impl::Ps,
    };
    let option = |name: &str| {
        args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse::<f64>().ok())
    };
    let stack = option("--stack").map(|bytes| bytes as usize);
    let queue = option("--queue").map(|packets| packets as usize);
    let mut server_options = Vec::new();
    for (name, value) in [("--stack", stack), ("--queue", queue)] {
        if let Some(value) = value {
            server_options.extend([name.to_owned(), value.to_string()]);
        }
    }
    let connections = option("--connections").map_or(1000, |n| n as usize);
    let secs = option("--secs").unwrap_or(20.0);
    let server = ServerChild::start(imp, &server_options);
    let (rss_idle, threads_idle) = (server.status("VmRSS"), server.status("Threads"));
    let opened = Instant::now();
    let figures = match imp {
        Impl::Ps => {
            let clients: Vec<PsClient> =
                (0..connections).map(|_| PsClient::open(Link::Tcp(server.addr), Config::builder())).collect();
            let figures = hold(&clients, &server, secs, opened);
            clients.into_iter().for_each(PsClient::finish);
            figures
        }
        Impl::Raw => {
            let clients: Vec<RawClient> =
                (0..connections).map(|_| RawClient::open(Link::Tcp(server.addr), false)).collect();
            let figures = hold(&clients, &server, secs, opened);
            clients.into_iter().for_each(RawClient::finish);
            figures
        }
        other => unreachable!("__scale runs ps or raw, not {other:?}"),
    };
    server.finish();
    println!(
        "scale {} stack={} queue={} connections={connections} calls={} calls_per_s={:.0} p50_us={:.0} p99_us={:.0} \
         max_us={:.0} server_rss_idle_kib={rss_idle} server_rss_kib={} server_hwm_kib={} \
         server_vsz_kib={} server_threads_idle={threads_idle} server_threads={} connect_all_s={:.2}",
        if imp == Impl::Ps { "ps" } else { "raw" },
        stack.map_or("default".to_owned(), |s| s.to_string()),
        queue.map_or("default".to_owned(), |q| q.to_string()),
        figures.calls,
        figures.calls as f64 / secs,
        figures.p50,
        figures.p99,
        figures.max,
        figures.rss,
        figures.hwm,
        figures.size,
        figures.threads,
        figures.connect_all
    );
    Ok(())
}

struct ScaleFigures {
    calls: usize,
    p50: f64,
    p99: f64,
    max: f64,
    rss: u64,
    hwm: u64,
    threads: u64,
    size: u64,
    connect_all: f64,
}

/// Each client calls every 100 ms, driven by a few threads; latencies in µs.
fn hold<E: Echo>(clients: &[E], server: &ServerChild, secs: f64, opened: Instant) -> ScaleFigures {
    const PERIOD: Duration = Duration::from_millis(100);
    const DRIVERS: usize = 50;
    let connect_all = opened.elapsed().as_secs_f64();
    let warmup = Duration::from_secs(2);
    let start = Instant::now() + warmup;
    let end = start + Duration::from_secs_f64(secs);
    let per_driver = clients.len().div_ceil(DRIVERS);
    let (mut latencies, rss, threads, size) = thread::scope(|scope| {
        let drivers: Vec<_> = clients
            .chunks(per_driver)
            .enumerate()
            .map(|(d, mine)| {
                thread::Builder::new()
                    .stack_size(CLIENT_STACK)
                    .spawn_scoped(scope, move || {
                        let mut seen = Vec::new();
                        // Spread the clients' calls over the period.
                        let offset = PERIOD.mul_f64(d as f64 / DRIVERS as f64);
                        let mut due: Vec<Instant> = (0..mine.len())
                            .map(|i| Instant::now() + offset + PERIOD.mul_f64(i as f64 / mine.len() as f64))
                            .collect();
                        let mut stamp = (d as u64) << 40;
                        loop {
                            let (next, at) = due.iter().enumerate().min_by_key(|(_, at)| **at).expect("clients");
                            let at = *at;
                            if at >= end {
                                return seen;
                            }
                            // The workload's own pace, not a synchronisation.
                            thread::sleep(at.saturating_duration_since(Instant::now()));
                            let began = Instant::now();
                            check(&mine[next].call(small_payload(stamp)), SMALL, stamp);
                            if began >= start {
                                seen.push(began.elapsed().as_secs_f64() * 1e6);
                            }
                            stamp += 1;
                            due[next] = at + PERIOD;
                        }
                    })
                    .expect("a driving thread")
            })
            .collect();
        // Halfway through: the server's footprint while it serves them all.
        thread::sleep(warmup + Duration::from_secs_f64(secs / 2.0));
        let (rss, threads, size) = (server.status("VmRSS"), server.status("Threads"), server.status("VmSize"));
        let latencies: Vec<f64> = drivers.into_iter().flat_map(|d| d.join().expect("a driving thread")).collect();
        (latencies, rss, threads, size)
    });
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| latencies.get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)));
    ScaleFigures {
        calls: latencies.len(),
        p50: at(0.5).copied().unwrap_or(0.0),
        p99: at(0.99).copied().unwrap_or(0.0),
        max: latencies.last().copied().unwrap_or(0.0),
        rss,
        hwm: server.status("VmHWM"),
        threads,
        size,
        connect_all,
    }
}

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::{HashMap, VecDeque};
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, IoSlice, IoSliceMut, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixStream;
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Barrier, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use packetstream::net::{self, Addr, ConnectionInfo, Server, ServerConfig};
use packetstream::wire::{self, Control};
use packetstream::{
    Config, ConfigBuilder, Handler, Packet, PacketConnection, Pending, Request, Response, Stream, StreamOptions,
    StreamReceiver, StreamSendError, Transport,
};

// ---------------------------------------------------------------------------
// Counting: allocations, read and write calls.

/// Wraps the system allocator and counts allocations while `COUNTING` is set.
/// Off by default, so that the timed runs pay only a relaxed load.
struct CountingAlloc;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded unchanged to `System`; the wrapper only
// bumps a counter.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_allocation();
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_allocation();
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` through this wrapper.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_allocation();
        // SAFETY: as for `dealloc`; the caller upholds `realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[inline]
fn count_allocation() {
    if COUNTING.load(Relaxed) {
        ALLOCATIONS.fetch_add(1, Relaxed);
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

static READ_CALLS: AtomicU64 = AtomicU64::new(0);
static WRITE_CALLS: AtomicU64 = AtomicU64::new(0);

/// A stream whose `read` and `write` calls are counted (each is one system
/// call on a pipe).
struct Counted<T>(T);

impl<T: Read> Read for Counted<T> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        READ_CALLS.fetch_add(1, Relaxed);
        self.0.read(buf)
    }

    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        READ_CALLS.fetch_add(1, Relaxed);
        self.0.read_vectored(bufs)
    }
}

impl<T: Write> Write for Counted<T> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        WRITE_CALLS.fetch_add(1, Relaxed);
        self.0.write(buf)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        WRITE_CALLS.fetch_add(1, Relaxed);
        self.0.write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// One thread's counters from /proc.
#[derive(Clone, Default)]
struct ThreadSample {
    name: String,
    cpu_ns: u64,
    voluntary: u64,
    involuntary: u64,
}

/// Every live thread of process `pid`, by thread id; the main thread is
/// named `main`, and numbered threads (`echo-worker-3`) share a name.
fn threads_of(pid: u32) -> HashMap<u32, ThreadSample> {
    let mut threads = HashMap::new();
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return threads;
    };
    for task in tasks.flatten() {
        let Some(tid) = task.file_name().to_str().and_then(|t| t.parse::<u32>().ok()) else {
            continue;
        };
        let read = |file: &str| fs::read_to_string(task.path().join(file)).unwrap_or_default();
        let mut sample = ThreadSample {
            // Time on the CPU in nanoseconds, time waiting to run, timeslices.
            cpu_ns: read("schedstat").split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or(0),
            ..ThreadSample::default()
        };
        for line in read("status").lines() {
            if let Some(name) = line.strip_prefix("Name:") {
                sample.name = name.trim().trim_end_matches(|c: char| c.is_ascii_digit()).to_owned();
                if sample.name.ends_with('-') {
                    sample.name.push('*');
                }
            } else if let Some(n) = line.strip_prefix("voluntary_ctxt_switches:") {
                sample.voluntary = n.trim().parse().unwrap_or(0);
            } else if let Some(n) = line.strip_prefix("nonvoluntary_ctxt_switches:") {
                sample.involuntary = n.trim().parse().unwrap_or(0);
            }
        }
        if tid == pid {
            sample.name = "main".into();
        }
        threads.insert(tid, sample);
    }
    threads
}

/// A `VmRSS`/`VmHWM`-style line of /proc/self/status, in KiB.
fn vm_kib(field: &str) -> u64 {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------
// CPU clocks, pipe sizes, CPU affinity.

/// The size the library asks for on the pipes it creates (Linux's limit for
/// an unprivileged process), given to the comparators that should have the
/// same pipes.
const WIDE_PIPE: usize = 1 << 20;

/// The CPU time, user and system, that process `pid` (or this one) has
/// spent, in nanoseconds: every thread, the exited ones too. A process CPU
/// clock is exact to the nanosecond and readable while the child lives,
/// which a child that serves a warm-up before the timed part needs:
/// `RUSAGE_CHILDREN` would come only after its exit, with the warm-up and
/// start-up in it, and `/proc/PID/stat` counts in 10 ms ticks.
#[cfg(target_os = "linux")]
fn cpu_ns(pid: Option<u32>) -> u64 {
    let mut clock = libc::CLOCK_PROCESS_CPUTIME_ID;
    if let Some(pid) = pid {
        let pid = libc::pid_t::try_from(pid).expect("a pid fits pid_t");
        // SAFETY: `clock` is a valid place for the clock id.
        let rc = unsafe { libc::clock_getcpuclockid(pid, &mut clock) };
        assert_eq!(rc, 0, "no CPU clock for process {pid}: error {rc}");
    }
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `now` is a valid place for the time.
    let rc = unsafe { libc::clock_gettime(clock, &mut now) };
    assert_eq!(rc, 0, "clock_gettime: {}", io::Error::last_os_error());
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

#[cfg(not(target_os = "linux"))]
fn cpu_ns(_: Option<u32>) -> u64 {
    0
}

/// Where the CPU clocks of this process and of a child stood.
struct CpuMark {
    child: Option<u32>,
    ns: u64,
}

impl CpuMark {
    fn now(child: Option<u32>) -> CpuMark {
        CpuMark { child, ns: cpu_ns(None) + child.map_or(0, |pid| cpu_ns(Some(pid))) }
    }

    /// CPU nanoseconds spent by both since the mark.
    fn spent(&self) -> u64 {
        CpuMark::now(self.child).ns.saturating_sub(self.ns)
    }
}

/// Gives a pipe the library's size; the comparators that need it cannot do
/// without, so a refusal ends the benchmark.
#[cfg(target_os = "linux")]
fn widen_pipe(fd: &impl AsRawFd) {
    let wanted = libc::c_int::try_from(WIDE_PIPE).expect("fits an int");
    // SAFETY: fcntl on a descriptor `fd` keeps open; F_SETPIPE_SZ takes an
    // int and touches no memory of ours.
    let size = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETPIPE_SZ, wanted) };
    assert!(size >= wanted, "could not make a pipe {WIDE_PIPE} bytes: {}", io::Error::last_os_error());
}

#[cfg(not(target_os = "linux"))]
fn widen_pipe(_: &impl AsRawFd) {}

/// While alive, the calling thread is bound to one CPU; whatever it starts
/// meanwhile (threads, child processes) inherits the binding. Dropping it
/// restores the thread's previous set.
struct Pinned {
    cpu: usize,
    #[cfg(target_os = "linux")]
    previous: libc::cpu_set_t,
}

#[cfg(target_os = "linux")]
impl Pinned {
    /// Binds to the lowest CPU the thread may run on (CPU 0 unless the
    /// benchmark was started bound elsewhere), as `taskset -c 0` would.
    fn lowest() -> Pinned {
        let size = std::mem::size_of::<libc::cpu_set_t>();
        // SAFETY: an all-zero cpu_set_t is an empty set.
        let mut previous: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: `previous` is a cpu_set_t of `size` bytes.
        let rc = unsafe { libc::sched_getaffinity(0, size, &mut previous) };
        assert_eq!(rc, 0, "sched_getaffinity: {}", io::Error::last_os_error());
        // SAFETY: CPU_ISSET reads within the set for any index below CPU_SETSIZE.
        let cpu = (0..libc::CPU_SETSIZE as usize)
            .find(|&cpu| unsafe { libc::CPU_ISSET(cpu, &previous) })
            .expect("the thread may run on some CPU");
        // SAFETY: as above.
        let mut one: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: `cpu` is below CPU_SETSIZE.
        unsafe { libc::CPU_SET(cpu, &mut one) };
        // SAFETY: `one` is a cpu_set_t of `size` bytes.
        let rc = unsafe { libc::sched_setaffinity(0, size, &one) };
        assert_eq!(rc, 0, "sched_setaffinity: {}", io::Error::last_os_error());
        Pinned { cpu, previous }
    }
}

#[cfg(target_os = "linux")]
impl Drop for Pinned {
    fn drop(&mut self) {
        // SAFETY: `previous` is a cpu_set_t of the size given.
        let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &self.previous) };
        assert_eq!(rc, 0, "sched_setaffinity: {}", io::Error::last_os_error());
    }
}

#[cfg(not(target_os = "linux"))]
impl Pinned {
    fn lowest() -> Pinned {
        panic!("the pinned configuration needs Linux's sched_setaffinity")
    }
}

impl Pinned {
    /// Checks that every thread of process `pid` (or of this one) is bound
    /// to the pinned CPU: a thread started before the binding, or a child
    /// started another way, would make the pinned figures a lie.
    fn check(&self, pid: Option<u32>) {
        let dir = pid.map_or_else(|| "/proc/self/task".to_owned(), |pid| format!("/proc/{pid}/task"));
        let want = self.cpu.to_string();
        for task in fs::read_dir(&dir).expect("the process's threads").flatten() {
            // A thread may end between the listing and the read.
            let Ok(status) = fs::read_to_string(task.path().join("status")) else { continue };
            let allowed = status.lines().find_map(|line| line.strip_prefix("Cpus_allowed_list:")).map(str::trim);
            assert_eq!(allowed, Some(want.as_str()), "thread {:?} of {dir} is not pinned", task.file_name());
        }
    }
}

/// The one child process of this process: the library's `Transport::spawn`
/// keeps its `Child` to itself, and every earlier run's child has been
/// reaped.
fn only_child() -> u32 {
    let mut children = Vec::new();
    for task in fs::read_dir("/proc/self/task").expect("this process's threads").flatten() {
        let listed = fs::read_to_string(task.path().join("children")).unwrap_or_default();
        children.extend(listed.split_whitespace().filter_map(|pid| pid.parse::<u32>().ok()));
    }
    assert_eq!(children.len(), 1, "expected one child process, found {children:?}");
    children[0]
}

// ---------------------------------------------------------------------------
// What every benchmarked implementation offers.

const SMALL: usize = 16;
const BULK: usize = 1 << 20;
/// Read and write buffers of the baseline.
const BASELINE_BUFFER: usize = 64 << 10;
/// The request type a holding peer takes as "answer everything now".
const RELEASE_RQ_TYPE: u64 = 1;
/// The baseline request id a holding peer takes as "answer everything now".
const RELEASE_ID: u64 = u64::MAX;

trait Echo: Sync {
    type Ticket;
    fn submit(&self, payload: Vec<u8>) -> Self::Ticket;
    fn wait(&self, ticket: Self::Ticket) -> Vec<u8>;
    fn call(&self, payload: Vec<u8>) -> Vec<u8> {
        let ticket = self.submit(payload);
        self.wait(ticket)
    }
}

/// A 16-byte payload carrying `stamp`, so that a mismatched answer shows.
fn small_payload(stamp: u64) -> Vec<u8> {
    let mut payload = vec![0xa5; SMALL];
    payload[..8].copy_from_slice(&stamp.to_le_bytes());
    payload
}

fn check(answer: &[u8], len: usize, stamp: u64) {
    assert_eq!(answer.len(), len, "echo answer has the wrong length");
    assert_eq!(answer[..8], stamp.to_le_bytes(), "echo answer belongs to another request");
}

// ---------------------------------------------------------------------------
// packetstream.

fn echo_handler(rq: Request) -> Response {
    Response { flags: rq.flags, payload: rq.payload }
}

struct PsClient {
    conn: PacketConnection,
    server: Option<thread::JoinHandle<()>>,
    child: Option<Child>,
    /// The child the library started, if any.
    pid: Option<u32>,
}

impl PsClient {
    /// This end with `config`, the peer an echo server with the defaults.
    fn open(link: Link, config: ConfigBuilder) -> PsClient {
        match link {
            Link::Pipes => PsClient::spawn("ps", config),
            Link::SocketPair => PsClient::open_socketpair(config),
            Link::Tcp(addr) => {
                let transport = net::connect(&Addr::Tcp(addr), Duration::from_secs(10)).expect("connect");
                let conn = PacketConnection::new(transport, config.name("ps").thread_stack_size(CLIENT_STACK))
                    .expect("start packetstream");
                PsClient { conn, server: None, child: None, pid: None }
            }
        }
    }

    /// Over the pipes of a child (`__child KIND`) that the library starts.
    fn spawn(kind: &str, config: ConfigBuilder) -> PsClient {
        let mut command = self_command(&["__child", kind]);
        let transport = Transport::spawn(&mut command).expect("start the packetstream child");
        let pid = Some(only_child());
        let conn = PacketConnection::new(transport, config).expect("start packetstream");
        PsClient { conn, server: None, child: None, pid }
    }

    /// Client and echo server in this process over a Unix socketpair, both
    /// with `config`.
    fn open_socketpair(config: ConfigBuilder) -> PsClient {
        PsClient::open_socketpair_with(config, echo_handler)
    }

    /// As [`open_socketpair`](Self::open_socketpair), the server answering
    /// with `handler`.
    fn open_socketpair_with(config: ConfigBuilder, handler: impl Handler) -> PsClient {
        let (client_end, server_end) = UnixStream::pair().expect("socketpair");
        let server = PacketConnection::with_handler(
            Transport::unix(server_end).expect("server transport"),
            config.clone().name("echo-server"),
            handler,
        )
        .expect("start the packetstream echo server");
        let server = thread::spawn(move || {
            server.join_recv().expect("echo server: reading");
            server.close().expect("echo server: close");
        });
        let transport = Transport::unix(client_end).expect("client transport");
        let conn = PacketConnection::new(transport, config).expect("start packetstream");
        PsClient { conn, server: Some(server), child: None, pid: None }
    }

    /// Over a child's pipes, with every read and write counted, and the
    /// child counting its own (reported in `stats`).
    fn open_counted(stats: &str) -> PsClient {
        let mut child = self_command(&["__child", "ps", "--stats", stats])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the packetstream echo child");
        let input = Counted(child.stdout.take().expect("piped stdout"));
        let output = Counted(child.stdin.take().expect("piped stdin"));
        // A short name, so that thread names ("ps-writer") are not cut.
        let config = Config::builder().name("ps");
        let pid = Some(child.id());
        let conn = PacketConnection::new(Transport::new(input, output), config).expect("start packetstream");
        PsClient { conn, server: None, child: Some(child), pid }
    }

    fn finish(self) {
        let finished = self.conn.close().expect("packetstream close");
        if let Some(status) = finished.exit_status() {
            assert!(status.success(), "packetstream echo child: {status}");
        }
        drop(finished);
        if let Some(server) = self.server {
            server.join().expect("echo server thread");
        }
        if let Some(mut child) = self.child {
            let status = child.wait().expect("wait for the echo child");
            assert!(status.success(), "packetstream echo child: {status}");
        }
    }
}

impl Echo for PsClient {
    type Ticket = Pending;

    /// What a user makes of a call: `PacketConnection::call`.
    fn call(&self, payload: Vec<u8>) -> Vec<u8> {
        self.conn.call(0, 0, payload).expect("packetstream call").payload
    }
    fn submit(&self, payload: Vec<u8>) -> Pending {
        self.conn.submit(0, 0, payload).expect("packetstream submit")
    }

    fn wait(&self, ticket: Pending) -> Vec<u8> {
        ticket.wait().expect("packetstream answer").payload
    }
}

/// Serves echo over `transport` until the peer ends; returns how many
/// requests it answered.
fn serve_ps(transport: Transport, config: ConfigBuilder, handler: impl Handler) -> Result<u64, packetstream::Error> {
    let conn = PacketConnection::with_handler(transport, config, handler)?;
    let received = conn.join_recv();
    let served = conn.stats().requests_in;
    conn.close()?;
    received?;
    Ok(served)
}

/// The serving end of a stream benchmark: a stream's first 8 payload bytes
/// give the item size; items of that size, each stamped with its number,
/// go to the caller until it stops the stream. Any other request is echoed.
fn push_handler(rq: Request) -> Result<Response, String> {
    let Some(out) = rq.context().take_sender() else {
        return Ok(echo_handler(rq));
    };
    let size = rq.payload.get(..8).ok_or("no item size")?;
    let size = u64::from_le_bytes(size.try_into().expect("8 bytes")) as usize;
    let mut sent = 0u64;
    loop {
        // The API takes each item as a Vec of its own, so a producer makes
        // one per item: its cost belongs to the comparison.
        let mut item = vec![0xc3; size];
        item[..8].copy_from_slice(&sent.to_le_bytes());
        match out.send(item) {
            Ok(()) => sent += 1,
            Err(StreamSendError::Ended(_)) => break,
            Err(other) => return Err(other.to_string()),
        }
    }
    Ok(Response { flags: 0, payload: sent.to_le_bytes().to_vec() })
}

// ---------------------------------------------------------------------------
// The baseline.

fn baseline_header(len: usize, id: u64) -> [u8; 12] {
    let mut header = [0; 12];
    header[..4].copy_from_slice(&u32::try_from(len).expect("baseline payloads fit a u32").to_le_bytes());
    header[4..].copy_from_slice(&id.to_le_bytes());
    header
}

fn parse_header(header: &[u8; 12]) -> (usize, u64) {
    let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes"));
    let id = u64::from_le_bytes(header[4..].try_into().expect("8 bytes"));
    (len as usize, id)
}

/// Reads a header, or `Ok(false)` at a clean end of stream.
fn read_header(input: &mut impl Read, header: &mut [u8; 12]) -> io::Result<bool> {
    match input.read_exact(header) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

#[derive(Default)]
struct RawSlot {
    answer: Mutex<Option<Vec<u8>>>,
    ready: Condvar,
}

impl RawSlot {
    fn complete(&self, answer: Vec<u8>) {
        *self.answer.lock().expect("slot lock") = Some(answer);
        self.ready.notify_one();
    }
}

#[derive(Default)]
struct RawWaiting {
    slots: HashMap<u64, Arc<RawSlot>>,
    ended: bool,
}

struct RawClient {
    out: Mutex<BufWriter<Box<dyn Write + Send>>>,
    waiting: Arc<Mutex<RawWaiting>>,
    next_id: AtomicU64,
    reader: thread::JoinHandle<()>,
    /// A socket whose write direction is shut down at the end (dropping the
    /// writer does not end it while the reader's handle is open).
    socket: Option<UnixStream>,
    tcp: Option<TcpStream>,
    child: Option<Child>,
}

impl RawClient {
    fn new(input: Box<dyn Read + Send>, output: Box<dyn Write + Send>) -> RawClient {
        let waiting = Arc::new(Mutex::new(RawWaiting::default()));
        let reader = {
            let waiting = Arc::clone(&waiting);
            thread::Builder::new()
                .name("baseline-reader".into())
                .spawn(move || raw_reader(BufReader::with_capacity(BASELINE_BUFFER, input), &waiting))
                .expect("start the baseline reader")
        };
        RawClient {
            out: Mutex::new(BufWriter::with_capacity(BASELINE_BUFFER, output)),
            waiting,
            next_id: AtomicU64::new(0),
            reader,
            socket: None,
            tcp: None,
            child: None,
        }
    }

    /// Over pipes (1 MiB ones if `wide`) to an echo child, or over a
    /// socketpair to an echo thread.
    fn open(link: Link, wide: bool) -> RawClient {
        match link {
            Link::Pipes => {
                let (child, input, output) = raw_child(wide);
                let mut client = RawClient::new(Box::new(input), Box::new(output));
                client.child = Some(child);
                client
            }
            Link::SocketPair => {
                let (client_end, server_end) = UnixStream::pair().expect("socketpair");
                let server_input = server_end.try_clone().expect("clone socket");
                thread::spawn(move || serve_raw(server_input, server_end).expect("baseline echo server"));
                let input = client_end.try_clone().expect("clone socket");
                let socket = client_end.try_clone().expect("clone socket");
                let mut client = RawClient::new(Box::new(input), Box::new(client_end));
                client.socket = Some(socket);
                client
            }
            Link::Tcp(addr) => {
                let stream = TcpStream::connect(addr).expect("connect");
                stream.set_nodelay(true).expect("nodelay");
                let input = stream.try_clone().expect("clone socket");
                let shut = stream.try_clone().expect("clone socket");
                let mut client = RawClient::new(Box::new(input), Box::new(stream));
                client.tcp = Some(shut);
                client
            }
        }
    }

    fn open_counted(stats: &str) -> RawClient {
        let mut child = self_command(&["__child", "raw", "--stats", stats])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the baseline echo child");
        let input = Counted(child.stdout.take().expect("piped stdout"));
        let output = Counted(child.stdin.take().expect("piped stdin"));
        let mut client = RawClient::new(Box::new(input), Box::new(output));
        client.child = Some(child);
        client
    }

    fn submit_id(&self, id: u64, payload: &[u8]) -> Arc<RawSlot> {
        let slot = Arc::new(RawSlot::default());
        {
            let mut waiting = self.waiting.lock().expect("waiting lock");
            assert!(!waiting.ended, "baseline connection ended");
            waiting.slots.insert(id, Arc::clone(&slot));
        }
        let mut out = self.out.lock().expect("writer lock");
        out.write_all(&baseline_header(payload.len(), id))
            .and_then(|()| out.write_all(payload))
            .expect("baseline write");
        slot
    }

    fn flush(&self) {
        self.out.lock().expect("writer lock").flush().expect("baseline flush");
    }

    fn finish(self) {
        let out = self.out.into_inner().expect("writer lock");
        drop(out.into_inner().map_err(|e| e.into_error()).expect("baseline flush"));
        if let Some(socket) = self.socket {
            let _ = socket.shutdown(std::net::Shutdown::Write);
        }
        if let Some(socket) = self.tcp {
            let _ = socket.shutdown(std::net::Shutdown::Write);
        }
        self.reader.join().expect("baseline reader");
        if let Some(mut child) = self.child {
            let status = child.wait().expect("wait for the echo child");
            assert!(status.success(), "baseline echo child: {status}");
        }
    }
}

impl Echo for RawClient {
    type Ticket = Arc<RawSlot>;

    fn submit(&self, payload: Vec<u8>) -> Arc<RawSlot> {
        let id = self.next_id.fetch_add(1, Relaxed);
        self.submit_id(id, &payload)
    }

    fn wait(&self, slot: Arc<RawSlot>) -> Vec<u8> {
        let mut answer = slot.answer.lock().expect("slot lock");
        if answer.is_none() {
            // About to block: send what is buffered first.
            drop(answer);
            self.flush();
            answer = slot.answer.lock().expect("slot lock");
            while answer.is_none() {
                answer = slot.ready.wait(answer).expect("slot lock");
            }
        }
        answer.take().expect("answered")
    }
}

/// The baseline's echo child and its pipes, of the library's size if
/// `wide`.
fn raw_child(wide: bool) -> (Child, ChildStdout, ChildStdin) {
    let mut child = self_command(&["__child", "raw"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the baseline echo child");
    let input = child.stdout.take().expect("piped stdout");
    let output = child.stdin.take().expect("piped stdin");
    if wide {
        widen_pipe(&input);
        widen_pipe(&output);
    }
    (child, input, output)
}

/// The direct caller: one thread writes a request and reads its answer
/// itself, with no reader thread, over 1 MiB pipes to the baseline's echo
/// child. Answers come in order, so a ticket is only the buffer the answer
/// is read into (the request's own: nothing is allocated per call).
struct DirectClient {
    io: Mutex<DirectIo>,
    child: Child,
}

struct DirectIo {
    input: BufReader<ChildStdout>,
    output: ChildStdin,
    next_id: u64,
}

impl DirectClient {
    fn open() -> DirectClient {
        let (child, input, output) = raw_child(true);
        let io = DirectIo { input: BufReader::with_capacity(BASELINE_BUFFER, input), output, next_id: 0 };
        DirectClient { io: Mutex::new(io), child }
    }

    fn finish(self) {
        let DirectClient { io, mut child } = self;
        // Closing its stdin ends the child.
        drop(io);
        let status = child.wait().expect("wait for the echo child");
        assert!(status.success(), "baseline echo child: {status}");
    }
}

/// Writes header and payload in one system call where the pipe takes them.
fn write_frame(output: &mut impl Write, header: &[u8], payload: &[u8]) -> io::Result<()> {
    let mut slices = [IoSlice::new(header), IoSlice::new(payload)];
    let mut slices = &mut slices[..];
    while !slices.is_empty() {
        match output.write_vectored(slices)? {
            0 => return Err(io::ErrorKind::WriteZero.into()),
            n => IoSlice::advance_slices(&mut slices, n),
        }
    }
    Ok(())
}

impl Echo for DirectClient {
    type Ticket = Vec<u8>;

    fn submit(&self, payload: Vec<u8>) -> Vec<u8> {
        let mut io = self.io.lock().expect("direct caller lock");
        let id = io.next_id;
        io.next_id += 1;
        write_frame(&mut io.output, &baseline_header(payload.len(), id), &payload).expect("direct write");
        payload
    }

    fn wait(&self, mut buffer: Vec<u8>) -> Vec<u8> {
        let mut io = self.io.lock().expect("direct caller lock");
        let mut header = [0; 12];
        io.input.read_exact(&mut header).expect("direct read");
        let (len, _) = parse_header(&header);
        buffer.resize(len, 0);
        io.input.read_exact(&mut buffer).expect("direct read");
        buffer
    }
}

/// The baseline's parent reader thread: hands each answer to its caller.
fn raw_reader(mut input: BufReader<Box<dyn Read + Send>>, waiting: &Mutex<RawWaiting>) {
    let mut header = [0; 12];
    loop {
        match read_header(&mut input, &mut header) {
            Ok(true) => {}
            Ok(false) => break,
            Err(error) => {
                eprintln!("baseline reader: {error}");
                break;
            }
        }
        let (len, id) = parse_header(&header);
        let mut payload = vec![0; len];
        if let Err(error) = input.read_exact(&mut payload) {
            eprintln!("baseline reader: {error}");
            break;
        }
        let slot = waiting.lock().expect("waiting lock").slots.remove(&id);
        match slot {
            Some(slot) => slot.complete(payload),
            None => eprintln!("baseline reader: answer to unknown request {id}"),
        }
    }
    // Whoever still waits gets an empty answer, which fails its check.
    let mut waiting = waiting.lock().expect("waiting lock");
    waiting.ended = true;
    for (_, slot) in waiting.slots.drain() {
        slot.complete(Vec::new());
    }
}

/// The baseline's echo server: answers in order, flushing whenever its
/// input buffer is empty. Returns how many requests it answered.
fn serve_raw(input: impl Read, output: impl Write) -> io::Result<u64> {
    let mut input = BufReader::with_capacity(BASELINE_BUFFER, input);
    let mut output = BufWriter::with_capacity(BASELINE_BUFFER, output);
    let mut header = [0; 12];
    let mut payload = Vec::new();
    let mut served = 0;
    loop {
        if input.buffer().is_empty() {
            output.flush()?;
        }
        if !read_header(&mut input, &mut header)? {
            break;
        }
        let (len, _) = parse_header(&header);
        payload.resize(len, 0);
        input.read_exact(&mut payload)?;
        output.write_all(&header)?;
        output.write_all(&payload)?;
        served += 1;
    }
    output.flush()?;
    Ok(served)
}

// ---------------------------------------------------------------------------
// Child processes.

fn self_command(args: &[&str]) -> Command {
    let mut command = Command::new(std::env::current_exe().expect("the benchmark's own path"));
    command.args(args);
    command
}

/// This process's stdin and stdout as files (no std buffering).
fn stdio_files() -> io::Result<(File, File)> {
    let input = File::from(io::stdin().as_fd().try_clone_to_owned()?);
    let output = File::from(io::stdout().as_fd().try_clone_to_owned()?);
    Ok((input, output))
}

/// `__child ps|ps-stream|raw [--max BYTES] [--stats PATH]`: an echo server
/// on stdio (`ps-stream`: with extensions, pushing items on a stream).
/// With `--stats` it counts its reads, writes and allocations and writes
/// them to PATH at the end.
fn child_main(args: &[String]) -> Result<(), String> {
    let kind = args.first().map(String::as_str).unwrap_or_default();
    let mut max = None;
    let mut stats = None;
    let mut rest = args.iter().skip(1);
    while let Some(arg) = rest.next() {
        let value = rest.next().ok_or(format!("{arg} needs a value"))?;
        match arg.as_str() {
            "--max" => max = Some(value.parse::<usize>().map_err(|e| format!("--max: {e}"))?),
            "--stats" => stats = Some(value.clone()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if stats.is_some() {
        COUNTING.store(true, Relaxed);
    }
    let served = match kind {
        "ps" => {
            let mut config = Config::builder().name("echo");
            if let Some(max) = max {
                config = config.max_packet_size(max);
            }
            let transport = if stats.is_some() {
                let (input, output) = stdio_files().map_err(|e| e.to_string())?;
                Transport::new(Counted(input), Counted(output))
            } else {
                Transport::stdio().map_err(|e| e.to_string())?
            };
            serve_ps(transport, config, echo_handler).map_err(|e| e.to_string())?
        }
        "ps-stream" => {
            let config = Config::builder().name("push").extensions(true);
            let transport = Transport::stdio().map_err(|e| e.to_string())?;
            serve_ps(transport, config, push_handler).map_err(|e| e.to_string())?
        }
        "raw" => {
            let (input, output) = stdio_files().map_err(|e| e.to_string())?;
            if stats.is_some() { serve_raw(Counted(input), Counted(output)) } else { serve_raw(input, output) }
                .map_err(|e| e.to_string())?
        }
        other => return Err(format!("unknown child kind {other:?}")),
    };
    if let Some(path) = stats {
        let line = format!(
            "reads={} writes={} allocs={} served={served}\n",
            READ_CALLS.load(Relaxed),
            WRITE_CALLS.load(Relaxed),
            ALLOCATIONS.load(Relaxed)
        );
        fs::write(&path, line).map_err(|e| format!("{path}: {e}"))?;
    }
    Ok(())
}

/// `__push SIZE`: the stream baseline's child: frames of a u32 length and
/// an item of SIZE bytes stamped with its number, written to stdout until
/// the reader goes away.
fn push_main(args: &[String]) -> Result<(), String> {
    let size: usize = args.first().ok_or("no item size")?.parse().map_err(|e| format!("item size: {e}"))?;
    let (_, output) = stdio_files().map_err(|e| e.to_string())?;
    let mut output = BufWriter::with_capacity(BASELINE_BUFFER, output);
    let header = u32::try_from(size).map_err(|e| e.to_string())?.to_le_bytes();
    let mut item = vec![0xc3; size];
    for n in 0u64.. {
        item[..8].copy_from_slice(&n.to_le_bytes());
        match output.write_all(&header).and_then(|()| output.write_all(&item)) {
            Ok(()) => {}
            // The reader's end of the benchmark.
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => break,
            Err(e) => return Err(e.to_string()),
        }
    }
    // What is still buffered has no reader: drop it unflushed.
    drop(output.into_parts());
    Ok(())
}

/// `__hold ps|raw`: a peer that reads requests and answers none until the
/// release request, then answers all of them; ends at the peer's end.
fn hold_main(args: &[String]) -> Result<(), String> {
    let (input, output) = stdio_files().map_err(|e| e.to_string())?;
    let mut output = BufWriter::with_capacity(BASELINE_BUFFER, output);
    match args.first().map(String::as_str) {
        Some("ps") => {
            let mut packets = wire::PacketReader::new(input, wire::DEFAULT_MAX_PACKET_SIZE);
            let mut held: Vec<Packet> = Vec::new();
            let mut frame = Vec::new();
            while let Some(packet) = packets.read_packet().map_err(|e| e.to_string())? {
                match packet.control() {
                    Some(Ok(Control::Eof)) => break,
                    Some(_) => continue,
                    None if !packet.is_request() => continue,
                    None => {}
                }
                let release = packet.rq_type() == Some(RELEASE_RQ_TYPE);
                held.push(packet);
                if release {
                    for rq in held.drain(..) {
                        let answer = Packet::response(rq.channel(), rq.tag(), true, rq.flags(), rq.into_payload())
                            .map_err(|e| e.to_string())?;
                        frame.clear();
                        wire::encode(&answer, &mut frame);
                        output.write_all(&frame).map_err(|e| e.to_string())?;
                    }
                    output.flush().map_err(|e| e.to_string())?;
                }
            }
            frame.clear();
            wire::encode(&Packet::eof(), &mut frame);
            output.write_all(&frame).and_then(|()| output.flush()).map_err(|e| e.to_string())
        }
        Some("raw") => {
            let mut input = BufReader::with_capacity(BASELINE_BUFFER, input);
            let mut held: Vec<([u8; 12], Vec<u8>)> = Vec::new();
            let mut header = [0; 12];
            while read_header(&mut input, &mut header).map_err(|e| e.to_string())? {
                let (len, id) = parse_header(&header);
                let mut payload = vec![0; len];
                input.read_exact(&mut payload).map_err(|e| e.to_string())?;
                held.push((header, payload));
                if id == RELEASE_ID {
                    for (header, payload) in held.drain(..) {
                        output
                            .write_all(&header)
                            .and_then(|()| output.write_all(&payload))
                            .map_err(|e| e.to_string())?;
                    }
                    output.flush().map_err(|e| e.to_string())?;
                }
            }
            output.flush().map_err(|e| e.to_string())
        }
        other => Err(format!("unknown hold kind {other:?}")),
    }
}

/// `__peak outstanding ps|raw N` and `__peak bulk ps|raw SIZE COUNT`: does
/// the thing against a child and prints one `key=value` line with its own
/// memory figures (KiB).
fn peak_main(args: &[String]) -> Result<(), String> {
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or_default();
    let number = |i: usize| arg(i).parse::<usize>().map_err(|e| format!("argument {i}: {e}"));
    match (arg(0), arg(1)) {
        ("outstanding", kind) => {
            let n = number(2)?;
            let base = vm_kib("VmRSS");
            let (start, held, end) = match kind {
                "ps" => {
                    let mut command = self_command(&["__hold", "ps"]);
                    let transport = Transport::spawn(&mut command).map_err(|e| e.to_string())?;
                    let conn = PacketConnection::new(transport, Config::default()).map_err(|e| e.to_string())?;
                    let start = vm_kib("VmRSS");
                    let pending: Vec<Pending> = (0..n as u64)
                        .map(|i| conn.submit(0, 0, small_payload(i)))
                        .collect::<Result<_, _>>()
                        .map_err(|e| e.to_string())?;
                    let outstanding = conn.outstanding();
                    if outstanding != n {
                        return Err(format!("{outstanding} outstanding, not {n}"));
                    }
                    let held = vm_kib("VmHWM");
                    let release = conn.submit(RELEASE_RQ_TYPE, 0, Vec::new()).map_err(|e| e.to_string())?;
                    for (i, p) in pending.into_iter().enumerate() {
                        check(&p.wait().map_err(|e| e.to_string())?.payload, SMALL, i as u64);
                    }
                    release.wait().map_err(|e| e.to_string())?;
                    let end = vm_kib("VmHWM");
                    conn.close().map_err(|e| e.to_string())?;
                    (start, held, end)
                }
                "raw" => {
                    let mut child = self_command(&["__hold", "raw"])
                        .stdin(Stdio::piped())
                        .stdout(Stdio::piped())
                        .spawn()
                        .map_err(|e| e.to_string())?;
                    let input = child.stdout.take().ok_or("no stdout")?;
                    let output = child.stdin.take().ok_or("no stdin")?;
                    let mut client = RawClient::new(Box::new(input), Box::new(output));
                    client.child = Some(child);
                    let start = vm_kib("VmRSS");
                    let pending: Vec<_> = (0..n as u64).map(|i| client.submit(small_payload(i))).collect();
                    client.flush();
                    let held = vm_kib("VmHWM");
                    let release = client.submit_id(RELEASE_ID, &[]);
                    for (i, slot) in pending.into_iter().enumerate() {
                        check(&client.wait(slot), SMALL, i as u64);
                    }
                    client.wait(release);
                    let end = vm_kib("VmHWM");
                    client.finish();
                    (start, held, end)
                }
                other => return Err(format!("unknown kind {other:?}")),
            };
            println!("base={base} start={start} held_hwm={held} end_hwm={end} n={n}");
            Ok(())
        }
        ("bulk", kind) => {
            let (size, count) = (number(2)?, number(3)?);
            let base = vm_kib("VmRSS");
            let max = size + (1 << 20);
            let payload = vec![0x3c; size];
            let run = |client: &dyn Fn(Vec<u8>) -> Vec<u8>, mut payload: Vec<u8>| {
                for i in 0..count as u64 {
                    payload[..8].copy_from_slice(&i.to_le_bytes());
                    payload = client(payload);
                    check(&payload, size, i);
                }
            };
            let start;
            match kind {
                "ps" => {
                    let mut command = self_command(&["__child", "ps", "--max", &max.to_string()]);
                    let transport = Transport::spawn(&mut command).map_err(|e| e.to_string())?;
                    let client = PsClient {
                        conn: PacketConnection::new(transport, Config::builder().max_packet_size(max))
                            .map_err(|e| e.to_string())?,
                        server: None,
                        child: None,
                        pid: None,
                    };
                    start = vm_kib("VmRSS");
                    run(&|p| client.call(p), payload);
                    client.finish();
                }
                "raw" => {
                    let client = RawClient::open(Link::Pipes, false);
                    start = vm_kib("VmRSS");
                    run(&|p| client.call(p), payload);
                    client.finish();
                }
                other => return Err(format!("unknown kind {other:?}")),
            }
            println!("base={base} start={start} end_hwm={} size={size} count={count}", vm_kib("VmHWM"));
            Ok(())
        }
        _ => Err(format!("unknown peak measurement {args:?}")),
    }
}

// ---------------------------------------------------------------------------
// Scenarios.

#[derive(Clone, Copy, PartialEq, Eq)]
enum Link {
    Pipes,
    SocketPair,
    /// A TCP connection to a server child on the loopback.
    Tcp(SocketAddr),
}

/// What is measured: the library, or one of the comparators.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Impl {
    /// packetstream, `Config::default()` at both ends.
    Ps,
    /// packetstream, the caller's end with `wait_spin(0)`.
    PsNoSpin,
    /// The baseline with a reader thread, over Linux's default pipes.
    Raw,
    /// The baseline with a reader thread, over 1 MiB pipes.
    RawWide,
    /// The direct caller, over 1 MiB pipes.
    Direct,
}

impl Impl {
    const ALL: [Impl; 5] = [Impl::Ps, Impl::PsNoSpin, Impl::Raw, Impl::RawWide, Impl::Direct];

    fn label(self) -> &'static str {
        match self {
            Impl::Ps => "ps",
            Impl::PsNoSpin => "ps spin0",
            Impl::Raw => "baseline",
            Impl::RawWide => "baseline 1M",
            Impl::Direct => "direct 1M",
        }
    }

    /// The name `__run` takes.
    fn parse(name: &str) -> Option<Impl> {
        Some(match name {
            "ps" => Impl::Ps,
            "ps-spin0" => Impl::PsNoSpin,
            "raw" => Impl::Raw,
            "raw-1m" => Impl::RawWide,
            "direct" => Impl::Direct,
            _ => return None,
        })
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Scenario {
    Sequential,
    Pipelined(usize),
    Concurrent(usize),
    Bulk,
}

impl Scenario {
    fn label(self) -> String {
        match self {
            Scenario::Sequential => "A sequential 16 B (calls/s)".into(),
            Scenario::Pipelined(window) => format!("B pipelined x{window} 16 B (req/s)"),
            Scenario::Concurrent(threads) => format!("C concurrent {threads} thr 16 B (req/s)"),
            Scenario::Bulk => "D bulk 1 MiB (MB/s one way)".into(),
        }
    }

    fn short(self) -> String {
        match self {
            Scenario::Sequential => "A seq (calls/s)".into(),
            Scenario::Pipelined(window) => format!("B x{window} (req/s)"),
            Scenario::Concurrent(threads) => format!("C {threads} thr (req/s)"),
            Scenario::Bulk => "D 1 MiB (MB/s)".into(),
        }
    }

    fn letter(self) -> String {
        match self {
            Scenario::Sequential => "A".into(),
            Scenario::Pipelined(window) => format!("B x{window}"),
            Scenario::Concurrent(threads) => format!("C x{threads}"),
            Scenario::Bulk => "D".into(),
        }
    }
}

struct Sample {
    /// Operations completed by the deadline.
    ops: u64,
    /// Operations completed in all, including those drained after it.
    all_ops: u64,
    bytes: u64,
    secs: f64,
}

impl Sample {
    fn figure(&self, scenario: Scenario) -> f64 {
        match scenario {
            Scenario::Bulk => self.bytes as f64 / self.secs / 1e6,
            _ => self.ops as f64 / self.secs,
        }
    }
}

fn drive<E: Echo>(echo: &E, scenario: Scenario, time: Duration) -> Sample {
    match scenario {
        Scenario::Sequential => sequential(echo, 0, time),
        Scenario::Pipelined(window) => pipelined(echo, window, time),
        Scenario::Concurrent(threads) => concurrent(echo, threads, time),
        Scenario::Bulk => bulk(echo, time),
    }
}

fn sequential<E: Echo>(echo: &E, seed: u64, time: Duration) -> Sample {
    let start = Instant::now();
    let deadline = start + time;
    let mut n = 0;
    while n == 0 || Instant::now() < deadline {
        let stamp = seed + n;
        check(&echo.call(small_payload(stamp)), SMALL, stamp);
        n += 1;
    }
    Sample { ops: n, all_ops: n, bytes: n * SMALL as u64, secs: start.elapsed().as_secs_f64() }
}

fn pipelined<E: Echo>(echo: &E, window: usize, time: Duration) -> Sample {
    let start = Instant::now();
    let deadline = start + time;
    let mut in_flight = VecDeque::with_capacity(window);
    let mut sent = 0u64;
    for _ in 0..window {
        in_flight.push_back((echo.submit(small_payload(sent)), sent));
        sent += 1;
    }
    let mut done = 0u64;
    let secs = loop {
        let (ticket, stamp) = in_flight.pop_front().expect("window is never empty here");
        check(&echo.wait(ticket), SMALL, stamp);
        done += 1;
        if done.is_multiple_of(8) && Instant::now() >= deadline {
            break start.elapsed().as_secs_f64();
        }
        in_flight.push_back((echo.submit(small_payload(sent)), sent));
        sent += 1;
    };
    let all = done + in_flight.len() as u64;
    for (ticket, stamp) in in_flight {
        check(&echo.wait(ticket), SMALL, stamp);
    }
    Sample { ops: done, all_ops: all, bytes: done * SMALL as u64, secs }
}

fn concurrent<E: Echo>(echo: &E, threads: usize, time: Duration) -> Sample {
    let barrier = Barrier::new(threads + 1);
    let (ops, secs) = thread::scope(|scope| {
        let callers: Vec<_> = (0..threads as u64)
            .map(|i| {
                let barrier = &barrier;
                scope.spawn(move || {
                    barrier.wait();
                    sequential(echo, i << 40, time).ops
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        let ops: u64 = callers.into_iter().map(|c| c.join().expect("caller thread")).sum();
        (ops, start.elapsed().as_secs_f64())
    });
    Sample { ops, all_ops: ops, bytes: ops * SMALL as u64, secs }
}

fn bulk<E: Echo>(echo: &E, time: Duration) -> Sample {
    let start = Instant::now();
    let deadline = start + time;
    let mut payload = vec![0x5a; BULK];
    let mut n = 0u64;
    while n == 0 || Instant::now() < deadline {
        payload[..8].copy_from_slice(&n.to_le_bytes());
        payload = echo.call(payload);
        check(&payload, BULK, n);
        n += 1;
    }
    Sample { ops: n, all_ops: n, bytes: n * BULK as u64, secs: start.elapsed().as_secs_f64() }
}

/// What one measured run gave: its figure (calls/s, req/s, MB/s) and the
/// CPU time of both processes per operation.
#[derive(Clone, Copy)]
struct Measured {
    figure: f64,
    cpu_us: f64,
}

/// Drives `scenario` for the warm-up, then for `time` between two reads of
/// the CPU clocks of this process and of `child`.
fn measure_on<E: Echo>(echo: &E, child: Option<u32>, scenario: Scenario, time: Duration, plan: &Plan) -> Measured {
    drive(echo, scenario, plan.warmup);
    let mark = CpuMark::now(child);
    let sample = drive(echo, scenario, time);
    // Every operation counted, including those drained after the deadline,
    // since their CPU time is in the clocks.
    let cpu_us = mark.spent() as f64 / 1e3 / sample.all_ops as f64;
    Measured { figure: sample.figure(scenario), cpu_us }
}

/// One measured run on a fresh connection (and child): a short warm-up,
/// then `time`. Pinned, the binding is made before anything of the run
/// starts and checked on every thread of both processes at its end.
fn measure_once(imp: Impl, link: Link, scenario: Scenario, time: Duration, pinned: bool, plan: &Plan) -> Measured {
    let pin = pinned.then(Pinned::lowest);
    let check = |child: Option<u32>| {
        if let Some(pin) = &pin {
            pin.check(None);
            if child.is_some() {
                pin.check(child);
            }
        }
    };
    match imp {
        Impl::Ps | Impl::PsNoSpin => {
            let config = match imp {
                Impl::PsNoSpin => Config::builder().wait_spin(Duration::ZERO),
                _ => Config::builder(),
            };
            let client = PsClient::open(link, config);
            let measured = measure_on(&client, client.pid, scenario, time, plan);
            check(client.pid);
            client.finish();
            measured
        }
        Impl::Raw | Impl::RawWide => {
            let client = RawClient::open(link, imp == Impl::RawWide);
            let pid = client.child.as_ref().map(Child::id);
            let measured = measure_on(&client, pid, scenario, time, plan);
            check(pid);
            client.finish();
            measured
        }
        Impl::Direct => {
            assert!(link == Link::Pipes, "the direct caller runs over pipes only");
            let client = DirectClient::open();
            let pid = Some(client.child.id());
            let measured = measure_on(&client, pid, scenario, time, plan);
            check(pid);
            client.finish();
            measured
        }
    }
}

/// One line of a comparison: `lib` against `base` in `scenario`, with the
/// targets it is judged against (a least ratio of the figures, a most
/// ratio of the CPU time per operation).
#[derive(Clone, Copy)]
struct Versus {
    scenario: Scenario,
    lib: Impl,
    base: Impl,
    target: Option<f64>,
    cpu_target: Option<f64>,
}

impl Versus {
    fn new(scenario: Scenario, lib: Impl, base: Impl) -> Versus {
        Versus { scenario, lib, base, target: None, cpu_target: None }
    }

    fn target(self, target: impl Into<Option<f64>>) -> Versus {
        Versus { target: target.into(), ..self }
    }

    fn cpu_target(self, target: impl Into<Option<f64>>) -> Versus {
        Versus { cpu_target: target.into(), ..self }
    }
}

/// The performance issue's comparisons over pipes. Unpinned, each with its
/// own targets; pinned to one CPU, every line with a target must reach
/// 0.75 of the same comparator (and CPU time has no target).
fn limit_rows(pinned: bool) -> Vec<Versus> {
    use Impl::*;
    use Scenario::*;
    let at_least = |unpinned: f64| if pinned { 0.75 } else { unpinned };
    let cpu_at_most = |unpinned: f64| (!pinned).then_some(unpinned);
    vec![
        Versus::new(Sequential, Ps, Direct).target(at_least(0.9)).cpu_target(cpu_at_most(1.5)),
        Versus::new(Sequential, PsNoSpin, Direct).target(0.75),
        Versus::new(Sequential, Ps, Raw),
        Versus::new(Pipelined(64), Ps, Raw).target(at_least(1.0)).cpu_target(cpu_at_most(1.3)),
        Versus::new(Pipelined(64), PsNoSpin, Raw),
        Versus::new(Pipelined(512), Ps, Raw).target(at_least(0.9)),
        Versus::new(Pipelined(512), PsNoSpin, Raw),
        Versus::new(Concurrent(4), Ps, Raw).target(at_least(1.0)),
        Versus::new(Concurrent(4), PsNoSpin, Raw),
        // "Raw framing over 1 MiB pipes" fits both 1 MiB comparators: both
        // are judged.
        Versus::new(Bulk, Ps, RawWide).target(at_least(0.9)).cpu_target(cpu_at_most(1.2)),
        Versus::new(Bulk, Ps, Direct).target(at_least(0.9)).cpu_target(cpu_at_most(1.2)),
        Versus::new(Bulk, Ps, Raw),
        Versus::new(Bulk, PsNoSpin, RawWide),
    ]
}

/// Every run, by scenario and implementation, in round order: the runs of
/// one round share an index.
type Runs = HashMap<(Scenario, Impl), Vec<Measured>>;

/// The scenarios of `rows` and, for each, the implementations it needs.
fn scenarios_of(rows: &[Versus]) -> Vec<(Scenario, Vec<Impl>)> {
    let mut plan: Vec<(Scenario, Vec<Impl>)> = Vec::new();
    for row in rows {
        let at = match plan.iter().position(|(scenario, _)| *scenario == row.scenario) {
            Some(at) => at,
            None => {
                plan.push((row.scenario, Vec::new()));
                plan.len() - 1
            }
        };
        for imp in [row.lib, row.base] {
            if !plan[at].1.contains(&imp) {
                plan[at].1.push(imp);
            }
        }
    }
    plan
}

/// Runs what `rows` compare, `rounds` times; within a round each scenario's
/// implementations run back to back, in an order that rotates from round to
/// round, so that none always goes first.
fn run_rows(rows: &[Versus], link: Link, pinned: bool, rounds: usize, time: Duration, plan: &Plan) -> Runs {
    let mut runs = Runs::new();
    let scenarios = scenarios_of(rows);
    for round in 0..rounds {
        for (scenario, impls) in &scenarios {
            for k in 0..impls.len() {
                let imp = impls[(round + k) % impls.len()];
                let measured = measure_once(imp, link, *scenario, time, pinned, plan);
                runs.entry((*scenario, imp)).or_default().push(measured);
            }
        }
    }
    runs
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    }
}

fn min_max(values: &[f64]) -> (f64, f64) {
    values.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)))
}

/// "1.234  0.98..1.40": the median of per-round ratios and their range.
fn ratio_cells(ratios: &[f64]) -> (f64, String) {
    let (lo, hi) = min_max(ratios);
    (median(ratios), format!("{lo:.2}..{hi:.2}"))
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "MISSED"
    }
}

/// Two tables: the median figure and CPU time of every implementation, and
/// the comparisons with their per-round ratios and targets.
fn print_rows(title: &str, rows: &[Versus], runs: &Runs) {
    let scenarios = scenarios_of(rows);
    let impls: Vec<Impl> = Impl::ALL.into_iter().filter(|imp| runs.keys().any(|(_, i)| i == imp)).collect();
    println!("\n{title}");
    println!("Medians: figure / CPU us per operation (parent and child processes together)");
    print!("{:<18}", "scenario");
    for imp in &impls {
        print!(" {:>20}", imp.label());
    }
    println!();
    for (scenario, _) in &scenarios {
        print!("{:<18}", scenario.short());
        for imp in &impls {
            let cell = match runs.get(&(*scenario, *imp)) {
                Some(runs) => {
                    let figure = median(&runs.iter().map(|m| m.figure).collect::<Vec<_>>());
                    let cpu = median(&runs.iter().map(|m| m.cpu_us).collect::<Vec<_>>());
                    format!("{} / {cpu:.2}", fmt_figure(figure))
                }
                None => "-".into(),
            };
            print!(" {cell:>20}");
        }
        println!();
        if let Scenario::Sequential = scenario {
            print!("{:<18}", "  mean call (us)");
            for imp in &impls {
                let cell = runs.get(&(*scenario, *imp)).map_or_else(
                    || "-".to_owned(),
                    |runs| format!("{:.1}", 1e6 / median(&runs.iter().map(|m| m.figure).collect::<Vec<_>>())),
                );
                print!(" {cell:>20}");
            }
            println!();
        }
    }
    println!(
        "{:<30} {:>7}  {:<11} {:<15} {:>9}  {:<11} cpu target",
        "comparison (lib / comparator)", "ratio", "range", "target", "cpu ratio", "range"
    );
    for row in rows {
        let (Some(lib), Some(base)) = (runs.get(&(row.scenario, row.lib)), runs.get(&(row.scenario, row.base))) else {
            continue;
        };
        let per_round = |f: fn(&Measured) -> f64| lib.iter().zip(base).map(|(l, b)| f(l) / f(b)).collect::<Vec<_>>();
        let (ratio, range) = ratio_cells(&per_round(|m| m.figure));
        let (cpu_ratio, cpu_range) = ratio_cells(&per_round(|m| m.cpu_us));
        let target = row.target.map_or_else(String::new, |t| format!(">= {t:.2} {}", verdict(ratio >= t)));
        let cpu_target = row.cpu_target.map_or_else(String::new, |t| format!("<= {t:.2} {}", verdict(cpu_ratio <= t)));
        println!(
            "{:<30} {ratio:>7.3}  {range:<11} {target:<15} {cpu_ratio:>9.3}  {cpu_range:<11} {cpu_target}",
            format!("{}: {} / {}", row.scenario.letter(), row.lib.label(), row.base.label()),
        );
    }
}

/// 1234567.8 -> "1,234,568"; small figures keep a decimal.
fn fmt_figure(value: f64) -> String {
    if value < 1000.0 {
        return format!("{value:.1}");
    }
    let digits = format!("{:.0}", value);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

// ---------------------------------------------------------------------------
// Streams: items pushed by a child to the parent.

/// Who pushes a stream's items, child to parent over the child's stdout.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Pusher {
    /// A packetstream stream, the caller granting this window (items, bytes).
    Ps(u64, u64),
    /// The baseline: length-prefixed frames over a pipe of the library's size.
    Raw,
}

impl Pusher {
    fn label(self) -> String {
        match self {
            Pusher::Ps(items, bytes) => format!("ps window {items}/{}", fmt_bytes(bytes)),
            Pusher::Raw => "baseline".into(),
        }
    }
}

fn fmt_bytes(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 && b.is_multiple_of(1 << 20) => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b.is_multiple_of(1 << 10) => format!("{} KiB", b >> 10),
        b => format!("{b} B"),
    }
}

/// Small items are counted in items per second, large ones in MB/s.
fn counts_items(size: usize) -> bool {
    size < 4096
}

/// Takes items with `next` (given the number the item must carry) for the
/// warm-up, then for `time` between two reads of the CPU clocks.
fn pull(mut next: impl FnMut(u64), size: usize, child: Option<u32>, time: Duration, plan: &Plan) -> Measured {
    // Small items come by the million: the clock is read once per batch.
    let batch = if counts_items(size) { 64 } else { 1 };
    let mut n = 0u64;
    let mut run_for = |n: &mut u64, time: Duration| {
        let deadline = Instant::now() + time;
        loop {
            for _ in 0..batch {
                next(*n);
                *n += 1;
            }
            if Instant::now() >= deadline {
                break;
            }
        }
    };
    run_for(&mut n, plan.warmup);
    let (first, mark, start) = (n, CpuMark::now(child), Instant::now());
    run_for(&mut n, time);
    let (secs, spent) = (start.elapsed().as_secs_f64(), mark.spent());
    let items = (n - first) as f64;
    let figure = if counts_items(size) { items / secs } else { items * size as f64 / secs / 1e6 };
    Measured { figure, cpu_us: spent as f64 / 1e3 / items }
}

fn stream_once(pusher: Pusher, size: usize, time: Duration, plan: &Plan) -> Measured {
    match pusher {
        Pusher::Ps(items, bytes) => {
            let client = PsClient::spawn("ps-stream", Config::builder().name("ps").extensions(true));
            let options = StreamOptions::receive().window(items, bytes);
            let Stream { receiver, reply, .. } =
                client.conn.stream(0, 0, (size as u64).to_le_bytes().to_vec(), options).expect("open a stream");
            let receiver: StreamReceiver = receiver.expect("asked to receive");
            let next = |n: u64| check(&receiver.recv().expect("a stream item"), size, n);
            let measured = pull(next, size, client.pid, time, plan);
            receiver.stop();
            reply.wait().expect("the stream's reply");
            client.finish();
            measured
        }
        Pusher::Raw => {
            let mut child = self_command(&["__push", &size.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .spawn()
                .expect("start the pushing child");
            let output = child.stdout.take().expect("piped stdout");
            widen_pipe(&output);
            let mut input = BufReader::with_capacity(BASELINE_BUFFER, output);
            let mut item = Vec::with_capacity(size);
            let next = |n: u64| {
                let mut header = [0; 4];
                input.read_exact(&mut header).expect("a frame header");
                item.resize(u32::from_le_bytes(header) as usize, 0);
                input.read_exact(&mut item).expect("a frame");
                check(&item, size, n);
            };
            let measured = pull(next, size, Some(child.id()), time, plan);
            // Closing the pipe ends the child.
            drop(input);
            let status = child.wait().expect("wait for the pushing child");
            assert!(status.success(), "pushing child: {status}");
            measured
        }
    }
}

/// Stream throughput: for each item size, packetstream (with the default
/// window, and a wider one) against the baseline, in rotating order.
fn print_streams(plan: &Plan) {
    let sizes = [SMALL, 64 << 10, BULK];
    let pushers = [Pusher::Ps(64, 1 << 20), Pusher::Ps(1024, 8 << 20), Pusher::Raw];
    println!("\nStreams: items pushed by a child to the parent over the child's stdout (1 MiB pipes), medians");
    println!("(figure: items/s for 16 B items, MB/s of items for the others; cpu: us per item, both processes)");
    println!(
        "{:<18} {:<22} {:>12} {:>8}  {:>7}  {:<11} {:>9}  range",
        "items", "pusher", "figure", "cpu us", "ratio", "range", "cpu ratio"
    );
    for size in sizes {
        let mut runs: Vec<Vec<Measured>> = vec![Vec::new(); pushers.len()];
        for round in 0..plan.rounds {
            for k in 0..pushers.len() {
                let at = (round + k) % pushers.len();
                runs[at].push(stream_once(pushers[at], size, plan.stream_time, plan));
            }
        }
        let base = &runs[pushers.len() - 1];
        for (pusher, lib) in pushers.iter().zip(&runs) {
            let figure = median(&lib.iter().map(|m| m.figure).collect::<Vec<_>>());
            let cpu = median(&lib.iter().map(|m| m.cpu_us).collect::<Vec<_>>());
            let per_round =
                |f: fn(&Measured) -> f64| lib.iter().zip(base).map(|(l, b)| f(l) / f(b)).collect::<Vec<_>>();
            let ratios = if *pusher == Pusher::Raw {
                String::new()
            } else {
                let (ratio, range) = ratio_cells(&per_round(|m| m.figure));
                let (cpu_ratio, cpu_range) = ratio_cells(&per_round(|m| m.cpu_us));
                format!("{ratio:>7.3}  {range:<11} {cpu_ratio:>9.3}  {cpu_range}")
            };
            let unit = if counts_items(size) { "items/s" } else { "MB/s" };
            println!(
                "{:<18} {:<22} {:>12} {cpu:>8.3}  {ratios}",
                format!("{} ({unit})", fmt_bytes(size as u64)),
                pusher.label(),
                fmt_figure(figure),
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Per-request costs: system calls, context switches, allocations.

/// What one side spent per request.
#[derive(Default)]
struct SideCosts {
    writes: f64,
    reads: f64,
    allocs: f64,
    /// Per thread (numbered threads summed): CPU µs, voluntary and
    /// involuntary context switches, per request; in order of CPU time.
    threads: Vec<(String, f64, f64, f64)>,
}

impl SideCosts {
    fn total(&self) -> (f64, f64, f64) {
        self.threads.iter().fold((0.0, 0.0, 0.0), |(c, v, i), t| (c + t.1, v + t.2, i + t.3))
    }
}

/// Per request, what each group of threads did between two samples.
fn thread_costs(
    before: &HashMap<u32, ThreadSample>,
    after: &HashMap<u32, ThreadSample>,
    n: u64,
) -> Vec<(String, f64, f64, f64)> {
    let mut groups: Vec<(String, f64, f64, f64)> = Vec::new();
    for (tid, now) in after {
        let then = before.get(tid).cloned().unwrap_or_default();
        let per = |a: u64, b: u64| a.saturating_sub(b) as f64 / n as f64;
        let (cpu, voluntary, involuntary) = (
            per(now.cpu_ns, then.cpu_ns) / 1e3,
            per(now.voluntary, then.voluntary),
            per(now.involuntary, then.involuntary),
        );
        match groups.iter_mut().find(|g| g.0 == now.name) {
            Some(group) => {
                group.1 += cpu;
                group.2 += voluntary;
                group.3 += involuntary;
            }
            None => groups.push((now.name.clone(), cpu, voluntary, involuntary)),
        }
    }
    groups.sort_by(|a, b| b.1.total_cmp(&a.1));
    groups
}

struct Snapshot {
    reads: u64,
    writes: u64,
    allocs: u64,
    me: HashMap<u32, ThreadSample>,
    child: HashMap<u32, ThreadSample>,
}

fn snapshot(child: u32) -> Snapshot {
    Snapshot {
        me: threads_of(std::process::id()),
        child: threads_of(child),
        reads: READ_CALLS.load(Relaxed),
        writes: WRITE_CALLS.load(Relaxed),
        allocs: ALLOCATIONS.load(Relaxed),
    }
}

fn parse_pairs(line: &str) -> HashMap<String, f64> {
    line.split_whitespace()
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            Some((key.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// Runs `scenario` over counted pipes to a counting child and returns the
/// parent's and the child's costs per request.
fn costs(imp: Impl, scenario: Scenario, plan: &Plan) -> (SideCosts, SideCosts) {
    fn on<E: Echo>(echo: &E, scenario: Scenario, plan: &Plan, child: u32) -> (Snapshot, Snapshot, u64) {
        drive(echo, scenario, plan.warmup);
        let before = snapshot(child);
        COUNTING.store(true, Relaxed);
        let sample = drive(echo, scenario, plan.time);
        COUNTING.store(false, Relaxed);
        let after = snapshot(child);
        (before, after, sample.all_ops)
    }
    let stats = std::env::temp_dir().join(format!("packetstream-bench-{}.stats", std::process::id()));
    let stats_path = stats.to_str().expect("a UTF-8 temporary path").to_owned();
    let (before, after, n) = match imp {
        Impl::Ps => {
            let client = PsClient::open_counted(&stats_path);
            let pid = client.child.as_ref().expect("a child").id();
            let measured = on(&client, scenario, plan, pid);
            client.finish();
            measured
        }
        Impl::Raw => {
            let client = RawClient::open_counted(&stats_path);
            let pid = client.child.as_ref().expect("a child").id();
            let measured = on(&client, scenario, plan, pid);
            client.finish();
            measured
        }
        other => panic!("no per-request cost table for {other:?}"),
    };
    let child_stats = parse_pairs(&fs::read_to_string(&stats).unwrap_or_default());
    let _ = fs::remove_file(&stats);
    let per = |d: u64| d as f64 / n as f64;
    let parent = SideCosts {
        writes: per(after.writes - before.writes),
        reads: per(after.reads - before.reads),
        allocs: per(after.allocs - before.allocs),
        threads: thread_costs(&before.me, &after.me, n),
    };
    let served = child_stats.get("served").copied().unwrap_or(f64::NAN);
    let from_child = |key: &str| child_stats.get(key).copied().unwrap_or(f64::NAN) / served;
    let child = SideCosts {
        writes: from_child("writes"),
        reads: from_child("reads"),
        allocs: from_child("allocs"),
        threads: thread_costs(&before.child, &after.child, n),
    };
    (parent, child)
}

fn print_costs(plan: &Plan) {
    println!("\nPer-request costs over pipes: read/write calls on the stream (counted around it), CPU time and");
    println!("voluntary/involuntary context switches (/proc/PID/task/*/schedstat and status, all threads),");
    println!("allocations (counting global allocator). Child read/write/alloc: whole-run totals / requests served.");
    println!(
        "{:<16} {:<13} | {:>6} {:>6} {:>6} {:>6} {:>6} {:>6} | {:>6} {:>6} {:>6} {:>6} {:>6} {:>6}",
        "", "", "parent", "", "", "", "", "", "child", "", "", "", "", ""
    );
    println!(
        "{:<16} {:<13} | {:>6} {:>6} {:>6} {:>6} {:>6} {:>6} | {:>6} {:>6} {:>6} {:>6} {:>6} {:>6}",
        "scenario",
        "impl",
        "write",
        "read",
        "cpu us",
        "vcsw",
        "ivcsw",
        "alloc",
        "write",
        "read",
        "cpu us",
        "vcsw",
        "ivcsw",
        "alloc"
    );
    let mut breakdown = Vec::new();
    for scenario in [Scenario::Sequential, Scenario::Pipelined(64)] {
        for imp in [Impl::Ps, Impl::Raw] {
            let (parent, child) = costs(imp, scenario, plan);
            let name = match scenario {
                Scenario::Sequential => "A sequential",
                _ => "B pipelined x64",
            };
            let who = if imp == Impl::Ps { "packetstream" } else { "baseline" };
            let cells = |c: &SideCosts| {
                let (cpu, voluntary, involuntary) = c.total();
                format!(
                    "{:>6.3} {:>6.3} {:>6.2} {:>6.3} {:>6.3} {:>6.2}",
                    c.writes, c.reads, cpu, voluntary, involuntary, c.allocs
                )
            };
            println!("{name:<16} {who:<13} | {} | {}", cells(&parent), cells(&child));
            let threads = |c: &SideCosts| {
                c.threads
                    .iter()
                    .filter(|t| t.1 >= 0.005 || t.2 >= 0.005 || t.3 >= 0.005)
                    .map(|(name, cpu, v, i)| format!("{name} {cpu:.2}/{v:.2}/{i:.2}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            breakdown.push(format!(
                "{name}, {who}:\n    parent: {}\n    child:  {}",
                threads(&parent),
                threads(&child)
            ));
        }
    }
    println!("(write/read: calls per request, i.e. per packet each way; cpu us: CPU microseconds per request;");
    println!(" vcsw/ivcsw: voluntary/involuntary context switches per request; alloc: allocations per request)");
    println!("\nPer thread, per request: name cpu-us/vcsw/ivcsw (threads named NAME-* summed)");
    for line in breakdown {
        println!("{line}");
    }
}

// ---------------------------------------------------------------------------
// Peak memory.

fn run_peak(args: &[String]) -> HashMap<String, f64> {
    let output =
        self_command(&["__peak"]).args(args).stderr(Stdio::inherit()).output().expect("run a peak measurement");
    assert!(output.status.success(), "peak measurement {args:?} failed: {}", output.status);
    let text = String::from_utf8_lossy(&output.stdout);
    parse_pairs(text.lines().last().unwrap_or_default())
}

fn print_peaks(plan: &Plan) {
    let mib = |kib: f64| kib / 1024.0;
    println!("\nPeak memory of the parent process (VmHWM; 'start' is VmRSS once connected, before the work)");
    let n = plan.outstanding;
    let mut per_request = Vec::new();
    for (imp, name) in [("ps", "packetstream"), ("raw", "baseline")] {
        let r = run_peak(&["outstanding".into(), imp.into(), n.to_string()]);
        let grown = r["held_hwm"] - r["start"];
        per_request.push(grown * 1024.0 / n as f64);
        println!(
            "{n} requests outstanding, {name:<12}: start {:6.1} MiB, peak while held {:6.1} MiB \
             (+{:.1} MiB, {:.0} B/request), peak after answers {:6.1} MiB",
            mib(r["start"]),
            mib(r["held_hwm"]),
            mib(grown),
            grown * 1024.0 / n as f64,
            mib(r["end_hwm"]),
        );
    }
    let ratio = per_request[0] / per_request[1];
    println!(
        "memory per outstanding request, packetstream / baseline: {ratio:.2} (target <= 1.20 {})",
        verdict(ratio <= 1.2)
    );
    let (size, count) = (plan.bulk_peak_size, plan.bulk_peak_count);
    for (imp, name) in [("ps", "packetstream"), ("raw", "baseline")] {
        let r = run_peak(&["bulk".into(), imp.into(), size.to_string(), count.to_string()]);
        let grown = r["end_hwm"] - r["base"];
        println!(
            "{count} x {} MiB echoed, {name:<12}: start {:6.1} MiB, peak {:6.1} MiB \
             (+{:.1} MiB over the bare process = {:.2} x payload)",
            size >> 20,
            mib(r["start"]),
            mib(r["end_hwm"]),
            mib(grown),
            grown * 1024.0 / size as f64,
        );
    }
    println!("(the caller's own payload buffer counts once in the bulk figure; the handles held by the caller");
    println!(" count in the outstanding figure: a Vec of Pending, or of Arc slots for the baseline)");
}

// ---------------------------------------------------------------------------
// The benchmark.

struct Plan {
    rounds: usize,
    warmup: Duration,
    time: Duration,
    pinned_time: Duration,
    socket_time: Duration,
    stream_time: Duration,
    scale_rounds: usize,
    scale_time: Duration,
    outstanding: usize,
    bulk_peak_size: usize,
    bulk_peak_count: usize,
}

impl Plan {
    fn new(quick: bool) -> Plan {
        let env = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<f64>().ok());
        let mut plan = if quick {
            Plan {
                rounds: 3,
                warmup: Duration::from_millis(20),
                time: Duration::from_millis(100),
                pinned_time: Duration::from_millis(100),
                socket_time: Duration::from_millis(100),
                stream_time: Duration::from_millis(100),
                scale_rounds: 1,
                scale_time: Duration::from_millis(100),
                outstanding: 10_000,
                bulk_peak_size: 8 << 20,
                bulk_peak_count: 2,
            }
        } else {
            Plan {
                rounds: 7,
                warmup: Duration::from_millis(100),
                time: Duration::from_secs(1),
                // Shorter than unpinned, to keep the whole run near 7 minutes.
                pinned_time: Duration::from_millis(600),
                socket_time: Duration::from_millis(600),
                stream_time: Duration::from_millis(600),
                scale_rounds: 3,
                scale_time: Duration::from_millis(500),
                outstanding: 100_000,
                bulk_peak_size: 64 << 20,
                bulk_peak_count: 4,
            }
        };
        if let Some(rounds) = env("PACKETSTREAM_BENCH_ROUNDS") {
            plan.rounds = (rounds as usize).max(1);
        }
        if let Some(secs) = env("PACKETSTREAM_BENCH_SECS") {
            let secs = Duration::from_secs_f64(secs);
            (plan.time, plan.pinned_time, plan.socket_time, plan.stream_time) = (secs, secs, secs, secs);
        }
        plan
    }
}

/// Whether PACKETSTREAM_BENCH_ONLY (a comma-separated list) leaves
/// `section` in; unset, every section runs.
fn wanted(section: &str) -> bool {
    match std::env::var("PACKETSTREAM_BENCH_ONLY") {
        Ok(only) => only.split(',').any(|s| s.trim() == section),
        Err(_) => true,
    }
}

fn bench_main(quick: bool) {
    let plan = Plan::new(quick);
    let started = Instant::now();
    let cores = thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "packetstream transport benchmark: {} mode, {cores} cores, {} rounds x {:.1} s per run \
         (pinned {:.1} s, socketpair {:.1} s, streams {:.1} s), medians",
        if quick { "quick" } else { "full" },
        plan.rounds,
        plan.time.as_secs_f64(),
        plan.pinned_time.as_secs_f64(),
        plan.socket_time.as_secs_f64(),
        plan.stream_time.as_secs_f64(),
    );
    println!("ratio: median of the per-round ratios (lib / comparator), with their range; cpu: user + system");
    println!("CPU time of the parent and the child process together, per operation");
    println!(
        "ps = packetstream; spin0 = the caller with wait_spin(0); baseline = reader thread, 64 KiB pipes; \
         1M = 1 MiB pipes;"
    );
    println!("direct = one thread writes and reads its own answer, no reader thread");

    if wanted("pipes") {
        let rows = limit_rows(false);
        let runs = run_rows(&rows, Link::Pipes, false, plan.rounds, plan.time, &plan);
        print_rows("Parent and child process over the child's stdin/stdout pipes", &rows, &runs);
    }
    if wanted("pinned") {
        let rows = limit_rows(true);
        let runs = run_rows(&rows, Link::Pipes, true, plan.rounds, plan.pinned_time, &plan);
        print_rows(
            "The same, both processes pinned to one CPU (sched_setaffinity, inherited by every thread and the child)",
            &rows,
            &runs,
        );
    }
    if wanted("socket") {
        // The targets the benchmark had before the performance issue's.
        let rows = [
            Versus::new(Scenario::Sequential, Impl::Ps, Impl::Raw).target(0.75),
            Versus::new(Scenario::Pipelined(64), Impl::Ps, Impl::Raw).target(0.8),
            Versus::new(Scenario::Concurrent(4), Impl::Ps, Impl::Raw).target(0.8),
            Versus::new(Scenario::Bulk, Impl::Ps, Impl::Raw).target(0.9),
        ];
        let runs = run_rows(&rows, Link::SocketPair, false, plan.rounds, plan.socket_time, &plan);
        print_rows("One process, over a Unix socketpair (cpu: the one process)", &rows, &runs);
    }
    if wanted("scaling") {
        let rows = [1, 8, 64, 512].map(|window| Versus::new(Scenario::Pipelined(window), Impl::Ps, Impl::Raw));
        let runs = run_rows(&rows, Link::Pipes, false, plan.scale_rounds, plan.scale_time, &plan);
        print_rows("Scaling of B over pipes with the number of outstanding requests", &rows, &runs);
    }
    if wanted("streams") {
        print_streams(&plan);
    }
    if wanted("grace") {
        print_grace_sweep(&plan);
    }
    if wanted("pause") {
        print_handler_pause(&plan);
    }
    if wanted("costs") {
        print_costs(&plan);
    }
    if wanted("peaks") {
        print_peaks(&plan);
    }
    if wanted("servers") {
        print_servers(&plan);
    }
    println!("\ntotal time {:.0} s", started.elapsed().as_secs_f64());
}

/// The measurement behind the default packet grace: A, C and B with the
/// grace set on both sides, over a socketpair in one process (packetstream
/// only; the grace is its own knob). Zero holds no packet back; cs.packetstream's
/// default is 10 ms.
fn print_grace_sweep(plan: &Plan) {
    println!("\nPacket grace (set on both sides), one process over a Unix socketpair, medians");
    println!(
        "{:<14} {:>14} {:>14} {:>16} {:>16}",
        "grace", "A calls/s", "C 4 thr req/s", "B x64 req/s", "B writes/packet"
    );
    let scenarios = [Scenario::Sequential, Scenario::Concurrent(4), Scenario::Pipelined(64)];
    for micros in [0u64, 100, 1000, 10_000] {
        let config = Config::builder().packet_grace(Duration::from_micros(micros));
        let mut figures = vec![Vec::new(); scenarios.len()];
        let mut writes_per_packet = Vec::new();
        for _ in 0..plan.scale_rounds {
            for (i, &scenario) in scenarios.iter().enumerate() {
                let client = PsClient::open_socketpair(config.clone());
                drive(&client, scenario, plan.warmup);
                let before = client.conn.stats();
                figures[i].push(drive(&client, scenario, plan.socket_time).figure(scenario));
                if let Scenario::Pipelined(_) = scenario {
                    let after = client.conn.stats();
                    let packets = (after.packets_out - before.packets_out).max(1);
                    writes_per_packet.push((after.write_calls - before.write_calls) as f64 / packets as f64);
                }
                client.finish();
            }
        }
        println!(
            "{:<14} {:>14} {:>14} {:>16} {:>16.3}",
            format!("{micros} us"),
            fmt_figure(median(&figures[0])),
            fmt_figure(median(&figures[1])),
            fmt_figure(median(&figures[2])),
            median(&writes_per_packet)
        );
    }
}

/// What the server's handler does in the handler-pause table.
#[derive(Clone, Copy)]
enum Work {
    /// Echo at once.
    Quick,
    /// Sleep this long, then echo: a handler that waits (on I/O, a lock).
    Sleep(Duration),
    /// Sleep this long on one request in `every`, echo the rest at once.
    SleepOneIn(Duration, u64),
    /// Keep the CPU busy this long, then echo.
    Spin(Duration),
}

impl Work {
    fn label(self) -> String {
        let us = |d: Duration| d.as_micros();
        match self {
            Work::Quick => "quick handler".into(),
            Work::Sleep(d) => format!("sleeps {} us", us(d)),
            Work::SleepOneIn(d, every) => format!("1 in {every} sleeps {} us", us(d)),
            Work::Spin(d) => format!("spins {} us", us(d)),
        }
    }

    fn handler(self) -> impl Handler {
        let served = AtomicU64::new(0);
        move |rq: Request| {
            match self {
                Work::Quick => {}
                Work::Sleep(d) => thread::sleep(d),
                Work::SleepOneIn(d, every) => {
                    if served.fetch_add(1, Relaxed).is_multiple_of(every) {
                        thread::sleep(d);
                    }
                }
                Work::Spin(d) => {
                    let until = Instant::now() + d;
                    while Instant::now() < until {
                        std::hint::spin_loop();
                    }
                }
            }
            echo_handler(rq)
        }
    }
}

/// The measurement behind the slow-handler pause (`handler_pause`, default
/// 100 ms): after a handler run on the reading thread took 200 µs or more,
/// or blocked so long that a worker took reading over, requests go to the
/// workers for the pause. Four callers, one process over a socketpair, with
/// the pause on and off (zero): where handlers are slow, the pause should
/// pay; where they are quick, it should cost nothing.
fn print_handler_pause(plan: &Plan) {
    println!("\nSlow-handler pause: 4 callers (and 1 for the last row), one process over a Unix socketpair, medians");
    println!("{:<28} {:>16} {:>16} {:>9}", "handler", "pause 100 ms", "pause off", "on / off");
    let rows = [
        (Work::Sleep(Duration::from_micros(300)), Scenario::Concurrent(4)),
        (Work::Spin(Duration::from_micros(300)), Scenario::Concurrent(4)),
        (Work::SleepOneIn(Duration::from_micros(300), 16), Scenario::Concurrent(4)),
        (Work::Quick, Scenario::Concurrent(4)),
        (Work::Quick, Scenario::Sequential),
    ];
    for (work, scenario) in rows {
        let mut on = Vec::new();
        let mut off = Vec::new();
        for round in 0..plan.rounds {
            let order = if round % 2 == 0 { [true, false] } else { [false, true] };
            for pause in order {
                let config =
                    Config::builder().handler_pause(if pause { Duration::from_millis(100) } else { Duration::ZERO });
                let client = PsClient::open_socketpair_with(config, work.handler());
                drive(&client, scenario, plan.warmup);
                let figure = drive(&client, scenario, plan.socket_time).figure(scenario);
                client.finish();
                if pause {
                    on.push(figure)
                } else {
                    off.push(figure)
                }
            }
        }
        let ratios: Vec<f64> = on.iter().zip(&off).map(|(a, b)| a / b).collect();
        let callers = if let Scenario::Sequential = scenario { " (1 caller)" } else { "" };
        println!(
            "{:<28} {:>16} {:>16} {:>9.3}",
            format!("{}{callers}", work.label()),
            fmt_figure(median(&on)),
            fmt_figure(median(&off)),
            median(&ratios)
        );
    }
}

/// `__pause`: the slow-handler pause table alone.
fn pause_main() -> Result<(), String> {
    print_handler_pause(&Plan::new(false));
    Ok(())
}

/// `__run IMPL A|B|C|D|B<window> pipes|socket SECONDS [pinned]`, IMPL one of
/// ps, ps-spin0, raw, raw-1m, direct: one measured run, for profiling one
/// side alone, e.g.
/// `perf record -g -- target/release/deps/transport-HASH __run ps A pipes 5`.
fn run_main(args: &[String]) -> Result<(), String> {
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or_default();
    let imp = Impl::parse(arg(0))
        .ok_or_else(|| format!("unknown implementation {:?}: ps, ps-spin0, raw, raw-1m or direct", arg(0)))?;
    let scenario = match arg(1) {
        "A" => Scenario::Sequential,
        "B" => Scenario::Pipelined(64),
        "C" => Scenario::Concurrent(4),
        "D" => Scenario::Bulk,
        other => match other.strip_prefix('B').and_then(|w| w.parse().ok()) {
            Some(window) => Scenario::Pipelined(window),
            None => return Err(format!("unknown scenario {other:?}: A, B, C, D or B<window>")),
        },
    };
    let link = match arg(2) {
        "pipes" => Link::Pipes,
        "socket" => Link::SocketPair,
        other => return Err(format!("unknown link {other:?}: pipes or socket")),
        // (TCP runs need a server child: see `__servers`.)
    };
    let secs: f64 = arg(3).parse().map_err(|e| format!("seconds: {e}"))?;
    let pinned = match arg(4) {
        "" => false,
        "pinned" => true,
        other => return Err(format!("unknown option {other:?}: pinned or nothing")),
    };
    let measured = measure_once(imp, link, scenario, Duration::from_secs_f64(secs), pinned, &Plan::new(true));
    println!(
        "{} {}: {}, {:.2} us CPU per operation (both processes)",
        imp.label(),
        scenario.label(),
        fmt_figure(measured.figure),
        measured.cpu_us
    );
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let role = args.first().map(String::as_str);
    let outcome = match role {
        Some("__child") => child_main(&args[1..]),
        Some("__hold") => hold_main(&args[1..]),
        Some("__push") => push_main(&args[1..]),
        Some("__peak") => peak_main(&args[1..]),
        Some("__run") => run_main(&args[1..]),
        Some("__pause") => pause_main(),
        Some("__server") => server_main(&args[1..]),
        Some("__scale") => scale_main(&args[1..]),
        // The server comparisons alone.
        Some("__servers") => {
            print_servers(&Plan::new(false));
            Ok(())
        }
        // The per-request costs alone (`__costs`), for quick comparisons.
        Some("__costs") => {
            print_costs(&Plan::new(false));
            Ok(())
        }
        _ => {
            let quick = std::env::var_os("PACKETSTREAM_BENCH_QUICK").is_some_and(|v| v != "0")
                || !args.iter().any(|a| a == "--bench");
            bench_main(quick);
            Ok(())
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("transport bench {}: {message}", role.unwrap_or_default());
            ExitCode::FAILURE
        }
    }
}
