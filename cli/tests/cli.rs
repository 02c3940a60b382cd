//! The `packetstream` binary as scripts drive it: every command against our
//! examples and against the real Python cs.packetstream, its output
//! contracts (text or hex, the JSON keys, the exit codes), and clear errors
//! with exit status 2.
//!
//! Every child has a bounded wait and is killed when it runs out.

#[path = "../../tests/util/mod.rs"]
mod util;

use std::collections::HashMap;
use std::io::{BufReader, Cursor, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use packetstream::wire::{PacketReader, DEFAULT_MAX_PACKET_SIZE};
use packetstream::Packet;
use serde_json::Value;
use util::python::{drain, python, script, PYTHON_WATCHDOG_SECONDS};
use util::{socket_path, wait_for};

/// The longest any one run of the tool may take here.
const RUN: Duration = Duration::from_secs(120);

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_packetstream")
}

fn echo_server() -> PathBuf {
    util::process::example("echo_server")
}

/// What a run gave.
struct Run {
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr: String,
}

impl Run {
    fn code(&self) -> Option<i32> {
        self.status.code()
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    fn lines(&self) -> Vec<String> {
        self.text().lines().map(str::to_owned).collect()
    }

    fn json(&self) -> Vec<Value> {
        self.lines().iter().map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}"))).collect()
    }
}

/// Runs `program args` with `input` on its stdin, killing it if it is still
/// running after `timeout` (which fails the test).
fn run_with(program: impl AsRef<std::ffi::OsStr>, args: &[&str], input: &[u8], timeout: Duration) -> Run {
    let mut child = Command::new(&program)
        .args(args)
        .env("PACKETSTREAM_TEST_WATCHDOG", PYTHON_WATCHDOG_SECONDS)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {:?}: {e}", program.as_ref()));
    let mut stdin = child.stdin.take().expect("piped stdin");
    let input = input.to_vec();
    let feeder = std::thread::Builder::new()
        .name("test-stdin".into())
        .spawn(move || {
            let _ = stdin.write_all(&input);
        })
        .expect("a thread");
    let stdout = drain(child.stdout.take().expect("piped stdout"));
    let stderr = drain(child.stderr.take().expect("piped stderr"));
    let status = wait_bounded(&mut child, timeout, &format!("{:?} {args:?}", program.as_ref()));
    feeder.join().expect("the feeder");
    let collect = |rx: crossbeam_channel::Receiver<Vec<u8>>| rx.recv_timeout(util::LONG).unwrap_or_default();
    Run { status, stdout: collect(stdout), stderr: String::from_utf8_lossy(&collect(stderr)).into_owned() }
}

fn run(args: &[&str]) -> Run {
    run_with(bin(), args, b"", RUN)
}

/// The child's status, or a failed test (the child killed) after `timeout`.
fn wait_bounded(child: &mut Child, timeout: Duration, what: &str) -> ExitStatus {
    let mut status = None;
    if !wait_for(timeout, || {
        status = child.try_wait().expect("try_wait");
        status.is_some()
    }) {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{what}: still running after {timeout:?}");
    }
    status.expect("an exit status")
}

fn assert_code(run: &Run, code: i32, what: &str) {
    assert_eq!(
        run.code(),
        Some(code),
        "{what}: exit status {:?}\nstdout: {}\nstderr: {}",
        run.status,
        run.text(),
        run.stderr
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect()
}

/// A server started with `args`, its `listening on ADDR` lines read.
struct Server {
    child: Child,
    addrs: Vec<String>,
    stdout: BufReader<std::process::ChildStdout>,
}

fn start_server(program: &Path, args: &[&str], count: usize) -> Server {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("start {program:?}: {e}"));
    let (addrs, stdout) = util::process::listening(&mut child, count);
    Server { child, addrs, stdout }
}

impl Server {
    /// Stops `packetstream serve` with SIGTERM; the rest of its stdout.
    fn terminate(self) -> (String, ExitStatus) {
        let pid = self.child.id().to_string();
        let killed = Command::new("kill").args(["-TERM", &pid]).status().expect("run kill");
        assert!(killed.success());
        self.finish()
    }

    /// Stops tcp_echo_server, which ends at the end of its stdin.
    fn end_stdin(mut self) -> (String, ExitStatus) {
        drop(self.child.stdin.take());
        self.finish()
    }

    fn finish(mut self) -> (String, ExitStatus) {
        let rest = drain(self.stdout.into_inner());
        let status = wait_bounded(&mut self.child, Duration::from_secs(30), "the server");
        let rest = rest.recv_timeout(util::LONG).unwrap_or_default();
        (String::from_utf8_lossy(&rest).into_owned(), status)
    }
}

