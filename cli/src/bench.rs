//! `packetstream bench`: scenarios A-D of the transport benchmark
//! (benches/transport.rs) against any echo peer, through the library.

use std::collections::VecDeque;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use packetstream::{Config, PacketConnection, Pending};

use crate::answer::{failure_text, wait};
use crate::args::BenchArgs;
use crate::json::Object;
use crate::peer::Peer;
use crate::progress::{thousands, Progress};
use crate::say;

/// A scenario.
#[derive(Debug, Clone, Copy)]
enum Scenario {
    Sequential,
    Pipelined(usize),
    Concurrent(usize),
    Bulk,
}

impl Scenario {
    fn letter(self) -> char {
        match self {
            Scenario::Sequential => 'A',
            Scenario::Pipelined(_) => 'B',
            Scenario::Concurrent(_) => 'C',
            Scenario::Bulk => 'D',
        }
    }

    fn label(self, size: usize, bulk: usize) -> String {
        match self {
            Scenario::Sequential => format!("A sequential {}", bytes(size)),
            Scenario::Pipelined(window) => format!("B pipelined x{window} {}", bytes(size)),
            Scenario::Concurrent(threads) => format!("C concurrent {threads} thr {}", bytes(size)),
            Scenario::Bulk => format!("D bulk {}", bytes(bulk)),
        }
    }

    fn unit(self) -> &'static str {
        match self {
            Scenario::Sequential => "calls/s",
            Scenario::Pipelined(_) | Scenario::Concurrent(_) => "req/s",
            Scenario::Bulk => "MB/s",
        }
    }
}

/// A size as the benchmark's labels write it: `16 B`, `1 MiB`.
fn bytes(size: usize) -> String {
    match size {
        size if size >= 1 << 20 && size % (1 << 20) == 0 => format!("{} MiB", size >> 20),
        size if size >= 1 << 10 && size % (1 << 10) == 0 => format!("{} KiB", size >> 10),
        size => format!("{size} B"),
    }
}

/// What one scenario measured.
struct Measured {
    scenario: Scenario,
    ops: u64,
    bytes: u64,
    secs: f64,
}

impl Measured {
    /// The scenario's figure: operations a second, or MB a second for D.
    fn figure(&self) -> f64 {
        match self.scenario {
            Scenario::Bulk => self.bytes as f64 / self.secs / 1e6,
            _ => self.ops as f64 / self.secs,
        }
    }
}

/// What the measured loops share.
struct Plan<'a> {
    conn: &'a PacketConnection,
    size: usize,
    bulk: usize,
    time: Duration,
    timeout: Duration,
    ops: &'a AtomicU64,
}

/// Runs the command: the table on stdout; `Err` (exit 2) when the peer
/// cannot be reached or answers wrongly.
pub fn run(args: BenchArgs) -> Result<ExitCode, String> {
    if args.size < 8 || args.bulk_size < 8 {
        return Err("--size and --bulk-size must be at least 8 bytes (each payload carries its serial number)".into());
    }
    let window = usize::try_from(args.window).expect("a bounded window");
    let threads = usize::try_from(args.threads).expect("a bounded thread count");
    let all = [Scenario::Sequential, Scenario::Pipelined(window), Scenario::Concurrent(threads), Scenario::Bulk];
    let scenarios: Vec<Scenario> =
        all.into_iter().filter(|s| args.only.is_empty() || args.only.contains(&s.letter())).collect();
    let peer = Peer::from(args.peer.clone());
    let on = !args.no_progress && std::io::stderr().is_terminal();
    let progress = Progress::start(on, scenarios.len(), args.seconds);
    let mut results = Vec::new();
    for (done, &scenario) in scenarios.iter().enumerate() {
        progress.stage(&scenario.label(args.size, args.bulk_size), scenario.unit(), done);
        let transport = peer.transport(args.timeout, args.quiet_peer)?;
        let config = Config::builder().name("bench").close_timeout(args.timeout);
        let conn = PacketConnection::new(transport, config).map_err(|error| format!("cannot start: {error}"))?;
        let plan = Plan {
            conn: &conn,
            size: args.size,
            bulk: args.bulk_size,
            time: args.seconds,
            timeout: args.timeout,
            ops: progress.ops(),
        };
        let measured = measure(&plan, scenario);
        let closed = conn.close();
        let measured = measured.map_err(|error| format!("{}: {error}", scenario.label(args.size, args.bulk_size)))?;
        if let Err(error) = closed {
            say("bench", &format!("closing the connection to {peer}: {error}"));
        }
        results.push(measured);
    }
    progress.finish();
    if args.json {
        for measured in &results {
            let label = measured.scenario.label(args.size, args.bulk_size);
            let line = Object::new()
                .string("scenario", &measured.scenario.letter().to_string())
                .string("label", &label[2..])
                .float("value", measured.figure())
                .string("unit", measured.scenario.unit())
                .uint("ops", measured.ops)
                .seconds("seconds", measured.secs)
                .finish();
            println!("{line}");
        }
    } else {
        print!("{}", table(&results, &peer, args.size, args.bulk_size));
    }
    Ok(ExitCode::SUCCESS)
}

