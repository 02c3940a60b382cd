//! Every file descriptor the library creates is close-on-exec, so a child
//! started later (by this program or by `Transport::spawn`) inherits none of
//! them. One test in its own binary: it compares the process's whole fd table
//! before and after, which tests running alongside would disturb.

#![cfg(target_os = "linux")]

use std::collections::BTreeSet;
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::process::Command;

use packetstream::{Config, PacketConnection, Transport};

fn open_fds() -> BTreeSet<u32> {
    std::fs::read_dir("/proc/self/fd")
        .expect("read /proc/self/fd")
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// The `flags:` line of /proc/self/fdinfo is octal; O_CLOEXEC is 02000000.
fn is_cloexec(fd: u32) -> Option<bool> {
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).ok()?;
    let flags = info.lines().find_map(|line| line.strip_prefix("flags:"))?.trim();
    Some(u32::from_str_radix(flags, 8).ok()? & 0o2000000 != 0)
}

#[test]
fn every_descriptor_the_library_creates_is_close_on_exec() {
    let before = open_fds();

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let tcp_client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (tcp_server, _) = listener.accept().unwrap();
    let (unix_a, unix_b) = UnixStream::pair().unwrap();
    let (pipe_a, pipe_b) = Transport::pipe_pair().unwrap();
    let mut cat = Command::new("cat");
    let transports = vec![
        Transport::tcp(tcp_client).unwrap(),
        Transport::tcp(tcp_server).unwrap(),
        Transport::unix(unix_a).unwrap(),
        Transport::unix(unix_b).unwrap(),
        pipe_a,
        pipe_b,
        Transport::spawn(&mut cat).unwrap(),
    ];
    // Not started: a connection on the test's own stdout would write packets there.
    let stdio = Transport::stdio().unwrap();
    let config = Config::builder().name("cloexec").close_timeout(std::time::Duration::from_millis(200)).build();
    let conns: Vec<_> = transports.into_iter().map(|t| PacketConnection::new(t, config.clone()).unwrap()).collect();

    let created: Vec<u32> = open_fds().difference(&before).copied().collect();
    // 3 per socket (reader, writer, interrupter), 2 per pipe end, 2 for stdio, 2 for the child.
    assert!(created.len() >= 18, "expected the connections' descriptors, found {created:?}");
    let inheritable: Vec<u32> = created.iter().copied().filter(|&fd| is_cloexec(fd) == Some(false)).collect();
    assert!(inheritable.is_empty(), "descriptors without close-on-exec: {inheritable:?}");

    // The `cat` child echoes our packets back; we do not care how close goes.
    drop(conns);
    drop(stdio);
    drop(listener);
}
