//! Faults: a peer that dies, stops mid-packet, never reads, never answers,
//! floods; handlers that panic, fail or hang; many connections opened and
//! closed; a long soak. Each runs on pipes and on Unix sockets, and those
//! that need no child process and count no file descriptors also on the
//! in-memory transport.
//!
//! Every wait is bounded. Heavy full-size runs are `#[ignore]`d and meant for
//! release mode:
//!
//!     cargo test --release --test faults -- --ignored --nocapture --test-threads 1
//!
//! A scaled-down version of each always runs. `docs/reliability.md` lists
//! the promises and the test behind each.

mod util;

use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use packetstream::wire::Control;
use packetstream::{
    CallTimeoutError, CloseError, CloseProblem, Config, ConfigBuilder, ConnectionError, Failure, Finished,
    PacketConnection, Pending, ProtocolError, Request, Response, SubmitError, SubmitTimeoutError, Transport,
    TryWaitError, WaitTimeoutError,
};
use util::process::{alone, echo_server, fd_count, memory_mib, shared, thread_count};
use util::raw::{frame, ok_response, varint};
use util::{assert_no_threads, raw_pair, threads_of, transport_pair, unique_name, wait_for, Kind, Rng, PROMPT};

/// The echo service the tests' servers run: type 0 echoes, type 1 fails.
fn echo(rq: Request) -> Result<Response, Failure> {
    match rq.rq_type {
        1 => Err(Failure::new("rq_type 1 always fails")),
        _ => Ok(Response { flags: rq.flags, payload: rq.payload }),
    }
}

fn config(name: String) -> ConfigBuilder {
    Config::builder().name(name)
}

/// The kinds a scenario with no child process runs over: pipes and Unix
/// sockets as before, and the in-memory transport.
const IN_PROCESS: [Kind; 3] = [Kind::Pipe, Kind::Unix, Kind::Memory];

/// Starts `echo_server` as a child with its stdin and stdout on pipes or on
/// one end of a socket pair; the caller keeps the [`Child`] to signal it.
fn spawn_echo(kind: Kind) -> (Child, Transport) {
    let mut command = Command::new(echo_server());
    command.stderr(Stdio::null());
    match kind {
        Kind::Pipe => {
            let mut child = command.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("start echo_server");
            let stdin = child.stdin.take().expect("piped stdin");
            let stdout = child.stdout.take().expect("piped stdout");
            (child, Transport::new(stdout, stdin))
        }
        Kind::Unix => {
            let (ours, theirs) = UnixStream::pair().expect("socket pair");
            let theirs_too = theirs.try_clone().expect("clone socket");
            command.stdin(Stdio::from(OwnedFd::from(theirs))).stdout(Stdio::from(OwnedFd::from(theirs_too)));
            let child = command.spawn().expect("start echo_server");
            // `command` goes out of scope here and closes our copies of the
            // child's end, so that the child's death ends the stream.
            (child, Transport::unix(ours).expect("socket transport"))
        }
        other => unreachable!("no child process over {other:?}"),
    }
}

fn signal(child: &Child, signal: &str) {
    // The shell's builtin `kill`, so that no procps is needed.
    let status =
        Command::new("sh").args(["-c", "kill -\"$0\" \"$1\""]).arg(signal).arg(child.id().to_string()).status();
    assert!(status.expect("run kill").success(), "kill -{signal} failed");
}

/// Whether every thread of process `pid` is stopped.
fn stopped(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.filter_map(Result::ok).all(|task| {
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        // The state follows the parenthesised command name.
        stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with(['T', 't']))
    })
}

/// Reaps a child with a bound.
fn reap(child: &mut Child) -> std::process::ExitStatus {
    let mut status = None;
    let done = wait_for(PROMPT, || {
        status = child.try_wait().expect("try_wait");
        status.is_some()
    });
    assert!(done, "child {} did not exit within {PROMPT:?}", child.id());
    status.expect("exited")
}

/// What close may report when the peer went away: a connection error, never
/// a timeout or a panic.
fn assert_close_outcome_not_hung(outcome: &Result<Finished, CloseError>) {
    if let Err(error) = outcome {
        assert!(
            !matches!(error.problem(), CloseProblem::TimedOut(_) | CloseProblem::Panicked { .. }),
            "close reported {error:?}"
        );
    }
}

/// Whether close reported that it ran out of time.
fn timed_out(outcome: &Result<Finished, CloseError>) -> bool {
    matches!(outcome, Err(error) if matches!(error.problem(), CloseProblem::TimedOut(_)))
}

// ---------------------------------------------------------------------------
// The peer process is killed with 1,000 requests in flight.

fn killed_peer(kind: Kind) {
    let _alone = alone();
    let name = kind.name('k');
    let warm = kind.name('w');
    // Warm up: the first child and connection open what stays open (the
    // echo_server path lookup, /proc handles of the runtime).
    let (mut child, transport) = spawn_echo(kind);
    let conn = PacketConnection::new(transport, config(warm.clone())).expect("start");
    conn.call(0, 0, b"warm".to_vec()).expect("warm-up call");
    conn.close().expect("close the warm-up connection");
    assert!(reap(&mut child).success());
    assert_no_threads(&warm);
    let (fds, threads) = (fd_count(), thread_count());

    let (mut child, transport) = spawn_echo(kind);
    let conn = PacketConnection::new(transport, config(name.clone())).expect("start");
    assert_eq!(conn.call(0, 3, b"ping".to_vec()).expect("the child answers").payload, b"ping");

    // Stop the child so that requests stay in flight, then kill it.
    signal(&child, "STOP");
    assert!(wait_for(PROMPT, || stopped(child.id())), "the child did not stop");
    let pending: Vec<Pending> =
        (0..1000u64).map(|i| conn.submit(0, i, i.to_be_bytes().to_vec()).expect("submit")).collect();
    assert_eq!(conn.outstanding(), 1000);

    let callers = 8;
    let mut shares: Vec<Vec<Pending>> = (0..callers).map(|_| Vec::new()).collect();
    for (i, p) in pending.into_iter().enumerate() {
        shares[i % callers].push(p);
    }
    let killed_at = Mutex::new(None::<Instant>);
    let (returned_by, errors) = thread::scope(|scope| {
        let callers: Vec<_> = shares
            .into_iter()
            .map(|share| {
                scope.spawn(move || {
                    let mut last = Instant::now();
                    let mut errors = Vec::new();
                    for p in share {
                        let outcome = p.wait_timeout(PROMPT * 2);
                        last = Instant::now();
                        errors.push(outcome.err());
                    }
                    (last, errors)
                })
            })
            .collect();
        *killed_at.lock().unwrap() = Some(Instant::now());
        child.kill().expect("SIGKILL the child");
        let mut latest = None::<Instant>;
        let mut errors = Vec::new();
        for caller in callers {
            let (last, errs) = caller.join().expect("caller thread");
            latest = Some(latest.map_or(last, |l| l.max(last)));
            errors.extend(errs);
        }
        (latest.expect("callers ran"), errors)
    });
    let killed_at = killed_at.into_inner().unwrap().expect("killed");
    let latency = returned_by.saturating_duration_since(killed_at);
    assert_eq!(errors.len(), 1000);
    for error in &errors {
        match error {
            Some(error) => assert!(matches!(error, WaitTimeoutError::Connection(_)), "a caller got {error:?}"),
            None => panic!("a request was answered by a killed child"),
        }
    }
    assert!(latency < PROMPT, "callers took {latency:?} to see the kill");

    let start = Instant::now();
    let outcome = conn.close();
    let close_took = start.elapsed();
    assert_close_outcome_not_hung(&outcome);
    assert!(close_took < PROMPT, "close took {close_took:?}");
    let status = reap(&mut child);
    assert!(!status.success(), "the killed child exited with {status:?}");
    assert_no_threads(&name);
    assert!(wait_for(PROMPT, || thread_count() <= threads), "threads: {} then {}", threads, thread_count());
    assert_eq!(fd_count(), fds, "open fds before and after");
    eprintln!(
        "killed peer ({kind:?}): 1000 callers failed within {latency:?} of SIGKILL ({:?}); close took {close_took:?}: {:?}",
        errors[0].as_ref().map(ToString::to_string),
        outcome.err()
    );
}

