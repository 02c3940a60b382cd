//! The contract of `examples/kv_server.rs`, which other tools drive, checked
//! end to end against the built example: the bytes of every request type
//! and answer (written here by hand, not with the example's own types), the
//! typed API with request types defined independently, the registry
//! handshake against `kv_server --registry` (adapting, and a mismatch), the
//! shutdown, and `kv_client`'s output.
//!
//! Every wait is bounded, and every test checks that its connection left no
//! thread running.

mod util;

use std::io;
use std::process::Command;
use std::time::Duration;

use packetstream::binary::{BSData, BSString, BSUInt, Binary, DecodeError, EncodeError, Field, Reader};
use packetstream::rpc::{CallTyped, Handshake, HandshakeError, Numbering, Registry, Role, Session};
use packetstream::{CallTimeoutError, CloseOptions, Config, PacketConnection, Response, Transport};
use util::python::{drain, run_bounded};
use util::{assert_no_threads, unique_name, LONG};

/// The whole of a `kv_client` run.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);

/// Starts `kv_server ARGS` as a child; its stderr is collected.
fn kv_server(args: &[&str]) -> (PacketConnection, crossbeam_channel::Receiver<Vec<u8>>) {
    kv_server_with(args, |transport, name| PacketConnection::new(transport, Config::builder().name(name)))
}

fn kv_server_with(
    args: &[&str],
    start: impl FnOnce(Transport, String) -> io::Result<PacketConnection>,
) -> (PacketConnection, crossbeam_channel::Receiver<Vec<u8>>) {
    let (reader, writer) = io::pipe().expect("a pipe for the server's stderr");
    let mut command = Command::new(util::process::example("kv_server"));
    command.args(args).stderr(writer);
    let transport = Transport::spawn(&mut command).expect("start kv_server");
    // Our copy of the pipe's write end goes with `command`, so that the
    // drain sees the end of input when the child exits.
    drop(command);
    let conn = start(transport, unique_name('k', 'c')).expect("start the connection");
    (conn, drain(reader))
}

/// Closes and checks that the server exited 0; its stderr.
fn close_ok(conn: PacketConnection, stderr: crossbeam_channel::Receiver<Vec<u8>>, options: CloseOptions) -> String {
    let name = conn.name().to_owned();
    let finished = util::within(LONG, "close", move || conn.close_with(options)).expect("close");
    let stderr = String::from_utf8_lossy(&stderr.recv_timeout(LONG).expect("the server's stderr ended")).into_owned();
    assert!(finished.exit_status().is_some_and(|status| status.success()), "{finished:?}\n{stderr}");
    assert!(finished.unread().is_empty(), "the server wrote after its EOF");
    assert_no_threads(&name);
    stderr
}

fn string(text: &str) -> Vec<u8> {
    BSString::value_to_bytes(&text.to_owned()).expect("encodes")
}

fn call(conn: &PacketConnection, rq_type: u64, payload: Vec<u8>) -> Result<Response, CallTimeoutError> {
    conn.call_timeout(rq_type, 0, payload, LONG)
}

fn ok(conn: &PacketConnection, rq_type: u64, payload: Vec<u8>) -> Response {
    call(conn, rq_type, payload).unwrap_or_else(|error| panic!("rq_type {rq_type}: {error}"))
}

fn failed(conn: &PacketConnection, rq_type: u64, payload: Vec<u8>) -> (u64, String) {
    match call(conn, rq_type, payload) {
        Err(CallTimeoutError::Failed(failure)) => (failure.flags, failure.text().into_owned()),
        other => panic!("rq_type {rq_type}: expected a failure, got {other:?}"),
    }
}

fn put(key: &str, value: &[u8]) -> Vec<u8> {
    let mut payload = string(key);
    BSData::encode_value(&value.to_vec(), &mut payload).expect("encodes");
    payload
}

fn empty(flags: u64) -> Response {
    Response { flags, payload: Vec::new() }
}

/// The List answer for `keys`, as the contract says: a BSUInt count, then
/// the BSStrings.
fn list_answer(keys: &[&str]) -> Vec<u8> {
    let mut payload = BSUInt::value_to_bytes(&(keys.len() as u64)).expect("encodes");
    for key in keys {
        payload.extend(string(key));
    }
    payload
}

