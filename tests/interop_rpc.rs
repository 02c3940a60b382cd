//! Typed requests against the real Python `cs.packetstream` 20240630 and
//! `cs.binary`, both ways: Rust's typed API calling a Python
//! `HasPacketConnection` service of `BaseRequest` classes built from
//! `BinaryMultiValue` (tests/python/typed_service.py), and a Python
//! `HasPacketConnection` client whose `conn_do_remote` calls drive
//! `kv_server` (tests/python/kv_client.py).
//!
//! The Python peer is found or made by `util::python`; without it these tests
//! say SKIPPED and pass, except under CI (env `CI` set), where they fail.
//! Every child process gets a bounded wait and is killed when it runs out.

mod util;

use std::process::Command;
use std::time::Duration;

use packetstream::binary::{
    BSData, BSSFloat, BSString, BSUInt, DecodeError, Float64BE, Int32LE, UInt16BE, UInt64BE, UInt8,
};
use packetstream::ext::negotiation::PlainReason;
use packetstream::rpc::{
    CallTyped, Flagged, Handshake, Numbering, Registry, Role, Session, TypedCallTimeoutError, TypedRequest,
};
use packetstream::{CallTimeoutError, Config, ConfigBuilder, PacketConnection};
use util::python::{
    python, run_bounded, script, showing_stderr_on_failure, spawn_python, tail, PYTHON_WATCHDOG_SECONDS,
};
use util::{assert_no_threads, unique_name};

/// How long one answer may take.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a connection's close may take (the child is killed after it).
const CLOSE_TIMEOUT: Duration = Duration::from_secs(15);
/// The whole Python client run.
const PYTHON_CLIENT_TIMEOUT: Duration = Duration::from_secs(180);

fn config(role: char) -> ConfigBuilder {
    Config::builder().name(unique_name('y', role)).close_timeout(CLOSE_TIMEOUT)
}

packetstream::binary_struct! {
    /// The BSString answer of AddRequest.
    #[derive(Debug, Clone, PartialEq)]
    pub struct Got { pub text: BSString }

    /// What EveryField answers: each field transformed (see typed_service.py).
    #[derive(Debug, Clone)]
    pub struct Summary {
        pub n1: UInt8,
        pub n2: UInt16BE,
        pub i: Int32LE,
        pub u: UInt64BE,
        pub s: BSString,
        pub f: BSSFloat,
        pub d: BSData,
        pub x: Float64BE,
        pub z: BSUInt,
    }
}

packetstream::typed_request! {
    /// Python's `AddRequest(BaseRequest, BinaryMultiValue(..., dict(hashenum=BSUInt, data=BSData)))`.
    #[derive(Debug, Clone, PartialEq)]
    pub struct AddRequest(0, "py:add") -> (u64, Got) { pub hashenum: BSUInt, pub data: BSData }

    /// One field of each kind.
    #[derive(Debug, Clone)]
    pub struct EveryField(1, "py:every") -> Summary {
        pub n1: UInt8,
        pub n2: UInt16BE,
        pub i: Int32LE,
        pub u: UInt64BE,
        pub s: BSString,
        pub f: BSSFloat,
        pub d: BSData,
        pub x: Float64BE,
    }

    /// Its fulfil raises.
    #[derive(Debug, Clone)]
    pub struct Fail(2, "py:fail") { pub why: BSString }

    /// Answered with a Python str.
    #[derive(Debug, Clone)]
    pub struct Shout(3, "py:shout") -> String { pub text: BSString }

    /// Answered with the request's flags times 2, as flags.
    #[derive(Debug, Clone)]
    pub struct Flags(4, "py:flags") -> u64;
}

mod wrong {
    // AddRequest, as a client that expects no payload in the answer.
    packetstream::typed_request! {
        pub struct AddRequest(0, "py:add") -> u64 {
            pub hashenum: packetstream::binary::BSUInt,
            pub data: packetstream::binary::BSData,
        }
    }
}

fn call<R: TypedRequest>(conn: &impl CallTyped, request: &R) -> Result<R::Response, TypedCallTimeoutError> {
    conn.call_typed_timeout(request, ANSWER_TIMEOUT)
}

fn python_failure<T: std::fmt::Debug>(what: &str, result: Result<T, TypedCallTimeoutError>) -> String {
    match result {
        Err(TypedCallTimeoutError::Failed(failure)) => {
            assert_eq!(failure.flags, 0, "{what}: flags of the failure");
            failure.text().into_owned()
        }
        other => panic!("{what}: expected a failed answer, got {other:?}"),
    }
}

