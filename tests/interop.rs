//! Interoperability with the real Python `cs.packetstream` 20240630.
//!
//! The Python peer is found or made by `util::python`: a virtual environment
//! under the target directory, made on first use, or the interpreter
//! `PACKETSTREAM_PYTHON` names. Without it these tests say SKIPPED and pass,
//! except under CI (env `CI` set), where they fail.
//!
//! Every child process gets a bounded wait and is killed when it runs out:
//! a hang fails a test instead of stalling it.

mod util;

use std::panic;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use packetstream::{
    CloseProblem, Config, ConfigBuilder, ConnectionError, Failure, PacketConnection, Pending, ProtocolError, Request,
    RequestError, Response, StreamOpenError, StreamOptions, WaitTimeoutError, MAX_REQUEST_FLAGS, MAX_RESPONSE_FLAGS,
};
use util::python::{
    drain, python, run_bounded, script, showing_stderr_on_failure, spawn_python, tail, PYTHON_WATCHDOG_SECONDS,
};
use util::{unique_name, Rng};

/// How long one answer may take.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a connection's close may take (the child is killed after it).
const CLOSE_TIMEOUT: Duration = Duration::from_secs(15);
/// The whole Python client run.
const PYTHON_CLIENT_TIMEOUT: Duration = Duration::from_secs(180);

// ---------------------------------------------------------------------------
// Requests

/// A configuration named uniquely in this test binary (`role` tells the
/// tests apart in thread names: `i000e-reader`, ...).
fn config(role: char) -> ConfigBuilder {
    Config::builder().name(unique_name('i', role)).close_timeout(CLOSE_TIMEOUT)
}

/// Waits a bounded time for an answer; a timeout fails the test.
fn answer(pending: Pending, what: &str) -> Result<Response, RequestError> {
    match pending.wait_timeout(ANSWER_TIMEOUT) {
        Ok(response) => Ok(response),
        Err(WaitTimeoutError::Timeout(_)) => panic!("{what}: no answer within {ANSWER_TIMEOUT:?}"),
        Err(WaitTimeoutError::Failed(failure)) => Err(RequestError::Failed(failure)),
        Err(WaitTimeoutError::Connection(error)) => Err(RequestError::Connection(error)),
        Err(other) => panic!("{what}: a wait's outcome this test does not know: {other:?}"),
    }
}

fn call(
    conn: &PacketConnection,
    rq_type: u64,
    flags: u64,
    payload: &[u8],
    what: &str,
) -> Result<Response, RequestError> {
    let pending = conn.submit(rq_type, flags, payload.to_vec()).unwrap_or_else(|e| panic!("{what}: submit: {e}"));
    answer(pending, what)
}

fn assert_echo(what: &str, got: Result<Response, RequestError>, flags: u64, payload: &[u8]) {
    let got = got.unwrap_or_else(|e| panic!("{what}: {e:?}"));
    assert_eq!(got.flags, flags, "{what}: flags");
    assert!(
        got.payload == payload,
        "{what}: payload of {} bytes came back as {} bytes{}",
        payload.len(),
        got.payload.len(),
        if got.payload.len() == payload.len() { " with different contents" } else { "" }
    );
}

/// Closes in order and checks that the child exited 0 and sent nothing after
/// its EOF packet.
fn close_cleanly(conn: PacketConnection, name: &str) {
    let finished = conn.close().unwrap_or_else(|e| panic!("close of the connection to {name}: {e:?}"));
    let status = finished.exit_status().unwrap_or_else(|| panic!("{name}: no exit status after close"));
    assert!(status.success(), "{name} exited badly: {status}");
    assert!(finished.unread().is_empty(), "{name} sent {} bytes after its EOF packet", finished.unread().len());
}

// ---------------------------------------------------------------------------
// Rust client, Python server

