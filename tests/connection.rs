//! PacketConnection end to end: every scenario runs over pipes, a Unix
//! socketpair, TCP on 127.0.0.1 and the in-memory transport (see the
//! `over_all_transports!` list at the end). Every wait is bounded, and every
//! scenario checks at its end that the connections left no thread running.

mod util;

use std::io::{Read, Write};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use packetstream::{
    CallTimeoutError, CloseProblem, CloseStep, Config, ConfigBuilder, ConnectionError, Error, Failure, Handler,
    InvalidRequest, JoinTimeoutError, Packet, PacketConnection, Pending, ProtocolError, Request, Response, StepOutcome,
    SubmitError, SubmitTimeoutError, TryWaitError, ValueTooLarge, WaitTimeoutError, MAX_REQUEST_FLAGS,
    MAX_RESPONSE_FLAGS, MAX_RQ_TYPE,
};
use util::{
    assert_no_threads, await_threads, close, close_both_ok, raw_pair, shuffle, start_close, start_close_with,
    transport_pair, within, Kind, RawPeer, LONG,
};

/// Long enough for a wait that is meant to time out, short enough to keep
/// the suite fast.
const SHORT: Duration = Duration::from_millis(30);

fn config(name: &str) -> ConfigBuilder {
    Config::builder().name(name)
}

/// A client (no handler) and a server answering with `handler`.
fn pair(kind: Kind, handler: impl Handler) -> (PacketConnection, PacketConnection) {
    pair_with(kind, config(&kind.name('c')), config(&kind.name('s')), handler)
}

fn pair_with(
    kind: Kind,
    client: impl Into<Config>,
    server: impl Into<Config>,
    handler: impl Handler,
) -> (PacketConnection, PacketConnection) {
    let (a, b) = transport_pair(kind);
    let server = PacketConnection::with_handler(b, server, handler).expect("start server");
    let client = PacketConnection::new(a, client).expect("start client");
    (client, server)
}

fn echo(rq: Request) -> Vec<u8> {
    rq.payload
}

/// What the test servers make of a request, computed independently on the
/// checking side.
fn transform(rq_type: u64, payload: &[u8]) -> Vec<u8> {
    let mut out: Vec<u8> = payload.iter().rev().map(|b| b.wrapping_add(1)).collect();
    out.extend_from_slice(rq_type.to_string().as_bytes());
    out
}

fn transform_handler(rq: Request) -> (u64, Vec<u8>) {
    (rq.flags ^ 0x5a, transform(rq.rq_type, &rq.payload))
}

/// Waits at most [`LONG`]; a timeout is `Error::Timeout` (the request given up).
fn wait(pending: Pending) -> Result<Response, Error> {
    pending.wait_timeout(LONG).map_err(Error::from)
}

fn expect_ok<E: Into<Error>>(result: Result<Response, E>, what: &str) -> Response {
    match result.map_err(Into::into) {
        Ok(response) => response,
        Err(error) => panic!("{what}: expected an answer, got {error:?}"),
    }
}

fn expect_failed<E: Into<Error>>(result: Result<Response, E>, what: &str) -> Failure {
    match result.map_err(Into::into) {
        Err(Error::Failed(failure)) => failure,
        other => panic!("{what}: expected a failed answer, got {other:?}"),
    }
}

/// An error that means "no answer will come because the connection ended":
/// not a timeout, not the peer's refusal.
fn expect_connection_error<E: Into<Error>>(result: Result<Response, E>, what: &str) -> ConnectionError {
    match result.map_err(Into::into) {
        Err(Error::Connection(error)) => error,
        other => panic!("{what}: expected a connection error, got {other:?}"),
    }
}

/// A handler gate: handlers announce that they started and then block until
/// the test opens the gate (or [`LONG`] passes, so nothing blocks forever).
struct Gate {
    started_tx: Sender<Request>,
    started: Receiver<Request>,
    open_tx: Option<Sender<()>>,
    open_rx: Receiver<()>,
}

impl Gate {
    fn new() -> Self {
        let (started_tx, started) = crossbeam_channel::unbounded();
        let (open_tx, open_rx) = crossbeam_channel::unbounded();
        Gate { started_tx, started, open_tx: Some(open_tx), open_rx }
    }

    /// A handler that echoes after passing the gate.
    fn echo_handler(&self) -> impl Handler {
        let (started, open) = (self.started_tx.clone(), self.open_rx.clone());
        move |rq: Request| {
            let _ = started.send(rq.clone());
            let _ = open.recv_timeout(LONG);
            rq.payload
        }
    }

    /// Waits until a handler has started, and returns its request.
    fn wait_started(&self) -> Request {
        self.started.recv_timeout(LONG).expect("a handler should have started")
    }

    /// Lets one handler through.
    fn let_one_through(&self) {
        self.open_tx.as_ref().expect("gate already opened for good").send(()).expect("gate open");
    }

    /// Lets every handler through, now and later.
    fn open(&mut self) {
        self.open_tx = None;
    }
}

// ---------------------------------------------------------------------------
// Scenarios. Each takes the transport kind and a test id that makes its
// connection (and so thread) names unique.

fn open_then_close(kind: Kind) {
    let (client, server) = pair(kind, echo);
    let (c, s) = (client.name().to_owned(), server.name().to_owned());
    assert_eq!(client.outstanding(), 0);
    // The thread check below can see the connections' threads.
    await_threads(&c, &["reader", "writer"]);
    await_threads(&s, &["reader", "writer"]);
    let (a, b) = close_both_ok(client, server);
    assert!(a.exit_status().is_none() && b.exit_status().is_none());
    assert!(a.unread().is_empty() && b.unread().is_empty());
    // Every step of a clean close did its work, but for those with nothing to do.
    for finished in [&a, &b] {
        let report = finished.report();
        let outcomes: Vec<StepOutcome> = report.steps().iter().map(|step| step.outcome).collect();
        use StepOutcome::{Done, Skipped};
        assert_eq!(outcomes, [Skipped, Done, Done, Done, Done, Skipped, Done], "{report}");
        assert!(report.is_clean());
        assert!(report.took() < LONG, "{report}");
    }
    assert_no_threads(&c);
    assert_no_threads(&s);
}

fn sequential_calls(kind: Kind) {
    let (client, server) = pair(kind, transform_handler);
    let (c, s) = (client.name().to_owned(), server.name().to_owned());
    for i in 0..16u64 {
        let payload = format!("call number {i}").into_bytes();
        let answer = expect_ok(client.call_timeout(i % 5, i, payload.clone(), LONG), "sequential call");
        assert_eq!(answer.flags, i ^ 0x5a);
        assert_eq!(answer.payload, transform(i % 5, &payload));
    }
    assert_eq!(client.outstanding(), 0);
    // Workers start one at a time, as jobs find none idle: at least one has.
    await_threads(&s, &["worker-0"]);
    close_both_ok(client, server);
    assert_no_threads(&c);
    assert_no_threads(&s);
}

fn pipelined_from_threads(kind: Kind) {
    const THREADS: u64 = 4;
    const EACH: u64 = 500;
    // Callers that sleep at once (no wait spin), unlike the other scenarios.
    let client_config = config(&kind.name('c')).wait_spin(Duration::ZERO);
    let (client, server) = pair_with(kind, client_config, config(&kind.name('s')), transform_handler);
    let (c, s) = (client.name().to_owned(), server.name().to_owned());
    let client = Arc::new(client);
    let (tx, rx) = crossbeam_channel::unbounded();
    for t in 0..THREADS {
        let (client, tx) = (Arc::clone(&client), tx.clone());
        thread::spawn(move || {
            let mut submitted = Vec::new();
            for i in 0..EACH {
                let n = t * EACH + i;
                let payload = format!("t{t} i{i}").into_bytes();
                let pending = client.submit(n % 7, n, payload.clone()).expect("submit");
                submitted.push((n, payload, pending));
            }
            drop(client);
            let _ = tx.send(submitted);
        });
    }
    drop(tx);
    let mut all = Vec::new();
    for _ in 0..THREADS {
        all.extend(rx.recv_timeout(LONG).expect("a submitting thread finished"));
    }
    assert_eq!(all.len() as u64, THREADS * EACH);
    // Every request has its own tag, from 2 up on channel 0.
    let mut tags: Vec<u64> = all.iter().map(|(_, _, p)| p.tag()).collect();
    tags.sort_unstable();
    tags.dedup();
    assert_eq!(tags.len() as u64, THREADS * EACH);
    assert!(tags[0] >= 2);
    assert!(all.iter().all(|(_, _, p)| p.channel() == 0));

    // Collect in an order unrelated to submission: reversed, then shuffled.
    all.reverse();
    shuffle(&mut all, 0x9e37_79b9_7f4a_7c15);
    for (n, payload, pending) in all {
        let answer = expect_ok(wait(pending), "pipelined request");
        assert_eq!(answer.flags, n ^ 0x5a, "request {n}");
        assert_eq!(answer.payload, transform(n % 7, &payload), "request {n}");
    }
    assert_eq!(client.outstanding(), 0);
    assert_eq!(client.stats().responses_in, THREADS * EACH);
    assert_eq!(server.stats().requests_in, THREADS * EACH);
    let client = Arc::try_unwrap(client).expect("the submitting threads have let go");
    close_both_ok(client, server);
    assert_no_threads(&c);
    assert_no_threads(&s);
}

fn large_payloads_round_trip(kind: Kind) {
    let (client, server) = pair(kind, transform_handler);
    let (c, s) = (client.name().to_owned(), server.name().to_owned());
    // Large payloads (past the writer's and the reader's buffers) mixed with
    // small ones, all in flight at once.
    let sizes = [100_000usize, 7, (1 << 20) + 12_345, 0, 40_000, 70_000, 1];
    let pending: Vec<_> = sizes
        .iter()
        .enumerate()
        .map(|(i, &size)| {
            let payload: Vec<u8> = (0..size).map(|j| (j % 251) as u8 ^ i as u8).collect();
            let p = client.submit(i as u64, i as u64, payload.clone()).expect("submit");
            (i as u64, payload, p)
        })
        .collect();
    for (i, payload, p) in pending.into_iter().rev() {
        let answer = expect_ok(wait(p), "large request");
        assert_eq!(answer.flags, i ^ 0x5a);
        assert!(answer.payload == transform(i, &payload), "request {i} of {} bytes: wrong answer", payload.len());
    }
    close_both_ok(client, server);
    assert_no_threads(&c);
    assert_no_threads(&s);
}