// ---------------------------------------------------------------------------
// call

#[test]
fn call_prints_text_hex_and_json_and_says_how_it_went() {
    let server = echo_server();
    let server = server.to_str().unwrap();
    let text = run(&["call", "--text", "hello, world", "--", server]);
    assert_code(&text, 0, "call --text");
    assert_eq!(text.text(), "hello, world\n");
    // Not printable: lowercase hex; a control character is enough.
    let binary = run(&["call", "--hex", "00 01 FF", "--", server]);
    assert_eq!(binary.text(), "0001ff\n");
    assert_eq!(run(&["call", "--text", "bell\u{7}", "--", server]).text(), "62656c6c07\n");
    // A payload that ends its line has none added; an empty one is a line.
    assert_eq!(run(&["call", "--text", "line\n", "--", server]).text(), "line\n");
    assert_eq!(run(&["call", "--", server]).text(), "\n");

    let json =
        run(&["call", "--flags", "0x10", "--type", "7", "--text", "hi", "--repeat", "3", "--json", "--", server]);
    assert_code(&json, 0, "call --json --repeat 3");
    let objects = json.json();
    assert_eq!(objects.len(), 3);
    for object in &objects {
        assert_eq!(object, &serde_json::json!({"ok": true, "flags": 16, "payload_hex": "6869"}));
    }

    // Request type 1 fails at echo_server: exit 1, the reason on stderr.
    let failed = run(&["call", "--type", "1", "--text", "x", "--", server]);
    assert_code(&failed, 1, "a failed request");
    assert_eq!(failed.text(), "");
    assert!(failed.stderr.contains("the peer failed the request: rq_type 1 always fails"), "{}", failed.stderr);
    let failed = run(&["call", "--type", "1", "--json", "--", server]);
    assert_code(&failed, 1, "a failed request, as JSON");
    assert_eq!(
        failed.json(),
        [serde_json::json!({"ok": false, "flags": 0, "payload_hex": hex(b"rq_type 1 always fails")})]
    );
    // A channel the server does not serve is refused: a failure too.
    let refused = run(&["call", "--channel", "5", "--", server]);
    assert_code(&refused, 1, "an unserved channel");
    assert!(refused.stderr.contains("unknown channel 5"), "{}", refused.stderr);

    // Payloads from a file and from stdin; the answer raw into a file.
    let dir = scratch("call");
    let input = dir.join("input.bin");
    let payload: Vec<u8> = (0..=255).collect();
    std::fs::write(&input, &payload).unwrap();
    let out = dir.join("answer.bin");
    let raw = run(&["call", "--file", input.to_str().unwrap(), "--out", out.to_str().unwrap(), "--", server]);
    assert_code(&raw, 0, "call --file --out");
    assert_eq!(raw.text(), "");
    assert_eq!(std::fs::read(&out).unwrap(), payload);
    let piped = run_with(bin(), &["call", "--stdin", "--out", "-", "--repeat", "2", "--", server], &payload, RUN);
    assert_code(&piped, 0, "call --stdin --out -");
    assert_eq!(piped.stdout, [payload.clone(), payload].concat());
}

#[test]
fn call_against_a_python_server() {
    let Some(python) = python("call_against_a_python_server") else { return };
    let python = python.to_str().unwrap();
    let server = script("echo_server.py");
    let server = server.to_str().unwrap();
    let ok = run(&["call", "--text", "from rust", "--flags", "5", "--json", "--", python, server]);
    assert_code(&ok, 0, "call to echo_server.py");
    assert_eq!(ok.json(), [serde_json::json!({"ok": true, "flags": 5, "payload_hex": hex(b"from rust")})]);
    let repeated = run(&["call", "--hex", "c328", "--repeat", "100", "--", python, server]);
    assert_code(&repeated, 0, "100 calls to echo_server.py");
    assert_eq!(repeated.lines(), vec!["c328".to_owned(); 100]);
    let failed = run(&["call", "--type", "1", "--", python, server]);
    assert_code(&failed, 1, "a request echo_server.py fails");
    assert!(failed.stderr.contains("the peer failed the request: exception during handler"), "{}", failed.stderr);
    let refused = run(&["call", "--channel", "3", "--", python, server]);
    assert_code(&refused, 1, "channel 3 at echo_server.py");
    assert!(refused.stderr.contains("unknown channel"), "{}", refused.stderr);
}