/// Checks what Python made of `rq` against the same computed here.
fn check_summary(rq: &EveryField, got: &Summary) {
    let what = format!("{rq:?}");
    assert_eq!(got.n1, 255 - rq.n1, "{what}: n1");
    assert_eq!(got.n2, rq.n2 ^ 0xffff, "{what}: n2");
    assert_eq!(got.i, -rq.i, "{what}: i");
    assert_eq!(got.u, rq.u, "{what}: u");
    assert_eq!(got.s, rq.s.chars().rev().collect::<String>(), "{what}: s");
    if rq.f.is_nan() {
        assert!(got.f.is_nan(), "{what}: f");
    } else {
        assert_eq!(got.f.to_bits(), rq.f.to_bits(), "{what}: f came back as {}", got.f);
    }
    assert_eq!(got.d, rq.d.iter().rev().copied().collect::<Vec<u8>>(), "{what}: d");
    assert_eq!(got.x.to_bits(), (-rq.x).to_bits(), "{what}: x");
    assert_eq!(got.z, rq.s.len() as u64, "{what}: z");
}

fn every_field_cases() -> Vec<EveryField> {
    let base = EveryField { n1: 0, n2: 0, i: 0, u: 0, s: String::new(), f: 0.0, d: Vec::new(), x: 0.0 };
    let mut cases = vec![
        base.clone(),
        EveryField {
            n1: 255,
            n2: 0xffff,
            i: i32::MAX,
            u: u64::MAX,
            s: "héllo €😀".into(),
            f: 1e16,
            d: (0..=255).collect(),
            x: f64::MAX,
        },
        EveryField {
            n1: 128,
            n2: 0x1234,
            i: -(i32::MAX),
            u: 1 << 63,
            s: "\u{7f}\u{80}\u{7ff}\u{800}\u{ffff}\u{10000}\u{10ffff}".into(),
            f: -0.0,
            d: vec![0; 1 << 20],
            x: -0.0,
        },
    ];
    // Every float of cs-binary.md, and a few more, as BSSFloat text.
    let floats = [
        0.1,
        1.0,
        -2.0,
        1e15,
        1e100,
        1e-4,
        1e-5,
        1.0 / 3.0,
        5e-324,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NAN,
        f64::MIN_POSITIVE,
        123456789.125,
        -1.5e-300,
    ];
    for (k, f) in floats.into_iter().enumerate() {
        cases.push(EveryField { f, x: f * 3.0, n1: k as u8, s: format!("float {k}"), ..base.clone() });
    }
    cases
}

#[test]
fn rust_typed_calls_to_a_python_service() {
    let Some(python) = python("rust_typed_calls_to_a_python_service") else { return };
    let (transport, stderr) = spawn_python(&python, "typed_service.py");
    showing_stderr_on_failure("typed_service.py", stderr, move || {
        let conn = PacketConnection::new(transport, config('s')).expect("start the connection");
        let name = conn.name().to_owned();

        // cs-binary.md's AddRequest, with and without flags.
        let add = AddRequest { hashenum: 7, data: b"hello".to_vec() };
        assert_eq!(call(&conn, &add).expect("add"), (7, Got { text: "got 5 bytes".into() }));
        let flagged = Flagged { flags: 3, request: AddRequest { hashenum: 300, data: Vec::new() } };
        assert_eq!(call(&conn, &flagged).expect("flagged add"), (300, Got { text: "got 0 bytes".into() }));
        assert_eq!(call(&conn, &Flagged { flags: 21, request: Flags }).expect("flags"), 42);
        assert_eq!(call(&conn, &Shout { text: "héllo, wörld".into() }).expect("shout"), "HÉLLO, WÖRLD");

        // Every field kind, both ways: Python decodes ours and encodes its
        // answer, which we decode.
        let cases = every_field_cases();
        for rq in &cases {
            let summary = call(&conn, rq).unwrap_or_else(|e| panic!("{rq:?}: {e}"));
            check_summary(rq, &summary);
        }
        println!("{} EveryField round trips checked", cases.len());

        // Many in flight at once.
        let pending: Vec<_> = (0..200u64)
            .map(|i| conn.submit_typed(AddRequest { hashenum: i, data: vec![1; i as usize] }).expect("submit"))
            .collect();
        for (i, pending) in pending.into_iter().enumerate() {
            let answer = pending.wait_timeout(ANSWER_TIMEOUT).unwrap_or_else(|e| panic!("request {i}: {e}"));
            assert_eq!(answer, (i as u64, Got { text: format!("got {i} bytes") }));
        }

        // What Python refuses, it refuses all alike.
        let text = python_failure("Fail", call(&conn, &Fail { why: "on purpose".into() }));
        assert_eq!(text, "exception during handler");
        for (rq_type, payload) in [(9, &b""[..]), (0, b"\x01\x05hel"), (0, b"\x01\x05hello!"), (3, b"\x01\xff")] {
            match conn.call_timeout(rq_type, 0, payload.to_vec(), ANSWER_TIMEOUT) {
                Err(CallTimeoutError::Failed(failure)) => assert_eq!(failure.text(), "exception during handler"),
                other => panic!("rq_type {rq_type} {payload:02x?}: {other:?}"),
            }
        }
        // An ok answer that is not what the request type says.
        match call(&conn, &wrong::AddRequest { hashenum: 1, data: b"x".to_vec() }) {
            Err(TypedCallTimeoutError::Undecodable(error)) => {
                assert_eq!(error.response().flags, 1);
                assert_eq!(error.response().payload, b"\x0bgot 1 bytes");
                assert_eq!(error.error(), &DecodeError::Trailing { offset: 0, len: 12 });
            }
            other => panic!("expected an undecodable answer, got {other:?}"),
        }

        let finished = conn.close().expect("close");
        assert!(finished.exit_status().is_some_and(|status| status.success()), "{finished:?}");
        assert!(finished.unread().is_empty(), "typed_service.py sent bytes after its EOF packet");
        assert_no_threads(&name);
    });
}

