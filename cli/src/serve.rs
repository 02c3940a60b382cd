//! `packetstream serve`: echo_server's contract, or any shell command as a
//! service, on stdin and stdout or on sockets.

use std::io::{self, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::thread;
use std::time::Instant;

use packetstream::net::{ConnectionInfo, Server, ServerConfig};
use packetstream::{Config, ConfigBuilder, Failure, PacketConnection, Request, Response, Transport};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::args::ServeArgs;
use crate::exec::Exec;
use crate::say;

/// The request type `--echo` fails, as echo_server does.
pub const FAILING_RQ_TYPE: u64 = 1;

/// What answers the requests.
#[derive(Clone)]
enum Service {
    Echo,
    Exec(Arc<Exec>),
}

impl Service {
    fn answer(&self, rq: Request) -> Result<Response, Failure> {
        match self {
            Service::Echo if rq.rq_type == FAILING_RQ_TYPE => Err(Failure::new("rq_type 1 always fails")),
            Service::Echo => Ok(Response { flags: rq.flags, payload: rq.payload }),
            Service::Exec(exec) => exec.answer(rq),
        }
    }
}

/// Runs the command: 0 after a clean end; `Err` (exit 2) otherwise.
pub fn run(args: ServeArgs) -> Result<ExitCode, String> {
    let service = match &args.mode.exec {
        Some(command) => Service::Exec(Arc::new(Exec { command: command.clone(), timeout: args.exec_timeout })),
        None => Service::Echo,
    };
    let workers = usize::try_from(args.jobs).expect("at most 1024 jobs");
    let connection = |config: ConfigBuilder| {
        config.extensions(args.extensions).workers(workers).close_timeout(args.shutdown_timeout)
    };
    if args.place.stdio {
        serve_stdio(connection(Config::builder().name("serve")), service)
    } else {
        serve_listening(&args, connection(ServerConfig::connection_defaults()), service)
    }
}

fn serve_stdio(config: ConfigBuilder, service: Service) -> Result<ExitCode, String> {
    let transport = Transport::stdio().map_err(|error| format!("cannot use stdin and stdout: {error}"))?;
    let conn = PacketConnection::with_handler(transport, config, move |rq: Request| service.answer(rq))
        .map_err(|error| format!("cannot start: {error}"))?;
    let received = conn.join_recv();
    if let Some(reason) = conn.peer_quit_reason() {
        say("serve", &format!("peer quit: {reason}"));
    }
    let closed = conn.close();
    received.map_err(|error| error.to_string())?;
    closed.map_err(|error| error.to_string())?;
    Ok(ExitCode::SUCCESS)
}

fn serve_listening(args: &ServeArgs, connection: ConfigBuilder, service: Service) -> Result<ExitCode, String> {
    // Caught from before the first `listening on` line: a script that
    // sends SIGTERM as soon as it reads one gets a clean shutdown.
    let mut signals = Signals::new([SIGINT, SIGTERM]).map_err(|error| format!("cannot catch signals: {error}"))?;
    let mut config = ServerConfig::builder().name("serve").connection(connection);
    if let Some(limit) = args.max_connections {
        config = config.max_connections(limit);
    }
    if let Some(timeout) = args.idle_timeout {
        config = config.idle_timeout(timeout);
    }
    let mut builder = Server::builder().config(config);
    for addr in &args.place.listen {
        builder = builder.listen(addr.clone());
    }
    let server = builder
        .on_end(|info, reason| say("serve", &format!("{} from {} ended: {reason}", info.name(), info.peer())))
        .on_refused(|peer, refusal| say("serve", &format!("refused {peer}: {refusal}")))
        .serve(move |_: &ConnectionInfo| {
            let service = service.clone();
            move |rq: Request| service.answer(rq)
        })
        .map_err(|error| format!("cannot listen: {error}"))?;
    {
        let mut stdout = io::stdout().lock();
        for addr in server.local_addrs() {
            writeln!(stdout, "listening on {addr}").map_err(|error| format!("cannot write to stdout: {error}"))?;
        }
        stdout.flush().map_err(|error| format!("cannot write to stdout: {error}"))?;
    }

    let handle = server.handle();
    let closer = signals.handle();
    let grace = args.shutdown_timeout;
    let watcher = thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let signal = signals.forever().next()?;
            say("serve", &format!("signal {signal}: shutting down"));
            Some(handle.shutdown(Instant::now() + grace))
        })
        .map_err(|error| format!("cannot start a thread: {error}"))?;
    server.run();
    // The accept loop ends only through a shutdown; should it end on its
    // own, the watcher is released and the server shut down here.
    closer.close();
    let report = watcher.join().map_err(|_| "the signal thread panicked".to_owned())?;
    let report = report.unwrap_or_else(|| server.shutdown(Instant::now() + grace));
    for problem in &report.problems {
        say("serve", &format!("shutdown: {problem}"));
    }
    println!("served connections={} requests={}", report.totals.connections, report.totals.requests);
    Ok(ExitCode::SUCCESS)
}