#[test]
fn the_contract_byte_for_byte() {
    let (conn, stderr) = kv_server(&[]);
    // Put: flags 0 for a new key, 1 for a replaced value, empty payload.
    assert_eq!(ok(&conn, 0, put("a", b"1")), empty(0));
    assert_eq!(ok(&conn, 0, put("a", b"2")), empty(1));
    // Get: flags 0, the value's bytes.
    assert_eq!(ok(&conn, 1, string("a")), Response { flags: 0, payload: b"2".to_vec() });
    // A missing key fails with the key as given, unquoted; the empty key too.
    assert_eq!(failed(&conn, 1, string("no such")), (0, "no such key: no such".to_owned()));
    assert_eq!(failed(&conn, 1, string("")), (0, "no such key: ".to_owned()));
    // The empty string is a valid key, and values may be empty or large.
    assert_eq!(ok(&conn, 0, put("", b"")), empty(0));
    assert_eq!(ok(&conn, 1, string("")), Response { flags: 0, payload: Vec::new() });
    let big: Vec<u8> = (0..1 << 20).map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    assert_eq!(ok(&conn, 0, put("big", &big)), empty(0));
    assert_eq!(ok(&conn, 1, string("big")).payload, big);
    // Delete: flags 1 if the key existed, else 0.
    assert_eq!(ok(&conn, 2, string("big")), empty(1));
    assert_eq!(ok(&conn, 2, string("big")), empty(0));
    // List: sorted by UTF-8 bytes, whatever order they came in.
    for key in ["é", "b", "€", "ab", "A", "😀", "a\u{0}", "z"] {
        assert_eq!(ok(&conn, 0, put(key, key.as_bytes())), empty(0));
    }
    let mut everything = vec!["", "a", "é", "b", "€", "ab", "A", "😀", "a\u{0}", "z"];
    everything.sort_by(|x, y| x.as_bytes().cmp(y.as_bytes()));
    assert_eq!(everything, ["", "A", "a", "a\u{0}", "ab", "b", "z", "é", "€", "😀"]);
    assert_eq!(ok(&conn, 3, string("")), Response { flags: 0, payload: list_answer(&everything) });
    assert_eq!(ok(&conn, 3, string("a")).payload, list_answer(&["a", "a\u{0}", "ab"]));
    assert_eq!(ok(&conn, 3, string("\u{e9}")).payload, list_answer(&["é"]));
    assert_eq!(ok(&conn, 3, string("nothing")).payload, list_answer(&[]));
    // What is not the contract says what is wrong.
    assert_eq!(failed(&conn, 4, Vec::new()).1, "unknown request type 4");
    assert_eq!(
        failed(&conn, 0, string("key only")).1,
        "cannot decode kv:put (request type 0): short input at offset 9: BSData length needs 1 bytes, 0 left"
    );
    assert_eq!(
        failed(&conn, 1, b"\x01\xff".to_vec()).1,
        "cannot decode kv:get (request type 1): invalid UTF-8 in BSString at offset 1"
    );
    assert_eq!(
        failed(&conn, 2, b"\x01ab".to_vec()).1,
        "cannot decode kv:delete (request type 2): unparsed data at offset 2 (1 bytes)"
    );
    close_ok(conn, stderr, CloseOptions::new());
}

// The contract as typed requests, defined here apart from the example's.
packetstream::typed_request! {
    #[derive(Debug)]
    pub struct Put(0, "kv:put") -> bool { pub key: BSString, pub value: BSData }
    #[derive(Debug)]
    pub struct Get(1, "kv:get") -> Vec<u8> { pub key: BSString }
    #[derive(Debug)]
    pub struct Delete(2, "kv:delete") -> bool { pub key: BSString }
    #[derive(Debug)]
    pub struct List(3, "kv:list") -> Keys { pub prefix: BSString }
}

/// The List answer.
#[derive(Debug, PartialEq)]
pub struct Keys(Vec<String>);

impl Binary for Keys {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        <(BSUInt,)>::encode_value(&(self.0.len() as u64,), out)?;
        self.0.iter().try_for_each(|key| BSString::encode_value(key, out))
    }

    fn decode(input: &mut Reader<'_>) -> Result<Keys, DecodeError> {
        let count = BSUInt::decode_value(input)?;
        (0..count).map(|_| BSString::decode_value(input)).collect::<Result<_, _>>().map(Keys)
    }
}