fn both_directions_at_once(kind: Kind) {
    const EACH: u64 = 300;
    let (a_name, b_name) = (kind.name('a'), kind.name('b'));
    let (ta, tb) = transport_pair(kind);
    let tagged = |side: u8| {
        move |rq: Request| {
            let mut out = vec![side];
            out.extend_from_slice(&rq.payload);
            (rq.flags + 1, out)
        }
    };
    // Side a lingers for more packets before it flushes; side b does not.
    let a_config = config(&a_name).packet_grace(Duration::from_millis(1));
    let a = Arc::new(PacketConnection::with_handler(ta, a_config, tagged(b'A')).unwrap());
    let b = Arc::new(PacketConnection::with_handler(tb, config(&b_name), tagged(b'B')).unwrap());
    let (go_tx, go) = crossbeam_channel::bounded::<()>(0);
    let (done_tx, done) = crossbeam_channel::unbounded();
    for (me, peer_letter, conn) in [('a', b'B', Arc::clone(&a)), ('b', b'A', Arc::clone(&b))] {
        let (go, done_tx) = (go.clone(), done_tx.clone());
        thread::spawn(move || {
            // Both start together, so both readers carry requests and
            // responses interleaved.
            let _ = go.recv_timeout(LONG);
            let result = (|| -> Result<(), String> {
                let mut pending = Vec::new();
                for i in 0..EACH {
                    let payload = format!("{me}{i}").into_bytes();
                    pending.push((i, payload.clone(), conn.submit(0, i, payload).map_err(|e| e.to_string())?));
                }
                pending.reverse();
                for (i, payload, p) in pending {
                    let answer = p.wait_timeout(LONG).map_err(|e| format!("{me} request {i}: {e}"))?;
                    let mut expected = vec![peer_letter];
                    expected.extend_from_slice(&payload);
                    if answer.flags != i + 1 || answer.payload != expected {
                        return Err(format!("{me} request {i}: wrong answer {answer:?}"));
                    }
                }
                Ok(())
            })();
            drop(conn);
            let _ = done_tx.send(result);
        });
    }
    drop(go_tx); // disconnecting starts both at once
    for _ in 0..2 {
        done.recv_timeout(LONG).expect("a side finished").expect("a side's requests were answered");
    }
    assert_eq!(a.stats().requests_in, EACH);
    assert_eq!(b.stats().requests_in, EACH);
    assert_eq!(a.stats().responses_in, EACH);
    assert_eq!(b.stats().responses_in, EACH);
    let a = Arc::try_unwrap(a).expect("side a released");
    let b = Arc::try_unwrap(b).expect("side b released");
    close_both_ok(a, b);
    assert_no_threads(&a_name);
    assert_no_threads(&b_name);
}

fn handler_errors_and_panics(kind: Kind) {
    // One worker: the requests after a panic are served by the same thread.
    let (client, server) = pair_with(
        kind,
        config(&kind.name('c')),
        config(&kind.name('s')).workers(1),
        |rq: Request| -> Result<Vec<u8>, String> {
            let text = String::from_utf8(rq.payload.clone()).unwrap();
            match rq.rq_type {
                0 => Ok(rq.payload),
                1 => Err(format!("no good: {text}")),
                _ => panic!("boom {text}"),
            }
        },
    );
    let (c, s) = (client.name().to_owned(), server.name().to_owned());
    let kinds = [0, 1, 0, 2, 0, 1, 2, 2, 0, 0, 1, 0];
    let pending: Vec<_> = kinds
        .iter()
        .enumerate()
        .map(|(i, &rq_type)| (i, rq_type, client.submit(rq_type, 0, format!("r{i}")).expect("submit")))
        .collect();
    for (i, rq_type, p) in pending {
        let result = wait(p);
        match rq_type {
            0 => assert_eq!(expect_ok(result, "good request").payload, format!("r{i}").as_bytes()),
            1 => {
                let failure = expect_failed(result, "handler error");
                assert_eq!(failure.flags, 0);
                assert_eq!(failure.text(), format!("no good: r{i}"));
            }
            _ => {
                let failure = expect_failed(result, "handler panic");
                assert_eq!(failure.flags, 0);
                let text = failure.text();
                assert!(text.starts_with("handler panicked"), "{text}");
                assert!(text.contains(&format!("boom r{i}")), "{text}");
            }
        }
    }
    // The connection and its one worker are still fine.
    assert_eq!(expect_ok(client.call_timeout(0, 0, b"after".to_vec(), LONG), "after panics").payload, b"after");
    close_both_ok(client, server);
    assert_no_threads(&c);
    assert_no_threads(&s);
}

fn failure_with_flags(kind: Kind) {
    let (client, server) = pair(kind, |rq: Request| -> Result<Response, Failure> {
        match rq.rq_type {
            0 => Err(Failure::with_flags(rq.flags, rq.payload)),
            1 => Err(Failure::new("plain")),
            _ => Ok(Response { flags: rq.flags, payload: rq.payload }),
        }
    });
    let (c, s) = (client.name().to_owned(), server.name().to_owned());
    let failure = expect_failed(client.call_timeout(0, 77, b"\x00\xffbytes".to_vec(), LONG), "with_flags");
    assert_eq!(failure, Failure::with_flags(77, b"\x00\xffbytes".to_vec()));
    let err = client.call_timeout(0, MAX_RESPONSE_FLAGS, Vec::new(), LONG).unwrap_err();
    assert_eq!(err.failure().map(|f| f.flags), Some(MAX_RESPONSE_FLAGS));
    let failure = expect_failed(client.call_timeout(1, 5, Vec::new(), LONG), "plain");
    assert_eq!((failure.flags, failure.text().into_owned()), (0, "plain".to_owned()));
    let ok = expect_ok(client.call_timeout(2, 9, b"fine".to_vec(), LONG), "ok");
    assert_eq!(ok, Response { flags: 9, payload: b"fine".to_vec() });
    close_both_ok(client, server);
    assert_no_threads(&c);
    assert_no_threads(&s);
}

/// Starts a pair whose server uses `handler`, makes one call, closes both.
fn one_answer(kind: Kind, handler: impl Handler) -> Result<Response, CallTimeoutError> {
    let (client, server) = pair(kind, handler);
    let (c, s) = (client.name().to_owned(), server.name().to_owned());
    let result = client.call_timeout(0, 0, b"in".to_vec(), LONG);
    close_both_ok(client, server);
    assert_no_threads(&c);
    assert_no_threads(&s);
    result
}

fn handler_return_conversions(kind: Kind) {
    let r = |flags: u64, payload: &[u8]| Response { flags, payload: payload.to_vec() };
    assert_eq!(one_answer(kind, |_: Request| {}).unwrap(), r(0, b""));
    assert_eq!(one_answer(kind, |_: Request| 42u64).unwrap(), r(42, b""));
    assert_eq!(one_answer(kind, |rq: Request| [rq.payload, b"!".to_vec()].concat()).unwrap(), r(0, b"in!"));
    assert_eq!(one_answer(kind, |_: Request| &b"slice"[..]).unwrap(), r(0, b"slice"));
    assert_eq!(one_answer(kind, |_: Request| "a str").unwrap(), r(0, b"a str"));
    assert_eq!(one_answer(kind, |_: Request| String::from("a string")).unwrap(), r(0, b"a string"));
    assert_eq!(one_answer(kind, |_: Request| (3u64, b"pair".to_vec())).unwrap(), r(3, b"pair"));
    assert_eq!(one_answer(kind, |_: Request| -> Result<u64, String> { Ok(8) }).unwrap(), r(8, b""));
    let io_error = |_: Request| -> Result<(), std::io::Error> { Err(std::io::Error::other("disk on fire")) };
    let failure = expect_failed(one_answer(kind, io_error), "io error");
    assert_eq!((failure.flags, failure.text().into_owned()), (0, "disk on fire".to_owned()));
    let failure = expect_failed(one_answer(kind, |_: Request| -> Result<(), &str> { Err("nope") }), "&str");
    assert_eq!(failure.text(), "nope");
    // Flags that cannot travel in a response fail the request instead.
    let failure = expect_failed(one_answer(kind, |_: Request| u64::MAX), "flags too large");
    assert!(failure.text().starts_with("handler's answer does not fit"), "{:?}", failure.text());
}

fn refused_after_peer_erq(kind: Kind) {
    let name = kind.name('c');
    let (transport, mut raw) = raw_pair(kind);
    let conn = PacketConnection::with_handler(transport, config(&name), echo).unwrap();
    raw.send_packet(&Packet::request(0, 2, 0, 0, b"before".to_vec()).unwrap());
    assert_eq!(raw.recv(), Packet::response(0, 2, true, 0, b"before".to_vec()).unwrap());
    raw.send_packet(&Packet::erq());
    raw.send_packet(&Packet::request(0, 3, 0, 0, b"after".to_vec()).unwrap());
    assert_eq!(raw.recv(), Packet::response(0, 3, false, 0, b"requests no longer allowed".to_vec()).unwrap());
    // The peer's ERQ ends its requests, not ours.
    let pending = conn.submit(4, 6, b"ours".to_vec()).unwrap();
    let request = raw.recv();
    assert_eq!(request, Packet::request(0, 2, 4, 6, b"ours".to_vec()).unwrap());
    raw.send_packet(&Packet::response(0, 2, true, 1, b"answered".to_vec()).unwrap());
    assert_eq!(expect_ok(wait(pending), "our request"), Response { flags: 1, payload: b"answered".to_vec() });
    // A clean close on the wire: ERQ, EOF; then the peer's EOF ends it.
    let closing = start_close(conn);
    assert_eq!(raw.recv(), Packet::erq());
    assert_eq!(raw.recv(), Packet::eof());
    raw.send_packet(&Packet::eof());
    closing.result().expect("clean close");
    raw.recv_end();
    assert_no_threads(&name);
}

fn refused_tag_in_use(kind: Kind) {
    let name = kind.name('c');
    let (transport, mut raw) = raw_pair(kind);
    let mut gate = Gate::new();
    let conn = PacketConnection::with_handler(transport, config(&name), gate.echo_handler()).unwrap();
    raw.send_packet(&Packet::request(0, 7, 0, 0, b"first".to_vec()).unwrap());
    assert_eq!(gate.wait_started().payload, b"first");
    // Tag 7 is being served: a second request with it is refused at once.
    raw.send_packet(&Packet::request(0, 7, 0, 0, b"second".to_vec()).unwrap());
    assert_eq!(raw.recv(), Packet::response(0, 7, false, 0, b"channel 0: tag already in use: 7".to_vec()).unwrap());
    gate.let_one_through();
    assert_eq!(raw.recv(), Packet::response(0, 7, true, 0, b"first".to_vec()).unwrap());
    // Once answered, the tag may be used again.
    gate.open();
    raw.send_packet(&Packet::request(0, 7, 0, 0, b"third".to_vec()).unwrap());
    assert_eq!(raw.recv(), Packet::response(0, 7, true, 0, b"third".to_vec()).unwrap());
    raw.send_packet(&Packet::eof());
    close(conn).expect("close");
    assert_no_threads(&name);
}

