//! The contracts of `tcp_echo_server` and `echo_client --connect`, as
//! other tools drive them: the exact lines, the counts, the exit status.

mod util;

use std::io::BufReader;
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use util::python::run_bounded;
use util::{socket_path, wait_for, LONG};

/// Starts `tcp_echo_server ARGS`; returns it and the addresses of its
/// `listening on ADDR` lines, read before anything else.
fn start_server(args: &[String], addresses: usize) -> (Child, Vec<String>, BufReader<std::process::ChildStdout>) {
    let mut server = Command::new(util::process::example("tcp_echo_server"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start tcp_echo_server");
    let (listening, stdout) = util::process::listening(&mut server, addresses);
    (server, listening, stdout)
}

/// Ends the server's stdin; returns the rest of its stdout and whether it
/// exited 0.
fn stop_server(mut server: Child, stdout: BufReader<std::process::ChildStdout>) -> (String, bool) {
    drop(server.stdin.take());
    let rest = util::python::drain(stdout.into_inner());
    if !wait_for(Duration::from_secs(30), || server.try_wait().ok().flatten().is_some()) {
        let _ = server.kill();
    }
    let status = server.wait().expect("the server's status");
    let rest = rest.recv_timeout(LONG).unwrap_or_default();
    (String::from_utf8_lossy(&rest).into_owned(), status.success())
}

fn echo_client(args: &[&str]) -> String {
    let mut command = Command::new(util::process::example("echo_client"));
    command.args(args);
    let run = run_bounded(command, Duration::from_secs(120)).expect("run echo_client");
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    assert!(
        run.status.is_some_and(|status| status.success()),
        "echo_client {args:?}: {:?}\n{stdout}\n{}",
        run.status,
        String::from_utf8_lossy(&run.stderr)
    );
    stdout.lines().last().unwrap_or_default().to_owned()
}

#[test]
fn tcp_echo_server_and_echo_client_keep_their_contracts() {
    let path = socket_path("contract");
    let ipv6 = util::ipv6_loopback("tcp_echo_server_and_echo_client_keep_their_contracts");
    let mut args = vec!["--max-connections".to_owned(), "16".to_owned(), "--idle-timeout".to_owned(), "30".to_owned()];
    args.push("127.0.0.1:0".into());
    if ipv6 {
        args.push("[::1]:0".into());
    }
    args.push(format!("unix:{}", path.display()));
    let (server, listening, stdout) = start_server(&args, args.len() - 4);
    assert!(listening[0].starts_with("127.0.0.1:") && !listening[0].ends_with(":0"), "{listening:?}");
    if ipv6 {
        assert!(listening[1].starts_with("[::1]:") && !listening[1].ends_with(":0"), "{listening:?}");
    }
    assert_eq!(listening.last(), Some(&format!("unix:{}", path.display())));
    for addr in &listening {
        let last = echo_client(&["--connect", addr, "--connections", "4", "--requests", "2000", "--threads", "3"]);
        println!("{addr}: {last}");
        let fields: Vec<&str> = last.split(' ').collect();
        assert_eq!(fields[..5], ["requests=2000", "threads=3", "window=32", "size=64", "connections=4"], "{last}");
        assert!(fields[5].starts_with("seconds=") && fields[6].starts_with("calls_per_s="), "{last}");
    }
    let (rest, ok) = stop_server(server, stdout);
    assert!(ok, "tcp_echo_server did not exit 0: {rest}");
    // Each client run: 4 connections, 2,000 echoes and one failing request.
    let runs = listening.len();
    assert_eq!(rest.trim_end(), format!("served connections={} requests={}", 4 * runs, 2001 * runs));
    assert!(!path.exists(), "the socket file is removed");
}

#[test]
fn tcp_echo_server_does_not_count_refused_connections() {
    let args = ["--max-connections".to_owned(), "1".to_owned(), "127.0.0.1:0".to_owned()];
    let (server, listening, stdout) = start_server(&args, 1);
    let addr: std::net::SocketAddr = listening[0].parse().expect("an address");
    // The one allowed, answered once and held open.
    let transport = packetstream::net::connect(&packetstream::net::Addr::Tcp(addr), LONG).unwrap();
    let held = packetstream::PacketConnection::new(transport, packetstream::Config::default()).unwrap();
    assert_eq!(held.call_timeout(0, 5, b"held".to_vec(), LONG).unwrap().flags, 5);
    // Over the limit: closed by the server (its end of the stream comes
    // before the read timeout would), uncounted.
    let mut refused = TcpStream::connect(addr).unwrap();
    refused.set_read_timeout(Some(LONG)).unwrap();
    let ended = std::io::Read::read_to_end(&mut refused, &mut Vec::new());
    assert!(ended.is_ok(), "not closed by the server: {ended:?}");
    drop(held);
    let (rest, ok) = stop_server(server, stdout);
    assert!(ok, "{rest}");
    assert_eq!(rest.trim_end(), "served connections=1 requests=1");
}
