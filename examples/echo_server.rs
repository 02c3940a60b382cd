//! Serves one packetstream connection on this process's stdin and stdout.
//!
//! Every request is answered ok with its own flags and payload, except
//! request type 1, which fails with a short text. When the peer ends the
//! connection (EOF packet or end of input) the server shuts down in order and
//! exits 0; on a protocol error it exits 1 with the error on stderr. It
//! writes nothing but packets to stdout.
//!
//!     cargo run --example echo_server

#[path = "common/echo.rs"]
mod echo;

fn main() -> std::process::ExitCode {
    echo::serve_stdio("echo_server")
}
