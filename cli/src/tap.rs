//! `packetstream tap`: a child between its parent and us, every byte relayed
//! unchanged both ways and every packet logged as it passes.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, ExitCode, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::args::TapArgs;
use crate::describe::{malformed_json, packet_json, packet_text};
use crate::json::Object;
use crate::scan::{Event, Scanner};
use crate::sys::readable;

/// The relay's buffer: as much as a pipe holds by default.
const CHUNK: usize = 64 << 10;

// Each piece is logged before it is passed on, so that the log follows
// cause and effect: a request's line comes before its answer's, which the
// child cannot send before the request reached it.

/// How often the relay of our stdin looks whether the child is gone.
const STOP_POLL: Duration = Duration::from_millis(50);

/// Which way bytes go.
#[derive(Clone, Copy)]
enum Dir {
    ToChild,
    FromChild,
}

impl Dir {
    fn name(self) -> &'static str {
        match self {
            Dir::ToChild => "to_child",
            Dir::FromChild => "from_child",
        }
    }
}

/// Where the packets are logged: one line each, from both relays.
struct Log {
    out: Box<dyn Write + Send>,
    json: bool,
    start: Instant,
    /// The first write that failed; logging stops there, relaying does not.
    failed: Option<io::Error>,
}

impl Log {
    fn open(path: Option<&Path>) -> Result<Log, String> {
        let (out, json): (Box<dyn Write + Send>, bool) = match path {
            Some(path) => {
                let file = File::create(path).map_err(|error| format!("cannot create {}: {error}", path.display()))?;
                (Box::new(BufWriter::new(file)), true)
            }
            None => (Box::new(io::stderr()), false),
        };
        Ok(Log { out, json, start: Instant::now(), failed: None })
    }

    fn event(&mut self, dir: Dir, event: &Event) {
        if self.failed.is_some() {
            return;
        }
        // Under the lock, so that the lines of both directions are in the
        // order of their times.
        let t = self.start.elapsed().as_secs_f64();
        let line = if self.json {
            let object = Object::new().string("dir", dir.name()).seconds("t", t);
            match event {
                Event::Packet { packet, .. } => packet_json(object, packet),
                Event::Malformed { offset, error } => malformed_json(object, *offset, error),
            }
            .finish()
        } else {
            let what = match event {
                Event::Packet { offset, packet } => format!("@{offset} {}", packet_text(packet)),
                Event::Malformed { offset, error } => format!("@{offset} malformed: {error} (relayed, not decoded)"),
            };
            format!("tap {t:.6} {:<10} {what}", dir.name())
        };
        if let Err(error) = writeln!(self.out, "{line}").and_then(|()| self.out.flush()) {
            self.failed = Some(error);
        }
    }
}