fn refused_unknown_channel(kind: Kind) {
    let name = kind.name('c');
    let (transport, mut raw) = raw_pair(kind);
    let conn = PacketConnection::with_handler(transport, config(&name).serve_channel(7), echo).unwrap();
    raw.send_packet(&Packet::request(5, 0, 0, 0, b"five".to_vec()).unwrap());
    assert_eq!(raw.recv(), Packet::response(5, 0, false, 0, b"unknown channel 5".to_vec()).unwrap());
    raw.send_packet(&Packet::request(7, 0, 0, 0, b"seven".to_vec()).unwrap());
    assert_eq!(raw.recv(), Packet::response(7, 0, true, 0, b"seven".to_vec()).unwrap());
    raw.send_packet(&Packet::request(0, 2, 0, 0, b"zero".to_vec()).unwrap());
    assert_eq!(raw.recv(), Packet::response(0, 2, true, 0, b"zero".to_vec()).unwrap());
    raw.send_packet(&Packet::eof());
    close(conn).expect("close");
    assert_no_threads(&name);
}

fn refused_no_handler(kind: Kind) {
    let name = kind.name('c');
    let (transport, mut raw) = raw_pair(kind);
    let conn = PacketConnection::new(transport, config(&name)).unwrap();
    for tag in [2, 3] {
        raw.send_packet(&Packet::request(0, tag, 3, 4, b"anyone?".to_vec()).unwrap());
        assert_eq!(raw.recv(), Packet::response(0, tag, false, 0, b"no request handler".to_vec()).unwrap());
    }
    // The reader counts a refusal just after queueing it, so only the first
    // is certainly counted by now.
    let stats = conn.stats();
    assert_eq!(stats.requests_in, 2);
    assert!(stats.responses_out >= 1, "{stats:?}");
    raw.send_packet(&Packet::eof());
    close(conn).expect("close");
    assert_no_threads(&name);
}

fn tags_per_channel(kind: Kind) {
    let name = kind.name('c');
    let (transport, mut raw) = raw_pair(kind);
    let conn = PacketConnection::new(transport, config(&name)).unwrap();
    let mut pending = Vec::new();
    for (channel, i) in [(0, 0u64), (0, 1), (5, 2), (0, 3), (5, 4), (9, 5)] {
        let p = conn.submit_on(channel, i, i * 3, format!("q{i}")).unwrap();
        pending.push(p);
    }
    let tags: Vec<(u64, u64)> = pending.iter().map(|p| (p.channel(), p.tag())).collect();
    assert_eq!(tags, [(0, 2), (0, 3), (5, 0), (0, 4), (5, 1), (9, 0)]);
    let mut requests = Vec::new();
    for (i, &(channel, tag)) in tags.iter().enumerate() {
        let i = i as u64;
        let request = raw.recv();
        assert_eq!(request, Packet::request(channel, tag, i, i * 3, format!("q{i}").into_bytes()).unwrap());
        requests.push(request);
    }
    assert_eq!(conn.outstanding(), 6);
    // A response to a tag never issued is ignored.
    raw.send_packet(&Packet::response(0, 99, true, 0, b"stray".to_vec()).unwrap());
    raw.send_packet(&Packet::response(5, 2, true, 0, b"stray".to_vec()).unwrap());
    // Answer in reverse order, each with its own flags and payload.
    for request in requests.iter().rev() {
        let payload = [b"re:".as_slice(), request.payload()].concat();
        raw.send_packet(
            &Packet::response(request.channel(), request.tag(), true, request.tag() + 100, payload).unwrap(),
        );
    }
    for (i, p) in pending.into_iter().enumerate() {
        let tag = p.tag();
        let answer = expect_ok(wait(p), "tagged request");
        assert_eq!(answer.flags, tag + 100);
        assert_eq!(answer.payload, format!("re:q{i}").into_bytes());
    }
    assert_eq!(conn.outstanding(), 0);
    // Tags are not reused.
    let p = conn.submit_on(5, 0, 0, Vec::new()).unwrap();
    assert_eq!((p.channel(), p.tag()), (5, 2));
    drop(p);
    let p = conn.submit(0, 0, Vec::new()).unwrap();
    assert_eq!((p.channel(), p.tag()), (0, 5));
    drop(p);
    raw.send_packet(&Packet::eof());
    close(conn).expect("close");
    assert_no_threads(&name);
}

fn peer_dies_mid_request(kind: Kind) {
    let name = kind.name('c');
    let (transport, mut raw) = raw_pair(kind);
    let conn = Arc::new(PacketConnection::new(transport, config(&name)).unwrap());
    // Three callers, each on its own thread, each waiting for its answer.
    let (result_tx, results) = crossbeam_channel::unbounded();
    let (submitted_tx, submitted) = crossbeam_channel::unbounded();
    for i in 0..3u8 {
        let (conn, result_tx, submitted_tx) = (Arc::clone(&conn), result_tx.clone(), submitted_tx.clone());
        thread::spawn(move || {
            let pending = conn.submit(0, 0, vec![i]).expect("submit");
            drop(conn);
            let _ = submitted_tx.send(());
            let _ = result_tx.send(pending.wait_timeout(Duration::from_secs(5)));
        });
    }
    for _ in 0..3 {
        submitted.recv_timeout(LONG).expect("submitted");
        raw.recv();
    }
    raw.hang_up();
    for _ in 0..3 {
        let result = results.recv_timeout(LONG).expect("a caller returned");
        expect_connection_error(result, "caller when the peer died");
    }
    // The connection knows it has ended.
    let ended = conn.join_recv_timeout(LONG);
    assert!(!matches!(ended, Err(JoinTimeoutError::Timeout)), "{ended:?}");
    let refused = conn.submit_timeout(0, 0, 0, Vec::new(), LONG);
    assert!(matches!(refused, Err(SubmitTimeoutError::Connection(_))), "{refused:?}");
    let conn = Arc::try_unwrap(conn).expect("callers let go");
    let _ = close(conn);
    assert_no_threads(&name);
}

fn peer_eof_fails_waiting_requests(kind: Kind) {
    let name = kind.name('c');
    let (transport, mut raw) = raw_pair(kind);
    let conn = PacketConnection::new(transport, config(&name)).unwrap();
    let pending = conn.submit(0, 0, b"unanswered".to_vec()).unwrap();
    raw.recv();
    // The peer says EOF but keeps its stream open.
    raw.send_packet(&Packet::eof());
    let peer_closed = |error: &ConnectionError| matches!(error, ConnectionError::PeerClosed { reason: None });
    assert!(matches!(wait(pending), Err(Error::Connection(ref e)) if peer_closed(e)));
    assert!(matches!(conn.join_recv_timeout(LONG), Ok(())));
    let refused = conn.submit_timeout(0, 0, 0, Vec::new(), LONG);
    assert!(matches!(refused, Err(SubmitTimeoutError::Connection(ref e)) if peer_closed(e)), "{refused:?}");
    assert_eq!(conn.outstanding(), 0);
    let closing = start_close(conn);
    assert_eq!(raw.recv(), Packet::erq());
    assert_eq!(raw.recv(), Packet::eof());
    closing.result().expect("clean close after the peer's EOF");
    assert_no_threads(&name);
}

fn too_many_incoming_ends_connection(kind: Kind) {
    let name = kind.name('c');
    let (transport, mut raw) = raw_pair(kind);
    let mut gate = Gate::new();
    let conn = PacketConnection::with_handler(transport, config(&name).max_incoming(2), gate.echo_handler()).unwrap();
    raw.send_packet(&Packet::request(0, 2, 0, 0, b"one".to_vec()).unwrap());
    raw.send_packet(&Packet::request(0, 3, 0, 0, b"two".to_vec()).unwrap());
    gate.wait_started();
    gate.wait_started();
    raw.send_packet(&Packet::request(0, 4, 0, 0, b"three".to_vec()).unwrap());
    let ended = conn.join_recv_timeout(LONG);
    assert!(
        matches!(ended, Err(JoinTimeoutError::Connection(ConnectionError::TooManyIncoming { limit: 2 }))),
        "{ended:?}"
    );
    gate.open();
    let closed = close(conn).unwrap_err();
    assert!(
        matches!(closed.problem(), CloseProblem::Connection(ConnectionError::TooManyIncoming { limit: 2 })),
        "{closed:?}"
    );
    assert_no_threads(&name);
}

fn malformed_control_packet_ends_connection(kind: Kind) {
    let name = kind.name('c');
    let (transport, mut raw) = raw_pair(kind);
    let conn = PacketConnection::new(transport, config(&name)).unwrap();
    let pending = conn.submit(0, 0, Vec::new()).unwrap();
    raw.recv();
    // Wire type 0 with tag 5: neither EOF nor ERQ.
    raw.send_bytes(&[0x03, 0x05, 0x02, 0x00]);
    let expected = ProtocolError::BadControlPacket { channel: 0, tag: 5 };
    let is_expected = |error: &ConnectionError| matches!(error, ConnectionError::Protocol(e) if *e == expected);
    assert!(matches!(wait(pending), Err(Error::Connection(ref e)) if is_expected(e)));
    assert!(matches!(conn.join_recv_timeout(LONG), Err(JoinTimeoutError::Connection(ref e)) if is_expected(e)));
    let closed = close(conn).unwrap_err();
    assert!(matches!(closed.problem(), CloseProblem::Connection(e) if is_expected(e)), "{closed:?}");
    assert_no_threads(&name);
}

fn oversized_packet_ends_connection(kind: Kind) {
    let name = kind.name('c');
    let (transport, mut raw) = raw_pair(kind);
    let conn = PacketConnection::new(transport, config(&name).max_packet_size(64)).unwrap();
    let pending = conn.submit(0, 0, Vec::new()).unwrap();
    let request = raw.recv();
    raw.send_packet(&Packet::response(0, request.tag(), true, 0, vec![1u8; 100]).unwrap());
    let result = wait(pending);
    let too_large = ConnectionError::Protocol(ProtocolError::PacketTooLarge { len: 102, max: 64 });
    assert!(matches!(result, Err(Error::Connection(ref e)) if e.to_string() == too_large.to_string()), "{result:?}");
    let _ = close(conn);
    assert_no_threads(&name);
}