#[test]
fn rust_client_python_server_echo() {
    let Some(python) = python("rust_client_python_server_echo") else { return };
    let (transport, stderr) = spawn_python(&python, "echo_server.py");
    showing_stderr_on_failure("echo_server.py", stderr, move || {
        let conn = PacketConnection::new(transport, config('e')).expect("start the connection");
        let mut rng = Rng(0x5eed_0001);

        // A grid of request types, flags and payloads. MAX_RESPONSE_FLAGS is
        // the largest that can come back in a 64-bit response header.
        let all_flags = [0, 1, 15, 137, 1 << 40, MAX_RESPONSE_FLAGS];
        let payloads =
            [Vec::new(), b"x".to_vec(), b"hello, world".to_vec(), (0..=255).collect(), rng.bytes(100 * 1024)];
        let mut calls = 0;
        for rq_type in [0, 2, 7, 1000] {
            for flags in all_flags {
                for payload in &payloads {
                    let what = format!("rq_type {rq_type}, flags {flags}, {} bytes", payload.len());
                    assert_echo(&what, call(&conn, rq_type, flags, payload, &what), flags, payload);
                    calls += 1;
                }
            }
        }
        let big = rng.bytes(1 << 20);
        assert_echo("1 MiB payload", call(&conn, 0, 3, &big, "1 MiB payload"), 3, &big);

        // The handler raises for rq_type 1: ok = 0, flags 0, Python's text.
        match call(&conn, 1, 5, b"x", "rq_type 1") {
            Err(RequestError::Failed(failure)) => {
                println!("rq_type 1 failed as expected: {failure:?}");
                assert_eq!(failure.flags, 0, "flags of the failed response");
                assert_eq!(failure.text(), "exception during handler");
            }
            other => panic!("rq_type 1 should fail with RequestError::Failed, got {other:?}"),
        }

        // cs.packetstream serves channel 0 only.
        for i in 0..3 {
            let pending = conn.submit_on(5, 0, i, b"on channel 5".to_vec()).expect("submit on channel 5");
            assert_eq!(pending.channel(), 5);
            match answer(pending, "request on channel 5") {
                Err(RequestError::Failed(failure)) => {
                    println!("request on channel 5 refused as expected: {failure:?}");
                    assert!(failure.text().starts_with("unknown channel"), "refusal text: {failure:?}");
                    assert_eq!(failure.flags, 0);
                }
                other => panic!("a request on channel 5 should fail with RequestError::Failed, got {other:?}"),
            }
        }

        // Failures and refusals leave the connection usable.
        assert_echo("call after refusals", call(&conn, 0, 9, b"still here", "after refusals"), 9, b"still here");
        assert_eq!(conn.outstanding(), 0);
        println!("{} echo calls checked", calls + 1);
        close_cleanly(conn, "echo_server.py");
    });
}

#[test]
fn rust_client_python_server_many_in_flight_from_threads() {
    const THREADS: u64 = 4;
    const PER_THREAD: usize = 250;
    let Some(python) = python("rust_client_python_server_many_in_flight_from_threads") else { return };
    let (transport, stderr) = spawn_python(&python, "echo_server.py");
    showing_stderr_on_failure("echo_server.py", stderr, move || {
        let conn = PacketConnection::new(transport, config('t')).expect("start the connection");
        thread::scope(|scope| {
            let callers: Vec<_> = (0..THREADS)
                .map(|t| {
                    let conn = &conn;
                    scope.spawn(move || {
                        let mut rng = Rng(0x1000 + t);
                        // Submit them all before waiting for any.
                        let sent: Vec<_> = (0..PER_THREAD)
                            .map(|i| {
                                let flags = rng.below(1 << 48);
                                let len = rng.below(1024) as usize;
                                let payload = rng.bytes(len);
                                let pending = conn.submit(0, flags, payload.clone()).unwrap_or_else(|e| {
                                    panic!("thread {t}: submit {i}: {e}");
                                });
                                (pending, flags, payload)
                            })
                            .collect();
                        for (i, (pending, flags, payload)) in sent.into_iter().enumerate() {
                            let what = format!("thread {t}, request {i}");
                            assert_echo(&what, answer(pending, &what), flags, &payload);
                        }
                    })
                })
                .collect();
            for caller in callers {
                if let Err(panic) = caller.join() {
                    panic::resume_unwind(panic);
                }
            }
        });
        assert_eq!(conn.outstanding(), 0);
        let stats = conn.stats();
        println!("{stats:?}");
        close_cleanly(conn, "echo_server.py");
    });
}

