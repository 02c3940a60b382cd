//! `packetstream decode`: a captured one-direction stream, one line per
//! packet, and where and why it breaks if it does.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::process::ExitCode;

use crate::args::DecodeArgs;
use crate::describe::{malformed_json, packet_json, packet_text};
use crate::json::Object;
use crate::scan::{Event, Scanner};

/// Runs the command: 0 for a well-formed stream, 1 for a malformed one;
/// `Err` (exit 2) when it cannot be read or the lines cannot be written.
pub fn run(args: DecodeArgs) -> Result<ExitCode, String> {
    let name = args.input.display().to_string();
    let mut input: Box<dyn Read> = if name == "-" {
        Box::new(io::stdin().lock())
    } else {
        Box::new(File::open(&args.input).map_err(|error| format!("cannot open {name}: {error}"))?)
    };
    let mut out = BufWriter::new(io::stdout().lock());
    let mut scanner = Scanner::new(args.max_packet_size);
    let mut events = Vec::new();
    let mut buf = vec![0; 64 << 10];
    let mut malformed = false;
    let write_error = |error: io::Error| format!("cannot write to stdout: {error}");
    let status = |malformed: bool| if malformed { ExitCode::from(1) } else { ExitCode::SUCCESS };
    loop {
        let n = match input.read(&mut buf) {
            Ok(n) => n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(format!("cannot read {name}: {error}")),
        };
        if n == 0 {
            events.extend(scanner.finish());
        } else {
            scanner.push(&buf[..n], &mut events);
        }
        for event in events.drain(..) {
            malformed |= matches!(event, Event::Malformed { .. });
            match writeln!(out, "{}", line(&event, args.json)) {
                // A reader that has seen enough (`| head`) is no error.
                Err(error) if error.kind() == io::ErrorKind::BrokenPipe => return Ok(status(malformed)),
                other => other.map_err(write_error)?,
            }
        }
        // Nothing after the first bad frame is read: its line was the last.
        if n == 0 || scanner.stopped() {
            break;
        }
    }
    match out.flush() {
        Err(error) if error.kind() != io::ErrorKind::BrokenPipe => return Err(write_error(error)),
        _ => {}
    }
    Ok(status(malformed))
}

fn line(event: &Event, json: bool) -> String {
    match (event, json) {
        (Event::Packet { packet, .. }, true) => packet_json(Object::new(), packet).finish(),
        (Event::Malformed { offset, error }, true) => malformed_json(Object::new(), *offset, error).finish(),
        (Event::Packet { offset, packet }, false) => format!("{offset:>10} {}", packet_text(packet)),
        (Event::Malformed { offset, error }, false) => format!("{offset:>10} malformed: {error}"),
    }
}