fn table(results: &[Measured], peer: &Peer, size: usize, bulk: usize) -> String {
    let mut out =
        format!("{:<28} {:>14} {:<8} {:>10} {:>10} {:>8}\n", "scenario", "result", "", "per op", "ops", "seconds");
    for measured in results {
        let per_op = measured.secs * 1e6 / measured.ops.max(1) as f64;
        let figure = match measured.scenario {
            Scenario::Bulk => format!("{:.1}", measured.figure()),
            _ => thousands(measured.figure()),
        };
        out.push_str(&format!(
            "{:<28} {:>14} {:<8} {:>7.1} us {:>10} {:>8.2}\n",
            measured.scenario.label(size, bulk),
            figure,
            measured.scenario.unit(),
            per_op,
            measured.ops,
            measured.secs
        ));
    }
    out.push_str(&format!("peer: {peer}\n"));
    out
}

fn measure(plan: &Plan<'_>, scenario: Scenario) -> Result<Measured, String> {
    // A few calls first: the peer's start-up (an interpreter importing its
    // modules) is not what is measured.
    for stamp in 0..20 {
        call(plan, stamp, plan.size)?;
    }
    plan.ops.store(0, Ordering::Relaxed);
    match scenario {
        Scenario::Sequential => sequential(plan, 1 << 40, plan.size).map(|(ops, secs)| Measured {
            scenario,
            ops,
            bytes: ops * plan.size as u64,
            secs,
        }),
        Scenario::Pipelined(window) => pipelined(plan, window),
        Scenario::Concurrent(threads) => concurrent(plan, threads),
        Scenario::Bulk => sequential(plan, 1 << 41, plan.bulk).map(|(ops, secs)| Measured {
            scenario,
            ops,
            bytes: ops * plan.bulk as u64,
            secs,
        }),
    }
}

/// A payload of `size` bytes that carries `stamp`, so that every answer
/// can be told from every other.
fn payload(stamp: u64, size: usize) -> Vec<u8> {
    let mut payload = vec![0x5a; size];
    payload[..8].copy_from_slice(&stamp.to_le_bytes());
    payload
}

