// The echo service shared by `echo_server` and `echo_client`'s server mode.

use std::process::ExitCode;

use packetstream::{Config, Failure, PacketConnection, Request, Response, Transport};

/// The request type that always fails, to exercise failed responses.
pub const FAILING_RQ_TYPE: u64 = 1;

/// Answers with the request's own flags and payload; `FAILING_RQ_TYPE` fails.
pub fn echo(rq: Request) -> Result<Response, Failure> {
    if rq.rq_type == FAILING_RQ_TYPE {
        return Err(Failure::new("rq_type 1 always fails"));
    }
    Ok(Response { flags: rq.flags, payload: rq.payload })
}

/// Serves one connection on stdin/stdout until the peer ends it, then shuts
/// down in order. With `extensions` the protocol extensions are on, and a
/// peer that quits with a reason has it printed on stderr as
/// `peer quit: TEXT`. Exit status 0 for a clean end; errors go to stderr.
#[allow(dead_code)] // not every example that includes this file serves stdio
pub fn serve_stdio(name: &str, extensions: bool) -> ExitCode {
    serve_stdio_failing(name, extensions, None)
}

/// [`serve_stdio`]; with `fail_after`, the process exits with status 3
/// (saying so on stderr) when a request comes after that many answers: a
/// helper process that crashes, for the tests of supervised children.
#[allow(dead_code)] // not every example that includes this file serves stdio
pub fn serve_stdio_failing(name: &str, extensions: bool, fail_after: Option<u64>) -> ExitCode {
    let answered = std::sync::atomic::AtomicU64::new(0);
    let handler = move |rq: Request| {
        if let Some(limit) = fail_after {
            if answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst) >= limit {
                eprintln!("echo_server: failing after {limit} requests, as asked");
                std::process::exit(3);
            }
        }
        echo(rq)
    };
    let run = || -> Result<(), packetstream::Error> {
        let config = Config::builder().name(name).extensions(extensions);
        let conn = PacketConnection::with_handler(Transport::stdio()?, config, handler)?;
        let received = conn.join_recv();
        if let Some(reason) = conn.peer_quit_reason() {
            eprintln!("peer quit: {reason}");
        }
        let closed = conn.close();
        received?;
        closed?;
        Ok(())
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{name}: {error}");
            ExitCode::FAILURE
        }
    }
}