#[test]
fn killed_peer_fails_every_caller_promptly_pipes() {
    killed_peer(Kind::Pipe);
}

#[test]
fn killed_peer_fails_every_caller_promptly_sockets() {
    killed_peer(Kind::Unix);
}

// ---------------------------------------------------------------------------
// The stream ends in the middle of a packet.

#[derive(Debug, Clone, Copy)]
enum Cut {
    /// Inside the length prefix.
    Length,
    /// Inside the header.
    Header,
    /// Inside a long payload.
    Payload,
}

fn partial_frame(cut: Cut) -> Vec<u8> {
    match cut {
        Cut::Length => vec![0x81],
        // A body of 10 bytes of which only the tag arrives.
        Cut::Header => vec![10, 0x05],
        Cut::Payload => {
            let mut bytes = varint(100_000 + 2);
            bytes.extend([0x05, 0x04]); // tag 5, ok response
            bytes.extend(vec![7u8; 1000]);
            bytes
        }
    }
}

fn ends_mid_packet(kind: Kind, cut: Cut) {
    let _shared = shared();
    let name = kind.name('x');
    let (transport, mut peer) = raw_pair(kind);
    let conn = PacketConnection::new(transport, config(name.clone())).expect("start");
    let feed = peer.start_reading();
    let pending: Vec<Pending> = (0..50u64).map(|i| conn.submit(0, 0, vec![i as u8]).expect("submit")).collect();
    let first = feed.next_ordinary();
    for _ in 1..50 {
        feed.next_ordinary();
    }
    // One answer arrives whole, then the stream stops inside a frame.
    peer.send_packet(&ok_response(0, first.tag(), 1, b"whole"));
    peer.send_bytes(&partial_frame(cut));
    let start = Instant::now();
    peer.end_output();

    let mut pending = pending.into_iter();
    let answered = pending.next().expect("first").wait_timeout(PROMPT).expect("the whole answer");
    assert_eq!(answered.payload, b"whole");
    let mut latest = Duration::ZERO;
    for p in pending {
        match p.wait_timeout(PROMPT) {
            Err(WaitTimeoutError::Connection(ConnectionError::Protocol(ProtocolError::UnexpectedEof))) => {
                latest = latest.max(start.elapsed())
            }
            other => panic!("{cut:?}: expected the stream's early end, got {other:?}"),
        }
    }
    assert!(latest < PROMPT);
    let start = Instant::now();
    let outcome = conn.close();
    assert!(start.elapsed() < PROMPT, "close took {:?}", start.elapsed());
    assert_ended_early(&outcome);
    assert_no_threads(&name);
    eprintln!("stream cut ({kind:?}, {cut:?}): 49 callers failed within {latest:?}");
}

#[test]
fn stream_ends_inside_a_packet_pipes() {
    for cut in [Cut::Length, Cut::Header, Cut::Payload] {
        ends_mid_packet(Kind::Pipe, cut);
    }
}

#[test]
fn stream_ends_inside_a_packet_sockets() {
    for cut in [Cut::Length, Cut::Header, Cut::Payload] {
        ends_mid_packet(Kind::Unix, cut);
    }
}

#[test]
fn stream_ends_inside_a_packet_memory() {
    for cut in [Cut::Length, Cut::Header, Cut::Payload] {
        ends_mid_packet(Kind::Memory, cut);
    }
}

/// Close reports the stream's early end, which ended reading.
fn assert_ended_early(outcome: &Result<Finished, CloseError>) {
    assert!(
        matches!(
            outcome,
            Err(error) if matches!(
                error.problem(),
                CloseProblem::Connection(ConnectionError::Protocol(ProtocolError::UnexpectedEof))
            )
        ),
        "close gave {outcome:?}"
    );
}

/// A child that reads our 20 requests, writes half a packet and closes its
/// stdout, still reading.
#[test]
fn child_stream_ends_inside_a_packet() {
    let _shared = shared();
    let mut command = Command::new("sh");
    // 20 requests of one payload byte are 5 bytes each.
    command.args(["-c", "head -c 100 >/dev/null; printf '\\005\\002'; exec cat >/dev/null"]);
    let name = unique_name('c', 'x');
    let conn =
        PacketConnection::new(Transport::spawn(&mut command).expect("start sh"), config(name.clone())).expect("start");
    let pending: Vec<Pending> = (0..20u64).map(|i| conn.submit(0, 0, vec![i as u8]).expect("submit")).collect();
    for p in pending {
        match p.wait_timeout(PROMPT) {
            Err(WaitTimeoutError::Connection(ConnectionError::Protocol(ProtocolError::UnexpectedEof))) => {}
            other => panic!("expected the stream's early end, got {other:?}"),
        }
    }
    let start = Instant::now();
    let outcome = conn.close();
    assert!(start.elapsed() < PROMPT);
    assert_ended_early(&outcome);
    assert_no_threads(&name);
}

