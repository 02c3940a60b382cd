//! `packetstream check`: a conformance suite for a peer that follows
//! echo_server's contract, one check per connection, in the manner of
//! h2spec: each check says pass, fail or not applicable, and why.

mod cases;
mod raw;

use std::io::{self, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use packetstream::{ConfigBuilder, PacketConnection};

use crate::args::CheckArgs;
use crate::json::Object;
use crate::peer::Peer;

pub use cases::CHECKS;
use raw::RawLink;

/// A check's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The peer did what the protocol promises; what was seen.
    Pass(String),
    /// It did not; what went wrong.
    Fail(String),
    /// The check does not apply to this peer; why.
    NotApplicable(String),
}

impl Verdict {
    fn word(&self) -> &'static str {
        match self {
            Verdict::Pass(_) => "pass",
            Verdict::Fail(_) => "fail",
            Verdict::NotApplicable(_) => "n/a",
        }
    }

    fn reason(&self) -> &str {
        match self {
            Verdict::Pass(reason) | Verdict::Fail(reason) | Verdict::NotApplicable(reason) => reason,
        }
    }
}

/// What a check function returns: `Err` is a failure with its reason.
pub type Outcome = Result<Verdict, String>;

/// One check of the suite.
pub struct Check {
    /// Its name, `area.what`.
    pub name: &'static str,
    /// What it tests, for `--list`.
    pub what: &'static str,
    /// The check itself.
    pub run: fn(&Context) -> Outcome,
}

/// What the checks share: the peer, the bounds, and what was learnt of the
/// peer on the way.
pub struct Context {
    peer: Peer,
    timeout: Duration,
    max_packet_size: usize,
    quiet: bool,
    /// Whether any connection to the peer has opened: until one has, a
    /// failure to open means the peer cannot be reached at all.
    opened: AtomicBool,
    unreachable: Mutex<Option<String>>,
    /// The features the peer offered (`None`: a plain peer), learnt once.
    features: OnceLock<Result<Option<Vec<String>>, String>>,
}

impl Context {
    /// A raw connection to the peer.
    fn raw(&self) -> Result<RawLink, String> {
        let opened = RawLink::open(&self.peer, self.timeout, self.quiet, self.max_packet_size);
        self.note_open(opened)
    }

    /// A connection of the library to the peer.
    fn connection(&self, config: ConfigBuilder) -> Result<PacketConnection, String> {
        let opened = self.peer.transport(self.timeout, self.quiet).and_then(|transport| {
            PacketConnection::new(transport, config.close_timeout(self.timeout))
                .map_err(|error| format!("cannot start a connection: {error}"))
        });
        self.note_open(opened)
    }

    fn note_open<T>(&self, opened: Result<T, String>) -> Result<T, String> {
        match &opened {
            Ok(_) => self.opened.store(true, Ordering::SeqCst),
            Err(error) if !self.opened.load(Ordering::SeqCst) => {
                *self.unreachable.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(error.clone());
            }
            Err(_) => {}
        }
        opened
    }

    fn unreachable(&self) -> Option<String> {
        self.unreachable.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }
}

/// Runs the command: 0 when no check failed, 1 when one did; `Err` (exit
/// 2) when the peer cannot be reached at all.
pub fn run(args: CheckArgs) -> Result<ExitCode, String> {
    if args.list {
        let width = CHECKS.iter().map(|check| check.name.len()).max().unwrap_or(0);
        for check in CHECKS {
            println!("{:<width$}  {}", check.name, check.what);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let Some(peer) = args.peer.given() else {
        return Err("check needs a peer: --connect ADDR or -- COMMAND [ARGS...] (or --list)".to_owned());
    };
    let chosen = choose(&args.only)?;
    let context = Context {
        peer: Peer::from(peer),
        timeout: args.timeout,
        max_packet_size: args.max_packet_size,
        quiet: args.quiet_peer,
        opened: AtomicBool::new(false),
        unreachable: Mutex::new(None),
        features: OnceLock::new(),
    };
    let width = chosen.iter().map(|check| check.name.len()).max().unwrap_or(0);
    let started = Instant::now();
    let (mut passed, mut failed, mut not_applicable) = (0, 0, 0);
    let mut stdout = io::stdout().lock();
    for check in chosen {
        let began = Instant::now();
        let verdict = (check.run)(&context).unwrap_or_else(Verdict::Fail);
        if let Some(error) = context.unreachable() {
            return Err(format!("cannot reach the peer {}: {error}", context.peer));
        }
        match verdict {
            Verdict::Pass(_) => passed += 1,
            Verdict::Fail(_) => failed += 1,
            Verdict::NotApplicable(_) => not_applicable += 1,
        }
        let line = if args.json {
            Object::new()
                .string("check", check.name)
                .string("result", verdict.word())
                .string("reason", verdict.reason())
                .seconds("seconds", began.elapsed().as_secs_f64())
                .finish()
        } else {
            format!("{:<4}  {:<width$}  {}", verdict.word(), check.name, verdict.reason())
        };
        writeln!(stdout, "{line}").and_then(|()| stdout.flush()).map_err(|e| format!("cannot write to stdout: {e}"))?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let summary = if args.json {
        Object::new()
            .uint("passed", passed)
            .uint("failed", failed)
            .uint("not_applicable", not_applicable)
            .seconds("seconds", seconds)
            .finish()
    } else {
        format!(
            "{} checks against {}: {passed} passed, {failed} failed, {not_applicable} not applicable ({seconds:.1} s)",
            passed + failed + not_applicable,
            context.peer
        )
    };
    writeln!(stdout, "{summary}").map_err(|error| format!("cannot write to stdout: {error}"))?;
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// The checks `--only` names (by name or prefix), in the suite's order.
fn choose(only: &[String]) -> Result<Vec<&'static Check>, String> {
    if only.is_empty() {
        return Ok(CHECKS.iter().collect());
    }
    for name in only {
        if !CHECKS.iter().any(|check| check.name.starts_with(name.as_str())) {
            return Err(format!("--only: no check is named {name:?} or starts so (see --list)"));
        }
    }
    Ok(CHECKS.iter().filter(|check| only.iter().any(|name| check.name.starts_with(name.as_str()))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_chosen_by_prefix() {
        let mut names: Vec<_> = CHECKS.iter().map(|check| check.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), CHECKS.len());
        let chosen = choose(&["shutdown".to_owned()]).unwrap();
        assert!(chosen.len() >= 2 && chosen.iter().all(|check| check.name.starts_with("shutdown.")));
        assert!(choose(&["nonsense".to_owned()]).is_err());
    }
}