#[test]
fn a_session_against_python_uses_the_numbers_as_they_are() {
    let Some(python) = python("a_session_against_python_uses_the_numbers_as_they_are") else { return };
    let (transport, stderr) = spawn_python(&python, "typed_service.py");
    showing_stderr_on_failure("typed_service.py", stderr, move || {
        let registry = Registry::new().with::<AddRequest>().and_then(|r| r.with::<Shout>()).expect("registry");
        let handshake = Handshake::new(registry, Role::Adapt);
        let conn = PacketConnection::new(transport, handshake.configure(config('h'))).expect("start");
        let name = conn.name().to_owned();
        let session = Session::start(conn, &handshake, ANSWER_TIMEOUT).expect("no handshake is no failure");
        // cs.packetstream refuses the probe (with this text, sic): no
        // handshake happens, and every number travels as it is.
        let why = PlainReason::Refused("unknown channel %d".into()).to_string();
        assert_eq!(session.numbering(), &Numbering::AsIs(why));
        assert_eq!(call(&session, &Shout { text: "as is".into() }).expect("shout"), "AS IS");
        let add = AddRequest { hashenum: 2, data: b"ab".to_vec() };
        assert_eq!(call(&session, &add).expect("add"), (2, Got { text: "got 2 bytes".into() }));
        let finished = session.close().expect("close");
        assert!(finished.exit_status().is_some_and(|status| status.success()), "{finished:?}");
        assert_no_threads(&name);
    });
}

/// Runs kv_client.py against `kv_server ARGS`; its summary line.
fn python_kv_client(python: &std::path::Path, args: &[&str]) -> String {
    let server = util::process::example("kv_server");
    let mut command = Command::new(python);
    command.arg(script("kv_client.py")).arg(&server).args(args);
    command.env("PACKETSTREAM_TEST_WATCHDOG", PYTHON_WATCHDOG_SECONDS);
    let run = run_bounded(command, PYTHON_CLIENT_TIMEOUT).expect("run kv_client.py");
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    let report = || format!("---- stdout ----\n{stdout}\n---- stderr ----\n{}\n----", tail(&run.stderr, 16 * 1024));
    let status = run
        .status
        .unwrap_or_else(|| panic!("kv_client.py still running after {PYTHON_CLIENT_TIMEOUT:?}: killed\n{}", report()));
    assert!(status.success(), "kv_client.py against kv_server {args:?} exited with {status}\n{}", report());
    let summary = stdout.lines().last().unwrap_or("").to_owned();
    assert!(
        summary.starts_with("kv_client.py: ok ") && summary.contains(" failed=2 server_exit=0"),
        "unexpected summary from kv_client.py: {summary:?}\n{}",
        report()
    );
    summary
}

#[test]
fn a_python_has_packet_connection_client_drives_kv_server() {
    let Some(python) = python("a_python_has_packet_connection_client_drives_kv_server") else { return };
    // A kv_server offering the registry handshake is still a plain peer to
    // Python, which refuses the probe.
    for args in [&[][..], &["--registry"][..]] {
        let summary = python_kv_client(&python, args);
        println!("kv_server {args:?}: {summary}");
    }
}