fn close_waits_for_running_handlers(kind: Kind) {
    let name = kind.name('c');
    let (transport, mut raw) = raw_pair(kind);
    let mut gate = Gate::new();
    let conn = PacketConnection::with_handler(transport, config(&name), gate.echo_handler()).unwrap();
    raw.send_packet(&Packet::request(0, 2, 0, 0, b"slow".to_vec()).unwrap());
    gate.wait_started();
    let closing = start_close(conn);
    // Close says ERQ at once, but holds EOF back until the handler answers.
    assert_eq!(raw.recv(), Packet::erq());
    assert_eq!(raw.recv_within(SHORT), None, "nothing else may be sent while the handler runs");
    gate.open();
    assert_eq!(raw.recv(), Packet::response(0, 2, true, 0, b"slow".to_vec()).unwrap());
    assert_eq!(raw.recv(), Packet::eof());
    raw.send_packet(&Packet::eof());
    closing.result().expect("clean close");
    assert_no_threads(&name);
}

fn close_server_with_handler_blocked(kind: Kind) {
    let mut gate = Gate::new();
    let (client, server) = pair_with(
        kind,
        config(&kind.name('c')),
        config(&kind.name('s')).close_timeout(Duration::from_millis(200)),
        gate.echo_handler(),
    );
    let (c, s) = (client.name().to_owned(), server.name().to_owned());
    let pending = client.submit(0, 0, b"stuck".to_vec()).unwrap();
    gate.wait_started();
    let closed = close(server);
    match closed.as_ref().map_err(|error| error.problem()) {
        Err(CloseProblem::TimedOut(what)) => assert!(what.contains(&format!("{s}-worker-")), "{what}"),
        other => panic!("closing with a handler stuck: expected a timeout, got {other:?}"),
    }
    let error = closed.unwrap_err();
    assert!(error.is_timeout());
    let report = error.report();
    assert_eq!(report.step(CloseStep::DrainHandlers).outcome, StepOutcome::TimedOut, "{report}");
    assert!(report.step(CloseStep::DrainHandlers).took >= Duration::from_millis(150), "{report}");
    assert!(!report.is_clean());
    // The caller learns that no answer will come.
    expect_connection_error(wait(pending), "caller of a closed server");
    gate.open();
    let _ = close(client);
    assert_no_threads(&c);
    assert_no_threads(&s);
}

fn close_client_with_request_in_flight(kind: Kind) {
    let mut gate = Gate::new();
    let (client, server) = pair_with(
        kind,
        config(&kind.name('c')).close_timeout(Duration::from_millis(200)),
        config(&kind.name('s')),
        gate.echo_handler(),
    );
    let (c, s) = (client.name().to_owned(), server.name().to_owned());
    let client = Arc::new(client);
    let (tx, rx) = crossbeam_channel::bounded(1);
    let (released_tx, released) = crossbeam_channel::bounded(1);
    {
        let client = Arc::clone(&client);
        thread::spawn(move || {
            let pending = client.submit(0, 0, b"in flight".to_vec()).expect("submit");
            drop(client);
            let _ = released_tx.send(());
            let _ = tx.send(pending.wait_timeout(LONG));
        });
    }
    gate.wait_started();
    released.recv_timeout(LONG).expect("the caller let go of its handle");
    let client = Arc::try_unwrap(client).expect("only this handle is left");
    let _ = close(client);
    expect_connection_error(rx.recv_timeout(LONG).expect("the caller returned"), "caller of a closed client");
    gate.open();
    let _ = close(server);
    assert_no_threads(&c);
    assert_no_threads(&s);
}

fn drop_without_close(kind: Kind) {
    let (client, server) = pair(kind, echo);
    let (c, s) = (client.name().to_owned(), server.name().to_owned());
    assert_eq!(expect_ok(client.call_timeout(0, 0, b"x".to_vec(), LONG), "call").payload, b"x");
    // Dropped at the same time, each waits for the other's EOF.
    let (done_tx, done) = crossbeam_channel::unbounded();
    for conn in [client, server] {
        let done_tx = done_tx.clone();
        thread::spawn(move || {
            drop(conn);
            let _ = done_tx.send(());
        });
    }
    for _ in 0..2 {
        done.recv_timeout(LONG).expect("drop returned");
    }
    assert_no_threads(&c);
    assert_no_threads(&s);
}

fn drop_one_after_the_other(kind: Kind) {
    // The worst order: the first drop waits for an EOF the second has not
    // sent yet, until its close timeout.
    let quick = Duration::from_millis(200);
    let (client, server) = pair_with(
        kind,
        config(&kind.name('c')).close_timeout(quick),
        config(&kind.name('s')).close_timeout(quick),
        echo,
    );
    let (c, s) = (client.name().to_owned(), server.name().to_owned());
    assert_eq!(expect_ok(client.call_timeout(0, 0, b"x".to_vec(), LONG), "call").payload, b"x");
    within(LONG, "dropping both", move || {
        drop(client);
        drop(server);
    });
    assert_no_threads(&c);
    assert_no_threads(&s);
}

fn wait_try_wait_and_cancel(kind: Kind) {
    let mut gate = Gate::new();
    let (client, server) = pair(kind, gate.echo_handler());
    let (c, s) = (client.name().to_owned(), server.name().to_owned());

    let pending = client.submit(0, 0, b"one".to_vec()).unwrap();
    gate.wait_started();
    let Err(TryWaitError::NotReady(pending)) = pending.try_wait() else { panic!("answered before the gate") };
    assert!(!pending.is_ready());
    // A wait that times out hands the request back, still in flight.
    let Err(WaitTimeoutError::Timeout(pending)) = pending.wait_timeout(SHORT) else { panic!("answered early") };
    let Err(WaitTimeoutError::Timeout(pending)) = pending.wait_deadline(Instant::now() + SHORT) else {
        panic!("answered early")
    };
    assert_eq!((pending.channel(), pending.tag()), (0, 2));
    assert_eq!(client.outstanding(), 1, "a timed-out wait leaves the request in flight");
    gate.let_one_through();
    assert_eq!(expect_ok(wait(pending), "after the gate").payload, b"one");

    // try_wait picks up an answer that has arrived.
    let mut pending = client.submit(0, 0, b"two".to_vec()).unwrap();
    gate.wait_started();
    gate.let_one_through();
    let deadline = Instant::now() + LONG;
    let answer = loop {
        match pending.try_wait() {
            Err(TryWaitError::NotReady(again)) => pending = again,
            result => break result,
        }
        assert!(Instant::now() < deadline, "no answer within {LONG:?}");
        thread::yield_now();
    };
    assert_eq!(expect_ok(answer, "try_wait").payload, b"two");

    // Cancel frees the tag at once; the late answer is dropped quietly.
    let pending = client.submit(0, 0, b"three".to_vec()).unwrap();
    gate.wait_started();
    assert_eq!(client.outstanding(), 1);
    pending.cancel();
    assert_eq!(client.outstanding(), 0);
    // Dropping a handle cancels too.
    drop(client.submit(0, 0, b"four".to_vec()).unwrap());
    gate.wait_started();
    assert_eq!(client.outstanding(), 0);
    gate.open();
    assert_eq!(expect_ok(client.call_timeout(0, 0, b"five".to_vec(), LONG), "after cancel").payload, b"five");
    assert_eq!(client.outstanding(), 0);
    close_both_ok(client, server);
    assert_no_threads(&c);
    assert_no_threads(&s);
}

fn submit_timeout_on_full_queue(kind: Kind) {
    let name = kind.name('c');
    let (transport, mut raw) = raw_pair(kind);
    let conn = Arc::new(PacketConnection::new(transport, config(&name).send_queue(1)).unwrap());
    // A payload larger than every buffer between us and a peer that does not
    // read: whoever writes it blocks in the middle of it. Submitted from a
    // helper thread, in case the submitting thread is the one that writes.
    let (big_tx, big) = crossbeam_channel::bounded(1);
    {
        let conn = Arc::clone(&conn);
        thread::spawn(move || {
            let pending = conn.submit(0, 0, vec![0u8; 64 << 20]);
            drop(conn);
            let _ = big_tx.send(pending);
        });
    }
    // Small requests go through until the stream is stuck behind the big
    // one and the queue (one packet) is full; then a timed submit gives up.
    let mut queued = Vec::new();
    let deadline = Instant::now() + LONG;
    loop {
        assert!(Instant::now() < deadline, "the send queue never filled up");
        match conn.submit_timeout(0, 0, 0, b"small".to_vec(), SHORT) {
            Ok(pending) => queued.push(pending),
            Err(SubmitTimeoutError::Timeout(payload)) => {
                assert_eq!(payload, b"small", "a timed-out submit hands its payload back");
                break;
            }
            Err(error) => panic!("submit_timeout: expected Ok or Timeout, got {error:?}"),
        }
    }
    let started = Instant::now();
    let refused = conn.submit_timeout(0, 0, 0, b"no room".to_vec(), SHORT);
    assert!(matches!(refused, Err(SubmitTimeoutError::Timeout(ref payload)) if payload == b"no room"), "{refused:?}");
    assert!(started.elapsed() >= SHORT);
    let refused = conn.call_timeout(0, 0, b"no room either".to_vec(), SHORT);
    assert!(matches!(refused, Err(CallTimeoutError::Timeout)), "{refused:?}");
    assert_eq!(conn.outstanding(), queued.len() + 1, "timed-out submits leave nothing behind");
    assert!(conn.stats().requests_out >= queued.len() as u64);
    // The peer goes away: the blocked write fails, and every request with it.
    raw.hang_up();
    match big.recv_timeout(LONG).expect("the big submit returned") {
        Ok(pending) => {
            expect_connection_error(wait(pending), "big request");
        }
        Err(error) => assert!(matches!(error, SubmitError::Connection(_)), "big submit: {error:?}"),
    }
    for pending in queued {
        expect_connection_error(wait(pending), "queued request");
    }
    let conn = Arc::try_unwrap(conn).expect("the helper let go");
    let _ = close(conn);
    assert_no_threads(&name);
}

