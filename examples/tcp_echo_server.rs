//! An echo server on TCP and Unix sockets.
//!
//!     tcp_echo_server [--max-connections N] [--idle-timeout SECS] ADDR...
//!
//! ADDR is `HOST:PORT` (port 0 picks a free port; IPv6 as `[::1]:PORT`) or
//! `unix:PATH`. For each address it prints `listening on ADDR` on stdout,
//! in the same form with the address as bound (the port chosen), before it
//! accepts. Every connection gets echo_server's contract: each request is
//! answered ok with its own flags and payload, except request type 1, which
//! fails with a short text. Over `--max-connections` a connection is
//! refused (a peer with the extensions reads why); a connection with no
//! request for `--idle-timeout` seconds is closed.
//!
//! When its stdin reaches end of input it shuts down gracefully (the
//! requests in service get 5 s), prints
//!
//!     served connections=N requests=M
//!
//! (N connections accepted, refused ones not counted; M requests answered,
//! ok or failed) and exits 0. How each connection ended goes to stderr.

#[path = "common/echo.rs"]
mod echo;

use std::io::Read;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use packetstream::net::{Addr, ConnectionInfo, Server, ServerConfig};

/// How long the requests in service get at shutdown.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(5);

struct Options {
    max_connections: Option<usize>,
    idle_timeout: Option<Duration>,
    addrs: Vec<Addr>,
}

fn parse_args() -> Result<Options, String> {
    let mut options = Options { max_connections: None, idle_timeout: None, addrs: Vec::new() };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--max-connections" => {
                let text = args.next().ok_or("--max-connections needs a value")?;
                options.max_connections = Some(text.parse().map_err(|_| format!("--max-connections: {text:?}"))?);
            }
            "--idle-timeout" => {
                let text = args.next().ok_or("--idle-timeout needs a value")?;
                let seconds: f64 = text.parse().map_err(|_| format!("--idle-timeout: {text:?}"))?;
                let timeout = Duration::try_from_secs_f64(seconds).map_err(|_| format!("--idle-timeout: {text:?}"))?;
                options.idle_timeout = Some(timeout);
            }
            other if other.starts_with("--") => return Err(format!("unknown option {other}")),
            addr => options.addrs.push(addr.parse().map_err(|e| format!("{e}"))?),
        }
    }
    if options.addrs.is_empty() {
        return Err("no address to listen on".into());
    }
    Ok(options)
}

fn run(options: Options) -> Result<String, String> {
    let mut config =
        ServerConfig::builder().name("echo").connection(ServerConfig::connection_defaults().extensions(true));
    if let Some(limit) = options.max_connections {
        config = config.max_connections(limit);
    }
    if let Some(timeout) = options.idle_timeout {
        config = config.idle_timeout(timeout);
    }
    let mut builder = Server::builder().config(config);
    for addr in options.addrs {
        builder = builder.listen(addr);
    }
    let server = builder
        .on_end(|info, reason| eprintln!("tcp_echo_server: {} from {} ended: {reason}", info.name(), info.peer()))
        .on_refused(|peer, refusal| eprintln!("tcp_echo_server: refused {peer}: {refusal}"))
        .serve(|_: &ConnectionInfo| echo::echo)
        .map_err(|e| e.to_string())?;
    for addr in server.local_addrs() {
        println!("listening on {addr}");
    }

    // Stdin's end shuts the server down, from a thread of its own, while
    // the accept loop runs here.
    let handle = server.handle();
    let watcher = std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || {
            let mut sink = Vec::new();
            let _ = std::io::stdin().lock().read_to_end(&mut sink);
            handle.shutdown(Instant::now() + SHUTDOWN_DEADLINE)
        })
        .map_err(|e| format!("cannot start a thread: {e}"))?;
    server.run();
    let report = watcher.join().map_err(|_| "the stdin thread panicked".to_owned())?;
    for problem in &report.problems {
        eprintln!("tcp_echo_server: shutdown: {problem}");
    }
    Ok(format!("served connections={} requests={}", report.totals.connections, report.totals.requests))
}

fn main() -> ExitCode {
    let options = match parse_args() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("tcp_echo_server: {message}");
            eprintln!("usage: tcp_echo_server [--max-connections N] [--idle-timeout SECS] ADDR...");
            return ExitCode::from(2);
        }
    };
    match run(options) {
        Ok(summary) => {
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("tcp_echo_server: {message}");
            ExitCode::FAILURE
        }
    }
}