fn typed_session(conn: &impl CallTyped) {
    let key = |k: &str| k.to_owned();
    assert!(!conn.call_typed(&Put { key: key("x"), value: b"1".to_vec() }).expect("put"));
    assert!(conn.call_typed(&Put { key: key("x"), value: b"2".to_vec() }).expect("put again"));
    assert!(!conn.call_typed(&Put { key: key(""), value: b"empty".to_vec() }).expect("put the empty key"));
    assert_eq!(conn.call_typed(&Get { key: key("x") }).expect("get"), b"2");
    let missing = conn.call_typed(&Get { key: key("y") }).expect_err("missing");
    assert_eq!(missing.failure().map(|f| f.text().into_owned()).as_deref(), Some("no such key: y"));
    assert_eq!(conn.call_typed(&List { prefix: key("") }).expect("list"), Keys(vec![key(""), key("x")]));
    assert!(conn.call_typed(&Delete { key: key("x") }).expect("delete"));
    assert!(!conn.call_typed(&Delete { key: key("x") }).expect("delete again"));
    // As it found the store: empty.
    assert!(conn.call_typed(&Delete { key: key("") }).expect("delete the empty key"));
    assert_eq!(conn.call_typed(&List { prefix: key("") }).expect("list"), Keys(Vec::new()));
}

#[test]
fn the_typed_api_drives_it() {
    let (conn, stderr) = kv_server(&[]);
    typed_session(&conn);
    close_ok(conn, stderr, CloseOptions::new());
}

mod renumbered {
    // The contract's request types under other numbers, as a client built
    // against another numbering would have them.
    use super::Keys;
    use packetstream::binary::{BSData, BSString};
    packetstream::typed_request! {
        pub struct Put(10, "kv:put") -> bool { pub key: BSString, pub value: BSData }
        pub struct Get(11, "kv:get") -> Vec<u8> { pub key: BSString }
        pub struct Delete(12, "kv:delete") -> bool { pub key: BSString }
        pub struct List(13, "kv:list") -> Keys { pub prefix: BSString }
        pub struct Scan(14, "kv:scan") -> Keys { pub from: BSString }
    }
}

fn renumbered_registry() -> Registry {
    use renumbered::{Delete, Get, List, Put};
    Registry::new().with::<Put>().and_then(|r| r.with::<Get>()?.with::<Delete>()?.with::<List>()).expect("registry")
}

#[test]
fn a_client_with_other_numbers_adapts_to_kv_server_with_registry() {
    let handshake = Handshake::new(renumbered_registry(), Role::Adapt);
    let (conn, stderr) = kv_server_with(&["--registry"], |t, name| {
        PacketConnection::new(t, handshake.configure(Config::builder().name(name)))
    });
    let session = Session::start(conn, &handshake, LONG).expect("the handshake");
    let Numbering::Adapted(mapping) = session.numbering() else { panic!("{:?}", session.numbering()) };
    assert_eq!(mapping.iter().collect::<Vec<_>>(), [(10, 0), (11, 1), (12, 2), (13, 3)]);
    let put = renumbered::Put { key: "k".into(), value: b"v".to_vec() };
    assert!(!session.call_typed(&put).expect("put"));
    assert_eq!(session.call_typed(&renumbered::Get { key: "k".into() }).expect("get"), b"v");
    assert_eq!(session.call_typed(&renumbered::List { prefix: String::new() }).expect("list"), Keys(vec!["k".into()]));
    assert!(session.call_typed(&renumbered::Delete { key: "k".into() }).expect("delete"));
    close_ok(session.into_connection(), stderr, CloseOptions::new());

    // With the contract's own numbers there is nothing to adapt; against a
    // kv_server without a registry, no handshake happens.
    for args in [&["--registry"][..], &[][..]] {
        let handshake = Handshake::new(super_registry(), Role::Adapt);
        let (conn, stderr) =
            kv_server_with(args, |t, name| PacketConnection::new(t, handshake.configure(Config::builder().name(name))));
        let session = Session::start(conn, &handshake, LONG).expect("the handshake");
        match (args.is_empty(), session.numbering()) {
            (false, Numbering::Same) | (true, Numbering::AsIs(_)) => {}
            other => panic!("{args:?}: {other:?}"),
        }
        typed_session(&*session);
        typed_session(&session);
        close_ok(session.into_connection(), stderr, CloseOptions::new());
    }
}

fn super_registry() -> Registry {
    Registry::new().with::<Put>().and_then(|r| r.with::<Get>()?.with::<Delete>()?.with::<List>()).expect("registry")
}

#[test]
fn a_registry_mismatch_names_the_types() {
    let registry = renumbered_registry().with::<renumbered::Scan>().expect("scan");
    let handshake = Handshake::new(registry, Role::Adapt);
    let (conn, stderr) = kv_server_with(&["--registry"], |t, name| {
        PacketConnection::new(t, handshake.configure(Config::builder().name(name)))
    });
    let failed = Session::start(conn, &handshake, LONG).expect_err("kv_server has no kv:scan");
    assert_eq!(failed.error().to_string(), "the request registries differ: only here: kv:scan");
    assert!(matches!(failed.error(), HandshakeError::Mismatch(_)));
    // The server refuses the typed requests of a peer it does not agree with.
    let conn = failed.into_connection();
    assert_eq!(
        failed_text(call(&conn, 1, string("k"))),
        "registry handshake failed: the request registries differ: only at the peer: kv:scan"
    );
    close_ok(conn, stderr, CloseOptions::new());
}