fn submit_timeout_bounded_when_peer_stalls(kind: Kind) {
    // A peer that reads nothing, and one large request to it: submit_timeout
    // may queue it or give up, but must return within its timeout (give or
    // take scheduling), not wait for the peer to read.
    let name = kind.name('c');
    let (transport, mut raw) = raw_pair(kind);
    let conn = Arc::new(PacketConnection::new(transport, config(&name)).unwrap());
    let (tx, rx) = crossbeam_channel::bounded(1);
    {
        let conn = Arc::clone(&conn);
        thread::spawn(move || {
            let result = conn.submit_timeout(0, 0, 0, vec![0u8; 64 << 20], SHORT);
            drop(conn);
            let _ = tx.send(result);
        });
    }
    let outcome = rx.recv_timeout(Duration::from_secs(5));
    // Let a stuck submit go before judging, so that nothing is left behind.
    raw.hang_up();
    let result = match outcome {
        Ok(result) => result,
        Err(_) => {
            let late = rx.recv_timeout(LONG);
            panic!("submit_timeout({SHORT:?}) of a large request still blocked after 5 s (then: {late:?})");
        }
    };
    match result {
        Ok(pending) => {
            expect_connection_error(wait(pending), "large request after the peer hung up");
        }
        Err(error) => assert!(matches!(error, SubmitTimeoutError::Timeout(_)), "{error:?}"),
    }
    let conn = Arc::try_unwrap(conn).expect("the helper let go");
    let _ = close(conn);
    assert_no_threads(&name);
}

fn call_timeout_cancels(kind: Kind) {
    let mut gate = Gate::new();
    let (client, server) = pair(kind, gate.echo_handler());
    let (c, s) = (client.name().to_owned(), server.name().to_owned());
    let started = Instant::now();
    let result = client.call_timeout(0, 0, b"slow".to_vec(), SHORT);
    assert!(matches!(result, Err(CallTimeoutError::Timeout)), "{result:?}");
    assert!(started.elapsed() >= SHORT);
    gate.wait_started();
    assert_eq!(client.outstanding(), 0, "a timed-out call is cancelled");
    gate.open();
    assert_eq!(expect_ok(client.call_timeout(0, 0, b"quick".to_vec(), LONG), "next call").payload, b"quick");
    close_both_ok(client, server);
    assert_no_threads(&c);
    assert_no_threads(&s);
}

fn end_requests_stops_new_requests_only(kind: Kind) {
    let mut gate = Gate::new();
    let (a_name, b_name) = (kind.name('a'), kind.name('b'));
    let (ta, tb) = transport_pair(kind);
    let a =
        PacketConnection::with_handler(ta, config(&a_name), |rq: Request| [b"a:", &rq.payload[..]].concat()).unwrap();
    let b = PacketConnection::with_handler(tb, config(&b_name), gate.echo_handler()).unwrap();
    let in_flight = a.submit(0, 0, b"before".to_vec()).unwrap();
    gate.wait_started();
    a.end_requests().expect("end_requests");
    assert!(matches!(a.submit(0, 0, Vec::new()), Err(SubmitError::Connection(ConnectionError::Closed))));
    let refused = a.call_timeout(0, 0, Vec::new(), LONG);
    assert!(matches!(refused, Err(CallTimeoutError::Connection(ConnectionError::Closed))), "{refused:?}");
    assert!(matches!(a.submit_on(3, 0, 0, Vec::new()), Err(SubmitError::Connection(ConnectionError::Closed))));
    // What was in flight is still answered, and the peer may still ask.
    gate.open();
    assert_eq!(expect_ok(wait(in_flight), "in flight").payload, b"before");
    assert_eq!(expect_ok(b.call_timeout(0, 0, b"b asks".to_vec(), LONG), "peer's call").payload, b"a:b asks");
    close_both_ok(a, b);
    assert_no_threads(&a_name);
    assert_no_threads(&b_name);
}

fn join_recv_waits_for_peer_eof(kind: Kind) {
    let (client, server) = pair(kind, echo);
    let (c, s) = (client.name().to_owned(), server.name().to_owned());
    assert!(matches!(server.join_recv_timeout(SHORT), Err(JoinTimeoutError::Timeout)));
    let server = Arc::new(server);
    let (tx, joined) = crossbeam_channel::bounded(1);
    {
        let server = Arc::clone(&server);
        thread::spawn(move || {
            let result = server.join_recv();
            drop(server);
            let _ = tx.send(result);
        });
    }
    assert!(matches!(joined.recv_timeout(SHORT), Err(crossbeam_channel::RecvTimeoutError::Timeout)));
    let closing = start_close(client);
    joined.recv_timeout(LONG).expect("join_recv returned").expect("a clean end");
    assert!(matches!(server.join_recv_timeout(SHORT), Ok(())), "again, at once");
    let server = Arc::try_unwrap(server).expect("the joining thread let go");
    close(server).expect("server close");
    closing.result().expect("client close");
    assert_no_threads(&c);
    assert_no_threads(&s);
}

fn stats_count_traffic(kind: Kind) {
    const CALLS: u64 = 16;
    let (client, server) =
        pair_with(kind, config(&kind.name('c')), config(&kind.name('s')).workers(1), transform_handler);
    let (c, s) = (client.name().to_owned(), server.name().to_owned());
    let fresh = client.stats();
    assert_eq!((fresh.requests_out, fresh.responses_in, fresh.packets_in, fresh.bytes_in), (0, 0, 0, 0));
    let payload = b"0123456789".to_vec();
    let request_len = packetstream::wire::encoded_len(&Packet::request(0, 2, 1, 0, payload.clone()).unwrap());
    for i in 0..CALLS {
        expect_ok(client.call_timeout(1, 0, payload.clone(), LONG), &format!("call {i}"));
    }
    let cs = client.stats();
    let ss = server.stats();
    assert_eq!(cs.requests_out, CALLS);
    assert_eq!(cs.responses_in, CALLS);
    assert_eq!((cs.requests_in, cs.responses_out), (0, 0));
    assert!(cs.packets_in >= CALLS);
    // The writer counts after each write returns; every batch but the last
    // has certainly been counted by the time the last answer is back.
    assert!(cs.packets_out >= CALLS, "{cs:?}");
    assert!(cs.bytes_out >= (CALLS - 1) * request_len as u64, "{cs:?}");
    assert!(cs.write_calls >= CALLS - 1, "{cs:?}");
    let response = Packet::response(0, 2, true, 0x5a, transform(1, &payload)).unwrap();
    assert!(cs.bytes_in >= CALLS * packetstream::wire::encoded_len(&response) as u64, "{cs:?}");
    assert_eq!(ss.requests_in, CALLS);
    assert_eq!(ss.responses_in, 0);
    assert!(ss.bytes_in >= CALLS * request_len as u64, "{ss:?}");
    assert!(ss.responses_out >= CALLS - 1 && ss.responses_out <= CALLS, "{ss:?}");
    close_both_ok(client, server);
    assert_no_threads(&c);
    assert_no_threads(&s);
}

fn streams_given_back_after_close(kind: Kind) {
    let (client, server) = pair(kind, echo);
    let (c, s) = (client.name().to_owned(), server.name().to_owned());
    assert_eq!(expect_ok(client.call_timeout(0, 0, b"x".to_vec(), LONG), "call").payload, b"x");
    let (a, b) = close_both_ok(client, server);
    match kind {
        Kind::Pipe => {
            use std::io::{PipeReader, PipeWriter};
            let (a_read, a_write) = a.into_streams::<PipeReader, PipeWriter>().expect("pipes back");
            let (b_read, b_write) = b.into_streams::<PipeReader, PipeWriter>().expect("pipes back");
            still_connected(a_read, a_write, b_read, b_write);
        }
        Kind::Unix => {
            use std::os::unix::net::UnixStream;
            let (a_read, a_write) = a.into_streams::<UnixStream, UnixStream>().expect("sockets back");
            let (b_read, b_write) = b.into_streams::<UnixStream, UnixStream>().expect("sockets back");
            still_connected(a_read, a_write, b_read, b_write);
        }
        Kind::Tcp => {
            use std::net::TcpStream;
            let (a_read, a_write) = a.into_streams::<TcpStream, TcpStream>().expect("sockets back");
            let (b_read, b_write) = b.into_streams::<TcpStream, TcpStream>().expect("sockets back");
            still_connected(a_read, a_write, b_read, b_write);
        }
        Kind::Memory => {
            use packetstream::{MemoryReader, MemoryWriter};
            let (a_read, a_write) = a.into_streams::<MemoryReader, MemoryWriter>().expect("memory back");
            let (b_read, b_write) = b.into_streams::<MemoryReader, MemoryWriter>().expect("memory back");
            still_connected(a_read, a_write, b_read, b_write);
        }
    }
    assert_no_threads(&c);
    assert_no_threads(&s);
    // Asked for the wrong types, nothing comes back.
    let (client, server) = pair(kind, echo);
    let (c, s) = (client.name().to_owned(), server.name().to_owned());
    let (a, _b) = close_both_ok(client, server);
    assert!(a.into_streams::<std::fs::File, std::fs::File>().is_none());
    assert_no_threads(&c);
    assert_no_threads(&s);
}

/// After a clean close the streams still carry bytes both ways, and nothing
/// of the connection is left in them.
fn still_connected<R, W>(a_read: R, a_write: W, b_read: R, b_write: W)
where
    R: Read + Send + 'static,
    W: Write + Send + 'static,
{
    fn one_way<R: Read + Send + 'static, W: Write + Send + 'static>(mut w: W, mut r: R, bytes: &'static [u8]) {
        w.write_all(bytes).expect("write after close");
        w.flush().unwrap();
        let got = within(LONG, "read after close", move || {
            let mut got = vec![0u8; bytes.len()];
            r.read_exact(&mut got).map(|()| got)
        });
        assert_eq!(got.expect("read after close"), bytes);
    }
    one_way(a_write, b_read, b"raw bytes after close");
    one_way(b_write, a_read, b"and back");
}