#[test]
fn rust_and_python_both_make_requests() {
    let Some(python) = python("rust_and_python_both_make_requests") else { return };
    let (transport, stderr) = spawn_python(&python, "bidi_server.py");
    showing_stderr_on_failure("bidi_server.py", stderr, move || {
        // Python's requests to us: rq_type 0 answers flags + 1 and the payload
        // in upper case; rq_type 1 fails.
        let served = Arc::new(AtomicUsize::new(0));
        let handler = {
            let served = Arc::clone(&served);
            move |rq: Request| -> Result<Response, Failure> {
                served.fetch_add(1, Ordering::Relaxed);
                match rq.rq_type {
                    0 => Ok(Response { flags: rq.flags + 1, payload: rq.payload.to_ascii_uppercase() }),
                    1 => Err(Failure::new("rust refuses")),
                    other => Err(Failure::new(format!("unexpected rq_type {other}"))),
                }
            }
        };
        let conn = PacketConnection::with_handler(transport, config('b'), handler).expect("start the connection");

        // Plain echo, and Python's own failure.
        assert_echo("echo", call(&conn, 0, 4, b"plain", "echo"), 4, b"plain");
        assert!(matches!(call(&conn, 1, 0, b"", "rq_type 1"), Err(RequestError::Failed(_))));

        // rq_type 2: Python asks us back while our request waits; from
        // several threads, so requests go both ways at once.
        const THREADS: u64 = 4;
        const PER_THREAD: usize = 25;
        thread::scope(|scope| {
            let callers: Vec<_> = (0..THREADS)
                .map(|t| {
                    let conn = &conn;
                    scope.spawn(move || {
                        let mut rng = Rng(0x2000 + t);
                        let sent: Vec<_> = (0..PER_THREAD)
                            .map(|_| {
                                let flags = rng.below(1 << 40);
                                let payload: Vec<u8> =
                                    (0..rng.below(200)).map(|_| b'a' + rng.below(26) as u8).collect();
                                (conn.submit(2, flags, payload.clone()).expect("submit rq_type 2"), flags, payload)
                            })
                            .collect();
                        for (i, (pending, flags, payload)) in sent.into_iter().enumerate() {
                            let what = format!("thread {t}, callback request {i}");
                            assert_echo(&what, answer(pending, &what), flags + 1, &payload.to_ascii_uppercase());
                        }
                    })
                })
                .collect();
            for caller in callers {
                if let Err(panic) = caller.join() {
                    panic::resume_unwind(panic);
                }
            }
        });

        // rq_type 3: Python asks us for rq_type 1, sees our failure, and
        // reports its text.
        let reply = call(&conn, 3, 0, b"", "rq_type 3").expect("rq_type 3");
        assert_eq!(String::from_utf8_lossy(&reply.payload), "peer failed: rust refuses");

        let expected = THREADS as usize * PER_THREAD + 1;
        assert_eq!(served.load(Ordering::Relaxed), expected, "requests Python made of us");
        let stats = conn.stats();
        println!("{stats:?}");
        close_cleanly(conn, "bidi_server.py");
    });
}