#[test]
fn call_and_serve_over_sockets() {
    let path = socket_path("cli-serve");
    let unix = format!("unix:{}", path.display());
    let serve = start_server(Path::new(bin()), &["serve", "--echo", "--listen", "127.0.0.1:0", &unix], 2);
    assert!(serve.addrs[0].starts_with("127.0.0.1:") && !serve.addrs[0].ends_with(":0"), "{:?}", serve.addrs);
    assert_eq!(serve.addrs[1], unix);
    for addr in serve.addrs.clone() {
        let answer = run(&["call", "--text", &addr, "--connect", &addr]);
        assert_code(&answer, 0, &format!("call --connect {addr}"));
        assert_eq!(answer.text(), format!("{addr}\n"));
    }
    let (rest, status) = serve.terminate();
    assert!(status.success(), "serve after SIGTERM: {status}");
    assert_eq!(rest.trim_end(), "served connections=2 requests=2");
    assert!(!path.exists(), "the socket file is removed at shutdown");

    // And the library's own example server.
    let example = util::process::example("tcp_echo_server");
    let tcp = start_server(&example, &["127.0.0.1:0"], 1);
    let answer = run(&["call", "--text", "to tcp_echo_server", "--repeat", "5", "--connect", &tcp.addrs[0]]);
    assert_code(&answer, 0, "call --connect tcp_echo_server");
    assert_eq!(answer.lines(), vec!["to tcp_echo_server".to_owned(); 5]);
    let (rest, status) = tcp.end_stdin();
    assert!(status.success());
    assert_eq!(rest.trim_end(), "served connections=1 requests=5");
}

// ---------------------------------------------------------------------------
// serve

#[test]
fn serve_exec_answers_with_stdout_and_fails_with_stderr() {
    let call = |args: &[&str], command: &str| {
        let mut all = vec!["call"];
        all.extend_from_slice(args);
        all.extend(["--", bin(), "serve", "--exec", command, "--stdio"]);
        run(&all)
    };
    let upper = call(&["--text", "make me loud"], "tr a-z A-Z");
    assert_code(&upper, 0, "serve --exec tr");
    assert_eq!(upper.text(), "MAKE ME LOUD\n");
    let env = call(
        &["--type", "7", "--flags", "9", "--json"],
        "echo $PACKETSTREAM_RQ_TYPE $PACKETSTREAM_FLAGS $PACKETSTREAM_CHANNEL",
    );
    assert_eq!(env.json(), [serde_json::json!({"ok": true, "flags": 0, "payload_hex": hex(b"7 9 0\n")})]);

    // A failing command fails the request with its stderr.
    let failing = call(&["--text", "x", "--json"], "echo partial; echo 'it went wrong' >&2; exit 3");
    assert_code(&failing, 1, "a failing command");
    assert_eq!(failing.json(), [serde_json::json!({"ok": false, "flags": 0, "payload_hex": hex(b"it went wrong\n")})]);
    assert!(failing.stderr.contains("the peer failed the request: it went wrong"), "{}", failing.stderr);
    // One that says nothing fails with how it ended.
    let silent = call(&["--text", "x"], "exit 4");
    assert_code(&silent, 1, "a silent failing command");
    assert!(silent.stderr.contains("\"exit 4\" exited with status 4"), "{}", silent.stderr);
    // One over its time is killed, with what it started.
    let started = Instant::now();
    let mut args = vec!["call", "--text", "x", "--", bin(), "serve", "--exec", "sleep 60 & sleep 60"];
    args.extend(["--exec-timeout", "0.5", "--stdio"]);
    let slow = run(&args);
    assert_code(&slow, 1, "a command over its time");
    assert!(slow.stderr.contains("still running after 0.5 s and was killed"), "{}", slow.stderr);
    assert!(started.elapsed() < Duration::from_secs(30), "{:?}", started.elapsed());

    // Over a socket, several connections and requests at once.
    let serve = start_server(Path::new(bin()), &["serve", "--exec", "wc -c", "--listen", "127.0.0.1:0"], 1);
    let counted = run(&["call", "--text", "12345", "--repeat", "8", "--connect", &serve.addrs[0]]);
    assert_code(&counted, 0, "serve --exec --listen");
    assert_eq!(counted.lines(), vec!["5".to_owned(); 8]);
    let (rest, status) = serve.terminate();
    assert!(status.success());
    assert_eq!(rest.trim_end(), "served connections=1 requests=8");
}

#[test]
fn serve_stdio_answers_a_python_client() {
    let Some(python) = python("serve_stdio_answers_a_python_client") else { return };
    let client = script("echo_client.py");
    let args = [client.to_str().unwrap(), bin(), "serve", "--echo", "--stdio"];
    let run = run_with(&python, &args, b"", RUN);
    assert_code(&run, 0, "echo_client.py against serve --echo --stdio");
    assert!(run.text().starts_with("echo_client.py: ok"), "{}", run.text());
}

