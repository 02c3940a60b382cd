//! Typed requests end to end: the bytes of cs.packetstream's BaseRequest
//! traffic (cs-binary.md section 3), typed calls and their errors, the
//! dispatcher's refusals, typed pulled requests, and the registry handshake
//! (agreement, adaptation, mismatch) over the in-memory transport and real
//! ones. The field codecs themselves are tests/binary.rs's.
//!
//! Every wait is bounded, and every test checks at its end that its
//! connections left no thread running.

mod util;

use std::io::{Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use packetstream::binary::{BSData, BSString, BSUInt, DecodeError, EncodeError, UInt16BE, Utf8Nul};
use packetstream::ext::{rq_type as control_type, CONTROL_CHANNEL};
use packetstream::rpc::{
    exchange, CallTyped, Dispatcher, Flagged, Handshake, HandshakeError, InvalidTyped, Numbering, Registry,
    RegistryError, Role, Router, Session, Typed, TypedCallError, TypedCallTimeoutError, TypedRequest,
    TypedRequestError, TypedWaitTimeoutError,
};
use packetstream::{
    Config, ConfigBuilder, ConnectionError, Failure, InvalidRequest, Packet, PacketConnection, Response,
    DROPPED_UNANSWERED, MAX_REQUEST_FLAGS,
};
use util::raw::{feed, frame, hex, raw_ends, RawEnds};
use util::{assert_no_threads, close, close_both_ok, raw_pair, transport_pair, within, Kind, LONG};

/// Bytes from space-separated hex.
fn config(name: &str) -> ConfigBuilder {
    Config::builder().name(name)
}

packetstream::binary_struct! {
    /// The answer of cs-binary.md's live capture: a BSString.
    #[derive(Debug, Clone, PartialEq)]
    pub struct Got { pub text: BSString }

    /// An answer that cannot be encoded when its text holds a NUL.
    #[derive(Debug, Clone, PartialEq)]
    pub struct NulText { pub text: Utf8Nul }
}

packetstream::typed_request! {
    /// cs.packetstream's example request, as user type 0.
    #[derive(Debug, Clone, PartialEq)]
    pub struct AddRequest(0, "cs:add") -> (u64, Got) { pub hashenum: BSUInt, pub data: BSData }

    /// The same fields as user type 3.
    #[derive(Debug, Clone, PartialEq)]
    pub struct AddRequest3(3, "cs:add3") -> (u64, Got) { pub hashenum: BSUInt, pub data: BSData }

    /// Echoes its text.
    #[derive(Debug, Clone, PartialEq)]
    pub struct Echo(1, "test:echo") -> String { pub text: BSString }

    /// Two fields; the answer is raw flags and payload.
    #[derive(Debug, Clone, PartialEq)]
    pub struct Pair(2, "test:pair") { pub a: UInt16BE, pub b: BSData }

    /// Answered with a text that may not encode.
    #[derive(Debug, Clone, PartialEq)]
    pub struct Nul(4, "test:nul") -> NulText { pub text: BSString }

    /// Its fulfilment panics.
    #[derive(Debug, Clone, PartialEq)]
    pub struct Boom(5, "test:boom") -> bool;

    /// Fails with the flags it is given.
    #[derive(Debug, Clone, PartialEq)]
    pub struct Refuse(6, "test:refuse") -> bool { pub flags: BSUInt }

    /// A request that cannot be encoded when its text holds a NUL.
    #[derive(Debug, Clone, PartialEq)]
    pub struct Unsendable(7, "test:unsendable") { pub text: Utf8Nul }
}

mod wrong {
    // Echo, as a client that expects a number back.
    packetstream::typed_request! {
        #[derive(Debug, Clone, PartialEq)]
        pub struct Echo(1, "test:echo") -> u64 { pub text: packetstream::binary::BSString }
    }
}

/// A dispatcher for the test request types, counting what it fulfilled.
fn service() -> Dispatcher<AtomicU64> {
    util::quiet_expected_panics();
    Dispatcher::new(AtomicU64::new(0))
        .on::<AddRequest, _, String>(|count, rq| {
            count.fetch_add(1, Ordering::Relaxed);
            Ok((rq.hashenum + 1, Got { text: format!("got {} bytes", rq.data.len()) }))
        })
        .on::<Flagged<AddRequest3>, _, String>(|count, rq| {
            count.fetch_add(1, Ordering::Relaxed);
            Ok((rq.flags, Got { text: format!("hashenum {}", rq.request.hashenum) }))
        })
        .on::<Echo, _, String>(|count, rq| {
            count.fetch_add(1, Ordering::Relaxed);
            Ok(rq.text)
        })
        .on::<Pair, _, String>(|_, rq| Ok(Response { flags: u64::from(rq.a), payload: rq.b }))
        .on::<Nul, _, String>(|_, rq| Ok(NulText { text: rq.text }))
        .on::<Boom, _, String>(|_, _| panic!("{}: boom", util::EXPECTED_PANIC))
        .on::<Refuse, _, Failure>(|_, rq| Err(Failure::with_flags(rq.flags, b"refused".to_vec())))
}

/// Reads exactly `n` bytes of what a connection wrote, within [`LONG`];
/// gives the reader back.
fn read_bytes(reader: Box<dyn Read + Send>, n: usize) -> (Vec<u8>, Box<dyn Read + Send>) {
    within(LONG, "reading the connection's bytes", move || {
        let mut reader = reader;
        let mut bytes = vec![0; n];
        reader.read_exact(&mut bytes).expect("read the connection's bytes");
        (bytes, reader)
    })
}

/// The bytes of the first request a fresh client sends for `submit`, and
/// the typed answer to `answer`'s bytes.
fn first_request<R: TypedRequest>(request: R, expected: &str, answer: &str) -> Result<R::Response, TypedRequestError> {
    let name = util::unique_name('b', 'c');
    let RawEnds { transport, reader, mut writer, .. } = raw_ends(Kind::Memory);
    let conn = PacketConnection::new(transport, config(&name)).expect("start");
    let pending = conn.submit_typed(request).expect("submit");
    let expected = hex(expected);
    let (bytes, reader) = read_bytes(reader, expected.len());
    assert_eq!(bytes, expected, "{name}: the request's bytes");
    writer.write_all(&hex(answer)).and_then(|()| writer.write_all(&frame(&Packet::eof()))).expect("answer");
    let outcome = match pending.wait_timeout(LONG) {
        Ok(answer) => Ok(answer),
        Err(TypedWaitTimeoutError::Failed(failure)) => Err(TypedRequestError::Failed(failure)),
        Err(TypedWaitTimeoutError::Undecodable(error)) => Err(TypedRequestError::Undecodable(error)),
        Err(other) => panic!("{name}: {other:?}"),
    };
    let rest = feed(reader);
    close(conn).expect("close");
    assert!(rest.until_end().iter().all(|packet| packet.control().is_some()), "only ERQ and EOF follow");
    drop(writer);
    assert_no_threads(&name);
    outcome
}

// ---------------------------------------------------------------------------
// The bytes of cs-binary.md section 3

#[test]
fn base_request_traffic_as_captured_from_python() {
    // AddRequest(hashenum=1, data=b'hello') as user type 0, first tag 2, and
    // the live capture's answer: ok, flags 2, BSString('got 5 bytes').
    let rq = AddRequest { hashenum: 1, data: b"hello".to_vec() };
    assert_eq!(rq.encode_payload(), Ok(hex("01 05 68 65 6c 6c 6f")));
    let answer =
        first_request(rq.clone(), "0a 02 02 01 01 05 68 65 6c 6c 6f", "0e 02 14 0b 67 6f 74 20 35 20 62 79 74 65 73");
    assert_eq!(answer.unwrap(), (2, Got { text: "got 5 bytes".into() }));

    // The same with flags=3 (live capture), answered with a handler failure.
    let failed = first_request(
        Flagged { flags: 3, request: rq },
        "0a 02 0e 01 01 05 68 65 6c 6c 6f",
        "1a 02 00 65 78 63 65 70 74 69 6f 6e 20 64 75 72 69 6e 67 20 68 61 6e 64 6c 65 72",
    );
    match failed {
        Err(TypedRequestError::Failed(failure)) => {
            assert_eq!((failure.flags, failure.text().into_owned()), (0, "exception during handler".to_owned()))
        }
        other => panic!("{other:?}"),
    }

    // AddRequest(flags=5, hashenum=300, data=b'') as user type 3, and an ok
    // answer of flags 5 and payload "ok", which is no BSString.
    let undecodable = first_request(
        Flagged { flags: 5, request: AddRequest3 { hashenum: 300, data: Vec::new() } },
        "06 02 16 04 82 2c 00",
        "04 02 2c 6f 6b",
    );
    match undecodable {
        Err(TypedRequestError::Undecodable(error)) => {
            assert_eq!(error.response(), &Response { flags: 5, payload: b"ok".to_vec() });
            assert_eq!(error.name(), "cs:add3");
            assert!(matches!(error.error(), DecodeError::Short { .. }), "{error}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn base_request_traffic_served() {
    let name = util::unique_name('b', 's');
    let (transport, mut raw) = raw_pair(Kind::Memory);
    let conn = PacketConnection::with_handler(transport, config(&name), service()).expect("start");
    raw.send_bytes(&hex("0a 02 02 01 01 05 68 65 6c 6c 6f"));
    let answer = raw.recv();
    assert_eq!(frame(&answer), hex("0e 02 14 0b 67 6f 74 20 35 20 62 79 74 65 73"));
    // Flags 5 reach the fulfilling function through Flagged.
    raw.send_bytes(&hex("06 03 16 04 82 2c 00"));
    let answer = raw.recv();
    assert_eq!(answer, Packet::response(0, 3, true, 5, b"\x0chashenum 300".to_vec()).unwrap());
    raw.send_packet(&Packet::eof());
    close(conn).expect("close");
    assert_no_threads(&name);
}

// ---------------------------------------------------------------------------
// Typed calls

fn typed_calls(kind: Kind) {
    let (a, b) = transport_pair(kind);
    let server = PacketConnection::with_handler(b, config(&kind.name('s')), service()).expect("server");
    let client = PacketConnection::new(a, config(&kind.name('c'))).expect("client");
    let (c, s) = (client.name().to_owned(), server.name().to_owned());

    let answer = client.call_typed(&AddRequest { hashenum: 41, data: vec![7; 1000] }).expect("add");
    assert_eq!(answer, (42, Got { text: "got 1000 bytes".into() }));
    assert_eq!(client.call_typed(&Echo { text: "héllo €".into() }).expect("echo"), "héllo €");
    let raw = client.call_typed(&Pair { a: 0x1234, b: b"pair".to_vec() }).expect("pair");
    assert_eq!(raw, Response { flags: 0x1234, payload: b"pair".to_vec() });
    let flagged = client.call_typed(&Flagged { flags: 9, request: AddRequest3 { hashenum: 3, data: Vec::new() } });
    assert_eq!(flagged.expect("flagged"), (9, Got { text: "hashenum 3".into() }));

    // Many in flight, answered in any order.
    let pending: Vec<_> =
        (0..50).map(|i| client.submit_typed(Echo { text: format!("call {i}") }).expect("submit")).collect();
    for (i, pending) in pending.into_iter().enumerate().rev() {
        assert_eq!(pending.request().text, format!("call {i}"));
        assert_eq!(pending.wait_timeout(LONG).expect("answer"), format!("call {i}"));
    }
    let timed = client.call_typed_timeout(&Echo { text: "timed".into() }, LONG).expect("timed");
    assert_eq!(timed, "timed");
    close_both_ok(client, server);
    assert_no_threads(&c);
    assert_no_threads(&s);
}

#[test]
fn typed_calls_over_every_transport() {
    for kind in Kind::ALL {
        typed_calls(kind);
    }
}

#[test]
fn a_failed_an_undecodable_and_an_unsendable_answer_are_told_apart() {
    let kind = Kind::Memory;
    let (a, b) = transport_pair(kind);
    let server = PacketConnection::with_handler(b, config(&kind.name('s')), service()).expect("server");
    let client = PacketConnection::new(a, config(&kind.name('c'))).expect("client");
    let (c, s) = (client.name().to_owned(), server.name().to_owned());

    match client.call_typed(&Refuse { flags: 6 }) {
        Err(TypedCallError::Failed(failure)) => assert_eq!(failure, Failure::with_flags(6, b"refused".to_vec())),
        other => panic!("{other:?}"),
    }
    match client.call_typed(&wrong::Echo { text: "not a number".into() }) {
        Err(TypedCallError::Undecodable(error)) => {
            assert_eq!(error.response().payload, b"not a number");
            assert_eq!(error.error(), &DecodeError::Trailing { offset: 0, len: 12 });
            assert_eq!(error.to_string(), "undecodable answer to test:echo: unparsed data at offset 0 (12 bytes)");
        }
        other => panic!("{other:?}"),
    }
    match client.call_typed(&Unsendable { text: "a\0b".into() }) {
        Err(TypedCallError::Invalid(InvalidTyped::Encode { name, error })) => {
            assert_eq!(name, "test:unsendable");
            assert_eq!(error, EncodeError::ContainsNul { what: "BinaryUTF8NUL", index: 1 });
        }
        other => panic!("{other:?}"),
    }
    let too_many_flags = Flagged { flags: MAX_REQUEST_FLAGS + 1, request: Echo { text: String::new() } };
    match client.submit_typed(too_many_flags) {
        Err(packetstream::rpc::TypedSubmitError::Invalid(InvalidTyped::Request(InvalidRequest::TooLarge(_)))) => {}
        other => panic!("{other:?}"),
    }
    // The timed call's errors are the same, and its timeout.
    match client.call_typed_timeout(&Refuse { flags: 1 }, LONG) {
        Err(TypedCallTimeoutError::Failed(failure)) => assert_eq!(failure.flags, 1),
        other => panic!("{other:?}"),
    }
    // Nothing is left in flight, and any of them passes up as an Error.
    assert_eq!(client.outstanding(), 0);
    let error: packetstream::Error = client.call_typed(&Refuse { flags: 0 }).unwrap_err().into();
    assert_eq!(error.failure().map(|f| f.text().into_owned()), Some("refused".to_owned()));
    // After end_requests the connection takes no new request.
    client.end_requests().expect("ERQ");
    match client.call_typed(&Echo { text: "late".into() }) {
        Err(TypedCallError::Connection(ConnectionError::Closed)) => {}
        other => panic!("{other:?}"),
    }
    close_both_ok(client, server);
    assert_no_threads(&c);
    assert_no_threads(&s);
}

#[test]
fn a_typed_wait_times_out_with_its_handle_back_and_a_peer_that_ends_fails_it() {
    let name = util::unique_name('w', 'c');
    let (transport, mut raw) = raw_pair(Kind::Pipe);
    let conn = PacketConnection::new(transport, config(&name)).expect("start");
    let pending = conn.submit_typed(Echo { text: "hold".into() }).expect("submit");
    let request = raw.recv();
    assert_eq!((request.rq_type(), request.payload()), (Some(1), &b"\x04hold"[..]));
    let pending = match pending.wait_timeout(Duration::from_millis(20)) {
        Err(TypedWaitTimeoutError::Timeout(pending)) => pending,
        other => panic!("{other:?}"),
    };
    match conn.call_typed_timeout(&Echo { text: "also held".into() }, Duration::from_millis(20)) {
        Err(TypedCallTimeoutError::Timeout) => {}
        other => panic!("{other:?}"),
    }
    raw.send_packet(&Packet::eof());
    match pending.wait_timeout(LONG) {
        Err(TypedWaitTimeoutError::Connection(ConnectionError::PeerClosed { reason: None })) => {}
        other => panic!("{other:?}"),
    }
    close(conn).expect("close");
    assert_no_threads(&name);
}

// ---------------------------------------------------------------------------
// The dispatcher's refusals

#[test]
fn the_dispatcher_says_what_went_wrong() {
    let kind = Kind::Unix;
    let (a, b) = transport_pair(kind);
    let server = PacketConnection::with_handler(b, config(&kind.name('s')), service()).expect("server");
    let client = PacketConnection::new(a, config(&kind.name('c'))).expect("client");
    let (c, s) = (client.name().to_owned(), server.name().to_owned());
    let failure = |rq_type: u64, payload: &[u8]| -> Failure {
        match client.call_timeout(rq_type, 0, payload.to_vec(), LONG) {
            Err(packetstream::CallTimeoutError::Failed(failure)) => failure,
            other => panic!("rq_type {rq_type} {payload:02x?}: {other:?}"),
        }
    };
    let text = |rq_type: u64, payload: &[u8]| failure(rq_type, payload).text().into_owned();
    assert_eq!(text(99, b""), "unknown request type 99");
    assert_eq!(
        text(0, b"\x01\x05hel"),
        "cannot decode cs:add (request type 0): short input at offset 2: BSData needs 5 bytes, 3 left"
    );
    assert_eq!(
        text(0, b"\x01\x05hello!"),
        "cannot decode cs:add (request type 0): unparsed data at offset 7 (1 bytes)"
    );
    assert_eq!(
        text(1, b"\x02\xc3\x28"),
        "cannot decode test:echo (request type 1): invalid UTF-8 in BSString at offset 1"
    );
    assert_eq!(
        text(0, b"\x82\x80\x80\x80\x80\x80\x80\x80\x80\x00"),
        "cannot decode cs:add (request type 0): BSUInt at offset 0 does not fit in 64 bits"
    );
    assert_eq!(
        text(2, b"\x12"),
        "cannot decode test:pair (request type 2): short input at offset 0: UInt16BE needs 2 bytes, 1 left"
    );
    assert_eq!(
        text(4, b"\x03a\x00b"),
        "cannot encode the answer to test:nul: BinaryUTF8NUL value contains a NUL at byte 1"
    );
    assert_eq!(text(5, b""), format!("handler panicked: {}: boom", util::EXPECTED_PANIC));
    // The function's own failure goes as it is, flags and all.
    assert_eq!(failure(6, b"\x07"), Failure::with_flags(7, b"refused".to_vec()));
    // And the connection carries on.
    assert_eq!(client.call_typed(&Echo { text: "still here".into() }).expect("echo"), "still here");
    close_both_ok(client, server);
    assert_no_threads(&c);
    assert_no_threads(&s);
}

#[test]
fn a_request_type_served_twice_is_a_bug() {
    mod twin {
        packetstream::typed_request! {
            pub struct Echo(1, "test:echo-twin");
        }
    }
    let listed_twice = std::panic::catch_unwind(|| {
        Dispatcher::new(())
            .on::<Echo, _, String>(|_, rq| Ok(rq.text))
            .on::<twin::Echo, _, String>(|_, _| Ok(Response::default()))
    });
    let message = listed_twice.expect_err("a second request type 1 panics");
    let message = message.downcast_ref::<String>().expect("a formatted message");
    assert_eq!(message, "request type 1 is served as test:echo already, so not as test:echo-twin");
}

// ---------------------------------------------------------------------------
// Typed pulled requests

/// What the pulled server's loop gets.
#[derive(Debug)]
enum Message {
    Echo(Typed<Echo>),
    Add(Typed<AddRequest>),
    Refuse(Typed<Refuse>),
}

#[test]
fn typed_pulled_requests() {
    for kind in [Kind::Memory, Kind::Tcp] {
        let (a, b) = transport_pair(kind);
        let (server, incoming) = PacketConnection::with_incoming(b, config(&kind.name('s'))).expect("server");
        let client = Arc::new(PacketConnection::new(a, config(&kind.name('c'))).expect("client"));
        let (c, s) = (client.name().to_owned(), server.name().to_owned());
        let router = Router::new().on(Message::Echo).on(Message::Add).on(Message::Refuse);

        let caller = {
            let client = Arc::clone(&client);
            thread::spawn(move || {
                let echo = client.call_typed(&Echo { text: "pulled".into() });
                let add = client.call_typed(&AddRequest { hashenum: 1, data: b"abc".to_vec() });
                let refused = client.call_typed(&Refuse { flags: 3 });
                let dropped = client.call_typed(&Echo { text: "drop me".into() });
                let unknown = client.call_timeout(42, 0, Vec::new(), LONG);
                let garbled = client.call_timeout(1, 0, b"\x09short".to_vec(), LONG);
                (echo, add, refused, dropped, unknown, garbled)
            })
        };
        let mut rejected = Vec::new();
        for _ in 0..6 {
            let next = incoming.recv_timeout(LONG).expect("a request");
            match router.route(next) {
                Ok(Message::Echo(echo)) if echo.request.text == "drop me" => drop(echo),
                Ok(Message::Echo(echo)) => {
                    let text = echo.request.text.to_uppercase();
                    echo.responder.ok(text)
                }
                Ok(Message::Add(add)) => {
                    let answer = (add.request.hashenum, Got { text: format!("{} bytes", add.request.data.len()) });
                    add.responder.respond(Ok::<_, String>(answer))
                }
                Ok(Message::Refuse(refuse)) => {
                    let flags = refuse.request.flags;
                    refuse.responder.fail(Failure::with_flags(flags, b"no".to_vec()))
                }
                Err(rejection) => rejected.push(rejection),
            }
        }
        let (echo, add, refused, dropped, unknown, garbled) =
            within(LONG, "the calls", move || caller.join().expect("the caller"));
        assert_eq!(echo.expect("echo"), "PULLED");
        assert_eq!(add.expect("add"), (1, Got { text: "3 bytes".into() }));
        assert_eq!(refused.unwrap_err().failure(), Some(&Failure::with_flags(3, b"no".to_vec())));
        assert_eq!(dropped.unwrap_err().failure().map(|f| f.text().into_owned()).as_deref(), Some(DROPPED_UNANSWERED));
        assert_eq!(
            unknown.unwrap_err().failure().map(|f| f.text().into_owned()).as_deref(),
            Some("unknown request type 42")
        );
        let garbled_text =
            "cannot decode test:echo (request type 1): short input at offset 1: BSString needs 9 bytes, 5 left";
        assert_eq!(garbled.unwrap_err().failure().map(|f| f.text().into_owned()).as_deref(), Some(garbled_text));
        assert_eq!(
            rejected.iter().map(|r| (r.rq_type(), r.text())).collect::<Vec<_>>(),
            [(42, "unknown request type 42"), (1, garbled_text)]
        );
        let client = Arc::try_unwrap(client).expect("the caller let go of the client");
        close_both_ok(client, server);
        assert_no_threads(&c);
        assert_no_threads(&s);
    }
}

// ---------------------------------------------------------------------------
// The registry and the handshake

mod v1 {
    // The client of an older build, with other numbers for the same names.
    packetstream::typed_request! {
        #[derive(Debug, Clone, PartialEq)]
        pub struct AddRequest(10, "cs:add") -> (u64, super::Got) {
            pub hashenum: packetstream::binary::BSUInt,
            pub data: packetstream::binary::BSData,
        }
        #[derive(Debug, Clone, PartialEq)]
        pub struct Echo(11, "test:echo") -> String { pub text: packetstream::binary::BSString }
        #[derive(Debug, Clone, PartialEq)]
        pub struct Ask(0, "test:ask") -> String { pub question: packetstream::binary::BSString }
    }
}

packetstream::typed_request! {
    /// What the server asks the client (the client serves it), as type 12
    /// at the server and 0 at the older client.
    #[derive(Debug, Clone, PartialEq)]
    pub struct Ask(12, "test:ask") -> String { pub question: BSString }
}

fn server_registry() -> Registry {
    Registry::new().with::<AddRequest>().and_then(|r| r.with::<Echo>()).and_then(|r| r.with::<Ask>()).expect("registry")
}

fn v1_registry() -> Registry {
    Registry::new()
        .with::<v1::AddRequest>()
        .and_then(|r| r.with::<v1::Echo>())
        .and_then(|r| r.with::<v1::Ask>())
        .expect("registry")
}

#[test]
fn registries_refuse_duplicates_by_name_and_by_number() {
    mod clash {
        packetstream::typed_request! {
            pub struct SameName(9, "cs:add");
            pub struct SameNumber(0, "cs:other");
        }
    }
    let registry = Registry::new().with::<AddRequest>().expect("first");
    assert_eq!(
        registry.clone().with::<clash::SameName>().unwrap_err(),
        RegistryError::DuplicateName { name: "cs:add".into(), registered: 0, refused: 9 }
    );
    assert_eq!(
        registry.clone().with::<clash::SameNumber>().unwrap_err(),
        RegistryError::DuplicateNumber { number: 0, registered: "cs:add".into(), refused: "cs:other".into() }
    );
    assert!(registry.has::<AddRequest>() && !registry.has::<Echo>());
    assert_eq!(v1_registry().iter().collect::<Vec<_>>(), [(0, "test:ask"), (10, "cs:add"), (11, "test:echo")]);
}

/// A server that keeps its numbers, serving the test types; a client that
/// adapts (or not) with the v1 numbers, and serves `test:ask`.
fn adapted_pair(kind: Kind) {
    let server_hs = Handshake::new(server_registry(), Role::Keep);
    let client_hs = Handshake::new(v1_registry(), Role::Adapt);
    let (a, b) = transport_pair(kind);
    let server =
        PacketConnection::with_handler(b, server_hs.configure(config(&kind.name('s'))), service()).expect("server");
    let client_service = Dispatcher::new(())
        .on::<v1::Ask, _, String>(|_, ask| Ok(format!("v1 answers {}", ask.question)))
        .handshake(&client_hs);
    let client = PacketConnection::with_handler(a, client_hs.configure(config(&kind.name('c'))), client_service)
        .expect("client");
    let (c, s) = (client.name().to_owned(), server.name().to_owned());
    let client = Session::start(client, &client_hs, LONG).expect("the handshake");
    let Numbering::Adapted(mapping) = client.numbering() else { panic!("{:?}", client.numbering()) };
    assert_eq!(mapping.iter().collect::<Vec<_>>(), [(0, 12), (10, 0), (11, 1)]);
    assert!(matches!(server_hs.outcome(), Some(Ok(Numbering::PeerAdapts))), "{server_hs:?}");

    // The client's 10 and 11 travel as the server's 0 and 1.
    let answer = client.call_typed(&v1::AddRequest { hashenum: 4, data: b"ab".to_vec() }).expect("add");
    assert_eq!(answer, (5, Got { text: "got 2 bytes".into() }));
    assert_eq!(client.call_typed(&v1::Echo { text: "adapted".into() }).expect("echo"), "adapted");
    // A request type the registry lacks is not sent under a guessed number.
    match client.call_typed(&Pair { a: 1, b: Vec::new() }) {
        Err(TypedCallError::Invalid(InvalidTyped::Unregistered { name: "test:pair", rq_type: 2 })) => {}
        other => panic!("{other:?}"),
    }
    // The server's 12 reaches the client's 0, and the server's 1 (not in the
    // client's service) is refused under the server's number.
    assert_eq!(server.call_typed(&Ask { question: "why".into() }).expect("ask"), "v1 answers why");
    let refused = server.call_typed(&Echo { text: "x".into() }).unwrap_err();
    assert_eq!(refused.failure().map(|f| f.text().into_owned()).as_deref(), Some("unknown request type 1"));
    close_both_ok(client.into_connection(), server);
    assert_no_threads(&c);
    assert_no_threads(&s);
}

#[test]
fn the_adapting_end_maps_its_numbers_to_the_peers() {
    for kind in Kind::ALL {
        adapted_pair(kind);
    }
}

#[test]
fn registries_that_agree_need_no_mapping() {
    for kind in [Kind::Memory, Kind::Pipe] {
        let (a_hs, b_hs) =
            (Handshake::new(server_registry(), Role::Keep), Handshake::new(server_registry(), Role::Keep));
        let (a, b) = transport_pair(kind);
        let a = PacketConnection::with_handler(a, a_hs.configure(config(&kind.name('a'))), service()).expect("a");
        let b = PacketConnection::with_handler(b, b_hs.configure(config(&kind.name('b'))), service()).expect("b");
        let (a_name, b_name) = (a.name().to_owned(), b.name().to_owned());
        // Both run it at once: two exchanges, one conclusion.
        let b = thread::spawn(move || Session::start(b, &b_hs, LONG).map_err(|failed| failed.to_string()));
        let a = Session::start(a, &a_hs, LONG).expect("a's handshake");
        let b = within(LONG, "b's handshake", move || b.join().expect("b")).expect("b's handshake");
        assert_eq!((a.numbering(), b.numbering()), (&Numbering::Same, &Numbering::Same));
        assert_eq!(a.call_typed(&Echo { text: "same".into() }).expect("a calls"), "same");
        assert_eq!(b.call_typed(&Echo { text: "same".into() }).expect("b calls"), "same");
        close_both_ok(a.into_connection(), b.into_connection());
        assert_no_threads(&a_name);
        assert_no_threads(&b_name);
    }
}

/// Runs the handshake between `ours` and a server with `theirs`, the server
/// serving the test types through its handshake; returns the client's error
/// and what the server's requests now get.
fn mismatched(kind: Kind, ours: Handshake, theirs: Handshake) -> (HandshakeError, Failure) {
    let (a, b) = transport_pair(kind);
    let service = service().handshake(&theirs);
    let server = PacketConnection::with_handler(b, theirs.configure(config(&kind.name('s'))), service).expect("server");
    let client = PacketConnection::new(a, ours.configure(config(&kind.name('c')))).expect("client");
    let (c, s) = (client.name().to_owned(), server.name().to_owned());
    let failed = Session::start(client, &ours, LONG).expect_err("the registries differ");
    let (error, client) = failed.into_parts();
    assert!(matches!(theirs.outcome(), Some(Err(HandshakeError::Mismatch(_)))), "{theirs:?}");
    // The server knows too: a plain call of the client now finds it refusing.
    let refused = match client.call_timeout(Echo::RQ_TYPE, 0, b"\x01x".to_vec(), LONG) {
        Err(packetstream::CallTimeoutError::Failed(failure)) => failure,
        other => panic!("{other:?}"),
    };
    close_both_ok(client, server);
    assert_no_threads(&c);
    assert_no_threads(&s);
    (error, refused)
}

#[test]
fn a_mismatch_fails_the_handshake_and_names_the_types() {
    packetstream::typed_request! {
        pub struct Scan(20, "test:scan") -> Vec<u8>;
    }
    // Names only one end has.
    let client = Handshake::new(v1_registry().with::<Scan>().expect("scan"), Role::Adapt);
    let (error, refused) = mismatched(Kind::Memory, client, Handshake::new(server_registry(), Role::Keep));
    let HandshakeError::Mismatch(mismatch) = &error else { panic!("{error:?}") };
    assert_eq!((mismatch.only_here.as_slice(), mismatch.only_there.len()), (&["test:scan".to_owned()][..], 0));
    assert_eq!(error.to_string(), "the request registries differ: only here: test:scan");
    assert_eq!(refused.text(), "registry handshake failed: the request registries differ: only at the peer: test:scan");

    // Numbers that differ when neither end adapts, over a real transport.
    let client = Handshake::new(v1_registry(), Role::Keep);
    let (error, _) = mismatched(Kind::Unix, client, Handshake::new(server_registry(), Role::Keep));
    assert_eq!(
        error.to_string(),
        "the request registries differ: cs:add is 10 here and 0 at the peer, test:ask is 0 here and 12 at the \
         peer, test:echo is 11 here and 1 at the peer (neither end adapts)"
    );
    // Or when both would.
    let client = Handshake::new(v1_registry(), Role::Adapt);
    let (error, _) = mismatched(Kind::Pipe, client, Handshake::new(server_registry(), Role::Adapt));
    assert!(error.to_string().ends_with("(both ends adapt)"), "{error}");
}

#[test]
fn without_a_registry_at_the_peer_numbers_travel_as_they_are() {
    for (role, server_config) in [('x', config("").extensions(true)), ('o', config(""))] {
        let kind = Kind::Memory;
        let hs = Handshake::new(server_registry(), Role::Adapt);
        let (a, b) = transport_pair(kind);
        let server = PacketConnection::with_handler(b, server_config.name(kind.name(role)), service()).expect("server");
        let client = PacketConnection::new(a, hs.configure(config(&kind.name('c')))).expect("client");
        let (c, s) = (client.name().to_owned(), server.name().to_owned());
        let client = Session::start(client, &hs, LONG).expect("no handshake is no failure");
        let Numbering::AsIs(why) = client.numbering() else { panic!("{:?}", client.numbering()) };
        println!("{s}: numbers as they are: {why}");
        assert_eq!(client.call_typed(&Echo { text: "as is".into() }).expect("echo"), "as is");
        close_both_ok(client.into_connection(), server);
        assert_no_threads(&c);
        assert_no_threads(&s);
    }
    // A connection not configured with the handshake cannot run it.
    let kind = Kind::Memory;
    let (a, b) = transport_pair(kind);
    let server = PacketConnection::with_handler(b, config(&kind.name('s')), service()).expect("server");
    let client = PacketConnection::new(a, config(&kind.name('c'))).expect("client");
    let (c, s) = (client.name().to_owned(), server.name().to_owned());
    let hs = Handshake::new(server_registry(), Role::Adapt);
    let failed = Session::start(client, &hs, LONG).expect_err("extensions are off");
    assert!(matches!(failed.error(), HandshakeError::NotConfigured), "{failed:?}");
    close_both_ok(failed.into_connection(), server);
    assert_no_threads(&c);
    assert_no_threads(&s);
}

/// The hello of a peer that has the registry feature.
fn registry_hello() -> Vec<u8> {
    b"PSX\x01\x01\x08registry\x01".to_vec()
}

#[test]
fn the_handshake_on_the_wire() {
    let name = util::unique_name('h', 'c');
    let (transport, mut raw) = raw_pair(Kind::Memory);
    let mut registry = Registry::new();
    registry.register("kv:put", 0).unwrap();
    registry.register("kv:get", 1).unwrap();
    let hs = Handshake::new(registry, Role::Adapt);
    let service = Dispatcher::new(()).on::<Echo, _, String>(|_, rq| Ok(rq.text)).handshake(&hs);
    let conn = PacketConnection::with_handler(transport, hs.configure(config(&name)), service).expect("start");
    let probe = raw.recv();
    assert_eq!((probe.channel(), probe.tag(), probe.rq_type()), (CONTROL_CHANNEL, 0, Some(control_type::HELLO)));

    // Before the peer answers anything, it sends a request of its type 7,
    // which the adapting end can only read once the handshake is done.
    raw.send_packet(&Packet::request(0, 2, 7, 0, b"\x05early".to_vec()).unwrap());
    raw.send_packet(&Packet::response(CONTROL_CHANNEL, 0, true, 0, registry_hello()).unwrap());
    let starting = {
        let hs = hs.clone();
        thread::spawn(move || Session::start(conn, &hs, LONG))
    };
    let request = raw.recv();
    // The documented bytes: tag 1 on the control channel, wire type 4.
    assert_eq!(
        frame(&request),
        hex("1c 01 03 ff fe 00 04 50 53 52 01 01 02 06 6b 76 3a 70 75 74 00 06 6b 76 3a 67 65 74 01")
    );
    let mut theirs = Registry::new();
    theirs.register("kv:put", 7).unwrap();
    theirs.register("kv:get", 8).unwrap();
    // The peer's 7 is this end's 0, which its dispatcher does not serve; the
    // peer's 8 is this end's 1, which it serves (as Echo: a dispatcher goes
    // by number).
    let answer = exchange::encode(Role::Keep, &theirs);
    raw.send_packet(&Packet::response(CONTROL_CHANNEL, 1, true, 0, answer).unwrap());
    let session = within(LONG, "the handshake", move || starting.join().expect("start")).expect("agreed");
    let Numbering::Adapted(mapping) = session.numbering() else { panic!("{:?}", session.numbering()) };
    assert_eq!(mapping.iter().collect::<Vec<_>>(), [(0, 7), (1, 8)]);
    // The early request was held until then, and read as the client's 0.
    assert_eq!(raw.recv(), Packet::response(0, 2, false, 0, b"unknown request type 7".to_vec()).unwrap());
    raw.send_packet(&Packet::request(0, 3, 8, 0, b"\x04late".to_vec()).unwrap());
    assert_eq!(raw.recv(), Packet::response(0, 3, true, 0, b"late".to_vec()).unwrap());
    raw.send_packet(&Packet::eof());
    close(session.into_connection()).expect("close");
    assert_no_threads(&name);
}

#[test]
fn a_garbled_registry_is_refused_and_a_silent_peer_times_out() {
    // The peer answers the REGISTRY request with garbage.
    let name = util::unique_name('g', 'c');
    let (transport, mut raw) = raw_pair(Kind::Memory);
    let hs = Handshake::new(server_registry(), Role::Adapt);
    let conn = PacketConnection::new(transport, hs.configure(config(&name))).expect("start");
    let _probe = raw.recv();
    raw.send_packet(&Packet::response(CONTROL_CHANNEL, 0, true, 0, registry_hello()).unwrap());
    let starting = {
        let hs = hs.clone();
        thread::spawn(move || Session::start(conn, &hs, LONG))
    };
    let request = raw.recv();
    assert_eq!(request.rq_type(), Some(control_type::REGISTRY));
    raw.send_packet(&Packet::response(CONTROL_CHANNEL, request.tag(), true, 0, b"PSR\x01\x07\x00".to_vec()).unwrap());
    let failed = within(LONG, "the handshake", move || starting.join().expect("start")).expect_err("garbled");
    let (error, conn) = failed.into_parts();
    assert_eq!(
        error.to_string(),
        "the peer's request registry is garbled: invalid value at offset 4: role 7 (0 or 1 allowed)"
    );
    // The peer's garbled request is refused with the reason.
    raw.send_packet(&Packet::request(CONTROL_CHANNEL, 5, control_type::REGISTRY, 0, b"PSX".to_vec()).unwrap());
    let refusal = raw.recv();
    let text = "bad registry: invalid value at offset 0: not a registry: it does not start with \"PSR\"";
    assert_eq!(refusal, Packet::response(CONTROL_CHANNEL, 5, false, 0, text.as_bytes().to_vec()).unwrap());
    raw.send_packet(&Packet::eof());
    close(conn).expect("close");
    assert_no_threads(&name);

    // The peer never answers the probe.
    let name = util::unique_name('g', 'c');
    let (transport, mut raw) = raw_pair(Kind::Memory);
    let hs = Handshake::new(server_registry(), Role::Keep);
    let conn = PacketConnection::new(transport, hs.configure(config(&name))).expect("start");
    let _probe = raw.recv();
    let failed = Session::start(conn, &hs, Duration::from_millis(50)).expect_err("no answer");
    assert!(matches!(failed.error(), HandshakeError::Timeout), "{failed:?}");
    raw.send_packet(&Packet::eof());
    close(failed.into_connection()).expect("close");
    assert_no_threads(&name);
}