// ---------------------------------------------------------------------------
// A peer that never reads.

const QUEUE: usize = 8;
const BIG: usize = 64 << 10;

/// Fills the send queue and whatever the kernel buffers; returns how many
/// submits got through before one timed out.
fn fill_until_blocked(conn: &PacketConnection) -> usize {
    let payload = vec![0xa5u8; BIG];
    let mut accepted = 0;
    // Each accepted request is held, so nothing is cancelled.
    let mut held = Vec::new();
    loop {
        match conn.submit_timeout(0, 0, 0, payload.clone(), Duration::from_millis(100)) {
            Ok(p) => {
                held.push(p);
                accepted += 1;
                assert!(accepted <= 10_000, "the send queue never filled");
            }
            Err(SubmitTimeoutError::Timeout(back)) => {
                // Nothing of the timed-out request is left behind, and its
                // payload comes back.
                assert_eq!(conn.outstanding(), held.len());
                assert!(back == payload, "submit_timeout handed back another payload");
                break;
            }
            Err(other) => panic!("submit_timeout: {other:?}"),
        }
    }
    // Dropping the handles cancels their requests, which are already queued
    // or written: that changes nothing on the wire.
    drop(held);
    accepted
}

fn never_reads_backpressure(kind: Kind) {
    let _shared = shared();
    let name = kind.name('r');
    let (transport, mut peer) = raw_pair(kind);
    let conn = Arc::new(
        PacketConnection::new(
            transport,
            config(name.clone()).send_queue(QUEUE).close_timeout(Duration::from_millis(500)),
        )
        .expect("start"),
    );
    let accepted = fill_until_blocked(&conn);
    // Queue, the packet in the writer's hands, and the kernel's buffer
    // (a pipe holds 64 KiB, a Unix socket a few hundred KiB).
    assert!(accepted <= QUEUE + 1 + 64, "{accepted} submits of 64 KiB accepted by a peer that never reads");
    for _ in 0..10 {
        let outcome = conn.submit_timeout(0, 0, 0, vec![1u8; BIG], Duration::from_millis(20));
        assert!(matches!(outcome, Err(SubmitTimeoutError::Timeout(_))), "{outcome:?}");
    }
    // A plain submit blocks...
    let (done_tx, done_rx) = crossbeam_channel::bounded(1);
    let blocked = {
        let conn = Arc::clone(&conn);
        thread::spawn(move || {
            let outcome = conn.submit(0, 0, vec![2u8; BIG]).map(drop);
            let _ = done_tx.send(());
            outcome
        })
    };
    assert!(done_rx.recv_timeout(Duration::from_millis(300)).is_err(), "submit did not block on a full queue");
    // ...until the peer goes away: then it fails.
    let start = Instant::now();
    peer.hang_up();
    done_rx.recv_timeout(PROMPT).expect("the blocked submit returns once the peer is gone");
    let unblocked = start.elapsed();
    let outcome = blocked.join().expect("submitter thread");
    assert!(matches!(&outcome, Err(SubmitError::Connection(_))), "{outcome:?}");
    let conn = Arc::into_inner(conn).expect("the only handle");
    let start = Instant::now();
    let closed = conn.close();
    assert!(start.elapsed() < PROMPT);
    assert_close_outcome_not_hung(&closed);
    assert_no_threads(&name);
    eprintln!(
        "never reads ({kind:?}): {accepted} x 64 KiB accepted with a queue of {QUEUE}, then submit_timeout timed out; \
         blocked submit failed {unblocked:?} after the peer went: {:?}; close: {:?}",
        outcome.err().map(|e| e.to_string()),
        closed.err()
    );
}

#[test]
fn peer_never_reads_submitters_block_pipes() {
    never_reads_backpressure(Kind::Pipe);
}

#[test]
fn peer_never_reads_submitters_block_sockets() {
    never_reads_backpressure(Kind::Unix);
}

#[test]
fn peer_never_reads_submitters_block_memory() {
    never_reads_backpressure(Kind::Memory);
}

/// A call writes a bulk request itself (no writer thread): against a peer
/// that never reads it blocks in that write, while other callers and the
/// connection carry on, until the peer goes; then it fails.
fn never_reads_bulk_call(kind: Kind) {
    let _shared = shared();
    let name = kind.name('b');
    let (transport, mut peer) = raw_pair(kind);
    let conn = Arc::new(
        PacketConnection::new(transport, config(name.clone()).close_timeout(Duration::from_millis(500)))
            .expect("start"),
    );
    let (done_tx, done_rx) = crossbeam_channel::bounded(1);
    let caller = {
        let conn = Arc::clone(&conn);
        thread::Builder::new()
            .name(format!("{name}-bulk-caller"))
            .spawn(move || {
                // More than any kernel buffer holds.
                let outcome = conn.call(0, 0, vec![3u8; 16 << 20]).map(drop);
                let _ = done_tx.send(());
                outcome
            })
            .expect("spawn")
    };
    assert!(
        done_rx.recv_timeout(Duration::from_millis(300)).is_err(),
        "a 16 MiB call to a peer that never reads returned"
    );
    // A submit does not wait for the blocked write: it is queued.
    let pending = conn.submit(0, 0, vec![4u8; 8]).expect("submit beside a blocked bulk call");
    let start = Instant::now();
    peer.hang_up();
    done_rx.recv_timeout(PROMPT).expect("the blocked call returns once the peer is gone");
    let outcome = caller.join().expect("caller thread");
    assert!(matches!(&outcome, Err(packetstream::CallError::Connection(_))), "{outcome:?}");
    assert!(pending.wait_timeout(PROMPT).is_err(), "no answer from a peer that went");
    let unblocked = start.elapsed();
    let conn = Arc::into_inner(conn).expect("the only handle");
    assert_close_outcome_not_hung(&conn.close());
    assert_no_threads(&name);
    eprintln!("never reads, bulk call ({kind:?}): the call failed {unblocked:?} after the peer went: {outcome:?}");
}

#[test]
fn peer_never_reads_a_bulk_call_blocks_until_it_goes() {
    for kind in IN_PROCESS {
        never_reads_bulk_call(kind);
    }
}