// ---------------------------------------------------------------------------
// tap and decode

/// What a Python client and our echo server said to each other through
/// `tap`, with the bytes seen on both sides of it.
struct Conversation {
    log: Vec<Value>,
    /// What the Python client wrote, and what reached the child.
    client_out: Vec<u8>,
    child_in: Vec<u8>,
    /// What the echo server wrote, and what reached the Python client.
    child_out: Vec<u8>,
    client_in: Vec<u8>,
}

/// Runs tests/python/echo_client.py against `tap --log L -- echo_server`,
/// with `tee` on both sides of the tap to keep the bytes.
fn conversation(python: &Path, dir: &Path) -> Conversation {
    let path = |name: &str| dir.join(name).to_str().unwrap().to_owned();
    let (log, client_out, child_in, child_out, client_in) =
        (path("log.jsonl"), path("client_out"), path("child_in"), path("child_out"), path("client_in"));
    let child = format!("tee {child_in} | {} | tee {child_out}", echo_server().display());
    let between = format!("tee {client_out} | {} tap --log {log} -- sh -c \"{child}\" | tee {client_in}", bin());
    let client = script("echo_client.py");
    let run = run_with(python, &[client.to_str().unwrap(), "sh", "-c", &between], b"", RUN);
    assert_code(&run, 0, "echo_client.py through tap");
    assert!(run.text().starts_with("echo_client.py: ok"), "{}", run.text());
    let log_text = std::fs::read_to_string(&log).expect("the log");
    let log =
        log_text.lines().map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}"))).collect();
    let read = |path: &str| std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    Conversation {
        log,
        client_out: read(&client_out),
        child_in: read(&child_in),
        child_out: read(&child_out),
        client_in: read(&client_in),
    }
}

/// A packet as the output contract writes it.
fn contract(packet: &Packet) -> Value {
    let kind = match packet.control() {
        Some(Ok(packetstream::wire::Control::Eof)) => "eof",
        Some(Ok(packetstream::wire::Control::Erq)) => "erq",
        _ if packet.is_request() => "request",
        _ => "response",
    };
    let mut object = serde_json::json!({ "kind": kind });
    if matches!(kind, "request" | "response") {
        object["tag"] = packet.tag().into();
        object["channel"] = packet.channel().into();
        object["flags"] = packet.flags().into();
        object["len"] = (packet.payload().len() as u64).into();
        object["payload_hex"] = hex(packet.payload()).into();
        match packet.rq_type() {
            Some(rq_type) => object["rq_type"] = rq_type.into(),
            None => object["ok"] = packet.ok().expect("a response").into(),
        }
    }
    object
}

/// Every packet of a well-formed stream, decoded by the library.
fn packets(bytes: &[u8]) -> Vec<Packet> {
    let mut reader = PacketReader::new(Cursor::new(bytes.to_vec()), DEFAULT_MAX_PACKET_SIZE);
    let mut packets = Vec::new();
    while let Some(packet) = reader.read_packet().expect("a well-formed stream") {
        packets.push(packet);
    }
    packets
}

