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
pub fn serve_stdio(name: &str, extensions: bool) -> ExitCode {
    let run = || -> Result<(), packetstream::Error> {
        let config = Config::builder().name(name).extensions(extensions);
        let conn = PacketConnection::with_handler(Transport::stdio()?, config, echo)?;
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
