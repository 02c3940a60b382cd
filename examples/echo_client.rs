//! Drives an echo server over a child process's stdin and stdout, or over
//! sockets.
//!
//!     echo_client [--requests N] [--size BYTES] [--threads T] [--window W]
//!                 [--connections K] [--extensions] [--quit-reason TEXT]
//!                 [--connect ADDR | -- COMMAND [ARGS...]]
//!
//! Starts COMMAND (by default this program itself, in echo-server mode), or
//! with `--connect` connects to a server at ADDR (`HOST:PORT`, IPv6 as
//! `[::1]:PORT`, or `unix:PATH`), and sends it N requests of type 0 with
//! varying flags and random payloads of BYTES bytes, from T threads that
//! each keep up to W requests outstanding. With `--connections K` it opens
//! K connections (K children, or K sockets) and spreads the threads over
//! them: thread i sends on connections i, i + T, i + 2T, ... in turn. Every
//! answer is checked against what was sent. The last line on stdout is
//!
//!     requests=N threads=T window=W size=BYTES connections=K seconds=S calls_per_s=R
//!
//! `--extensions` turns the protocol extensions on (for the server it starts
//! itself too); `--quit-reason TEXT` closes with that reason, which a server
//! with extensions reports, and implies `--extensions`. Any mismatch or
//! error exits non-zero.

#[path = "common/echo.rs"]
mod echo;

use std::collections::VecDeque;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use packetstream::net::Addr;
use packetstream::{CallError, CloseOptions, Config, PacketConnection, Transport};

/// Passed to ourselves to run as the echo server.
const SERVE_FLAG: &str = "--serve-echo";
/// A lost answer fails the run instead of hanging it.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a connect to `--connect ADDR` may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// With it, the server mode turns the extensions on.
const EXTENSIONS_FLAG: &str = "--extensions";

struct Options {
    requests: u64,
    size: usize,
    threads: usize,
    window: usize,
    extensions: bool,
    quit_reason: Option<String>,
    command: Vec<String>,
    connect: Option<Addr>,
    connections: usize,
}

