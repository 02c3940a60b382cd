//! A child process at the other end: what callers learn when it fails to
//! start, exits, or writes text where packets belong; its stderr forwarded
//! and kept.

mod util;

use std::process::Command;
use std::time::Duration;

use packetstream::{Config, ConnectionError, PacketConnection, ProtocolError, RequestError, Transport};
use util::{assert_no_threads, unique_name, LONG};

fn sh(script: &str) -> Command {
    let mut command = Command::new("sh");
    command.args(["-c", script]);
    command
}

fn config() -> packetstream::ConfigBuilder {
    Config::builder().name(unique_name('k', 'c')).close_timeout(Duration::from_secs(2))
}

/// Sends one request and returns why it got no answer.
fn call_fails(conn: &PacketConnection) -> ConnectionError {
    match conn.submit(0, 0, b"are you there?".to_vec()).expect("submit").wait_timeout(LONG) {
        Err(packetstream::WaitTimeoutError::Connection(error)) => error,
        other => panic!("expected the connection's end, got {other:?}"),
    }
}

#[test]
fn a_missing_program_is_named() {
    let error = Transport::spawn(&mut Command::new("no-such-program-here")).unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::NotFound);
    let text = error.to_string();
    assert!(text.contains("\"no-such-program-here\"") && text.contains("No such file"), "{text}");
}

#[test]
fn a_child_that_exits_mid_call_gives_its_status_and_last_stderr_lines() {
    let mut command = sh("head -c 1 >/dev/null; echo 'loading config' >&2; echo 'fatal: no config' >&2; exit 3");
    let conn = PacketConnection::new(Transport::spawn_forwarding_stderr(&mut command, 8).unwrap(), config()).unwrap();
    let name = conn.name().to_owned();
    let error = call_fails(&conn);
    let ConnectionError::Child(end) = &error else { panic!("expected the child's end, got {error:?}") };
    assert_eq!(end.program, "sh");
    assert_eq!(end.status.and_then(|status| status.code()), Some(3));
    assert_eq!(end.stderr, ["loading config", "fatal: no config"]);
    let text = error.to_string();
    assert!(text.contains("exited with status 3") && text.contains("fatal: no config"), "{text}");
    // Later submits are refused with the same explanation.
    let refused = conn.submit(0, 0, Vec::new()).unwrap_err();
    assert!(refused.to_string().contains("exited with status 3"), "{refused}");
    let closed = conn.close();
    let status = match &closed {
        Ok(finished) => finished.exit_status(),
        Err(error) => error.exit_status(),
    };
    assert_eq!(status.and_then(|status| status.code()), Some(3));
    assert_no_threads(&name);
}

#[test]
fn without_kept_stderr_the_status_still_reaches_the_callers() {
    let conn =
        PacketConnection::new(Transport::spawn(&mut sh("head -c 1 >/dev/null; exit 7")).unwrap(), config()).unwrap();
    let name = conn.name().to_owned();
    let error = call_fails(&conn);
    let ConnectionError::Child(end) = &error else { panic!("{error:?}") };
    assert_eq!(end.status.and_then(|status| status.code()), Some(7));
    assert!(end.stderr.is_empty());
    let _ = conn.close();
    assert_no_threads(&name);
}

#[test]
fn a_child_printing_text_to_its_stdout_is_told_apart_from_a_broken_peer() {
    // It closes its stdout after the line, and lives on.
    let conn =
        PacketConnection::new(Transport::spawn(&mut sh("echo hello world; exec >&-; sleep 5")).unwrap(), config())
            .unwrap();
    let name = conn.name().to_owned();
    let error = call_fails(&conn);
    // Still running, with nothing on a kept stderr: the text is the news.
    match &error {
        ConnectionError::NotPackets { error: ProtocolError::UnexpectedEof, text } => {
            assert_eq!(text, "\"hello world\\n\"")
        }
        other => panic!("expected text, got {other:?}"),
    }
    let shown = error.to_string();
    assert!(shown.contains("look like text") && shown.contains("hello world"), "{shown}");
    let _ = conn.close();
    assert_no_threads(&name);
}

#[test]
fn a_child_that_exits_at_once_fails_the_first_call_at_once() {
    let conn = PacketConnection::new(Transport::spawn(&mut sh("exit 0")).unwrap(), config()).unwrap();
    let name = conn.name().to_owned();
    let started = std::time::Instant::now();
    let error = match conn.call(0, 0, Vec::new()) {
        Err(packetstream::CallError::Connection(error)) => error,
        other => panic!("{other:?}"),
    };
    assert!(started.elapsed() < LONG);
    let ConnectionError::Child(end) = &error else { panic!("{error:?}") };
    assert_eq!(end.status.and_then(|status| status.code()), Some(0));
    assert!(matches!(end.cause, ConnectionError::PeerClosed { .. } | ConnectionError::Io(_)), "{end:?}");
    let _ = conn.close();
    assert_no_threads(&name);
}

#[test]
fn a_cleanly_closed_child_is_not_explained() {
    // echo_server answers, then ends with our close: nothing to explain.
    let conn =
        PacketConnection::new(Transport::spawn(&mut Command::new(util::process::echo_server())).unwrap(), config())
            .unwrap();
    let name = conn.name().to_owned();
    assert_eq!(conn.call(0, 4, b"x".to_vec()).unwrap().flags, 4);
    let finished = conn.close().expect("clean close");
    assert!(finished.exit_status().is_some_and(|status| status.success()));
    assert_no_threads(&name);
    let _ = RequestError::Connection(ConnectionError::Closed);
}