#[test]
fn tap_between_a_python_client_and_our_echo_server() {
    let Some(python) = python("tap_between_a_python_client_and_our_echo_server") else { return };
    let dir = scratch("tap");
    let talk = conversation(&python, &dir);
    // The relay changed nothing, either way.
    assert!(talk.client_out.len() > 1 << 20, "{} bytes", talk.client_out.len());
    assert!(
        talk.client_out == talk.child_in,
        "to the child: {} bytes became {}",
        talk.client_out.len(),
        talk.child_in.len()
    );
    assert!(
        talk.child_out == talk.client_in,
        "from the child: {} bytes became {}",
        talk.child_out.len(),
        talk.client_in.len()
    );

    // Each direction's lines are its packets, in order, with the contract's keys.
    let mut last_t = 0.0;
    let mut by_dir: HashMap<String, Vec<Value>> = HashMap::new();
    for line in &talk.log {
        let t = line["t"].as_f64().expect("t, seconds");
        assert!(t >= last_t, "t goes forward: {t} after {last_t}");
        last_t = t;
        let mut packet = line.clone();
        let object = packet.as_object_mut().expect("an object");
        let dir = object.remove("dir").and_then(|dir| dir.as_str().map(str::to_owned)).expect("dir");
        object.remove("t");
        by_dir.entry(dir).or_default().push(packet);
    }
    assert_eq!(by_dir.len(), 2, "{:?}", by_dir.keys());
    let to_child: Vec<Value> = packets(&talk.client_out).iter().map(contract).collect();
    let from_child: Vec<Value> = packets(&talk.child_out).iter().map(contract).collect();
    assert!(by_dir["to_child"] == to_child, "the to_child lines are the client's packets");
    assert!(by_dir["from_child"] == from_child, "the from_child lines are the server's packets");
    // The Python client's first request, and both ends' orderly close.
    assert_eq!(to_child[0]["kind"], "request");
    assert_eq!((to_child[0]["tag"].as_u64(), to_child[0]["rq_type"].as_u64()), (Some(2), Some(0)));
    assert_eq!(to_child.last().unwrap(), &serde_json::json!({"kind": "eof"}));
    assert_eq!(from_child.last().unwrap(), &serde_json::json!({"kind": "eof"}));
    let failed = from_child.iter().filter(|line| line["ok"] == false).count();
    assert_eq!(failed, 1, "the one request of type 1 failed");
    // Requests and responses pair up.
    let requests = to_child.iter().filter(|line| line["kind"] == "request").count();
    let responses = from_child.iter().filter(|line| line["kind"] == "response").count();
    assert_eq!(requests, responses);
    assert!(requests > 1000, "{requests} requests");
}

#[test]
fn decode_a_stream_the_python_library_wrote() {
    let Some(python) = python("decode_a_stream_the_python_library_wrote") else { return };
    let dir = scratch("decode-python");
    let talk = conversation(&python, &dir);
    let file = dir.join("client_out");
    let file = file.to_str().unwrap();
    let json = run(&["decode", "--json", file]);
    assert_code(&json, 0, "decode --json of Python's stream");
    let expected: Vec<Value> = packets(&talk.client_out).iter().map(contract).collect();
    assert!(json.json() == expected, "decode --json gives the library's packets");
    let text = run(&["decode", file]);
    assert_code(&text, 0, "decode of Python's stream");
    let lines = text.lines();
    assert_eq!(lines.len(), expected.len());
    assert!(lines[0].trim_start().starts_with("0 request  channel=0 tag=2 rq_type=0 flags=0 len=0"), "{}", lines[0]);
    assert!(lines.last().unwrap().ends_with(" eof"), "{:?}", lines.last());

    // Cut inside the fifth packet: four lines, then where and why it broke.
    let frames: Vec<usize> = packets(&talk.client_out).iter().map(packetstream::wire::encoded_len).collect();
    let fifth: usize = frames[..4].iter().sum();
    let cut = dir.join("cut");
    std::fs::write(&cut, &talk.client_out[..fifth + 5]).unwrap();
    let broken = run(&["decode", "--json", cut.to_str().unwrap()]);
    assert_code(&broken, 1, "decode of a cut stream");
    let lines = broken.json();
    assert_eq!(lines.len(), 5);
    assert_eq!(lines[4]["kind"], "malformed");
    assert_eq!(lines[4]["offset"].as_u64(), Some(fifth as u64));
    assert!(lines[4]["error"].as_str().unwrap().starts_with("stream ended inside a packet"), "{}", lines[4]);
    // From stdin too, as text.
    let piped = run_with(bin(), &["decode", "-"], &talk.client_out[..fifth + 5], RUN);
    assert_code(&piped, 1, "decode - of a cut stream");
    assert!(piped.lines()[4].contains(&format!("{fifth} malformed: stream ended inside a packet")), "{}", piped.text());
}

fn golden(name: &str) -> Vec<HashMap<String, String>> {
    let text = std::fs::read_to_string(util::repo().join("tests/data/golden").join(name)).expect("a golden file");
    let mut lines = text.lines().filter(|line| !line.starts_with('#'));
    let header: Vec<String> = lines.next().unwrap().split('\t').map(str::to_owned).collect();
    lines.map(|line| header.iter().cloned().zip(line.split('\t').map(str::to_owned)).collect()).collect()
}