/// Request flags up to MAX_REQUEST_FLAGS fit in a request header, but the
/// echo of flags above MAX_RESPONSE_FLAGS does not fit in 64 bits: Python
/// (unbounded integers) sends it anyway. The reader must report a protocol
/// error, not wrap or panic.
#[test]
fn python_echo_of_flags_past_64_bits_is_a_protocol_error() {
    let Some(python) = python("python_echo_of_flags_past_64_bits_is_a_protocol_error") else { return };
    let (transport, stderr) = spawn_python(&python, "echo_server.py");
    showing_stderr_on_failure("echo_server.py", stderr, move || {
        let conn = PacketConnection::new(transport, config('o')).expect("start the connection");
        assert_echo("largest echoable flags", call(&conn, 0, MAX_RESPONSE_FLAGS, b"", "max"), MAX_RESPONSE_FLAGS, b"");
        match call(&conn, 0, MAX_REQUEST_FLAGS, b"too big", "flags past 64 bits") {
            Err(RequestError::Connection(ConnectionError::Protocol(ProtocolError::VarintOverflow))) => {}
            other => panic!("the echo of flags {MAX_REQUEST_FLAGS} should be a VarintOverflow, got {other:?}"),
        }
        match conn.close() {
            Err(error)
                if matches!(
                    error.problem(),
                    CloseProblem::Connection(ConnectionError::Protocol(ProtocolError::VarintOverflow))
                ) => {}
            other => panic!("close should report the protocol error, got {other:?}"),
        }
    });
}

// ---------------------------------------------------------------------------
// Python client, Rust server

#[test]
fn python_client_rust_server() {
    let Some(python) = python("python_client_rust_server") else { return };
    let server = util::process::echo_server();
    let mut command = Command::new(&python);
    command.arg(script("echo_client.py")).arg(server).env("PACKETSTREAM_TEST_WATCHDOG", PYTHON_WATCHDOG_SECONDS);
    let run = run_bounded(command, PYTHON_CLIENT_TIMEOUT).expect("run echo_client.py");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = tail(&run.stderr, 16 * 1024);
    let report = || format!("---- stdout ----\n{stdout}\n---- stderr ----\n{stderr}\n----");
    let status = run.status.unwrap_or_else(|| {
        panic!("echo_client.py still running after {PYTHON_CLIENT_TIMEOUT:?}: killed\n{}", report())
    });
    assert!(status.success(), "echo_client.py against {} exited with {status}\n{}", server.display(), report());
    let summary = stdout.lines().last().unwrap_or("");
    assert!(
        summary.starts_with("echo_client.py: ok ") && summary.contains(" server_exit=0"),
        "unexpected summary from echo_client.py: {summary:?}\n{}",
        report()
    );
    println!("{summary}");
}

// ---------------------------------------------------------------------------
// The extension mechanism against a peer that has none

/// A Python log reduced to what does not change from run to run: numbers
/// (times, thread ids, counters) and hex addresses become `#`.
fn log_lines(stderr: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(stderr);
    text.lines()
        .map(|line| {
            let mut out = String::with_capacity(line.len());
            let mut chars = line.chars().peekable();
            while let Some(c) = chars.next() {
                if c == '0' && chars.peek() == Some(&'x') {
                    chars.next();
                    while chars.next_if(char::is_ascii_hexdigit).is_some() {}
                    out.push_str("0x#");
                } else if c.is_ascii_digit() {
                    while chars.next_if(char::is_ascii_digit).is_some() {}
                    out.push('#');
                } else {
                    out.push(c);
                }
            }
            out
        })
        .collect()
}

/// The lines of `with` that `without` lacks, and those `without` has that
/// `with` lacks (as multisets).
fn log_difference(with: &[String], without: &[String]) -> (Vec<String>, Vec<String>) {
    let mut missing = without.to_vec();
    let mut extra = Vec::new();
    for line in with {
        match missing.iter().position(|other| other == line) {
            Some(at) => {
                missing.remove(at);
            }
            None => extra.push(line.clone()),
        }
    }
    (extra, missing)
}