fn failed_text(result: Result<Response, CallTimeoutError>) -> String {
    match result {
        Err(CallTimeoutError::Failed(failure)) => failure.text().into_owned(),
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[test]
fn it_shuts_down_as_echo_server_does() {
    // A reason reaches the server's stderr when both have extensions.
    let (conn, stderr) = kv_server_with(&["--extensions"], |t, name| {
        PacketConnection::new(t, Config::builder().name(name).extensions(true))
    });
    assert_eq!(ok(&conn, 0, put("k", b"v")), empty(0));
    conn.wait_extensions(LONG);
    let stderr = close_ok(conn, stderr, CloseOptions::new().reason("done for today"));
    assert!(stderr.contains("peer quit: done for today"), "{stderr}");

    // The end of its input is a clean end too: ERQ and EOF, exit 0.
    let run = run_bounded(Command::new(util::process::example("kv_server")), LONG).expect("run kv_server");
    assert!(run.status.is_some_and(|status| status.success()), "{:?}", run.status);
    assert_eq!(run.stdout, [0x03, 0x01, 0x02, 0x00, 0x03, 0x00, 0x02, 0x00]);

    // Garbage is a protocol error: exit 1, the error on stderr.
    let mut command = Command::new(util::process::example("kv_server"));
    command.stdin(std::process::Stdio::piped());
    let mut child =
        command.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped()).spawn().expect("spawn");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(&[0x00]).expect("write an empty frame");
    }
    let stderr = drain(child.stderr.take().expect("stderr"));
    let status = util::within(LONG, "kv_server on garbage", move || child.wait()).expect("wait");
    let stderr = String::from_utf8_lossy(&stderr.recv_timeout(LONG).expect("stderr")).into_owned();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("protocol error"), "{stderr}");
    let usage = run_bounded(
        {
            let mut command = Command::new(util::process::example("kv_server"));
            command.arg("--bogus");
            command
        },
        LONG,
    )
    .expect("run kv_server --bogus");
    assert_eq!(usage.status.and_then(|status| status.code()), Some(2));
}

/// Runs `kv_client ARGS`; its stdout.
fn kv_client(args: &[&str]) -> String {
    let mut command = Command::new(util::process::example("kv_client"));
    command.args(args);
    let run = run_bounded(command, CLIENT_TIMEOUT).expect("run kv_client");
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.is_some_and(|status| status.success()),
        "kv_client {args:?}: {:?}\n{stdout}\n{stderr}",
        run.status
    );
    stdout
}

#[test]
fn kv_client_prints_what_it_did() {
    let demo = kv_client(&[]);
    let lines: Vec<&str> = demo.lines().collect();
    assert_eq!(lines.first(), Some(&"put \"apple\" = \"red\": new"), "{demo}");
    assert!(lines.contains(&"put \"apple\" = \"green\": replaced"), "{demo}");
    assert!(lines.contains(&"get \"cherry\": failed: no such key: cherry"), "{demo}");
    assert!(lines.contains(&"list \"\": 4 keys: \"\", \"apple\", \"banana\", \"éclair\""), "{demo}");
    assert_eq!(lines.last(), Some(&"kv_client: 12 operations, 1 failed"), "{demo}");

    let server = util::process::example("kv_server");
    let server = server.to_str().expect("a UTF-8 path");
    let ops = ["put", "b", "2", "put", "a", "1", "get", "a", "delete", "b", "list", "", "get", "b"];
    let mut args = vec!["--registry"];
    args.extend(ops);
    args.extend(["--", server, "--registry"]);
    let out = kv_client(&args);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "registry: the server has the same numbers",
            "put \"b\" = \"2\": new",
            "put \"a\" = \"1\": new",
            "get \"a\": \"1\"",
            "delete \"b\": existed",
            "list \"\": 1 key: \"a\"",
            "get \"b\": failed: no such key: b",
            "kv_client: 6 operations, 1 failed",
        ]
    );
    let plain = kv_client(&["get", "x", "--", server]);
    assert_eq!(plain, "get \"x\": failed: no such key: x\nkv_client: 1 operation, 1 failed\n");
}