/// A bulk answer is written by the thread that ran its handler; against a
/// peer that does not read yet, that write blocks, and the connection must
/// go on reading (a worker takes reading over) so that the peer's own
/// writes, more than any buffer holds, never wait for it.
fn bulk_answers_to_a_peer_that_reads_late(kind: Kind) {
    let _shared = shared();
    let name = kind.name('l');
    let (transport, mut peer) = raw_pair(kind);
    let conn = PacketConnection::with_handler(transport, config(name.clone()), echo).expect("start");
    const SMALL: u64 = 2_000;
    let bulk = |tag: u64| packetstream::Packet::request(0, tag, 0, 0, vec![tag as u8; 8 << 20]).unwrap();
    let (sent_tx, sent_rx) = crossbeam_channel::bounded(1);
    let writer = thread::Builder::new()
        .name(format!("{name}-raw-writer"))
        .spawn(move || {
            peer.send_packet(&bulk(2));
            for tag in 3..3 + SMALL {
                peer.send_packet(&packetstream::Packet::request(0, tag, 0, 0, tag.to_le_bytes().to_vec()).unwrap());
            }
            peer.send_packet(&bulk(3 + SMALL));
            let _ = sent_tx.send(());
            peer
        })
        .expect("spawn");
    sent_rx
        .recv_timeout(PROMPT)
        .expect("the peer's writes (16 MiB and more) did not wait for it to read: the connection kept reading");
    let mut peer = writer.join().expect("raw writer");
    let feed = peer.start_reading();
    let mut answered = std::collections::BTreeSet::new();
    for _ in 0..SMALL + 2 {
        let answer = feed.next_ordinary();
        let expected = if answer.payload().len() == 8 << 20 {
            vec![answer.tag() as u8; 8 << 20]
        } else {
            answer.tag().to_le_bytes().to_vec()
        };
        assert!(answer.payload() == &expected[..], "answer {} carries its own request's payload", answer.tag());
        assert!(answered.insert(answer.tag()), "answer {} twice", answer.tag());
    }
    assert_eq!(answered.len() as u64, SMALL + 2);
    peer.hang_up();
    assert_close_outcome_not_hung(&conn.close());
    assert_no_threads(&name);
}

#[test]
fn bulk_answers_wait_for_a_late_reader_while_reading_goes_on() {
    for kind in IN_PROCESS {
        bulk_answers_to_a_peer_that_reads_late(kind);
    }
}

fn never_reads_close(kind: Kind, by_drop: bool) {
    let _shared = shared();
    let name = kind.name(if by_drop { 'd' } else { 'n' });
    let close_timeout = Duration::from_millis(500);
    let (transport, mut peer) = raw_pair(kind);
    let conn = PacketConnection::new(transport, config(name.clone()).send_queue(QUEUE).close_timeout(close_timeout))
        .expect("start");
    fill_until_blocked(&conn);
    let start = Instant::now();
    let outcome = if by_drop {
        drop(conn);
        None
    } else {
        Some(conn.close())
    };
    let took = start.elapsed();
    // close_timeout, plus the second after interrupting the transport.
    let bound = close_timeout + Duration::from_secs(1) + PROMPT / 2;
    assert!(took < bound, "close took {took:?}");
    if let Some(outcome) = &outcome {
        assert!(timed_out(outcome), "close gave {outcome:?}");
    }
    let left = threads_of(&name);
    // A pipe (or a hand-made in-memory transport, which has no interrupt)
    // cannot be interrupted: its blocked writer is left running until the
    // peer goes; a socket is shut down.
    peer.hang_up();
    assert_no_threads(&name);
    eprintln!(
        "never reads, {} ({kind:?}): returned in {took:?} with {:?}; threads left until the peer went: {left:?}",
        if by_drop { "drop" } else { "close" },
        outcome.map(|o| o.err().map(|e| e.to_string()))
    );
}

#[test]
fn peer_never_reads_close_finishes_in_time() {
    for kind in IN_PROCESS {
        never_reads_close(kind, false);
    }
}

#[test]
fn peer_never_reads_drop_finishes_in_time() {
    for kind in IN_PROCESS {
        never_reads_close(kind, true);
    }
}

// ---------------------------------------------------------------------------
// A peer that never answers.

fn never_answers(kind: Kind) {
    let _shared = shared();
    let name = kind.name('a');
    let (transport, mut peer) = raw_pair(kind);
    let conn = PacketConnection::new(transport, config(name.clone())).expect("start");
    let feed = peer.start_reading();

    // wait_timeout times out, and the request stays in flight.
    let timed = conn.submit(0, 0, b"timed".to_vec()).expect("submit");
    let timed_tag = feed.next_ordinary().tag();
    let start = Instant::now();
    let timed = match timed.wait_timeout(Duration::from_millis(200)) {
        Err(WaitTimeoutError::Timeout(back)) => back,
        other => panic!("expected a timeout, got {other:?}"),
    };
    let waited = start.elapsed();
    assert!(waited >= Duration::from_millis(200) && waited < PROMPT, "waited {waited:?}");
    assert_eq!(conn.outstanding(), 1);

    // call_timeout gives its request up.
    let outcome = conn.call_timeout(0, 0, b"call".to_vec(), Duration::from_millis(100));
    assert!(matches!(outcome, Err(CallTimeoutError::Timeout)), "{outcome:?}");
    let call_tag = feed.next_ordinary().tag();
    assert_eq!(conn.outstanding(), 1, "call_timeout left its request behind");

    // Cancelling frees the slot.
    let mut live = Vec::new();
    let mut cancelled_tags = Vec::new();
    for i in 0..10u64 {
        let p = conn.submit(0, i, vec![i as u8]).expect("submit");
        assert_eq!(feed.next_ordinary().tag(), p.tag());
        if i % 2 == 0 {
            cancelled_tags.push(p.tag());
            p.cancel();
        } else {
            live.push(p);
        }
    }
    assert_eq!(conn.outstanding(), 1 + live.len());

    // Late answers to cancelled and timed-out requests are dropped quietly;
    // the live ones still get theirs.
    for &tag in cancelled_tags.iter().chain([call_tag].iter()) {
        peer.send_packet(&ok_response(0, tag, 9, b"late"));
    }
    for p in &live {
        peer.send_packet(&ok_response(0, p.tag(), p.tag(), &p.tag().to_be_bytes()));
    }
    for p in live {
        let tag = p.tag();
        let answer = p.wait_timeout(PROMPT).expect("a live request's answer");
        assert_eq!((answer.flags, answer.payload), (tag, tag.to_be_bytes().to_vec()));
    }
    // A request that only timed out gets its answer on a later wait.
    peer.send_packet(&ok_response(0, timed_tag, 1, b"at last"));
    assert_eq!(timed.wait_timeout(PROMPT).expect("the late answer").payload, b"at last");
    assert_eq!(conn.outstanding(), 0);
    assert_eq!(conn.stats().responses_in, 6, "late answers must not count as delivered");

    // The connection still works, and closes cleanly.
    let p = conn.submit(0, 0, b"after".to_vec()).expect("submit");
    let tag = feed.next_ordinary().tag();
    peer.send_packet(&ok_response(0, tag, 0, b"fine"));
    assert_eq!(p.wait().expect("answer").payload, b"fine");
    peer.end_output();
    conn.close().expect("a clean close");
    let rest = feed.until_end();
    assert!(rest.iter().all(|p| p.control().is_some()), "unexpected packets after close: {rest:?}");
    assert_no_threads(&name);
}

