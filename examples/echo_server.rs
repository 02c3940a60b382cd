//! Serves one packetstream connection on this process's stdin and stdout.
//!
//!     echo_server [--extensions] [--fail-after N]
//!
//! Every request is answered ok with its own flags and payload, except
//! request type 1, which fails with a short text. When the peer ends the
//! connection (EOF packet or end of input) the server shuts down in order and
//! exits 0; on a protocol error it exits 1 with the error on stderr. It
//! writes nothing but packets to stdout.
//!
//! `--extensions` turns the protocol extensions on (off, it behaves exactly
//! as a cs.packetstream peer); a peer that then closes with a reason has it
//! printed on stderr as `peer quit: TEXT`.
//!
//! `--fail-after N` makes it crash on purpose: a request that comes after N
//! answers makes it exit with status 3, saying so on stderr (a helper
//! process that dies, for the tests of supervised children).
//!
//!     cargo run --example echo_server

#[path = "common/echo.rs"]
mod echo;

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut extensions = false;
    let mut fail_after = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--extensions" => extensions = true,
            "--fail-after" => match args.next().and_then(|n| n.parse().ok()) {
                Some(n) => fail_after = Some(n),
                None => return usage("--fail-after needs a number"),
            },
            other => return usage(&format!("unknown argument {other}")),
        }
    }
    echo::serve_stdio_failing("echo_server", extensions, fail_after)
}

fn usage(message: &str) -> ExitCode {
    eprintln!("echo_server: {message}");
    eprintln!("usage: echo_server [--extensions] [--fail-after N]");
    ExitCode::from(2)
}