#[test]
fn decode_the_golden_vectors() {
    let dir = scratch("decode-golden");
    let rows = golden("frames.tsv");
    let stream: Vec<u8> = rows.iter().flat_map(|row| unhex(&row["frame_hex"])).collect();
    let file = dir.join("frames.bin");
    std::fs::write(&file, &stream).unwrap();
    let decoded = run(&["decode", "--json", file.to_str().unwrap()]);
    assert_code(&decoded, 0, "decode of the golden frames");
    let lines = decoded.json();
    assert_eq!(lines.len(), rows.len());
    for (line, row) in lines.iter().zip(&rows) {
        assert_eq!(line["kind"], row["kind"].as_str(), "{}", row["name"]);
        if matches!(row["kind"].as_str(), "eof" | "erq") {
            assert_eq!(line.as_object().unwrap().len(), 1, "{}: {line}", row["name"]);
            continue;
        }
        for key in ["channel", "tag", "flags"] {
            assert_eq!(
                line[key].as_u64().map(|n| n.to_string()).as_deref(),
                Some(row[key].as_str()),
                "{key} of {}",
                row["name"]
            );
        }
        assert_eq!(line["payload_hex"], row["payload_hex"].as_str(), "{}", row["name"]);
        assert_eq!(line["len"].as_u64(), Some(row["payload_hex"].len() as u64 / 2), "{}", row["name"]);
        match row["kind"].as_str() {
            "request" => assert_eq!(line["rq_type"].as_u64().map(|n| n.to_string()), Some(row["rq_type"].clone())),
            _ => assert_eq!(line["ok"].as_bool(), Some(row["ok"] == "1"), "{}", row["name"]),
        }
    }
    // Each malformed stream: one line, at offset 0 after the good frame put before it.
    let good = unhex(&rows[0]["frame_hex"]);
    for row in golden("malformed.tsv") {
        let file = dir.join(&row["name"]);
        std::fs::write(&file, [good.clone(), unhex(&row["hex"])].concat()).unwrap();
        let mut args = vec!["decode", "--json"];
        let max = row["max_packet_size"].clone();
        if max != "-" {
            args.extend(["--max-packet-size", &max]);
        }
        args.push(file.to_str().unwrap());
        let run = run(&args);
        assert_code(&run, 1, &row["name"]);
        let lines = run.json();
        assert_eq!(lines.len(), 2, "{}: {lines:?}", row["name"]);
        assert_eq!(lines[1]["kind"], "malformed", "{}", row["name"]);
        assert_eq!(lines[1]["offset"].as_u64(), Some(good.len() as u64), "{}", row["name"]);
    }
}

#[test]
fn tap_relays_malformed_bytes_and_exits_as_its_child() {
    let dir = scratch("tap-malformed");
    let log = dir.join("log.jsonl");
    let mut input = Vec::new();
    packetstream::wire::encode(&Packet::request(0, 2, 0, 0, b"hi".to_vec()).unwrap(), &mut input);
    input.extend_from_slice(b"\x00 and then nothing that decodes");
    // cat sends everything back: both directions carry the same bytes.
    let run = run_with(bin(), &["tap", "--log", log.to_str().unwrap(), "--", "cat"], &input, RUN);
    assert_code(&run, 0, "tap -- cat");
    assert_eq!(run.stdout, input, "relayed unchanged");
    let lines: Vec<Value> =
        std::fs::read_to_string(&log).unwrap().lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    for dir in ["to_child", "from_child"] {
        let mine: Vec<&Value> = lines.iter().filter(|line| line["dir"] == dir).collect();
        assert_eq!(mine.len(), 2, "{dir}: {lines:?}");
        assert_eq!(mine[0]["kind"], "request");
        assert_eq!(mine[0]["payload_hex"], "6869");
        assert_eq!(mine[1]["kind"], "malformed");
        assert_eq!(mine[1]["offset"], 6);
        assert_eq!(mine[1]["error"], "packet ends inside its header");
    }
    // Without --log the lines are text on stderr.
    let text = run_with(bin(), &["tap", "--", "cat"], &input, RUN);
    assert_eq!(text.stdout, input);
    assert!(text.stderr.contains("to_child   @0 request  channel=0 tag=2 rq_type=0"), "{}", text.stderr);
    assert!(text.stderr.contains("@6 malformed: packet ends inside its header"), "{}", text.stderr);
    // The child's exit status is tap's.
    assert_code(&run_with(bin(), &["tap", "--", "sh", "-c", "exit 7"], b"", RUN), 7, "tap of exit 7");
    assert_code(&run_with(bin(), &["tap", "--", "sh", "-c", "kill -9 $$"], b"", RUN), 137, "tap of a killed child");
}

// ---------------------------------------------------------------------------
// check and bench

/// The verdict lines and the summary of a check run that passed.
fn check_passes(args: &[&str], what: &str) -> Vec<String> {
    let run = run(args);
    assert_code(&run, 0, what);
    let lines = run.lines();
    let (summary, verdicts) = lines.split_last().expect("lines");
    assert!(summary.contains(" 0 failed"), "{what}: {summary}");
    assert!(verdicts.len() >= 20, "{what}: {} checks", verdicts.len());
    for line in verdicts {
        assert!(line.starts_with("pass ") || line.starts_with("n/a "), "{what}: {line}");
    }
    lines
}

