//! Drives an echo server over a child process's stdin and stdout.
//!
//!     echo_client [--requests N] [--size BYTES] [--threads T] [--window W]
//!                 [--extensions] [--quit-reason TEXT] [-- COMMAND [ARGS...]]
//!
//! Starts COMMAND (by default this program itself, in echo-server mode) and
//! sends it N requests of type 0 with varying flags and random payloads of
//! BYTES bytes, from T threads that each keep up to W requests outstanding.
//! Every answer is checked against what was sent. The last line on stdout is
//!
//!     requests=N threads=T window=W size=BYTES seconds=S calls_per_s=R
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

use packetstream::{CallError, CloseOptions, Config, PacketConnection, Transport};

/// Passed to ourselves to run as the echo server.
const SERVE_FLAG: &str = "--serve-echo";
/// A lost answer fails the run instead of hanging it.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

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
            other => return Err(format!("unknown argument {other}")),
        }
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

/// One thread's share: `count` requests, at most `window` in flight.
fn drive(conn: &PacketConnection, count: u64, size: usize, window: usize, seed: u64) -> Result<(), String> {
    let mut rng = Rng(seed | 1);
    let mut in_flight = VecDeque::with_capacity(window);
    let mut sent = 0;
    while sent < count || !in_flight.is_empty() {
        if sent < count && in_flight.len() < window {
            let flags = rng.next() % 1_000_000;
            let mut payload = vec![0; size];
            rng.fill(&mut payload);
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

fn run(options: &Options) -> Result<String, String> {
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
    let transport = Transport::spawn(&mut command).map_err(|e| format!("cannot start {command:?}: {e}"))?;
    let config = Config::builder().name("echo_client").extensions(options.extensions);
    let conn = PacketConnection::new(transport, config).map_err(|e| e.to_string())?;

    // Check the failure path once, so a server that never fails is caught.
    match conn.call(echo::FAILING_RQ_TYPE, 0, b"x".to_vec()) {
        Err(CallError::Failed(_)) => {}
        other => return Err(format!("request type {} should fail, got {other:?}", echo::FAILING_RQ_TYPE)),
    }

    let threads = options.threads as u64;
    let start = Instant::now();
    let outcome: Result<(), String> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|i| {
                let share = options.requests / threads + u64::from(i < options.requests % threads);
                let conn = &conn;
                std::thread::Builder::new()
                    .name(format!("echo_client-{i}"))
                    .spawn_scoped(scope, move || drive(conn, share, options.size, options.window, i + 1))
                    .expect("spawn a caller thread")
            })
            .collect();
        workers.into_iter().try_for_each(|w| w.join().unwrap_or_else(|_| Err("a caller thread panicked".into())))
    });
    let seconds = start.elapsed().as_secs_f64();
    outcome?;

    let mut close = CloseOptions::new();
    if let Some(reason) = &options.quit_reason {
        close = close.reason(reason.clone());
    }
    let finished = conn.close_with(close).map_err(|e| format!("close: {e}"))?;
    match finished.exit_status() {
        Some(status) if status.success() => {}
        other => return Err(format!("server exited badly: {other:?}")),
    }
    Ok(format!(
        "requests={} threads={} window={} size={} seconds={seconds:.3} calls_per_s={:.0}",
        options.requests,
        options.threads,
        options.window,
        options.size,
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
                 [--extensions] [--quit-reason TEXT] [-- COMMAND [ARGS...]]"
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