/// Runs the command; exits as the child did.
pub fn run(args: TapArgs) -> Result<ExitCode, String> {
    let log = Arc::new(Mutex::new(Log::open(args.log.as_deref())?));
    let our_stdin = File::from(io::stdin().as_fd().try_clone_to_owned().map_err(|e| format!("stdin: {e}"))?);
    let our_stdout = File::from(io::stdout().as_fd().try_clone_to_owned().map_err(|e| format!("stdout: {e}"))?);
    let program = &args.command[0];
    let mut child = Command::new(program)
        .args(&args.command[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|error| format!("cannot start {program:?}: {error}"))?;
    let child_stdin = child.stdin.take().expect("piped stdin");
    let child_stdout = child.stdout.take().expect("piped stdout");
    let max = args.max_packet_size;
    let child_gone = Arc::new(AtomicBool::new(false));

    let to_child = {
        let (log, child_gone) = (Arc::clone(&log), Arc::clone(&child_gone));
        thread::Builder::new()
            .name("tap-to-child".into())
            .spawn(move || relay_stdin(our_stdin, child_stdin, Scanner::new(max), &log, &child_gone))
    };
    let from_child = {
        let log = Arc::clone(&log);
        thread::Builder::new()
            .name("tap-from-child".into())
            .spawn(move || relay(child_stdout, our_stdout, Scanner::new(max), Dir::FromChild, &log))
    };
    let status = child.wait();
    child_gone.store(true, Ordering::SeqCst);
    // What the child wrote last still goes out before we exit; its stdout
    // ends with it (or with the last process it left holding it).
    let joined = [from_child, to_child].map(|relay| relay.map(|thread| thread.join()));
    let status = status.map_err(|error| format!("cannot wait for {program:?}: {error}"))?;
    for joined in joined {
        match joined {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err("a relay thread panicked".to_owned()),
            Err(error) => return Err(format!("cannot start a relay thread: {error}")),
        }
    }
    let mut log = log.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(error) = log.failed.take() {
        return Err(format!("cannot write the log: {error} (the relay went on; the child {})", describe(status)));
    }
    Ok(exit_code(status))
}

/// Our stdin to the child's, until our stdin ends or the child has gone
/// (which a read blocked forever could not notice: hence the poll).
fn relay_stdin(from: File, to: impl Write, scanner: Scanner, log: &Mutex<Log>, child_gone: &AtomicBool) {
    let mut to = Some(to);
    let mut scanner = scanner;
    let mut buf = vec![0; CHUNK];
    let mut events = Vec::new();
    let mut from = from;
    let mut ended = false;
    while !child_gone.load(Ordering::SeqCst) {
        match readable(&from, STOP_POLL) {
            Ok(false) => continue,
            Ok(true) => {}
            Err(_) => break,
        }
        let n = match from.read(&mut buf) {
            Ok(0) => {
                ended = true;
                break;
            }
            Ok(n) => n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        // Bytes the child can no longer take are read and dropped, so that
        // the parent is not left blocked on a full pipe.
        let Some(writer) = to.as_mut() else { continue };
        scan(&mut scanner, &buf[..n], &mut events, Dir::ToChild, log);
        if writer.write_all(&buf[..n]).and_then(|()| writer.flush()).is_err() {
            to = None;
        }
    }
    // Dropping the pipe is the child's end of input.
    drop(to);
    // A frame cut short by the child's exit is not the stream's fault.
    if ended {
        finish(&mut scanner, Dir::ToChild, log);
    }
}

/// The child's stdout to ours until it ends; if our stdout closes, the
/// child's pipe is closed too, as it would be without us between.
fn relay(mut from: impl Read, mut to: impl Write, mut scanner: Scanner, dir: Dir, log: &Mutex<Log>) {
    let mut buf = vec![0; CHUNK];
    let mut events = Vec::new();
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        scan(&mut scanner, &buf[..n], &mut events, dir, log);
        if to.write_all(&buf[..n]).and_then(|()| to.flush()).is_err() {
            return;
        }
    }
    finish(&mut scanner, dir, log);
}

fn scan(scanner: &mut Scanner, bytes: &[u8], events: &mut Vec<Event>, dir: Dir, log: &Mutex<Log>) {
    scanner.push(bytes, events);
    if events.is_empty() {
        return;
    }
    let mut log = log.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    for event in events.drain(..) {
        log.event(dir, &event);
    }
}

fn finish(scanner: &mut Scanner, dir: Dir, log: &Mutex<Log>) {
    if let Some(event) = scanner.finish() {
        log.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).event(dir, &event);
    }
}

/// The child's status as ours: its code, or 128 + the signal that ended it.
fn exit_code(status: ExitStatus) -> ExitCode {
    match (status.code(), status.signal()) {
        (Some(code), _) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        (None, Some(signal)) => ExitCode::from(u8::try_from(128 + signal).unwrap_or(255)),
        (None, None) => ExitCode::FAILURE,
    }
}

fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        (None, None) => format!("ended: {status}"),
    }
}