/// A Python peer's log with extensions on at our end holds what the same
/// run without them gives, and one line more: the rejected probe.
fn assert_only_the_probe_was_rejected(with: &[u8], without: &[u8]) {
    let (extra, missing) = log_difference(&log_lines(with), &log_lines(without));
    let shown =
        || format!("---- with extensions ----\n{}\n---- without ----\n{}", tail(with, 8192), tail(without, 8192));
    assert!(missing.is_empty(), "lines of the plain run missing with extensions: {missing:#?}\n{}", shown());
    assert_eq!(extra.len(), 1, "lines only in the run with extensions: {extra:#?}\n{}", shown());
    // The probe is tag 0 on the control channel; a peer without a handler
    // refuses it for that, one with a handler for its channel.
    let probe = format!("request[{}:0]: rejecting request: ", packetstream::ext::CONTROL_CHANNEL);
    assert!(extra[0].contains("request[#:#]: rejecting request: "), "not the rejected probe: {:?}", extra[0]);
    assert_eq!(String::from_utf8_lossy(with).matches(&probe).count(), 1, "{}", shown());
    assert_eq!(String::from_utf8_lossy(without).matches(&probe).count(), 0, "{}", shown());
}

/// One run of a Rust client against Python's echo server; returns the
/// server's stderr.
fn rust_client_run(python: &Path, extensions: bool) -> Vec<u8> {
    use packetstream::ext::negotiation::{PlainReason, State};
    use packetstream::CloseOptions;
    let (transport, stderr) = spawn_python(python, "echo_server.py");
    let conn = PacketConnection::new(transport, config('x').extensions(extensions)).expect("start");
    for i in 0..20u64 {
        let payload = format!("call {i}").into_bytes();
        assert_echo("echo", call(&conn, 0, i, &payload, "echo"), i, &payload);
    }
    assert!(matches!(call(&conn, 1, 0, b"x", "failing"), Err(RequestError::Failed(_))));
    let expected = if extensions {
        // cs.packetstream refuses every channel but 0, with this text (sic).
        State::Plain(PlainReason::Refused("unknown channel %d".into()))
    } else {
        State::Off
    };
    assert_eq!(conn.wait_extensions(ANSWER_TIMEOUT), expected);
    // What the extensions add never reaches a plain peer: a stream fails
    // here at once, a request given up early is not announced, and a
    // call's time budget stays here.
    match conn.stream(0, 0, b"stream?".to_vec(), StreamOptions::receive()) {
        Err(StreamOpenError::Unsupported(state)) => assert_eq!(state, expected),
        other => panic!("a stream of a plain peer: {other:?}"),
    }
    drop(conn.submit(0, 7, b"given up".to_vec()).expect("submit"));
    let timed = conn.call_timeout(0, 8, b"timed".to_vec(), ANSWER_TIMEOUT).expect("a call with a budget");
    assert_eq!((timed.flags, timed.payload.as_slice()), (8, b"timed".as_slice()));
    // A reason given to a plain peer: an ordinary close.
    let finished = conn.close_with(CloseOptions::new().reason("unheard")).expect("close");
    assert!(finished.exit_status().is_some_and(|status| status.success()), "{finished:?}");
    stderr.0.recv_timeout(Duration::from_secs(30)).expect("the server's stderr ended")
}

#[test]
fn rust_client_with_extensions_against_python_server() {
    let Some(python) = python("rust_client_with_extensions_against_python_server") else { return };
    let without = rust_client_run(&python, false);
    let with = rust_client_run(&python, true);
    assert_only_the_probe_was_rejected(&with, &without);
}