fn check(pending: Pending, plan: &Plan<'_>, stamp: u64, size: usize) -> Result<(), String> {
    match wait(pending, plan.timeout)? {
        Ok(response) if response.payload.len() == size && response.payload[..8] == stamp.to_le_bytes() => {
            plan.ops.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
        Ok(response) => Err(format!(
            "request {stamp} of {size} bytes came back as {} bytes{}",
            response.payload.len(),
            if response.payload.len() == size { " with another serial number" } else { "" }
        )),
        Err(failure) => Err(format!("the peer failed request {stamp}: {}", failure_text(&failure))),
    }
}

fn submit(plan: &Plan<'_>, stamp: u64, size: usize) -> Result<Pending, String> {
    plan.conn
        .submit_timeout(0, 0, 0, payload(stamp, size), plan.timeout)
        .map_err(|error| format!("cannot send request {stamp}: {error}"))
}

fn call(plan: &Plan<'_>, stamp: u64, size: usize) -> Result<(), String> {
    check(submit(plan, stamp, size)?, plan, stamp, size)
}

/// Calls one after another until the time is up: how many, in how long.
fn sequential(plan: &Plan<'_>, first: u64, size: usize) -> Result<(u64, f64), String> {
    let start = Instant::now();
    let deadline = start + plan.time;
    let mut n = 0;
    while n == 0 || Instant::now() < deadline {
        call(plan, first + n, size)?;
        n += 1;
    }
    Ok((n, start.elapsed().as_secs_f64()))
}

fn pipelined(plan: &Plan<'_>, window: usize) -> Result<Measured, String> {
    let start = Instant::now();
    let deadline = start + plan.time;
    let mut in_flight = VecDeque::with_capacity(window);
    let mut sent = 0u64;
    for _ in 0..window {
        in_flight.push_back((submit(plan, sent, plan.size)?, sent));
        sent += 1;
    }
    let mut done = 0u64;
    let secs = loop {
        let (pending, stamp) = in_flight.pop_front().expect("the window is never empty here");
        check(pending, plan, stamp, plan.size)?;
        done += 1;
        if done.is_multiple_of(8) && Instant::now() >= deadline {
            break start.elapsed().as_secs_f64();
        }
        in_flight.push_back((submit(plan, sent, plan.size)?, sent));
        sent += 1;
    };
    // The rest is answered too (and checked), but not counted.
    for (pending, stamp) in in_flight {
        check(pending, plan, stamp, plan.size)?;
    }
    Ok(Measured { scenario: Scenario::Pipelined(window), ops: done, bytes: done * plan.size as u64, secs })
}

fn concurrent(plan: &Plan<'_>, threads: usize) -> Result<Measured, String> {
    // The callers start together when the gate's sender goes: however many
    // of them did start.
    let (gate, gate_open) = crossbeam_channel::bounded::<()>(0);
    let (counts, secs) = thread::scope(|scope| {
        let callers: Vec<_> = (0..threads as u64)
            .map(|i| {
                let gate_open = gate_open.clone();
                thread::Builder::new().name(format!("bench-caller-{i}")).spawn_scoped(scope, move || {
                    let _ = gate_open.recv();
                    sequential(plan, (i + 1) << 42, plan.size)
                })
            })
            .collect();
        drop(gate);
        let start = Instant::now();
        let counts: Vec<Result<(u64, f64), String>> = callers
            .into_iter()
            .map(|caller| match caller {
                Ok(caller) => caller.join().unwrap_or_else(|_| Err("a caller thread panicked".to_owned())),
                Err(error) => Err(format!("cannot start a thread: {error}")),
            })
            .collect();
        (counts, start.elapsed().as_secs_f64())
    });
    let mut ops = 0;
    for count in counts {
        ops += count?.0;
    }
    Ok(Measured { scenario: Scenario::Concurrent(threads), ops, bytes: ops * plan.size as u64, secs })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert_eq!(Scenario::Sequential.label(16, 1 << 20), "A sequential 16 B");
        assert_eq!(Scenario::Pipelined(64).label(16, 1 << 20), "B pipelined x64 16 B");
        assert_eq!(Scenario::Concurrent(4).label(1024, 1 << 20), "C concurrent 4 thr 1 KiB");
        assert_eq!(Scenario::Bulk.label(16, 1 << 20), "D bulk 1 MiB");
        let measured = Measured { scenario: Scenario::Bulk, ops: 10, bytes: 10 << 20, secs: 2.0 };
        assert!((measured.figure() - 5.24288).abs() < 1e-9);
    }
}