#[test]
fn check_passes_against_our_servers() {
    let server = echo_server();
    let server = server.to_str().unwrap();
    let plain = check_passes(&["check", "--quiet-peer", "--", server], "check of echo_server");
    assert!(plain.iter().any(|line| line.starts_with("n/a   extensions.quit")), "{plain:?}");
    let extended =
        check_passes(&["check", "--quiet-peer", "--", server, "--extensions"], "check of echo_server --extensions");
    assert!(extended.iter().all(|line| !line.starts_with("n/a")), "{extended:?}");
    check_passes(
        &["check", "--quiet-peer", "--", bin(), "serve", "--echo", "--stdio"],
        "check of serve --echo --stdio",
    );

    let example = util::process::example("tcp_echo_server");
    let path = socket_path("cli-check");
    let unix = format!("unix:{}", path.display());
    let tcp = start_server(&example, &["127.0.0.1:0", &unix], 2);
    for addr in tcp.addrs.clone() {
        check_passes(&["check", "--connect", &addr], &format!("check --connect {addr}"));
    }
    let (_, status) = tcp.end_stdin();
    assert!(status.success());
}

#[test]
fn check_passes_against_the_python_peer() {
    let Some(python) = python("check_passes_against_the_python_peer") else { return };
    let server = script("echo_server.py");
    let lines = check_passes(
        &["check", "--quiet-peer", "--", python.to_str().unwrap(), server.to_str().unwrap()],
        "check of echo_server.py",
    );
    assert!(lines.iter().any(|line| line.contains("a plain peer: it refused the probe")), "{lines:?}");
}

#[test]
fn check_fails_a_peer_that_breaks_the_contract() {
    // cat sends our requests back as requests: nothing is answered as it should be.
    let run = run(&["check", "--timeout", "2", "--only", "request,shutdown,pipelining", "--", "cat"]);
    assert_code(&run, 1, "check of cat");
    let lines = run.lines();
    assert_eq!(lines.len(), 5, "{lines:?}");
    assert!(lines[..4].iter().all(|line| line.starts_with("fail ")), "{lines:?}");
    assert!(lines[4].contains("0 passed, 4 failed"), "{}", lines[4]);
    // The same as JSON.
    let json = self::run(&["check", "--json", "--timeout", "2", "--only", "request.echo", "--", "cat"]);
    assert_code(&json, 1, "check --json of cat");
    let objects = json.json();
    assert_eq!(objects[0]["check"], "request.echo");
    assert_eq!(objects[0]["result"], "fail");
    assert!(objects[0]["reason"].as_str().unwrap().contains("unknown channel"), "{}", objects[0]);
    assert_eq!(objects[1]["failed"], 1);
    // The list needs no peer.
    let list = self::run(&["check", "--list"]);
    assert_code(&list, 0, "check --list");
    assert!(list.lines().len() >= 20 && list.lines()[0].starts_with("request.echo "), "{}", list.text());
}

#[test]
fn bench_measures_every_scenario() {
    let server = echo_server();
    let table = run(&["bench", "--seconds", "0.2", "--", server.to_str().unwrap()]);
    assert_code(&table, 0, "bench of echo_server");
    let lines = table.lines();
    assert!(lines[0].starts_with("scenario"), "{lines:?}");
    for (line, start) in
        lines[1..5].iter().zip(["A sequential 16 B", "B pipelined x64 16 B", "C concurrent 4 thr", "D bulk 1 MiB"])
    {
        assert!(line.starts_with(start), "{line}");
    }
    let json =
        run(&["bench", "--seconds", "0.2", "--only", "b,d", "--window", "8", "--json", "--", server.to_str().unwrap()]);
    assert_code(&json, 0, "bench --json");
    let objects = json.json();
    assert_eq!(objects.len(), 2);
    assert_eq!((objects[0]["scenario"].as_str(), objects[0]["unit"].as_str()), (Some("B"), Some("req/s")));
    assert_eq!(objects[0]["label"], "pipelined x8 16 B");
    assert_eq!((objects[1]["scenario"].as_str(), objects[1]["unit"].as_str()), (Some("D"), Some("MB/s")));
    assert!(objects.iter().all(|o| o["value"].as_f64().unwrap() > 0.0 && o["ops"].as_u64().unwrap() > 0));

    let Some(python) = python("bench_measures_every_scenario (its Python part)") else { return };
    let script = script("echo_server.py");
    let args = ["bench", "--seconds", "0.2", "--quiet-peer", "--", python.to_str().unwrap(), script.to_str().unwrap()];
    let python_table = run(&args);
    assert_code(&python_table, 0, "bench of echo_server.py");
    assert_eq!(python_table.lines().len(), 6, "{}", python_table.text());
}