#[test]
fn peer_never_answers_pipes() {
    never_answers(Kind::Pipe);
}

#[test]
fn peer_never_answers_sockets() {
    never_answers(Kind::Unix);
}

#[test]
fn peer_never_answers_memory() {
    never_answers(Kind::Memory);
}

// ---------------------------------------------------------------------------
// Both sides flood each other at once.

/// A 64 KiB payload that says which side and request it belongs to.
fn flood_payload(side: u8, i: u64) -> Vec<u8> {
    let mut payload = vec![(i as u8) ^ side; BIG];
    payload[..8].copy_from_slice(&i.to_le_bytes());
    payload[8] = side;
    payload
}

/// `count` requests from `threads` threads, `window` in flight each; every
/// answer compared with what was sent.
fn drive(conn: &PacketConnection, side: u8, count: u64, threads: u64, window: usize) {
    thread::scope(|scope| {
        for t in 0..threads {
            scope.spawn(move || {
                let mut in_flight = std::collections::VecDeque::with_capacity(window);
                let mut i = t;
                while i < count || !in_flight.is_empty() {
                    if i < count && in_flight.len() < window {
                        let pending = conn.submit(0, i, flood_payload(side, i)).expect("submit");
                        in_flight.push_back((i, pending));
                        i += threads;
                        continue;
                    }
                    let (n, pending): (u64, Pending) = in_flight.pop_front().expect("in flight");
                    let answer = pending.wait_timeout(PROMPT * 12).expect("an answer");
                    assert_eq!(answer.flags, n);
                    assert!(answer.payload == flood_payload(side, n), "request {n} of side {side}: wrong payload");
                }
            });
        }
    });
}

/// How the two flooding sides are set up.
#[derive(Debug, Clone, Copy)]
enum Shape {
    /// Default config; 2 threads per side with 64 requests in flight each.
    Default,
    /// A send queue of 4 packets and one worker, with 512 requests in flight
    /// per thread: queues full all the time, the pool backed up, both pipes
    /// full. A reader that waited for its queue or its workers would deadlock.
    Tight,
}

fn flood(kind: Kind, count: u64, shape: Shape) -> (Duration, u64, u64) {
    let (left_name, right_name) = (kind.name('a'), kind.name('b'));
    let (a, b) = transport_pair(kind);
    let (setup, window): (fn(ConfigBuilder) -> ConfigBuilder, usize) = match shape {
        Shape::Default => (|c| c, 64),
        Shape::Tight => (|c| c.send_queue(4).workers(1), 512),
    };
    let left = PacketConnection::with_handler(a, setup(config(left_name.clone())), echo).expect("start");
    let right = PacketConnection::with_handler(b, setup(config(right_name.clone())), echo).expect("start");
    util::process::reset_peak_memory();
    let start = Instant::now();
    thread::scope(|scope| {
        scope.spawn(|| drive(&left, 1, count, 2, window));
        scope.spawn(|| drive(&right, 2, count, 2, window));
    });
    let took = start.elapsed();
    let (rss, hwm) = memory_mib();
    for conn in [&left, &right] {
        let stats = conn.stats();
        assert_eq!((stats.requests_out, stats.responses_in, stats.requests_in), (count, count, count));
    }
    // Both close at once; each waits for the other's EOF.
    util::close_both_ok(left, right);
    assert_no_threads(&left_name);
    assert_no_threads(&right_name);
    // Generous: in flight at most 2 sides x 2 threads x 512 requests of
    // 64 KiB (256 MiB), with their answers.
    assert!(hwm < 1024, "peak RSS {hwm} MiB");
    (took, rss, hwm)
}

fn report_flood(kind: Kind, count: u64, shape: Shape) {
    let (took, rss, hwm) = flood(kind, count, shape);
    let gib = 2.0 * 2.0 * count as f64 * BIG as f64 / f64::from(1u32 << 30);
    eprintln!(
        "flood ({kind:?}, {shape:?}): {count} x 64 KiB each way at once in {took:?}: {:.0} requests/s each way, \
         {:.2} GiB/s through the pipes (requests and answers, both ways); VmRSS {rss} MiB, VmHWM {hwm} MiB",
        count as f64 / took.as_secs_f64(),
        gib / took.as_secs_f64()
    );
}

#[test]
fn flood_both_ways_scaled() {
    let _shared = shared();
    for kind in IN_PROCESS {
        report_flood(kind, 2_000, Shape::Default);
        report_flood(kind, 2_000, Shape::Tight);
    }
}

#[test]
#[ignore = "full size: run in release"]
fn flood_both_ways_full_pipes() {
    let _alone = alone();
    report_flood(Kind::Pipe, 100_000, Shape::Default);
    report_flood(Kind::Pipe, 100_000, Shape::Tight);
}

#[test]
#[ignore = "full size: run in release"]
fn flood_both_ways_full_sockets() {
    let _alone = alone();
    report_flood(Kind::Unix, 100_000, Shape::Default);
    report_flood(Kind::Unix, 100_000, Shape::Tight);
}

#[test]
#[ignore = "full size: run in release"]
fn flood_both_ways_full_memory() {
    let _alone = alone();
    report_flood(Kind::Memory, 100_000, Shape::Default);
    report_flood(Kind::Memory, 100_000, Shape::Tight);
}