fn parse_args() -> Result<Options, String> {
    let mut options = Options {
        requests: 100_000,
        size: 64,
        threads: 2,
        window: 32,
        extensions: false,
        quit_reason: None,
        command: Vec::new(),
        connect: None,
        connections: 1,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--" {
            options.command = args.by_ref().collect();
            break;
        }
        match arg.as_str() {
            EXTENSIONS_FLAG => {
                options.extensions = true;
                continue;
            }
            "--quit-reason" => {
                options.quit_reason = Some(args.next().ok_or("--quit-reason needs a value")?);
                options.extensions = true;
                continue;
            }
            "--connect" => {
                let text = args.next().ok_or("--connect needs an address")?;
                options.connect = Some(text.parse().map_err(|e| format!("--connect: {e}"))?);
                continue;
            }
            _ => {}
        }
        let mut value = |name: &str| -> Result<u64, String> {
            let text = args.next().ok_or(format!("{name} needs a value"))?;
            text.parse().map_err(|_| format!("{name}: not a number: {text}"))
        };
        match arg.as_str() {
            "--requests" => options.requests = value("--requests")?,
            "--size" => options.size = value("--size")? as usize,
            "--threads" => options.threads = (value("--threads")? as usize).max(1),
            "--window" => options.window = (value("--window")? as usize).max(1),
            "--connections" => options.connections = (value("--connections")? as usize).max(1),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if options.connect.is_some() && !options.command.is_empty() {
        return Err("--connect and -- COMMAND exclude each other".into());
    }
    Ok(options)
}

/// xorshift64*: random enough payloads without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let bytes = self.next().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

/// One thread's share: `count` requests, at most `window` in flight, sent
/// on `conns` in turn.
fn drive(conns: &[&PacketConnection], count: u64, size: usize, window: usize, seed: u64) -> Result<(), String> {
    let mut rng = Rng(seed | 1);
    let mut in_flight = VecDeque::with_capacity(window);
    let mut sent = 0;
    while sent < count || !in_flight.is_empty() {
        if sent < count && in_flight.len() < window {
            let flags = rng.next() % 1_000_000;
            let mut payload = vec![0; size];
            rng.fill(&mut payload);
            let conn = conns[sent as usize % conns.len()];
            let pending = conn.submit(0, flags, payload.clone()).map_err(|e| format!("submit: {e}"))?;
            in_flight.push_back((pending, flags, payload));
            sent += 1;
            continue;
        }
        let (pending, flags, payload) = in_flight.pop_front().expect("window is not empty");
        let tag = pending.tag();
        let answer = pending.wait_timeout(ANSWER_TIMEOUT).map_err(|e| format!("request {tag}: {e}"))?;
        if answer.flags != flags || answer.payload != payload {
            return Err(format!(
                "request {tag}: answer does not match (flags {} for {flags}, {} payload bytes for {})",
                answer.flags,
                answer.payload.len(),
                payload.len()
            ));
        }
    }
    Ok(())
}

/// Opens connection number `i`: a child, or a socket to `--connect`.
fn open(options: &Options, i: usize) -> Result<PacketConnection, String> {
    let transport = match &options.connect {
        Some(addr) => packetstream::net::connect(addr, CONNECT_TIMEOUT).map_err(|e| e.to_string())?,
        None => {
            let mut command = match options.command.split_first() {
                Some((program, args)) => {
                    let mut command = Command::new(program);
                    command.args(args);
                    command
                }
                None => {
                    let me = std::env::current_exe().map_err(|e| format!("cannot find myself: {e}"))?;
                    let mut command = Command::new(me);
                    command.arg(SERVE_FLAG);
                    if options.extensions {
                        command.arg(EXTENSIONS_FLAG);
                    }
                    command
                }
            };
            Transport::spawn(&mut command).map_err(|e| format!("cannot start {command:?}: {e}"))?
        }
    };
    let name = if options.connections == 1 { "echo_client".to_owned() } else { format!("echo_client{i}") };
    let config = Config::builder().name(name).extensions(options.extensions);
    PacketConnection::new(transport, config).map_err(|e| e.to_string())
}

fn run(options: &Options) -> Result<String, String> {
    let conns = (0..options.connections).map(|i| open(options, i)).collect::<Result<Vec<_>, _>>()?;

    // Check the failure path once, so a server that never fails is caught.
    match conns[0].call(echo::FAILING_RQ_TYPE, 0, b"x".to_vec()) {
        Err(CallError::Failed(_)) => {}
        other => return Err(format!("request type {} should fail, got {other:?}", echo::FAILING_RQ_TYPE)),
    }

    let (threads, connections) = (options.threads, options.connections);
    let start = Instant::now();
    let outcome: Result<(), String> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|i| {
                let share =
                    options.requests / threads as u64 + u64::from((i as u64) < options.requests % threads as u64);
                // More threads than connections: they share; fewer: each
                // thread takes every T-th connection.
                let mine: Vec<&PacketConnection> = if threads >= connections {
                    vec![&conns[i % connections]]
                } else {
                    conns.iter().skip(i).step_by(threads).collect()
                };
                std::thread::Builder::new()
                    .name(format!("echo_client-{i}"))
                    .spawn_scoped(scope, move || drive(&mine, share, options.size, options.window, i as u64 + 1))
                    .expect("spawn a caller thread")
            })
            .collect();
        workers.into_iter().try_for_each(|w| w.join().unwrap_or_else(|_| Err("a caller thread panicked".into())))
    });
    let seconds = start.elapsed().as_secs_f64();
    outcome?;

    for conn in conns {
        let mut close = CloseOptions::new();
        if let Some(reason) = &options.quit_reason {
            close = close.reason(reason.clone());
        }
        let finished = conn.close_with(close).map_err(|e| format!("close: {e}"))?;
        // A child must exit 0; a socket's server goes on.
        if options.connect.is_none() {
            match finished.exit_status() {
                Some(status) if status.success() => {}
                other => return Err(format!("server exited badly: {other:?}")),
            }
        }
    }
    Ok(format!(
        "requests={} threads={} window={} size={} connections={} seconds={seconds:.3} calls_per_s={:.0}",
        options.requests,
        options.threads,
        options.window,
        options.size,
        options.connections,
        options.requests as f64 / seconds
    ))
}

fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some(SERVE_FLAG) {
        let extensions = std::env::args().nth(2).as_deref() == Some(EXTENSIONS_FLAG);
        return echo::serve_stdio("echo_client-server", extensions);
    }
    let options = match parse_args() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("echo_client: {message}");
            eprintln!(
                "usage: echo_client [--requests N] [--size BYTES] [--threads T] [--window W] \
                 [--connections K] [--extensions] [--quit-reason TEXT] [--connect ADDR | -- COMMAND [ARGS...]]"
            );
            return ExitCode::from(2);
        }
    };
    match run(&options) {
        Ok(summary) => {
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("echo_client: {message}");
            ExitCode::FAILURE
        }
    }
}
