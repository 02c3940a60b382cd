//! `packetstream call`: one request, or the same one N times, and the
//! answers on stdout.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;
use std::process::ExitCode;

use packetstream::{Config, Failure, PacketConnection, Response};

use crate::answer::{failure_text, wait};
use crate::args::{CallArgs, PayloadArgs};
use crate::json::Object;
use crate::payload::{hex, parse_hex, printable};
use crate::peer::Peer;
use crate::say;

/// How many of `--repeat`'s requests are in flight at once.
const WINDOW: usize = 64;

/// Runs the command: 0 when every answer was ok, 1 when the peer failed
/// one; `Err` (exit 2) for everything else.
pub fn run(args: CallArgs) -> Result<ExitCode, String> {
    let payload = read_payload(&args.payload)?;
    let mut sink = Sink::open(args.json, args.out.as_deref())?;
    let peer = Peer::from(args.peer.clone());
    let transport = peer.transport(args.timeout, false)?;
    let config = Config::builder().name("call").extensions(args.extensions).close_timeout(args.timeout);
    let conn = PacketConnection::new(transport, config).map_err(|error| format!("cannot start: {error}"))?;
    let exchanged = exchange(&conn, &args, payload, &mut sink);
    let flushed = sink.flush();
    // The answers decide the exit status; a peer that then closes badly
    // is worth a word, not a failure of the call.
    match conn.close() {
        Ok(finished) if exchanged.is_ok() => {
            if let Some(status) = finished.exit_status().filter(|status| !status.success()) {
                say("call", &format!("{peer} ended with {status}"));
            }
        }
        Err(error) if exchanged.is_ok() => say("call", &format!("closing the connection to {peer}: {error}")),
        _ => {}
    }
    let all_ok = exchanged?;
    flushed?;
    Ok(if all_ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// Sends the requests and writes the answers; whether every one was ok.
fn exchange(conn: &PacketConnection, args: &CallArgs, payload: Vec<u8>, sink: &mut Sink) -> Result<bool, String> {
    let mut in_flight = VecDeque::with_capacity(WINDOW);
    let mut sent = 0;
    let mut all_ok = true;
    while sent < args.repeat || !in_flight.is_empty() {
        while sent < args.repeat && in_flight.len() < WINDOW {
            let pending = conn
                .submit_timeout(args.channel, args.rq_type, args.flags, payload.clone(), args.timeout)
                .map_err(|error| format!("cannot send the request: {error}"))?;
            in_flight.push_back(pending);
            sent += 1;
        }
        let pending = in_flight.pop_front().expect("a request in flight");
        match wait(pending, args.timeout)? {
            Ok(response) => sink.ok(&response)?,
            Err(failure) => {
                all_ok = false;
                sink.failed(&failure)?;
            }
        }
    }
    Ok(all_ok)
}

fn read_payload(args: &PayloadArgs) -> Result<Vec<u8>, String> {
    if let Some(text) = &args.text {
        return Ok(text.as_bytes().to_vec());
    }
    if let Some(text) = &args.hex {
        return parse_hex(text).map_err(|error| format!("--hex: {error}"));
    }
    if let Some(path) = &args.file {
        return std::fs::read(path).map_err(|error| format!("cannot read {}: {error}", path.display()));
    }
    let mut payload = Vec::new();
    if args.stdin {
        io::stdin().lock().read_to_end(&mut payload).map_err(|error| format!("cannot read stdin: {error}"))?;
    }
    Ok(payload)
}

/// Where the answers go.
struct Sink {
    json: bool,
    /// `--out`: the ok payloads, raw.
    raw: Option<Box<dyn Write>>,
    stdout: io::StdoutLock<'static>,
}

impl Sink {
    fn open(json: bool, out: Option<&Path>) -> Result<Sink, String> {
        let raw: Option<Box<dyn Write>> = match out {
            Some(path) if path == Path::new("-") => {
                if json {
                    return Err("--json and --out - would both write to stdout".to_owned());
                }
                Some(Box::new(io::stdout()))
            }
            Some(path) => {
                let file = File::create(path).map_err(|error| format!("cannot create {}: {error}", path.display()))?;
                Some(Box::new(BufWriter::new(file)))
            }
            None => None,
        };
        Ok(Sink { json, raw, stdout: io::stdout().lock() })
    }

    fn ok(&mut self, response: &Response) -> Result<(), String> {
        if let Some(raw) = &mut self.raw {
            raw.write_all(&response.payload).map_err(|error| format!("cannot write the payload: {error}"))?;
        }
        if self.json {
            let line = Object::new()
                .bool("ok", true)
                .uint("flags", response.flags)
                .string("payload_hex", &hex(&response.payload))
                .finish();
            self.line(&line)
        } else if self.raw.is_none() {
            self.line(&as_line(&response.payload))
        } else {
            Ok(())
        }
    }

    fn failed(&mut self, failure: &Failure) -> Result<(), String> {
        say("call", &format!("the peer failed the request: {}", failure_text(failure)));
        if self.json {
            let line = Object::new()
                .bool("ok", false)
                .uint("flags", failure.flags)
                .string("payload_hex", &hex(&failure.payload))
                .finish();
            self.line(&line)?;
        }
        Ok(())
    }

    fn line(&mut self, line: &str) -> Result<(), String> {
        writeln!(self.stdout, "{line}")
            .and_then(|()| self.stdout.flush())
            .map_err(|error| format!("cannot write to stdout: {error}"))
    }

    fn flush(&mut self) -> Result<(), String> {
        if let Some(raw) = &mut self.raw {
            raw.flush().map_err(|error| format!("cannot write the payload: {error}"))?;
        }
        self.stdout.flush().map_err(|error| format!("cannot write to stdout: {error}"))
    }
}

/// A payload as one line: its text when printable (without adding a second
/// newline), else its hex.
fn as_line(payload: &[u8]) -> String {
    match printable(payload) {
        Some(text) => text.strip_suffix('\n').unwrap_or(text).to_owned(),
        None => hex(payload),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        assert_eq!(as_line(b"hello"), "hello");
        assert_eq!(as_line(b"two\nlines\n"), "two\nlines");
        assert_eq!(as_line(b""), "");
        assert_eq!(as_line(b"\x00\x01"), "0001");
        assert_eq!(as_line(b"\xc3\x28"), "c328");
    }
}