/// Both sides send many small requests before they wait for any answer.
/// Small packets are staged and their answers are run by the reader, so the
/// bytes outgrow the stream's buffer both ways: a reader's write blocks
/// until the other side reads, and a worker must read in its place, on both
/// sides, or both stop for good.
fn flood_small_packets(kind: Kind) {
    const COUNT: u64 = 60_000;
    let _shared = shared();
    let (left_name, right_name) = (kind.name('a'), kind.name('b'));
    let (a, b) = transport_pair(kind);
    let left = PacketConnection::with_handler(a, config(left_name.clone()), echo).expect("start");
    let right = PacketConnection::with_handler(b, config(right_name.clone()), echo).expect("start");
    let payload = |side: u8, i: u64| {
        let mut payload = i.to_le_bytes().to_vec();
        payload.push(side);
        payload
    };
    let start = Instant::now();
    let (left_ref, right_ref) = (&left, &right);
    thread::scope(|scope| {
        for (conn, side) in [(&left, 1u8), (&right, 2u8)] {
            scope.spawn(move || {
                let pending: Vec<Pending> =
                    (0..COUNT).map(|i| conn.submit(0, i, payload(side, i)).expect("submit")).collect();
                for (i, p) in (0..COUNT).zip(pending) {
                    let answer = match p.wait_timeout(PROMPT * 12) {
                        Ok(a) => a,
                        Err(e) => panic!(
                            "side {side} request {i}: {e:?}\nleft {:?}\nright {:?}",
                            left_ref.stats(),
                            right_ref.stats()
                        ),
                    };
                    assert!(answer.flags == i && answer.payload == payload(side, i), "side {side} request {i}");
                }
            });
        }
    });
    eprintln!(
        "small-packet flood ({kind:?}): {COUNT} requests each way, all sent before any wait, in {:?}",
        start.elapsed()
    );
    for conn in [&left, &right] {
        let stats = conn.stats();
        assert_eq!((stats.requests_out, stats.responses_in, stats.requests_in), (COUNT, COUNT, COUNT));
    }
    util::close_both_ok(left, right);
    assert_no_threads(&left_name);
    assert_no_threads(&right_name);
}

#[test]
fn flood_small_packets_pipes() {
    flood_small_packets(Kind::Pipe);
}

#[test]
fn flood_small_packets_sockets() {
    flood_small_packets(Kind::Unix);
}

#[test]
fn flood_small_packets_memory() {
    flood_small_packets(Kind::Memory);
}

// ---------------------------------------------------------------------------
// Handlers that panic, fail, or never return.

fn handlers(kind: Kind) {
    let _shared = shared();
    util::quiet_expected_panics();
    let (server_name, client_name) = (kind.name('s'), kind.name('c'));
    let (gate_tx, gate_rx) = crossbeam_channel::bounded::<()>(0);
    let (entered_tx, entered_rx) = crossbeam_channel::bounded::<()>(1);
    let handler = move |rq: Request| -> Result<Response, Failure> {
        match rq.rq_type {
            0 => Ok(Response { flags: rq.flags, payload: rq.payload }),
            1 => Err(Failure::new(format!("handler error {}", rq.flags))),
            2 => panic!("{} {}", util::EXPECTED_PANIC, rq.flags),
            _ => {
                let _ = entered_tx.try_send(());
                // Blocks until the test opens the gate (or drops it).
                let _ = gate_rx.recv();
                Ok(Response::default())
            }
        }
    };
    let (a, b) = transport_pair(kind);
    let close_timeout = Duration::from_secs(1);
    let server = PacketConnection::with_handler(b, config(server_name.clone()).close_timeout(close_timeout), handler)
        .expect("start server");
    let client = PacketConnection::new(a, config(client_name.clone())).expect("start client");

    let stuck = client.submit(3, 0, Vec::new()).expect("submit the blocking request");
    entered_rx.recv_timeout(PROMPT).expect("the blocking handler started");
    let start = Instant::now();
    let pending: Vec<(u64, Pending)> =
        (0..300u64).map(|i| (i, client.submit(i % 3, i, vec![i as u8]).expect("submit"))).collect();
    for (i, p) in pending {
        let outcome = p.wait();
        match i % 3 {
            0 => assert_eq!(outcome.expect("echo").payload, vec![i as u8]),
            1 => assert_eq!(outcome.unwrap_err().failure().expect("failed").text(), format!("handler error {i}")),
            _ => assert_eq!(
                outcome.unwrap_err().failure().expect("failed").text(),
                format!("handler panicked: {} {i}", util::EXPECTED_PANIC)
            ),
        }
    }
    let served = start.elapsed();
    let stuck = match stuck.try_wait() {
        Err(TryWaitError::NotReady(back)) => back,
        other => panic!("the blocked handler answered: {other:?}"),
    };
    assert!(served < PROMPT * 2, "300 requests past a blocked handler took {served:?}");

    // The server closes: it reports the handler rather than hanging.
    let start = Instant::now();
    let server_closing = util::start_close(server);
    let client_closed = client.close();
    let server_outcome = server_closing.result();
    let took = start.elapsed();
    assert!(took < close_timeout + PROMPT, "close took {took:?}");
    match server_outcome.as_ref().map_err(CloseError::problem) {
        Err(CloseProblem::TimedOut(what)) => assert!(what.contains("worker"), "{what}"),
        other => panic!("server close: {other:?}"),
    }
    assert!(client_closed.is_ok(), "client close: {client_closed:?}");
    // The server ended its stream without answering: the peer closed.
    let outcome = stuck.wait_timeout(PROMPT);
    assert!(
        matches!(outcome, Err(WaitTimeoutError::Connection(ConnectionError::PeerClosed { reason: None }))),
        "the blocked request got {outcome:?}"
    );
    // Released, the handler's thread ends.
    drop(gate_tx);
    assert_no_threads(&server_name);
    assert_no_threads(&client_name);
    eprintln!(
        "handlers ({kind:?}): 300 requests served past a blocked handler in {served:?}; close took {took:?}: {:?}",
        server_outcome.err().map(|e| e.to_string())
    );
}

#[test]
fn handler_panics_errors_and_hangs_pipes() {
    handlers(Kind::Pipe);
}

#[test]
fn handler_panics_errors_and_hangs_sockets() {
    handlers(Kind::Unix);
}

#[test]
fn handler_panics_errors_and_hangs_memory() {
    handlers(Kind::Memory);
}

// ---------------------------------------------------------------------------
// Many connections opened and closed.

/// The names a kind's connections get in [`open_close_many`]: one set per
/// kind, used again by every round (each round ends before the next starts;
/// the full run makes more connections than there are unique names).
struct Names {
    server: String,
    client: String,
    child: String,
}

impl Names {
    fn new(kind: Kind) -> Names {
        Names { server: kind.name('s'), client: kind.name('c'), child: kind.name('o') }
    }
}

