//! Serves one packetstream connection on this process's stdin and stdout.
//!
//!     echo_server [--extensions]
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
//!     cargo run --example echo_server

#[path = "common/echo.rs"]
mod echo;

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut extensions = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--extensions" => extensions = true,
            other => {
                eprintln!("echo_server: unknown argument {other}");
                eprintln!("usage: echo_server [--extensions]");
                return ExitCode::from(2);
            }
        }
    }
    echo::serve_stdio("echo_server", extensions)
}