/// A stream asked of the real Python peer fails at once with a text that
/// says why, and Python, which saw nothing but the probe, serves on.
#[test]
fn a_stream_request_to_python_is_refused_at_once() {
    let Some(python) = python("a_stream_request_to_python_is_refused_at_once") else { return };
    let (transport, stderr) = spawn_python(&python, "echo_server.py");
    showing_stderr_on_failure("echo_server.py", stderr, move || {
        let conn = PacketConnection::new(transport, config('s').extensions(true)).expect("start the connection");
        let started = std::time::Instant::now();
        let error = conn.stream(3, 0, b"stream?".to_vec(), StreamOptions::both()).expect_err("no streams with Python");
        let took = started.elapsed();
        assert!(matches!(error, StreamOpenError::Unsupported(_)), "{error:?}");
        assert_eq!(
            error.to_string(),
            "cannot stream: the peer does not speak the protocol extensions (a plain cs.packetstream peer?): \
             it refused the probe: unknown channel %d"
        );
        // One round trip, the probe's.
        assert!(took < ANSWER_TIMEOUT, "{took:?}");
        eprintln!("a stream of Python refused after {took:?}");
        assert_echo("after", call(&conn, 0, 4, b"still here", "after"), 4, b"still here");
        assert_eq!(conn.stats().streams_out, 0);
        close_cleanly(conn, "echo_server.py");
    });
}

/// One run of Python's echo client against our echo server (`args` added);
/// returns the client's stderr, with the server's, which it inherits.
fn python_client_run(python: &Path, args: &[&str]) -> Vec<u8> {
    let mut command = Command::new(python);
    command.arg(script("echo_client.py")).arg(util::process::echo_server()).args(args);
    command.env("PACKETSTREAM_TEST_WATCHDOG", PYTHON_WATCHDOG_SECONDS);
    let run = run_bounded(command, PYTHON_CLIENT_TIMEOUT).expect("run echo_client.py");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.is_some_and(|status| status.success()) && stdout.contains(" server_exit=0"),
        "echo_client.py against echo_server {args:?}: {:?}\n{stdout}\n{}",
        run.status,
        tail(&run.stderr, 8192)
    );
    run.stderr
}

#[test]
fn python_client_against_rust_server_with_extensions() {
    let Some(python) = python("python_client_against_rust_server_with_extensions") else { return };
    let without = python_client_run(&python, &[]);
    let with = python_client_run(&python, &["--extensions"]);
    assert_only_the_probe_was_rejected(&with, &without);
}

#[test]
fn keepalive_against_python_server() {
    let Some(python) = python("keepalive_against_python_server") else { return };
    let (transport, stderr) = spawn_python(&python, "echo_server.py");
    showing_stderr_on_failure("echo_server.py", stderr, move || {
        // The timeout leaves Python, sharing two cores with the other tests'
        // peers, a second to answer each ping.
        let config = config('k').keepalive(Duration::from_millis(100), Duration::from_secs(1));
        let conn = PacketConnection::new(transport, config).expect("start the connection");
        assert_echo("before", call(&conn, 0, 1, b"before", "before"), 1, b"before");
        // Idle for three timeouts: Python refuses every ping (it serves
        // channel 0 only), and each refusal shows the peer is there.
        let idle = conn.join_recv_timeout(Duration::from_secs(3));
        assert!(matches!(idle, Err(packetstream::JoinTimeoutError::Timeout)), "{idle:?}");
        assert!(conn.closed_reason().is_none(), "{:?}", conn.closed_reason());
        assert_echo("after", call(&conn, 0, 2, b"after", "after"), 2, b"after");
        close_cleanly(conn, "echo_server.py");
    });
}

// ---------------------------------------------------------------------------
// A Python client over a TCP socket's descriptor, against our servers