fn one_pair(kind: Kind, names: &Names, i: usize) {
    let (a, b) = transport_pair(kind);
    let server = PacketConnection::with_handler(b, config(names.server.clone()), echo).expect("server");
    let client = PacketConnection::new(a, config(names.client.clone())).expect("client");
    let payload = i.to_be_bytes().to_vec();
    assert_eq!(client.call(0, 0, payload.clone()).expect("call").payload, payload);
    thread::scope(|scope| {
        let server = scope.spawn(move || {
            server.join_recv_timeout(PROMPT).expect("the client's end");
            server.close()
        });
        client.close().expect("client close");
        server.join().expect("server thread").expect("server close");
    });
}

fn one_child(kind: Kind, names: &Names, i: usize) {
    let name = names.child.clone();
    let payload = i.to_be_bytes().to_vec();
    match kind {
        Kind::Pipe => {
            let mut command = Command::new(echo_server());
            let conn =
                PacketConnection::new(Transport::spawn(&mut command).expect("spawn"), config(name)).expect("start");
            assert_eq!(conn.call(0, 0, payload.clone()).expect("call").payload, payload);
            let finished = conn.close().expect("close");
            assert!(finished.exit_status().expect("reaped").success());
        }
        Kind::Unix => {
            let (mut child, transport) = spawn_echo(kind);
            let conn = PacketConnection::new(transport, config(name)).expect("start");
            assert_eq!(conn.call(0, 0, payload.clone()).expect("call").payload, payload);
            drop(conn.close().expect("close"));
            assert!(reap(&mut child).success());
        }
        other => unreachable!("no child process over {other:?}"),
    }
}

/// The kinds [`open_close_many`] runs over: it starts children and counts
/// file descriptors.
const WITH_FDS: [Kind; 2] = [Kind::Pipe, Kind::Unix];

fn open_close_many(count: usize, children: usize) {
    let _alone = alone();
    let names = WITH_FDS.map(|kind| (kind, Names::new(kind)));
    for (kind, names) in &names {
        one_pair(*kind, names, 0);
        one_child(*kind, names, 0);
    }
    let (fds, threads) = (fd_count(), thread_count());
    let (rss_before, _) = memory_mib();
    let start = Instant::now();
    for (kind, names) in &names {
        for i in 0..count {
            one_pair(*kind, names, i);
        }
    }
    let pairs_took = start.elapsed();
    let start = Instant::now();
    for (kind, names) in &names {
        for i in 0..children {
            one_child(*kind, names, i);
        }
    }
    let children_took = start.elapsed();
    assert!(
        wait_for(PROMPT, || thread_count() <= threads),
        "threads: {threads} before, {} after: {:?}",
        thread_count(),
        util::process::thread_names()
    );
    assert_eq!(fd_count(), fds, "open fds before and after");
    let (rss_after, _) = memory_mib();
    eprintln!(
        "open/close: {count} pairs x 2 kinds in {pairs_took:?}, {children} children x 2 kinds in {children_took:?}; \
         threads {threads} -> {}, fds {fds} -> {}, VmRSS {rss_before} -> {rss_after} MiB",
        thread_count(),
        fd_count()
    );
}

#[test]
fn open_close_many_scaled() {
    open_close_many(200, 25);
}

#[test]
#[ignore = "full size: run in release"]
fn open_close_many_full() {
    open_close_many(10_000, 10_000);
}

// ---------------------------------------------------------------------------
// Soak: many requests from 4 threads over a child's stdio, every answer checked.

fn soak_payload(rng: &mut Rng) -> (u64, Vec<u8>) {
    let flags = rng.next() >> 24;
    let len = (rng.next() % 200) as usize;
    let mut payload = Vec::with_capacity(len + 8);
    while payload.len() < len {
        payload.extend_from_slice(&rng.next().to_le_bytes());
    }
    payload.truncate(len);
    (flags, payload)
}

/// Answers so far, when, (VmRSS, VmHWM) in KiB, and the children's VmRSS.
type Sample = (u64, Duration, (u64, u64), Vec<(u32, u64)>);

fn soak(total: u64, sample_at: u64) {
    let mut command = Command::new(echo_server());
    let conn = PacketConnection::new(Transport::spawn(&mut command).expect("spawn"), config(unique_name('s', 'k')))
        .expect("start");
    let threads = 4u64;
    let done = AtomicU64::new(0);
    let samples = Mutex::new(Vec::<Sample>::new());
    let start = Instant::now();
    thread::scope(|scope| {
        for t in 0..threads {
            let (conn, done, samples) = (&conn, &done, &samples);
            scope.spawn(move || {
                let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (t + 1));
                let mut in_flight = std::collections::VecDeque::with_capacity(32);
                let share = total / threads + u64::from(t < total % threads);
                let mut sent = 0;
                while sent < share || !in_flight.is_empty() {
                    if sent < share && in_flight.len() < 32 {
                        let (flags, payload) = soak_payload(&mut rng);
                        let pending = conn.submit(0, flags, payload.clone()).expect("submit");
                        in_flight.push_back((pending, flags, payload));
                        sent += 1;
                        continue;
                    }
                    let (pending, flags, payload): (Pending, u64, Vec<u8>) = in_flight.pop_front().expect("in flight");
                    let answer = pending.wait_timeout(PROMPT * 6).expect("an answer");
                    assert_eq!((answer.flags, &answer.payload), (flags, &payload), "a mismatched answer");
                    let n = done.fetch_add(1, Relaxed) + 1;
                    if n % sample_at == 0 || n == total {
                        let children = util::process::children_rss_kib();
                        let memory = (util::process::status_kib("VmRSS"), util::process::status_kib("VmHWM"));
                        samples.lock().unwrap().push((n, start.elapsed(), memory, children));
                    }
                }
            });
        }
    });
    let took = start.elapsed();
    let stats = conn.stats();
    assert_eq!(done.load(Relaxed), total);
    // None lost (every wait answered), none mismatched (checked above), none
    // duplicated: every packet that came in was a delivered answer.
    assert_eq!((stats.requests_out, stats.responses_in, stats.packets_in), (total, total, total));
    let start = Instant::now();
    let finished = conn.close().expect("close");
    let close_took = start.elapsed();
    assert!(finished.exit_status().expect("reaped").success());
    eprintln!("soak: close took {close_took:?}");
    let mut samples = samples.into_inner().unwrap();
    samples.sort_by_key(|s| s.0);
    for (n, at, (rss, hwm), children) in &samples {
        eprintln!("soak: {n} answers at {at:?}: VmRSS {rss} KiB, VmHWM {hwm} KiB; child (pid, VmRSS KiB) {children:?}");
    }
    eprintln!(
        "soak: {total} requests from {threads} threads in {took:?}: {:.0} requests/s",
        total as f64 / took.as_secs_f64()
    );
    let first = samples.first().expect("a sample");
    let last = samples.last().expect("a sample");
    // Flat: the last sample's RSS within 64 MiB of the first's, here and in the child.
    assert!(last.2 .0 <= first.2 .0 + (64 << 10), "RSS grew from {} KiB to {} KiB", first.2 .0, last.2 .0);
    let child = |sample: &Sample| sample.3.iter().map(|c| c.1).sum::<u64>();
    assert!(
        child(last) <= child(first) + (64 << 10),
        "the child's RSS grew from {} KiB to {} KiB",
        child(first),
        child(last)
    );
}