// ---------------------------------------------------------------------------
// The command line itself

#[test]
fn bad_arguments_and_unreachable_peers_exit_2_with_a_reason() {
    let server = echo_server();
    let server = server.to_str().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = listener.local_addr().unwrap().to_string();
    drop(listener);
    let missing = scratch("bad").join("missing");
    let missing = missing.to_str().unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["call", "--text", "x"], "--connect <ADDR>|COMMAND"),
        (vec!["call", "--connect", "127.0.0.1:1", "--", server], "cannot be used with"),
        (vec!["call", "--connect", "nowhere", "--text", "x"], "not an address"),
        (vec!["call", "--hex", "abc", "--", server], "odd number of digits"),
        (vec!["call", "--text", "a", "--hex", "61", "--", server], "cannot be used with"),
        (vec!["call", "--flags=-1", "--", server], "not a number"),
        (vec!["call", "--repeat", "0", "--", server], "--repeat"),
        (vec!["call", "--file", missing, "--", server], "cannot read"),
        (vec!["call", "--channel", "2096896", "--", server], "reserved for the protocol extensions"),
        (vec!["call", "--connect", &closed], "cannot connect to"),
        (vec!["call", "--", missing], "cannot start"),
        (vec!["call", "--timeout", "0.5", "--", "sleep", "30"], "no answer within 0.5 s"),
        (vec!["call", "--", server, "--fail-after", "0"], "exited with status 3"),
        (vec!["serve", "--echo"], "--stdio|--listen"),
        (vec!["serve", "--echo", "--exec", "cat", "--stdio"], "cannot be used with"),
        (vec!["serve", "--echo", "--stdio", "--max-connections", "2"], "cannot be used with"),
        (vec!["serve", "--echo", "--listen", "unix:/nonexistent-dir/x.sock"], "cannot listen"),
        (vec!["tap", "--", missing], "cannot start"),
        (vec!["tap", "cat"], "unexpected argument"),
        (vec!["decode", missing], "cannot open"),
        (vec!["decode"], "<FILE|->"),
        (vec!["check", "--connect", &closed], "cannot reach the peer"),
        (vec!["check", "--", missing], "cannot reach the peer"),
        (vec!["check", "--only", "nonsense", "--", server], "no check is named"),
        (vec!["check"], "check needs a peer"),
        (vec!["bench", "--connect", &closed], "cannot connect to"),
        (vec!["bench", "--only", "E", "--", server], "not a scenario"),
        (vec!["completions", "tcsh"], "invalid value"),
        (vec!["frobnicate"], "unrecognized subcommand"),
    ];
    for (args, said) in cases {
        let started = Instant::now();
        let run = run(&args);
        assert_code(&run, 2, &format!("{args:?}"));
        assert!(run.stderr.contains(said), "{args:?} should say {said:?}: {}", run.stderr);
        assert!(!run.stderr.contains("panicked"), "{args:?}: {}", run.stderr);
        assert!(started.elapsed() < Duration::from_secs(20), "{args:?} took {:?}", started.elapsed());
    }
}

#[test]
fn help_version_and_completions() {
    let version = run(&["--version"]);
    assert_code(&version, 0, "--version");
    assert_eq!(version.text().trim_end(), format!("packetstream {}", env!("CARGO_PKG_VERSION")));
    for command in ["call", "serve", "tap", "decode", "check", "bench", "completions"] {
        let help = run(&[command, "--help"]);
        assert_code(&help, 0, &format!("{command} --help"));
        assert!(help.text().contains("Usage: packetstream"), "{command}: {}", help.text());
    }
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let script = run(&["completions", shell]);
        assert_code(&script, 0, &format!("completions {shell}"));
        let text = script.text();
        for word in ["packetstream", "call", "serve", "connect", "json"] {
            assert!(text.contains(word), "{shell} completions lack {word:?}");
        }
    }
    // bash can load what it was given.
    let bash = run(&["completions", "bash"]);
    let loaded = run_with("bash", &["-c", "source /dev/stdin && complete -p packetstream"], &bash.stdout, RUN);
    assert_code(&loaded, 0, "bash loading the completions");
    assert!(loaded.text().contains("packetstream"), "{}", loaded.text());
}

/// A fresh directory of this test's own under cargo's scratch directory.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    dir
}
