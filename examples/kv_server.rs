//! Serves a key-value store over one packetstream connection on this
//! process's stdin and stdout.
//!
//!     kv_server [--extensions] [--registry]
//!
//! The requests, every field encoded as in cs.binary (user request types):
//!
//! | type | request | fields | answer |
//! |---|---|---|---|
//! | 0 | Put | `key` BSString, `value` BSData | ok, flags 1 if it replaced a value else 0, empty payload |
//! | 1 | Get | `key` BSString | ok, flags 0, the value's bytes; a missing key fails with `no such key: KEY` |
//! | 2 | Delete | `key` BSString | ok, flags 1 if the key existed else 0, empty payload |
//! | 3 | List | `prefix` BSString | ok, BSUInt count then that many BSString keys, sorted by their UTF-8 bytes |
//!
//! The empty string is a valid key. Any other request type, or a payload
//! that does not decode, fails with a text that says what is wrong.
//!
//! When the peer ends the connection (EOF packet or end of input) the
//! server shuts down in order and exits 0; on a protocol error it exits 1
//! with the error on stderr. It writes nothing but packets to stdout.
//!
//! `--extensions` turns the protocol extensions on (off, it behaves exactly
//! as a cs.packetstream peer); a peer that then closes with a reason has it
//! printed on stderr as `peer quit: TEXT`. `--registry` offers the registry
//! handshake too (and implies `--extensions`): this end keeps its numbers,
//! `kv:put` 0, `kv:get` 1, `kv:delete` 2, `kv:list` 3, and a client built
//! with others adapts to them.
//!
//!     cargo run --example kv_server

#[path = "common/kv.rs"]
mod kv;

use std::process::ExitCode;

fn main() -> ExitCode {
    let (mut extensions, mut registry) = (false, false);
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--extensions" => extensions = true,
            "--registry" => (extensions, registry) = (true, true),
            other => {
                eprintln!("kv_server: unknown argument {other}");
                eprintln!("usage: kv_server [--extensions] [--registry]");
                return ExitCode::from(2);
            }
        }
    }
    kv::serve_stdio("kv_server", extensions, registry)
}