fn flags_too_large_are_refused(kind: Kind) {
    let (client, server) = pair(kind, |rq: Request| -> Result<(u64, Vec<u8>), String> {
        match rq.rq_type {
            0 => Ok((rq.flags, Vec::new())),
            _ => Err(format!("flags {} type {}", rq.flags, rq.rq_type)),
        }
    });
    let (c, s) = (client.name().to_owned(), server.name().to_owned());
    let too_large = MAX_REQUEST_FLAGS + 1;
    let flags_refused = InvalidRequest::TooLarge(ValueTooLarge::Flags { flags: too_large, max: MAX_REQUEST_FLAGS });
    let is_too_large =
        |r: &Result<Pending, SubmitError>| matches!(r, Err(SubmitError::Invalid(e)) if *e == flags_refused);
    assert!(is_too_large(&client.submit(0, too_large, Vec::new())));
    assert!(is_too_large(&client.submit_on(4, 0, too_large, Vec::new())));
    let timed = client.submit_timeout(0, 0, too_large, Vec::new(), LONG);
    assert!(matches!(timed, Err(SubmitTimeoutError::Invalid(e)) if e == flags_refused), "{timed:?}");
    let called = client.call_timeout(0, u64::MAX, Vec::new(), LONG);
    assert!(
        matches!(called, Err(CallTimeoutError::Invalid(InvalidRequest::TooLarge(ValueTooLarge::Flags { .. })))),
        "{called:?}"
    );
    let rq_type = client.submit(MAX_RQ_TYPE + 1, 0, Vec::new());
    let rq_type_refused = InvalidRequest::TooLarge(ValueTooLarge::RqType(u64::MAX));
    assert!(matches!(rq_type, Err(SubmitError::Invalid(e)) if e == rq_type_refused), "{rq_type:?}");
    // The channels of the extensions are not the application's.
    let control = packetstream::ext::CONTROL_CHANNEL;
    let reserved = client.submit_on(control, 0, 0, Vec::new());
    assert!(matches!(reserved, Err(SubmitError::Invalid(InvalidRequest::ReservedChannel(c))) if c == control));
    assert_eq!(client.outstanding(), 0);
    assert_eq!(client.stats().requests_out, 0, "nothing was sent");
    // The largest values do travel.
    let failure = expect_failed(client.call_timeout(MAX_RQ_TYPE, MAX_REQUEST_FLAGS, Vec::new(), LONG), "max");
    assert_eq!(failure.text(), format!("flags {MAX_REQUEST_FLAGS} type {MAX_RQ_TYPE}"));
    let answer = expect_ok(client.call_timeout(0, MAX_RESPONSE_FLAGS, Vec::new(), LONG), "max response flags");
    assert_eq!(answer.flags, MAX_RESPONSE_FLAGS);
    close_both_ok(client, server);
    assert_no_threads(&c);
    assert_no_threads(&s);
}

/// A handler run on the reader that blocks until a later request arrives:
/// an idle worker notices and reads in the reader's place, so the request
/// that releases it is read and served.
fn reader_stuck_in_a_handler_is_relieved(kind: Kind) {
    const WHO: u64 = 0;
    const WAIT: u64 = 1;
    const RELEASE: u64 = 2;
    let (release_tx, release_rx) = crossbeam_channel::bounded::<()>(1);
    let handler = move |rq: Request| -> Result<Vec<u8>, String> {
        if rq.rq_type == WAIT {
            release_rx.recv_timeout(LONG).map_err(|_| "never released".to_owned())?;
        }
        if rq.rq_type == RELEASE {
            release_tx.send(()).map_err(|e| e.to_string())?;
        }
        Ok(thread::current().name().unwrap_or_default().as_bytes().to_vec())
    };
    let (client, server) = pair(kind, handler);
    let (c, s) = (client.name().to_owned(), server.name().to_owned());
    // Quick requests run on the reader once the workers are idle.
    let deadline = Instant::now() + LONG;
    let on_reader = |answer: &Response| answer.payload.ends_with(b"-reader");
    while !on_reader(&expect_ok(client.call_timeout(WHO, 0, Vec::new(), LONG), "who")) {
        assert!(Instant::now() < deadline, "no request ran on the reader");
    }
    let waiting = client.submit(WAIT, 0, Vec::new()).unwrap();
    let release = client.submit(RELEASE, 0, Vec::new()).unwrap();
    let released = expect_ok(wait(release), "release");
    assert!(released.payload.windows(7).any(|w| w == b"-worker"), "{released:?}");
    let waited = expect_ok(wait(waiting), "the request that waited");
    assert!(on_reader(&waited), "{waited:?}");
    // Reading goes on, and quick requests are served as before.
    for i in 0..100u64 {
        expect_ok(client.call_timeout(WHO, i, Vec::new(), LONG), "after the takeover");
    }
    close_both_ok(client, server);
    assert_no_threads(&c);
    assert_no_threads(&s);
}

/// Requests held back to leave with others (more than a few in flight, no
/// caller waiting) still leave by themselves, within the packet grace.
fn held_back_requests_leave_without_a_wait(kind: Kind) {
    let name = kind.name('c');
    let (transport, mut raw) = raw_pair(kind);
    let conn = PacketConnection::new(transport, config(&name)).unwrap();
    let pending: Vec<Pending> = (0..10u64).map(|i| conn.submit(0, i, vec![i as u8]).unwrap()).collect();
    let mut tags = Vec::new();
    for i in 0..10u64 {
        let packet = raw.recv_within(LONG).unwrap_or_else(|| panic!("request {i} never left"));
        assert_eq!(packet.payload(), [i as u8]);
        tags.push(packet.tag());
    }
    for (i, tag) in tags.into_iter().enumerate() {
        raw.send_packet(&Packet::response(0, tag, true, 0, vec![i as u8]).unwrap());
    }
    for (i, p) in pending.into_iter().enumerate() {
        assert_eq!(expect_ok(wait(p), "held-back request").payload, [i as u8]);
    }
    let closing = start_close(conn);
    assert_eq!(raw.recv(), Packet::erq());
    assert_eq!(raw.recv(), Packet::eof());
    raw.send_packet(&Packet::eof());
    closing.result().expect("clean close");
    assert_no_threads(&name);
}

/// On one CPU, a caller that holds many handles is pipelining even when all
/// their answers are in (the tag map is empty then): its next request is
/// held back to leave with others, not written alone; a caller with no
/// other handle writes its request at once.
fn answered_handles_still_count_as_in_flight(kind: Kind) {
    #[cfg(target_os = "linux")]
    util::on_one_cpu(|| answered_handles_count_on_one_cpu(kind));
    // A connection knows it runs on one CPU from Linux's affinity only.
    #[cfg(not(target_os = "linux"))]
    let _ = kind;
}

#[cfg(target_os = "linux")]
fn answered_handles_count_on_one_cpu(kind: Kind) {
    const WINDOW: u64 = 8;
    let name = kind.name('c');
    let (transport, mut raw) = raw_pair(kind);
    // Nothing leaves by the grace timer while the test looks.
    let conn = PacketConnection::new(transport, config(&name).packet_grace(Duration::from_secs(60))).unwrap();
    let window: Vec<Pending> = (0..WINDOW).map(|i| conn.submit(0, i, vec![i as u8]).unwrap()).collect();
    assert!(!window[0].is_ready(), "a wait (here a look) sends what is held back");
    let mut tags = Vec::new();
    for i in 0..WINDOW {
        let packet = raw.recv_within(LONG).unwrap_or_else(|| panic!("request {i} never left"));
        tags.push(packet.tag());
    }
    for (i, &tag) in tags.iter().enumerate() {
        raw.send_packet(&Packet::response(0, tag, true, 0, vec![i as u8]).unwrap());
    }
    assert!(util::wait_for(LONG, || window.iter().all(Pending::is_ready)), "the window was answered");
    let next = conn.submit(0, WINDOW, vec![0xee]).unwrap();
    assert!(raw.recv_within(SHORT).is_none(), "held back: {WINDOW} handles are held");
    assert!(!next.is_ready());
    let packet = raw.recv_within(LONG).expect("sent by the look");
    assert_eq!(packet.payload(), [0xee]);
    for (i, p) in window.into_iter().enumerate() {
        assert_eq!(expect_ok(wait(p), "answered request").payload, [i as u8]);
    }
    raw.send_packet(&Packet::response(0, packet.tag(), true, 0, vec![0xee]).unwrap());
    assert_eq!(expect_ok(wait(next), "held-back request").payload, [0xee]);
    // No other handle: a request alone leaves without a wait.
    let alone = conn.submit(0, 0, vec![0xaa]).unwrap();
    let packet = raw.recv_within(LONG).expect("a lone request leaves at once");
    assert_eq!(packet.payload(), [0xaa]);
    raw.send_packet(&Packet::response(0, packet.tag(), true, 0, vec![0xaa]).unwrap());
    assert_eq!(expect_ok(wait(alone), "lone request").payload, [0xaa]);
    util::raw::close_after_peer_eof(conn, &mut raw);
    assert_no_threads(&name);
}