#[test]
fn soak_scaled() {
    let _shared = shared();
    soak(50_000, 10_000);
}

#[test]
#[ignore = "full size: run in release"]
fn soak_full() {
    let _alone = alone();
    soak(5_000_000, 1_000_000);
}

// ---------------------------------------------------------------------------
// A peer that reads everything but never ends its stream.

fn never_ends(kind: Kind) {
    let _shared = shared();
    let name = kind.name('e');
    let close_timeout = Duration::from_millis(500);
    let (transport, mut peer) = raw_pair(kind);
    let conn = PacketConnection::new(transport, config(name.clone()).close_timeout(close_timeout)).expect("start");
    let feed = peer.start_reading();
    let start = Instant::now();
    let outcome = conn.close();
    let took = start.elapsed();
    assert!(took < close_timeout + Duration::from_secs(1) + PROMPT / 2, "close took {took:?}");
    // The peer did get our goodbye.
    let packets = feed.until_end_or(PROMPT);
    assert!(packets.iter().any(|p| p.control() == Some(Ok(Control::Eof))), "{packets:?}");
    peer.hang_up();
    assert_no_threads(&name);
    eprintln!("never ends ({kind:?}): close took {took:?}: {:?}", outcome.as_ref().err());
    // The peer never ended its side: close must say so rather than succeed.
    assert!(timed_out(&outcome), "close gave {outcome:?}");
}

#[test]
fn peer_never_ends_close_reports_it_pipes() {
    never_ends(Kind::Pipe);
}

#[test]
fn peer_never_ends_close_reports_it_sockets() {
    never_ends(Kind::Unix);
}

#[test]
fn peer_never_ends_close_reports_it_memory() {
    never_ends(Kind::Memory);
}

// ---------------------------------------------------------------------------
// The reader hands on what it has before waiting for more bytes.

/// Answers and requests followed by part of the next frame are handed on at
/// once, not held until the frame is complete (the reader batches what is
/// buffered, and must flush the batch before it blocks).
fn not_held_behind_a_partial_frame(kind: Kind) {
    let _shared = shared();
    let name = kind.name('h');
    let (transport, mut peer) = raw_pair(kind);
    let conn = PacketConnection::with_handler(transport, config(name.clone()), echo).expect("start");
    let feed = peer.start_reading();
    // More than one batch of answers, in one write, with half a frame behind.
    let pending: Vec<Pending> = (0..150u64).map(|i| conn.submit(0, i, vec![i as u8]).expect("submit")).collect();
    let tags: Vec<u64> = (0..150).map(|_| feed.next_ordinary().tag()).collect();
    let mut bytes = Vec::new();
    for &tag in &tags {
        bytes.extend(frame(&ok_response(0, tag, tag, b"answer")));
    }
    let request = frame(&packetstream::Packet::request(0, 77, 0, 5, b"asked".to_vec()).unwrap());
    bytes.extend(&request);
    let last = frame(&ok_response(0, 999, 0, b"unknown tag, ignored"));
    let (head, tail) = last.split_at(last.len() / 2);
    bytes.extend(head);
    peer.send_bytes(&bytes);
    for (p, tag) in pending.into_iter().zip(tags) {
        let answer = p.wait_timeout(PROMPT).expect("an answer held behind a partial frame");
        assert_eq!(answer.flags, tag);
    }
    let answered = feed.next_ordinary();
    assert_eq!((answered.tag(), answered.ok(), answered.payload()), (77, Some(true), &b"asked"[..]));
    peer.send_bytes(tail);
    peer.end_output();
    conn.close().expect("a clean close");
    assert_no_threads(&name);
}

#[test]
fn answers_are_not_held_behind_a_partial_frame_pipes() {
    not_held_behind_a_partial_frame(Kind::Pipe);
}

#[test]
fn answers_are_not_held_behind_a_partial_frame_sockets() {
    not_held_behind_a_partial_frame(Kind::Unix);
}

#[test]
fn answers_are_not_held_behind_a_partial_frame_memory() {
    not_held_behind_a_partial_frame(Kind::Memory);
}

// ---------------------------------------------------------------------------
// A peer that sends requests and never reads the answers.

fn never_reads_answers(kind: Kind) {
    let _shared = shared();
    let name = kind.name('w');
    let close_timeout = Duration::from_millis(500);
    let (transport, mut peer) = raw_pair(kind);
    // 16 KiB answers: small enough to be written directly by the worker that
    // made them, so a worker, not only the writer thread, blocks on the stream.
    let handler = |_rq: Request| vec![0x5au8; 16 << 10];
    let conn = PacketConnection::with_handler(transport, config(name.clone()).close_timeout(close_timeout), handler)
        .expect("start");
    let mut requests = Vec::new();
    for tag in 2..402u64 {
        requests.extend(frame(&packetstream::Packet::request(0, tag, 0, 0, Vec::new()).unwrap()));
    }
    peer.send_bytes(&requests);
    // Until the answers fill the stream and the send queue.
    let filled = wait_for(PROMPT, || conn.stats().requests_in == 400);
    assert!(filled, "the reader stopped reading: {:?}", conn.stats());
    let start = Instant::now();
    let outcome = conn.close();
    let took = start.elapsed();
    assert!(took < close_timeout + Duration::from_secs(1) + PROMPT / 2, "close took {took:?}");
    assert!(timed_out(&outcome), "close gave {outcome:?}");
    peer.hang_up();
    assert_no_threads(&name);
    eprintln!("never reads answers ({kind:?}): close took {took:?}: {:?}", outcome.err());
}

#[test]
fn peer_never_reads_answers_close_reports_it_pipes() {
    never_reads_answers(Kind::Pipe);
}

#[test]
fn peer_never_reads_answers_close_reports_it_sockets() {
    never_reads_answers(Kind::Unix);
}

#[test]
fn peer_never_reads_answers_close_reports_it_memory() {
    never_reads_answers(Kind::Memory);
}