/// Runs tcp_echo_client.py against `addr` (`args` added); its summary line.
fn python_tcp_client(python: &Path, addr: std::net::SocketAddr, args: &[&str]) -> String {
    let mut command = Command::new(python);
    command.arg(script("tcp_echo_client.py")).arg(addr.ip().to_string()).arg(addr.port().to_string()).args(args);
    command.env("PACKETSTREAM_TEST_WATCHDOG", PYTHON_WATCHDOG_SECONDS);
    let run = run_bounded(command, PYTHON_CLIENT_TIMEOUT).expect("run tcp_echo_client.py");
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    let summary = stdout.lines().last().unwrap_or("").to_owned();
    assert!(
        run.status.is_some_and(|status| status.success()) && summary.starts_with("tcp_echo_client.py: ok "),
        "tcp_echo_client.py against {addr}: {:?}\n{stdout}\n{}",
        run.status,
        tail(&run.stderr, 8192)
    );
    summary
}

#[test]
fn python_client_over_tcp_against_tcp_echo_server() {
    use std::process::Stdio;
    let Some(python) = python("python_client_over_tcp_against_tcp_echo_server") else { return };
    let mut server = Command::new(util::process::example("tcp_echo_server"))
        .arg("127.0.0.1:0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start tcp_echo_server");
    let (listening, stdout) = util::process::listening(&mut server, 1);
    let addr: std::net::SocketAddr =
        listening[0].parse().unwrap_or_else(|_| panic!("not an address: {:?}", listening[0]));
    let summary = python_tcp_client(&python, addr, &[]);
    println!("{summary}");
    let calls: u64 = summary
        .split_whitespace()
        .find_map(|field| field.strip_prefix("calls="))
        .and_then(|n| n.parse().ok())
        .expect("calls=N in the summary");
    // End of input: a graceful shutdown, the totals, status 0.
    drop(server.stdin.take());
    let rest = drain(stdout.into_inner());
    let exited = util::wait_for(Duration::from_secs(30), || server.try_wait().ok().flatten().is_some());
    if !exited {
        let _ = server.kill();
    }
    let status = server.wait().expect("tcp_echo_server's status");
    let rest = String::from_utf8_lossy(&rest.recv_timeout(Duration::from_secs(10)).unwrap_or_default()).into_owned();
    assert!(status.success(), "tcp_echo_server exited with {status}: {rest}");
    assert_eq!(rest.lines().last(), Some(format!("served connections=1 requests={calls}").as_str()), "{rest}");
}

#[test]
fn keepalive_through_the_server_against_a_python_client() {
    use packetstream::net::{ConnectionInfo, EndReason, Server, ServerConfig};
    let Some(python) = python("keepalive_through_the_server_against_a_python_client") else { return };
    let (ends_tx, ends) = crossbeam_channel::unbounded();
    // A timeout of a second, as in keepalive_against_python_server.
    let keepalive = Config::builder().keepalive(Duration::from_millis(100), Duration::from_secs(1));
    let server = Server::builder()
        .config(ServerConfig::builder().name(unique_name('i', 'K')).connection(keepalive))
        .listen("127.0.0.1:0".parse().unwrap())
        .on_end(move |_, reason| {
            let _ = ends_tx.send(reason.clone());
        })
        .serve(|_: &ConnectionInfo| {
            |rq: Request| -> Result<Response, Failure> {
                match rq.rq_type {
                    1 => Err(Failure::new("rq_type 1 always fails")),
                    _ => Ok(Response { flags: rq.flags, payload: rq.payload }),
                }
            }
        })
        .expect("serve");
    server.spawn().expect("accept");
    let Some(packetstream::net::Addr::Tcp(addr)) = server.local_addrs().first().cloned() else {
        panic!("a TCP address")
    };
    // Idle for two and a half keepalive timeouts: Python refuses every
    // ping, which shows that it is there.
    let summary = python_tcp_client(&python, addr, &["--idle", "2.5"]);
    println!("{summary}");
    let reason = ends.recv_timeout(Duration::from_secs(30)).expect("the end hook");
    assert!(matches!(reason, EndReason::PeerClosed), "{reason:?}");
    let report = server.shutdown(std::time::Instant::now() + Duration::from_secs(2));
    assert!(report.problems.is_empty(), "{report:?}");
}
