//! `packetstream`, the command-line tool of the
//! [`packetstream`](https://docs.rs/packetstream) crate: call, serve, watch,
//! decode, check and benchmark peers that speak Python `cs.packetstream`'s
//! wire format, from the shell.
//!
//! ```text
//! packetstream call --text hello --connect 127.0.0.1:7000       # one request, its answer on stdout
//! packetstream call --type 3 --hex 'de ad' --json -- python3 server.py
//! packetstream serve --exec 'tr a-z A-Z' --listen 127.0.0.1:7000 # any shell command as a service
//! packetstream serve --echo --stdio                              # echo_server's contract
//! parent -- packetstream tap --log talk.jsonl -- child --stdio   # see a parent and its child talk
//! packetstream decode --json capture.bin                         # a captured stream, packet by packet
//! packetstream check -- python3 my_echo_server.py                # a conformance suite, h2spec-style
//! packetstream bench --connect unix:/tmp/echo.sock               # scenarios A-D, with a table
//! packetstream completions bash                                  # shell completions (bash, zsh, fish, ...)
//! ```
//!
//! A peer is a server's address (`--connect HOST:PORT` or `unix:PATH`) or a
//! command started as a child and talked to over its stdin and stdout
//! (`-- COMMAND [ARGS...]`). Every wait has a bound (`--timeout`).
//!
//! # Output for scripts
//!
//! - `call` prints each ok answer's payload on a line: as text when it is
//!   printable UTF-8, else as lowercase hex (`--out FILE` writes it raw);
//!   with `--json`, one object per answer: `ok`, `flags`, `payload_hex`.
//! - `decode --json` and `tap --log FILE` write one object per packet per
//!   line: `kind` (`request`, `response`, `eof`, `erq`); requests and
//!   responses add `tag`, `channel`, `flags`, `len` and `payload_hex`
//!   (lowercase, never cut short), requests `rq_type` (the application's
//!   value: the wire value minus one), responses `ok`. `tap` adds `dir`
//!   (`to_child`, `from_child`) and `t` (seconds since it started) to every
//!   line. Bytes that break the format give one line with `kind`
//!   `malformed`, the `offset` where the bad frame starts, and the `error`.
//! - Exit status: 0 when all went well; 2 for bad arguments, an unreachable
//!   peer, a timeout or any other error, with the reason on stderr; 1 when
//!   `call`'s peer failed a request, `decode`'s stream is malformed or one
//!   of `check`'s checks failed; `tap` exits as its child did.
//!
//! The library's types do the talking (`PacketConnection`, `Transport`,
//! `net::connect`, `net::Server`); `tap`, `decode` and the low-level checks
//! of `check` read and write frames with `packetstream::wire`.

#![deny(missing_docs)]
#![warn(rust_2018_idioms)]

mod answer;
mod args;
mod bench;
mod call;
mod check;
mod decode;
mod describe;
mod exec;
mod json;
mod payload;
mod peer;
mod progress;
mod scan;
mod serve;
mod sys;
mod tap;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};

pub use args::Cli;

/// Runs the tool on this process's arguments; what `main` returns.
pub fn run() -> ExitCode {
    run_from(std::env::args_os())
}

/// Runs the tool on `args` (the first is the program's name). Bad
/// arguments print clap's message and give exit status 2; `--help` and
/// `--version` print and give 0.
pub fn run_from<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(2));
        }
    };
    let (name, outcome) = match cli.command {
        args::Command::Call(args) => ("call", call::run(args)),
        args::Command::Serve(args) => ("serve", serve::run(args)),
        args::Command::Tap(args) => ("tap", tap::run(args)),
        args::Command::Decode(args) => ("decode", decode::run(args)),
        args::Command::Check(args) => ("check", check::run(args)),
        args::Command::Bench(args) => ("bench", bench::run(args)),
        args::Command::Completions(args) => {
            clap_complete::generate(args.shell, &mut Cli::command(), "packetstream", &mut std::io::stdout());
            ("completions", Ok(ExitCode::SUCCESS))
        }
    };
    outcome.unwrap_or_else(|reason| {
        say(name, &reason);
        ExitCode::from(2)
    })
}

/// One line on stderr, naming the command it comes from.
pub(crate) fn say(command: &str, message: &str) {
    eprintln!("packetstream {command}: {message}");
}