/// Generates one `#[test]` per scenario and transport kind, in modules
/// `pipe`, `unix`, `tcp` and `memory`. A scenario written `name [ignore = "why"]` is
/// generated with `#[ignore = "why"]`.
macro_rules! over_all_transports {
    ($($scenario:ident $([ignore = $why:literal])?),* $(,)?) => {
        mod pipe {
            $( #[test] $(#[ignore = $why])? fn $scenario() { super::$scenario(super::Kind::Pipe) } )*
        }
        mod unix {
            $( #[test] $(#[ignore = $why])? fn $scenario() { super::$scenario(super::Kind::Unix) } )*
        }
        mod tcp {
            $( #[test] $(#[ignore = $why])? fn $scenario() { super::$scenario(super::Kind::Tcp) } )*
        }
        mod memory {
            $( #[test] $(#[ignore = $why])? fn $scenario() { super::$scenario(super::Kind::Memory) } )*
        }
    };
}

over_all_transports!(
    open_then_close,
    sequential_calls,
    pipelined_from_threads,
    large_payloads_round_trip,
    both_directions_at_once,
    handler_errors_and_panics,
    failure_with_flags,
    handler_return_conversions,
    refused_after_peer_erq,
    refused_tag_in_use,
    refused_unknown_channel,
    refused_no_handler,
    tags_per_channel,
    peer_dies_mid_request,
    peer_eof_fails_waiting_requests,
    too_many_incoming_ends_connection,
    malformed_control_packet_ends_connection,
    oversized_packet_ends_connection,
    close_waits_for_running_handlers,
    close_server_with_handler_blocked,
    close_client_with_request_in_flight,
    drop_without_close,
    drop_one_after_the_other,
    wait_try_wait_and_cancel,
    submit_timeout_on_full_queue,
    submit_timeout_bounded_when_peer_stalls,
    call_timeout_cancels,
    end_requests_stops_new_requests_only,
    join_recv_waits_for_peer_eof,
    stats_count_traffic,
    streams_given_back_after_close,
    flags_too_large_are_refused,
    reader_stuck_in_a_handler_is_relieved,
    held_back_requests_leave_without_a_wait,
    answered_handles_still_count_as_in_flight,
);

// ---------------------------------------------------------------------------
// The extension mechanism, between two connections of this crate.

mod extensions {
    use super::*;
    use packetstream::ext::negotiation::{PlainReason, State};
    use packetstream::ext::{Feature, Features};
    use packetstream::{CloseOptions, Finished};

    fn on(name: &str) -> ConfigBuilder {
        config(name).extensions(true)
    }

    /// What two connections with extensions on agree on.
    fn basic() -> Features {
        Features::basic()
    }

    /// What a connection agrees on with a peer that offers only quitting.
    fn quit() -> Features {
        Features::NONE.with(Feature::Quit)
    }

    /// A server ends its requests first (ERQ to all its connections), then
    /// closes each with a reason: the reason, a control request after the
    /// ERQ, is still heard (the peer's ERQ refuses the application's
    /// requests only).
    #[test]
    fn a_quit_reason_after_end_requests_still_reaches_the_peer() {
        for kind in Kind::ALL {
            let (client, server) = pair_with(kind, on(&kind.name('c')), on(&kind.name('s')), echo);
            assert_eq!(server.wait_extensions(LONG), State::Agreed(basic()), "{kind:?}");
            server.end_requests().expect("ERQ");
            let closing = start_close_with(server, CloseOptions::new().reason("shutting down"));
            client.join_recv_timeout(LONG).expect("the server's clean end");
            assert_eq!(client.peer_quit_reason().as_deref(), Some("shutting down"), "{kind:?}");
            let _ = close(client);
            closing.result().expect("server close");
        }
    }

    #[test]
    fn both_on_agree_and_the_quit_reason_reaches_the_peer() {
        for kind in Kind::ALL {
            let (client, server) = pair_with(kind, on(&kind.name('c')), on(&kind.name('s')), echo);
            let (c, s) = (client.name().to_owned(), server.name().to_owned());
            assert_eq!(client.wait_extensions(LONG), State::Agreed(basic()), "{kind:?}");
            assert_eq!(server.wait_extensions(LONG), State::Agreed(basic()), "{kind:?}");
            assert_eq!(expect_ok(client.call_timeout(0, 3, b"plain".to_vec(), LONG), "call").payload, b"plain");
            let closing = start_close_with(client, CloseOptions::new().reason("maintenance window"));
            server.join_recv_timeout(LONG).expect("the client's clean end");
            assert_eq!(server.peer_quit_reason().as_deref(), Some("maintenance window"));
            let finished = close(server).expect("server close");
            assert_eq!(finished.peer_quit_reason(), Some("maintenance window"));
            assert_eq!(finished.report().step(CloseStep::Quit).outcome, StepOutcome::Skipped);
            let finished = closing.result().expect("client close");
            assert_eq!(finished.report().step(CloseStep::Quit).outcome, StepOutcome::Done);
            assert!(finished.report().is_clean(), "{}", finished.report());
            assert_eq!(finished.peer_quit_reason(), None);
            assert_no_threads(&c);
            assert_no_threads(&s);
        }
    }

    #[test]
    fn one_side_off_means_plain_mode_both_ways() {
        for kind in Kind::ALL {
            for client_on in [true, false] {
                let (client_config, server_config) = if client_on {
                    (on(&kind.name('c')), config(&kind.name('s')))
                } else {
                    (config(&kind.name('c')), on(&kind.name('s')))
                };
                let (client, server) = pair_with(kind, client_config, server_config, echo);
                let (c, s) = (client.name().to_owned(), server.name().to_owned());
                let (on_side, off_side) = if client_on { (&client, &server) } else { (&server, &client) };
                let refused = format!("unknown channel {}", packetstream::ext::CONTROL_CHANNEL);
                assert_eq!(on_side.wait_extensions(LONG), State::Plain(PlainReason::Refused(refused)), "{kind:?}");
                assert_eq!(off_side.extensions(), State::Off);
                // Requests carry on as before, both ways.
                assert_eq!(expect_ok(client.call_timeout(0, 1, b"still".to_vec(), LONG), "call").payload, b"still");
                // The probe is not the application's: no request counted on either side.
                assert_eq!(server.stats().requests_in, 1);
                assert_eq!(client.stats().requests_in, 0);
                // A reason to a peer without the extension: an ordinary close.
                let closing = start_close_with(client, CloseOptions::new().reason("unheard"));
                let server_finished = close(server).expect("server close");
                let client_finished = closing.result().expect("client close");
                assert_eq!(server_finished.peer_quit_reason(), None);
                assert_eq!(client_finished.report().step(CloseStep::Quit).outcome, StepOutcome::Skipped);
                assert_no_threads(&c);
                assert_no_threads(&s);
            }
        }
    }

    /// The probe as it travels: a request on the control channel with the
    /// hello, which a raw peer can answer as it likes.
    fn probed(kind: Kind) -> (PacketConnection, RawPeer, Packet) {
        let (transport, mut raw) = raw_pair(kind);
        let conn = PacketConnection::with_handler(transport, on(&kind.name('c')), echo).unwrap();
        let probe = raw.recv();
        let control = packetstream::ext::CONTROL_CHANNEL;
        let hello = b"PSX\x01\x03\x04quit\x01\x06stream\x01\x06cancel\x01";
        assert_eq!(probe, Packet::request(control, 0, 0, 0, hello.to_vec()).unwrap());
        (conn, raw, probe)
    }

    /// Closes with `options` while the raw peer expects a plain close (ERQ
    /// and EOF, nothing else) and ends its side.
    fn close_raw_with(conn: PacketConnection, raw: &mut RawPeer, options: CloseOptions) -> Finished {
        let name = conn.name().to_owned();
        let closing = start_close_with(conn, options);
        assert_eq!(raw.recv(), Packet::erq());
        assert_eq!(raw.recv(), Packet::eof());
        raw.send_packet(&Packet::eof());
        let finished = closing.result().expect("clean close");
        assert_no_threads(&name);
        finished
    }

    fn close_raw(conn: PacketConnection, mut raw: RawPeer) {
        close_raw_with(conn, &mut raw, CloseOptions::new());
    }

    #[test]
    fn an_answer_that_is_not_a_hello_means_plain_mode_with_the_reason() {
        use packetstream::ext::hello::HelloError;
        for kind in Kind::ALL {
            let (conn, mut raw, probe) = probed(kind);
            raw.send_packet(&Packet::response(probe.channel(), probe.tag(), true, 0, b"\xde\xad".to_vec()).unwrap());
            assert_eq!(conn.wait_extensions(LONG), State::Plain(PlainReason::Garbled(HelloError::NoMagic)));
            // Plain requests go on, and nothing of the extensions is sent at close.
            let pending = conn.submit(0, 0, b"after".to_vec()).unwrap();
            let request = raw.recv();
            raw.send_packet(&Packet::response(0, request.tag(), true, 0, b"ok".to_vec()).unwrap());
            assert_eq!(expect_ok(wait(pending), "after garbage").payload, b"ok");
            close_raw(conn, raw);
        }
    }

    #[test]
    fn a_refused_probe_means_plain_mode_and_the_peer_sees_no_more_of_it() {
        for kind in Kind::ALL {
            let (conn, mut raw, probe) = probed(kind);
            let text = b"unknown channel %d".to_vec();
            raw.send_packet(&Packet::response(probe.channel(), probe.tag(), false, 0, text).unwrap());
            let refused = PlainReason::Refused("unknown channel %d".into());
            assert_eq!(conn.wait_extensions(LONG), State::Plain(refused));
            // ERQ and EOF only: no quit request on any channel.
            let finished = close_raw_with(conn, &mut raw, CloseOptions::new().reason("not for a plain peer"));
            assert_eq!(finished.report().step(CloseStep::Quit).outcome, StepOutcome::Skipped);
        }
    }

    #[test]
    fn a_peer_that_never_answers_the_probe_holds_nothing_up() {
        for kind in Kind::ALL {
            let (transport, mut raw) = raw_pair(kind);
            // A short close timeout bounds the wait for the answer too.
            let config = on(&kind.name('c')).close_timeout(Duration::from_millis(300));
            let conn = PacketConnection::with_handler(transport, config, echo).unwrap();
            assert_eq!(raw.recv().channel(), packetstream::ext::CONTROL_CHANNEL);
            assert_eq!(conn.wait_extensions(Duration::from_millis(20)), State::Probing);
            // Plain requests work while the probe is unanswered.
            let pending = conn.submit(0, 0, b"meanwhile".to_vec()).unwrap();
            let request = raw.recv();
            assert_eq!(request.channel(), 0);
            raw.send_packet(&Packet::response(0, request.tag(), true, 0, b"fine".to_vec()).unwrap());
            assert_eq!(expect_ok(wait(pending), "while probing").payload, b"fine");
            // A close with a reason waits a bounded time for the answer (here
            // the close timeout), then closes plainly.
            let finished = close_raw_with(conn, &mut raw, CloseOptions::new().reason("anyone?"));
            let quit = finished.report().step(CloseStep::Quit);
            assert_eq!(quit.outcome, StepOutcome::Skipped);
            assert!(quit.took >= Duration::from_millis(250) && quit.took < LONG, "{}", finished.report());
        }
    }

    #[test]
    fn the_quit_request_as_it_travels() {
        let kind = Kind::Memory;
        let (conn, mut raw, probe) = probed(kind);
        let control = packetstream::ext::CONTROL_CHANNEL;
        // The raw peer answers as a packetstream peer with the quit feature.
        raw.send_packet(&Packet::response(control, probe.tag(), true, 0, b"PSX\x01\x01\x04quit\x01".to_vec()).unwrap());
        assert_eq!(conn.wait_extensions(LONG), State::Agreed(quit()));
        let name = conn.name().to_owned();
        let closing = start_close_with(conn, CloseOptions::new().reason("au revoir"));
        assert_eq!(raw.recv(), Packet::request(control, 1, 1, 0, b"au revoir".to_vec()).unwrap());
        assert_eq!(raw.recv(), Packet::erq());
        assert_eq!(raw.recv(), Packet::eof());
        raw.send_packet(&Packet::response(control, 1, true, 0, Vec::new()).unwrap());
        raw.send_packet(&Packet::eof());
        let finished = closing.result().expect("clean close");
        assert_eq!(finished.report().step(CloseStep::Quit).outcome, StepOutcome::Done);
        assert_no_threads(&name);
    }

    #[test]
    fn a_peers_quit_reason_reaches_its_waiting_callers() {
        for kind in Kind::ALL {
            let (conn, mut raw, probe) = probed(kind);
            let control = packetstream::ext::CONTROL_CHANNEL;
            raw.send_packet(
                &Packet::response(control, probe.tag(), true, 0, b"PSX\x01\x01\x04quit\x01".to_vec()).unwrap(),
            );
            assert_eq!(conn.wait_extensions(LONG), State::Agreed(quit()));
            let pending = conn.submit(0, 0, b"unanswered".to_vec()).unwrap();
            raw.recv();
            // The peer quits with a reason, then ends its stream.
            raw.send_packet(&Packet::request(control, 0, 1, 0, b"shutting down".to_vec()).unwrap());
            assert_eq!(raw.recv(), Packet::response(control, 0, true, 0, Vec::new()).unwrap());
            raw.send_packet(&Packet::eof());
            match wait(pending) {
                Err(Error::Connection(error)) => {
                    assert_eq!(error.quit_reason(), Some("shutting down"));
                    assert_eq!(error.to_string(), "the peer closed the connection: shutting down");
                }
                other => panic!("expected the peer's quit, got {other:?}"),
            }
            close_raw(conn, raw);
        }
    }

    #[test]
    fn the_reserved_channels_never_reach_the_handler() {
        for kind in Kind::ALL {
            let (transport, mut raw) = raw_pair(kind);
            let served = std::sync::atomic::AtomicUsize::new(0);
            let served = Arc::new(served);
            let counter = Arc::clone(&served);
            let handler = move |rq: Request| {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                rq.payload
            };
            let conn = PacketConnection::with_handler(transport, config(&kind.name('c')).serve_all_channels(), handler)
                .unwrap();
            let (first, last) = packetstream::ext::RESERVED_CHANNELS;
            for channel in [first, last] {
                raw.send_packet(&Packet::request(channel, 0, 0, 0, b"PSX\x01\x00".to_vec()).unwrap());
                let text = format!("unknown channel {channel}").into_bytes();
                assert_eq!(raw.recv(), Packet::response(channel, 0, false, 0, text).unwrap());
            }
            raw.send_packet(&Packet::request(last + 1, 0, 0, 0, b"mine".to_vec()).unwrap());
            assert_eq!(raw.recv(), Packet::response(last + 1, 0, true, 0, b"mine".to_vec()).unwrap());
            assert_eq!(served.load(std::sync::atomic::Ordering::SeqCst), 1);
            close_raw(conn, raw);
        }
    }

    #[test]
    fn serving_a_reserved_channel_is_refused_at_start() {
        let (transport, _peer) = util::transport_pair(Kind::Memory);
        let config = config(&Kind::Memory.name('c')).serve_channel(packetstream::ext::CONTROL_CHANNEL);
        let error = PacketConnection::new(transport, config).unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
        assert!(error.to_string().contains("reserved"), "{error}");
    }
}

// ---------------------------------------------------------------------------
// Pulled requests: answered from the program's own loop.

mod pulled {
    use super::*;
    use packetstream::{Incoming, DROPPED_UNANSWERED};

    fn pulled_pair(kind: Kind, server: ConfigBuilder) -> (PacketConnection, PacketConnection, Receiver<Incoming>) {
        let (a, b) = transport_pair(kind);
        let (server, requests) = PacketConnection::with_incoming(b, server).expect("start server");
        let client = PacketConnection::new(a, config(&kind.name('c'))).expect("start client");
        (client, server, requests)
    }

    #[test]
    fn answered_in_any_order_failed_or_dropped() {
        for kind in Kind::ALL {
            let (client, server, requests) = pulled_pair(kind, config(&kind.name('s')));
            let (c, s) = (client.name().to_owned(), server.name().to_owned());
            let pending: Vec<_> = (0..3u64).map(|i| client.submit(i, i, vec![i as u8]).unwrap()).collect();
            let mut held: Vec<Incoming> = (0..3).map(|_| requests.recv_timeout(LONG).expect("a request")).collect();
            held.sort_by_key(|incoming| incoming.request.rq_type);
            let mut held = held.into_iter();
            let first = held.next().unwrap();
            let second = held.next().unwrap();
            let third = held.next().unwrap();
            assert_eq!((third.responder.channel(), third.request.payload.clone()), (0, vec![2]));
            // Answered out of order: the third ok, the second failed, the first dropped.
            third.respond((9u64, b"third".to_vec()));
            second.responder.fail(Failure::with_flags(4, b"no".to_vec()));
            drop(first);
            let mut pending = pending.into_iter();
            let failure = expect_failed(wait(pending.next().unwrap()), "dropped");
            assert_eq!(failure.text(), DROPPED_UNANSWERED);
            assert_eq!(expect_failed(wait(pending.next().unwrap()), "failed"), Failure::with_flags(4, b"no".to_vec()));
            assert_eq!(
                expect_ok(wait(pending.next().unwrap()), "ok"),
                Response { flags: 9, payload: b"third".to_vec() }
            );
            close_both_ok(client, server);
            assert_no_threads(&c);
            assert_no_threads(&s);
        }
    }

    #[test]
    fn a_loop_selects_over_requests_and_its_other_channels() {
        let kind = Kind::Memory;
        let (client, server, requests) = pulled_pair(kind, config(&kind.name('s')));
        let (c, s) = (client.name().to_owned(), server.name().to_owned());
        let (stop_tx, stop) = crossbeam_channel::bounded::<()>(1);
        let serving = thread::spawn(move || {
            let mut answered = 0;
            loop {
                crossbeam_channel::select! {
                    recv(requests) -> incoming => match incoming {
                        Ok(incoming) => {
                            let upper = incoming.request.payload.to_ascii_uppercase();
                            incoming.respond(upper);
                            answered += 1;
                        }
                        Err(_) => return answered,
                    },
                    recv(stop) -> _ => return answered,
                }
            }
        });
        for i in 0..50 {
            let word = format!("word {i}");
            let answer = expect_ok(client.call_timeout(0, 0, word.clone().into_bytes(), LONG), "call");
            assert_eq!(answer.payload, word.to_ascii_uppercase().into_bytes());
        }
        stop_tx.send(()).unwrap();
        assert_eq!(within(LONG, "the serving loop", move || serving.join().unwrap()), 50);
        close_both_ok(client, server);
        assert_no_threads(&c);
        assert_no_threads(&s);
    }

    #[test]
    fn held_requests_count_toward_the_limit_and_hold_close_to_its_deadline() {
        let kind = Kind::Unix;
        let server_config = config(&kind.name('s')).max_incoming(2).close_timeout(Duration::from_millis(200));
        let (client, server, requests) = pulled_pair(kind, server_config);
        let (c, s) = (client.name().to_owned(), server.name().to_owned());
        let _one = client.submit(0, 0, Vec::new()).unwrap();
        let _two = client.submit(0, 0, Vec::new()).unwrap();
        let held: Vec<Incoming> = (0..2).map(|_| requests.recv_timeout(LONG).unwrap()).collect();
        // A third unanswered request is one too many: the server's reading ends.
        let third = client.submit(0, 0, Vec::new()).unwrap();
        let ended = server.join_recv_timeout(LONG);
        assert!(
            matches!(ended, Err(JoinTimeoutError::Connection(ConnectionError::TooManyIncoming { limit: 2 }))),
            "{ended:?}"
        );
        // Close waits for the two the program holds, to its deadline.
        let closed = close(server).unwrap_err();
        match closed.problem() {
            CloseProblem::TimedOut(what) => assert_eq!(what, "2 pulled requests still unanswered"),
            other => panic!("{other:?}"),
        }
        assert_eq!(closed.report().step(CloseStep::DrainHandlers).outcome, StepOutcome::TimedOut);
        expect_connection_error(wait(third), "the third, once the server closed");
        drop(held);
        let _ = close(client);
        assert_no_threads(&c);
        assert_no_threads(&s);
    }

    #[test]
    fn a_dropped_receiver_refuses_what_comes_after() {
        let kind = Kind::Pipe;
        let (client, server, requests) = pulled_pair(kind, config(&kind.name('s')));
        let (c, s) = (client.name().to_owned(), server.name().to_owned());
        drop(requests);
        let failure = expect_failed(client.call_timeout(0, 0, b"anyone?".to_vec(), LONG), "no receiver");
        assert_eq!(failure.text(), "requests are no longer taken");
        close_both_ok(client, server);
        assert_no_threads(&c);
        assert_no_threads(&s);
    }
}

// ---------------------------------------------------------------------------
// The keepalive.

mod keepalive {
    use super::*;

    #[test]
    fn a_silent_peer_fails_the_connection_naming_the_silence_and_the_waiting() {
        for kind in Kind::ALL {
            let (transport, mut raw) = raw_pair(kind);
            let timeout = Duration::from_millis(150);
            let config = config(&kind.name('c'))
                .keepalive(Duration::from_millis(20), timeout)
                .close_timeout(Duration::from_millis(300));
            let conn = PacketConnection::new(transport, config).unwrap();
            let name = conn.name().to_owned();
            let pending = conn.submit(0, 0, b"hello?".to_vec()).unwrap();
            assert_eq!(raw.recv().channel(), 0);
            // The peer reads everything (the pings too) and says nothing.
            let ping = raw.recv();
            assert_eq!((ping.channel(), ping.rq_type()), (packetstream::ext::CONTROL_CHANNEL, Some(2)));
            let error = expect_connection_error(wait(pending), "a silent peer");
            match &error {
                ConnectionError::Unresponsive { silent_for, waiting } => {
                    assert!(*silent_for >= timeout, "{silent_for:?}");
                    assert_eq!(*waiting, 1);
                }
                other => panic!("{kind:?}: expected Unresponsive, got {other:?}"),
            }
            assert!(error.to_string().contains("1 request waited"), "{error}");
            let refused = conn.submit(0, 0, Vec::new()).unwrap_err();
            assert!(matches!(refused, SubmitError::Connection(ConnectionError::Unresponsive { .. })), "{refused:?}");
            raw.hang_up();
            let closed = close(conn).unwrap_err();
            assert!(
                matches!(closed.problem(), CloseProblem::Connection(ConnectionError::Unresponsive { .. })),
                "{closed:?}"
            );
            assert_no_threads(&name);
        }
    }

    #[test]
    fn an_idle_peer_that_answers_pings_is_kept_even_without_extensions() {
        for kind in Kind::ALL {
            let quick = |name: &str| config(name).keepalive(Duration::from_millis(10), Duration::from_millis(60));
            // The server has extensions off: it refuses the pings, which is an answer too.
            let (client, server) = pair_with(kind, quick(&kind.name('c')), quick(&kind.name('s')), echo);
            let (c, s) = (client.name().to_owned(), server.name().to_owned());
            await_threads(&c, &["alive"]);
            // Quiet for many timeouts: the bounded wait is the scenario.
            assert!(matches!(client.join_recv_timeout(Duration::from_millis(400)), Err(JoinTimeoutError::Timeout)));
            assert!(client.stats().packets_out > 0, "pings went out");
            assert_eq!(expect_ok(client.call_timeout(0, 0, b"still".to_vec(), LONG), "after").payload, b"still");
            assert_eq!(client.closed_reason().map(|e| e.to_string()), None);
            close_both_ok(client, server);
            assert_no_threads(&c);
            assert_no_threads(&s);
        }
    }
}
