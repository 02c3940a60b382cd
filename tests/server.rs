//! The server: real sockets on 127.0.0.1:0, [::1]:0 and temporary Unix
//! paths, and the in-process listener. Every wait is bounded; after each
//! test no thread or descriptor of ours remains (the tests that count hold
//! the process alone).

mod util;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use packetstream::net::{
    self, Addr, ConnectionInfo, EndReason, MemoryListener, Peer, Refusal, Server, ServerBuilder, ServerConfig,
    ServerConfigBuilder,
};
use packetstream::{
    CallError, CloseOptions, Config, ConnectionError, Failure, PacketConnection, Request, RequestError, Response,
    Transport, WaitTimeoutError,
};
use util::process::{alone, Baseline, Clean};
use util::{assert_no_threads, socket_path, unique_name, wait_for, Rng, LONG, PROMPT};

fn echo(rq: Request) -> Result<Response, Failure> {
    match rq.rq_type {
        1 => Err(Failure::new("rq_type 1 always fails")),
        _ => Ok(Response { flags: rq.flags, payload: rq.payload }),
    }
}

fn config(name: &str) -> ServerConfigBuilder {
    ServerConfig::builder()
        .name(name)
        .connection(ServerConfig::connection_defaults().close_timeout(Duration::from_secs(2)))
}

fn client_config(name: &str) -> packetstream::ConfigBuilder {
    Config::builder().name(name).close_timeout(Duration::from_secs(2))
}

fn connect(addr: &Addr, name: &str) -> PacketConnection {
    let transport = net::connect(addr, LONG).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    PacketConnection::new(transport, client_config(name)).expect("start a client")
}

fn call_echo(conn: &PacketConnection, flags: u64, payload: &[u8]) {
    let answer = conn.submit(0, flags, payload.to_vec()).expect("submit").wait_timeout(LONG).expect("an answer");
    assert_eq!((answer.flags, &answer.payload[..]), (flags, payload));
}

/// What the hooks saw, and a channel of the ends to wait on.
struct Seen {
    opened: Mutex<Vec<u64>>,
    ended: Mutex<Vec<(u64, EndReason)>>,
    refused: Mutex<Vec<(Peer, Refusal)>>,
    ends: Receiver<(ConnectionInfo, EndReason)>,
}

fn with_hooks(builder: ServerBuilder) -> (ServerBuilder, Arc<Seen>) {
    let (ends_tx, ends) = crossbeam_channel::unbounded();
    let seen = Arc::new(Seen { opened: Mutex::default(), ended: Mutex::default(), refused: Mutex::default(), ends });
    let (open, end, refused) = (Arc::clone(&seen), Arc::clone(&seen), Arc::clone(&seen));
    let builder = builder
        .on_open(move |info| open.opened.lock().unwrap().push(info.id()))
        .on_end(move |info, reason| {
            end.ended.lock().unwrap().push((info.id(), reason.clone()));
            let _ = ends_tx.send((info.clone(), reason.clone()));
        })
        .on_refused(move |peer, refusal| refused.refused.lock().unwrap().push((peer.clone(), refusal.clone())));
    (builder, seen)
}

impl Seen {
    fn next_end(&self) -> (ConnectionInfo, EndReason) {
        self.ends.recv_timeout(LONG).expect("a connection's end hook")
    }

    /// Every opened connection ended exactly once, and nothing else did.
    fn assert_once_each(&self) {
        let opened = self.opened.lock().unwrap().clone();
        let mut ended: Vec<u64> = self.ended.lock().unwrap().iter().map(|(id, _)| *id).collect();
        ended.sort_unstable();
        let mut expected = opened.clone();
        expected.sort_unstable();
        assert_eq!(ended, expected, "end hooks (sorted ids) against open hooks");
        let mut unique = opened.clone();
        unique.dedup();
        assert_eq!(unique.len(), opened.len(), "an open hook was called twice: {opened:?}");
    }
}

/// Shuts down within 300 ms: the clients left open do not close by
/// themselves, so their connections are cut at the deadline.
fn shutdown_soon(server: Server) -> packetstream::net::ShutdownReport {
    let report = server.shutdown(Instant::now() + Duration::from_millis(300));
    assert!(report.problems.is_empty(), "{report:?}");
    report
}

#[test]
fn serves_ipv4_ipv6_unix_and_memory_at_once_and_leaves_nothing() {
    let _alone = alone();
    let before = Baseline::take();
    let name = unique_name('s', 'a');
    let path = socket_path("all");
    let memory = MemoryListener::new();
    let connector = memory.connector();
    let mut builder =
        Server::builder().config(config(&name)).listen("127.0.0.1:0".parse().unwrap()).listen_memory(memory);
    let ipv6 = util::ipv6_loopback("serves_ipv4_ipv6_unix_and_memory_at_once_and_leaves_nothing");
    if ipv6 {
        builder = builder.listen("[::1]:0".parse().unwrap());
    }
    builder = builder.listen(Addr::Unix(path.clone()));
    let server = builder.serve(|_: &ConnectionInfo| echo).expect("serve");
    let addrs = server.local_addrs();
    assert_eq!(addrs.len(), if ipv6 { 3 } else { 2 }, "{addrs:?}");
    assert!(matches!(&addrs[0], Addr::Tcp(a) if a.is_ipv4() && a.port() != 0), "{addrs:?}");
    if ipv6 {
        assert!(matches!(&addrs[1], Addr::Tcp(a) if a.is_ipv6() && a.port() != 0), "{addrs:?}");
    }
    assert_eq!(addrs.last(), Some(&Addr::Unix(path.clone())));
    assert!(path.exists());
    server.spawn().expect("accept in the background");

    let mut clients: Vec<PacketConnection> =
        addrs.iter().enumerate().map(|(i, addr)| connect(addr, &format!("{name}c{i}"))).collect();
    let memory_client = PacketConnection::new(connector.connect(LONG).unwrap(), client_config(&format!("{name}cm")));
    clients.push(memory_client.unwrap());
    for (i, client) in clients.iter().enumerate() {
        call_echo(client, i as u64, format!("over {i}").as_bytes());
        assert!(matches!(client.call(1, 0, Vec::new()), Err(CallError::Failed(_))));
    }
    let listed = server.connections();
    assert_eq!(listed.len(), clients.len());
    let peers: Vec<String> = listed.iter().map(|info| info.peer().to_string()).collect();
    println!("connections: {peers:?}");
    assert!(listed.iter().any(|info| matches!(info.peer(), Peer::Memory(_))));
    assert!(listed.iter().any(|info| matches!(info.peer(), Peer::Unix(_))));
    assert!(listed.iter().all(|info| info.stats().requests_in == 2 && info.name().starts_with(&name)));

    let report = shutdown_soon(server);
    println!("{report:?}");
    assert_eq!(
        (report.closed, report.totals.connections, report.totals.requests),
        (clients.len(), clients.len() as u64, 2 * clients.len() as u64)
    );
    for client in clients {
        // The server's EOF came: the client's close is clean and quick.
        let _ = client.close();
    }
    assert!(!path.exists(), "the socket file is removed at shutdown");
    assert_no_threads(&name);
    before.assert_restored("after the server and its clients");
}

#[test]
fn a_hundred_connections_at_once_each_with_a_thousand_checked_requests() {
    let _clean = Clean::new("a_hundred_connections_at_once_each_with_a_thousand_checked_requests");
    const CONNECTIONS: usize = 100;
    const REQUESTS: usize = 1000;
    const WINDOW: usize = 8;
    let name = unique_name('s', 'h');
    let server = Server::builder()
        .config(config(&name))
        .listen("127.0.0.1:0".parse().unwrap())
        .serve(|_: &ConnectionInfo| echo)
        .unwrap();
    server.spawn().unwrap();
    let addr = server.local_addrs()[0].clone();
    let started = Instant::now();
    let clients: Vec<PacketConnection> = (0..CONNECTIONS).map(|i| connect(&addr, &format!("{name}{i}"))).collect();
    let opened = wait_for(LONG, || server.connections().len() == CONNECTIONS);
    assert!(opened, "{} connections open", server.connections().len());
    thread::scope(|scope| {
        for (i, client) in clients.iter().enumerate() {
            scope.spawn(move || {
                let mut rng = Rng(0x5eed + i as u64);
                let mut in_flight = std::collections::VecDeque::new();
                for n in 0..REQUESTS {
                    let flags = rng.below(1 << 40);
                    let len = rng.below(200) as usize;
                    let payload = rng.bytes(len);
                    in_flight.push_back((client.submit(0, flags, payload.clone()).unwrap(), flags, payload));
                    if in_flight.len() == WINDOW || n + 1 == REQUESTS {
                        while let Some((pending, flags, payload)) = in_flight.pop_front() {
                            let answer = pending.wait_timeout(LONG).unwrap_or_else(|e| panic!("client {i}: {e:?}"));
                            assert_eq!((answer.flags, answer.payload), (flags, payload), "client {i}");
                        }
                    }
                }
            });
        }
    });
    let took = started.elapsed();
    let total = (CONNECTIONS * REQUESTS) as u64;
    println!("{total} checked requests over {CONNECTIONS} connections in {took:?}");
    assert_eq!(server.totals().requests, total);
    for client in clients {
        let _ = client.close();
    }
    let report = shutdown_soon(server);
    assert_eq!(report.totals.connections, CONNECTIONS as u64);
    assert_no_threads(&name);
}

/// A client with the extensions, refused: it reads the server's reason.
fn refused_with_reason(addr: &Addr, name: &str) -> String {
    let conn = PacketConnection::new(net::connect(addr, LONG).unwrap(), client_config(name).extensions(true)).unwrap();
    // Ended by the server, well before anything of its own could time out.
    let ended = conn.join_recv_timeout(LONG);
    assert!(ended.is_ok(), "{ended:?}");
    let reason = conn.peer_quit_reason().expect("a reason");
    let _ = conn.close();
    reason
}

/// A plain socket, refused: the server closes it within a second.
fn refused_plainly(addr: &Addr) -> Duration {
    let Addr::Tcp(addr) = addr else { panic!("a TCP address") };
    let mut socket = TcpStream::connect(addr).unwrap();
    socket.set_read_timeout(Some(LONG)).unwrap();
    let started = Instant::now();
    let mut sink = Vec::new();
    // The probe, ERQ and EOF come first; then the end of the stream.
    let _ = socket.read_to_end(&mut sink);
    started.elapsed()
}

#[test]
fn over_the_connection_limit_new_sockets_are_refused_and_the_server_carries_on() {
    let _clean = Clean::new("over_the_connection_limit_new_sockets_are_refused_and_the_server_carries_on");
    let name = unique_name('s', 'l');
    let (builder, seen) = with_hooks(
        Server::builder()
            .config(config(&name).max_connections(2).connection(ServerConfig::connection_defaults().extensions(true)))
            .listen("127.0.0.1:0".parse().unwrap()),
    );
    let server = builder.serve(|_: &ConnectionInfo| echo).unwrap();
    server.spawn().unwrap();
    let addr = server.local_addrs()[0].clone();
    let first = connect(&addr, &format!("{name}a"));
    let second = connect(&addr, &format!("{name}b"));
    call_echo(&first, 1, b"one");
    call_echo(&second, 2, b"two");

    let reason = refused_with_reason(&addr, &format!("{name}x"));
    assert!(reason.contains("too many connections"), "{reason}");
    let took = refused_plainly(&addr);
    println!("refused: {reason:?}; a plain socket closed after {took:?}");
    assert!(took < Duration::from_millis(1500), "a plain peer waited {took:?}");
    // tinyproto's limit crashed its server: this one still serves.
    call_echo(&first, 3, b"still here");
    assert_eq!(server.totals().refused, 2);
    assert!(seen.refused.lock().unwrap().iter().all(|(_, r)| *r == Refusal::TooManyConnections { limit: 2 }));

    // A place freed is a place taken.
    let _ = first.close();
    let (_, why) = seen.next_end();
    assert!(matches!(why, EndReason::PeerClosed), "{why:?}");
    let third = connect(&addr, &format!("{name}c"));
    call_echo(&third, 4, b"three");
    let report = shutdown_soon(server);
    assert_eq!(report.totals.connections, 3);
    let _ = (second.close(), third.close());
    seen.assert_once_each();
    assert_no_threads(&name);
}

#[test]
fn over_the_per_peer_limit_only_that_peer_is_refused() {
    let _clean = Clean::new("over_the_per_peer_limit_only_that_peer_is_refused");
    let name = unique_name('s', 'p');
    let path = socket_path("peer");
    let server = Server::builder()
        .config(config(&name).max_per_peer(1).connection(ServerConfig::connection_defaults().extensions(true)))
        .listen("127.0.0.1:0".parse().unwrap())
        .listen(Addr::Unix(path.clone()))
        .serve(|_: &ConnectionInfo| echo)
        .unwrap();
    server.spawn().unwrap();
    let tcp = server.local_addrs()[0].clone();
    let first = connect(&tcp, &format!("{name}a"));
    call_echo(&first, 1, b"first from 127.0.0.1");
    let reason = refused_with_reason(&tcp, &format!("{name}x"));
    assert!(reason.contains("from your address"), "{reason}");
    // Another peer (a Unix-socket one) is not held back by 127.0.0.1.
    let local = connect(&Addr::Unix(path), &format!("{name}u"));
    call_echo(&local, 2, b"from a unix socket");
    call_echo(&first, 3, b"first still served");
    assert_eq!(server.totals().refused, 1);
    shutdown_soon(server);
    let _ = (first.close(), local.close());
    assert_no_threads(&name);
}

#[test]
fn the_idle_timeout_closes_quiet_connections_only() {
    let _clean = Clean::new("the_idle_timeout_closes_quiet_connections_only");
    let name = unique_name('s', 'i');
    let idle = Duration::from_millis(300);
    let (builder, seen) = with_hooks(
        Server::builder()
            .config(config(&name).idle_timeout(idle).connection(ServerConfig::connection_defaults().extensions(true)))
            .listen("127.0.0.1:0".parse().unwrap()),
    );
    // rq_type 5 takes longer than the idle timeout: in service, not idle.
    let server = builder
        .serve(|_: &ConnectionInfo| {
            |rq: Request| {
                if rq.rq_type == 5 {
                    thread::sleep(Duration::from_millis(700));
                }
                rq.payload
            }
        })
        .unwrap();
    server.spawn().unwrap();
    let addr = server.local_addrs()[0].clone();
    let ext = |role: &str| {
        let config = client_config(&format!("{name}{role}")).extensions(true);
        PacketConnection::new(net::connect(&addr, LONG).unwrap(), config).unwrap()
    };
    let (quiet, busy, slow) = (ext("q"), ext("b"), ext("s"));
    let slow_call = slow.submit(5, 0, b"slow".to_vec()).unwrap();
    // The busy one calls every 50 ms while the quiet one sits, until the
    // quiet one has been closed and the slow request answered.
    let started = Instant::now();
    let mut first_end = None;
    while first_end.is_none() || !slow_call.is_ready() {
        assert!(started.elapsed() < LONG, "no idle end after {:?}", started.elapsed());
        busy.call(0, 0, b"tick".to_vec()).expect("the busy one stays open");
        if first_end.is_none() {
            first_end = seen.ends.try_recv().ok();
        }
        thread::sleep(Duration::from_millis(50));
    }
    let busy_id = server.connections().iter().find(|info| info.name() == format!("{name}-2")).map(|info| info.id());
    assert_eq!(busy_id, Some(2), "the busy one is still listed: {:?}", server.connections());
    let (info, reason) = first_end.expect("an end");
    assert!(matches!(reason, EndReason::Idle(after) if after >= idle), "{reason:?}");
    assert_eq!(info.name(), format!("{name}-1"), "the quiet one (opened first) went first");
    assert!(quiet.join_recv_timeout(LONG).is_ok());
    let said = quiet.peer_quit_reason().unwrap_or_default();
    assert!(said.starts_with("idle for"), "{said:?}");
    // Its close ends the server's wait for its EOF.
    let _ = quiet.close();
    assert_eq!(slow_call.wait_timeout(LONG).expect("the slow request is answered").payload, b"slow");
    shutdown_soon(server);
    let _ = (busy.close(), slow.close());
    seen.assert_once_each();
    assert_no_threads(&name);
}

#[test]
fn shutdown_with_requests_in_flight_finishes_or_fails_them_and_none_hangs() {
    let _clean = Clean::new("shutdown_with_requests_in_flight_finishes_or_fails_them_and_none_hangs");
    let name = unique_name('s', 'd');
    let (builder, seen) = with_hooks(
        Server::builder()
            .config(config(&name).connection(ServerConfig::connection_defaults().extensions(true)))
            .listen("127.0.0.1:0".parse().unwrap()),
    );
    // rq_type 2 takes 300 ms; rq_type 3 never returns until released.
    let (release_tx, release) = crossbeam_channel::unbounded::<()>();
    let server = builder
        .serve(move |_: &ConnectionInfo| {
            let release = release.clone();
            move |rq: Request| {
                match rq.rq_type {
                    2 => thread::sleep(Duration::from_millis(300)),
                    3 => {
                        let _ = release.recv_timeout(LONG);
                    }
                    _ => {}
                }
                rq.payload
            }
        })
        .unwrap();
    server.spawn().unwrap();
    let addr = server.local_addrs()[0].clone();
    let clients: Vec<PacketConnection> = (0..20)
        .map(|i| {
            let config = client_config(&format!("{name}{i}")).extensions(true);
            PacketConnection::new(net::connect(&addr, LONG).unwrap(), config).unwrap()
        })
        .collect();
    assert!(wait_for(LONG, || server.connections().len() == 20), "{} started", server.connections().len());
    let quick: Vec<_> = clients.iter().map(|c| c.submit(2, 0, b"quick".to_vec()).unwrap()).collect();
    let stuck = clients[0].submit(3, 0, b"stuck".to_vec()).unwrap();
    // In service at the server, not only sent.
    let in_service = || server.connections().iter().map(ConnectionInfo::in_service).sum::<usize>();
    assert!(wait_for(LONG, || in_service() == 21), "{} in service", in_service());
    let handle = server.handle();
    let began = Instant::now();
    let deadline = began + Duration::from_millis(1500);
    let report = handle.shutdown(deadline);
    let took = began.elapsed();
    println!("shutdown with requests in flight: {took:?}, {report:?}");
    assert!(took < Duration::from_millis(1500) + Duration::from_secs(3), "{took:?}");
    assert_eq!(report.closed, 20);
    // The quick ones finished within the deadline; the stuck one failed.
    for pending in quick {
        assert_eq!(pending.wait_timeout(LONG).expect("finished before the deadline").payload, b"quick");
    }
    match stuck.wait_timeout(LONG) {
        Err(WaitTimeoutError::Connection(error)) => println!("the stuck request: {error}"),
        other => panic!("the stuck request should fail with the connection's end: {other:?}"),
    }
    assert!(handle.is_shut_down());
    // A second shutdown returns the same report at once.
    assert_eq!(handle.shutdown(Instant::now()).closed, 20);
    let _ = release_tx.send(());
    for client in &clients {
        // Once the client has read to the server's end.
        let ended = client.join_recv_timeout(LONG);
        assert_eq!(
            client.peer_quit_reason().as_deref(),
            Some("the server is shutting down"),
            "{}: {ended:?}, {:?}",
            client.name(),
            client.extensions()
        );
    }
    drop(clients);
    let ends = seen.ended.lock().unwrap().clone();
    assert!(ends.iter().all(|(_, reason)| matches!(reason, EndReason::ShutDown)), "{ends:?}");
    seen.assert_once_each();
    drop(server);
    wait_for(PROMPT, || util::threads_of(&name).is_empty());
    assert_no_threads(&name);
}

/// Sets SO_LINGER to 0, so that closing the socket resets the connection.
fn reset_on_close(socket: &TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: a valid linger struct and its size, on an open socket.
    let set = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&raw const linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(set, 0);
}

#[test]
fn hooks_are_called_once_per_connection_with_the_right_reason() {
    let _clean = Clean::new("hooks_are_called_once_per_connection_with_the_right_reason");
    let name = unique_name('s', 'k');
    let (builder, seen) = with_hooks(
        Server::builder()
            .config(config(&name).connection(ServerConfig::connection_defaults().extensions(true)))
            .listen("127.0.0.1:0".parse().unwrap()),
    );
    let peers_seen = Arc::new(Mutex::new(HashMap::new()));
    let factory_peers = Arc::clone(&peers_seen);
    let server = builder
        .serve(move |info: &ConnectionInfo| {
            factory_peers.lock().unwrap().insert(info.id(), info.peer().clone());
            echo
        })
        .unwrap();
    server.spawn().unwrap();
    let addr = server.local_addrs()[0].clone();
    let Addr::Tcp(socket_addr) = addr.clone() else { unreachable!() };
    let expect_end = |what: &str, check: &dyn Fn(&EndReason) -> bool| {
        let (info, reason) = seen.next_end();
        println!("{what}: {} ended: {reason}", info.name());
        assert!(check(&reason), "{what}: {reason:?}");
        info
    };

    // Peer closed.
    let plain = connect(&addr, &format!("{name}a"));
    call_echo(&plain, 1, b"x");
    let _ = plain.close();
    let info = expect_end("peer closed", &|r| matches!(r, EndReason::PeerClosed));
    assert_eq!(info.stats().requests_in, 1);
    assert_eq!(peers_seen.lock().unwrap().get(&info.id()), Some(info.peer()));

    // The peer's quit reason.
    let quitting =
        PacketConnection::new(net::connect(&addr, LONG).unwrap(), client_config(&format!("{name}b")).extensions(true))
            .unwrap();
    call_echo(&quitting, 2, b"y");
    quitting.close_with(CloseOptions::new().reason("done for today")).unwrap();
    expect_end("quit", &|r| matches!(r, EndReason::PeerQuit(text) if text == "done for today"));

    // A protocol error: garbage where packets belong.
    let mut garbage = TcpStream::connect(socket_addr).unwrap();
    garbage.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    garbage.shutdown(std::net::Shutdown::Write).unwrap();
    expect_end("garbage", &|r| matches!(r, EndReason::Protocol(ConnectionError::NotPackets { .. })));
    drop(garbage);

    // An I/O error: the peer resets the connection.
    let resetting = TcpStream::connect(socket_addr).unwrap();
    assert!(wait_for(LONG, || server.connections().len() == 1));
    reset_on_close(&resetting);
    drop(resetting);
    expect_end("reset", &|r| matches!(r, EndReason::Io(_)));

    // Shut down by us.
    let last = connect(&addr, &format!("{name}c"));
    call_echo(&last, 3, b"z");
    let report = shutdown_soon(server);
    expect_end("shutdown", &|r| matches!(r, EndReason::ShutDown));
    assert_eq!(report.totals.connections, 5);
    let _ = last.close();
    seen.assert_once_each();
    assert_eq!(seen.opened.lock().unwrap().len(), 5);
    assert_no_threads(&name);
}

#[test]
fn keepalive_through_the_server_gives_up_a_silent_peer() {
    let _clean = Clean::new("keepalive_through_the_server_gives_up_a_silent_peer");
    let name = unique_name('s', 'v');
    let (builder, seen) = with_hooks(
        Server::builder()
            .config(config(&name).connection(
                ServerConfig::connection_defaults().keepalive(Duration::from_millis(20), Duration::from_millis(150)),
            ))
            .listen("127.0.0.1:0".parse().unwrap()),
    );
    let server = builder.serve(|_: &ConnectionInfo| echo).unwrap();
    server.spawn().unwrap();
    let addr = server.local_addrs()[0].clone();
    // A peer that answers pings (extensions off: it refuses them) lives on.
    let alive = connect(&addr, &format!("{name}a"));
    // A peer that says nothing and reads nothing.
    let Addr::Tcp(socket_addr) = &addr else { unreachable!() };
    let silent = TcpStream::connect(socket_addr).unwrap();
    let started = Instant::now();
    let (_, reason) = seen.next_end();
    println!("the silent peer, after {:?}: {reason}", started.elapsed());
    assert!(
        matches!(reason, EndReason::Unresponsive { silent_for, .. } if silent_for >= Duration::from_millis(150)),
        "{reason:?}"
    );
    call_echo(&alive, 5, b"alive after the silent one went");
    assert_eq!(server.connections().len(), 1);
    shutdown_soon(server);
    drop(silent);
    let _ = alive.close();
    seen.assert_once_each();
    assert_no_threads(&name);
}

#[test]
fn the_memory_server_serves_in_process_clients_without_descriptors() {
    let _alone = alone();
    let before = Baseline::take();
    let name = unique_name('s', 'm');
    let listener = MemoryListener::new();
    let connector = listener.connector();
    let (builder, seen) = with_hooks(Server::builder().config(config(&name)).listen_memory(listener));
    let server = builder.serve(|_: &ConnectionInfo| echo).unwrap();
    server.spawn().unwrap();
    let clients: Vec<PacketConnection> = (0..10)
        .map(|i| PacketConnection::new(connector.connect(LONG).unwrap(), client_config(&format!("{name}{i}"))).unwrap())
        .collect();
    for (i, client) in clients.iter().enumerate() {
        for n in 0..50u64 {
            call_echo(client, n, format!("memory client {i} call {n}").as_bytes());
        }
    }
    assert_eq!(util::process::fd_count(), before.fds, "a memory server and its clients use no descriptor");
    assert_eq!(server.totals().requests, 500);
    let mut clients = clients;
    drop(clients.remove(0));
    let (_, reason) = seen.next_end();
    assert!(matches!(reason, EndReason::PeerClosed), "{reason:?}");
    let report = shutdown_soon(server);
    assert_eq!(report.closed, 9);
    // The listener is gone with the server: connecting is refused.
    let refused = connector.connect(Duration::from_millis(100)).unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    seen.assert_once_each();
    for client in clients {
        let _ = client.close();
    }
    assert_no_threads(&name);
    before.assert_restored("after the memory server");
}

#[test]
fn a_stale_socket_file_is_replaced_and_a_live_one_is_not() {
    let _clean = Clean::new("a_stale_socket_file_is_replaced_and_a_live_one_is_not");
    let name = unique_name('s', 'u');
    let path = socket_path("stale");
    // A server that died left its socket file.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let server = Server::builder()
        .config(config(&name))
        .listen(Addr::Unix(path.clone()))
        .serve(|_: &ConnectionInfo| echo)
        .expect("a stale file is replaced");
    server.spawn().unwrap();
    let client = connect(&Addr::Unix(path.clone()), &format!("{name}c"));
    call_echo(&client, 1, b"over the replaced socket");
    // A second server on the live path is refused, and the first goes on.
    let second = Server::builder()
        .config(config(&format!("{name}2")))
        .listen(Addr::Unix(path.clone()))
        .serve(|_: &ConnectionInfo| echo);
    let error = second.expect_err("a live socket is not taken over");
    assert_eq!(error.kind(), std::io::ErrorKind::AddrInUse);
    assert!(error.to_string().contains("a server is listening"), "{error}");
    call_echo(&client, 2, b"the first server is untouched");
    shutdown_soon(server);
    let _ = client.close();
    assert!(!path.exists());
    // A file that is not a socket is left alone.
    std::fs::write(&path, b"not a socket").unwrap();
    let error = Server::builder()
        .config(config(&name))
        .listen(Addr::Unix(path.clone()))
        .serve(|_: &ConnectionInfo| echo)
        .unwrap_err();
    assert!(error.to_string().contains("not a socket"), "{error}");
    assert_eq!(std::fs::read(&path).unwrap(), b"not a socket");
    std::fs::remove_file(&path).unwrap();
    assert_no_threads(&name);
}

#[test]
fn a_handle_shuts_down_a_server_running_on_a_borrowing_thread_at_once() {
    let _clean = Clean::new("a_handle_shuts_down_a_server_running_on_a_borrowing_thread_at_once");
    let name = unique_name('s', 'r');
    let server = Server::builder()
        .config(config(&name))
        .listen("127.0.0.1:0".parse().unwrap())
        .serve(|_: &ConnectionInfo| echo)
        .unwrap();
    let handle = server.handle();
    let addr = server.local_addrs()[0].clone();
    let (returned_tx, returned) = crossbeam_channel::bounded::<()>(1);
    thread::scope(|scope| {
        // The accept loop borrows the server on this scoped thread.
        let running = scope.spawn(|| {
            server.run();
            let _ = returned_tx.send(());
        });
        let client = connect(&addr, &format!("{name}c"));
        call_echo(&client, 1, b"while run() blocks");
        let began = Instant::now();
        let report = handle.shutdown(Instant::now() + Duration::from_secs(2));
        returned.recv_timeout(PROMPT).expect("run() returns once the handle shut the server down");
        println!("shutdown took {:?}, {report:?}", began.elapsed());
        running.join().unwrap();
        let _ = client.close();
    });
    assert!(handle.is_shut_down());
    // run() on a shut-down server returns at once.
    server.run();
    drop(server);
    assert_no_threads(&name);
}

#[test]
fn a_panicking_factory_or_hook_does_not_stop_the_server() {
    let _clean = Clean::new("a_panicking_factory_or_hook_does_not_stop_the_server");
    util::quiet_expected_panics();
    let name = unique_name('s', 'f');
    let calls = Arc::new(AtomicUsize::new(0));
    let factory_calls = Arc::clone(&calls);
    let server = Server::builder()
        .config(config(&name))
        .listen("127.0.0.1:0".parse().unwrap())
        .on_open(|info| {
            if info.id() == 2 {
                panic!("{}: open hook", util::EXPECTED_PANIC);
            }
        })
        .serve(move |_: &ConnectionInfo| {
            if factory_calls.fetch_add(1, Ordering::SeqCst) == 0 {
                panic!("{}: factory", util::EXPECTED_PANIC);
            }
            echo
        })
        .unwrap();
    server.spawn().unwrap();
    let addr = server.local_addrs()[0].clone();
    // The first connection's factory panicked: its socket is closed.
    let first = connect(&addr, &format!("{name}a"));
    assert!(first.join_recv_timeout(LONG).is_ok() || first.closed_reason().is_some());
    let second = connect(&addr, &format!("{name}b"));
    call_echo(&second, 7, b"served although the open hook panicked");
    let report = server.shutdown(Instant::now() + Duration::from_secs(2));
    assert!(report.problems.iter().any(|p| p.contains("hook calls panicked")), "{report:?}");
    let _ = (first.close(), second.close());
    assert_no_threads(&name);
    let _ = RequestError::Connection(ConnectionError::Closed);
    let _ = Transport::memory_pair();
}

#[test]
fn many_idle_connections_are_closed_together_not_one_after_another() {
    let _clean = Clean::new("many_idle_connections_are_closed_together_not_one_after_another");
    const CLIENTS: usize = 40;
    let name = unique_name('s', 'j');
    let idle = Duration::from_millis(200);
    let (builder, seen) =
        with_hooks(Server::builder().config(config(&name).idle_timeout(idle)).listen("127.0.0.1:0".parse().unwrap()));
    let server = builder.serve(|_: &ConnectionInfo| echo).unwrap();
    server.spawn().unwrap();
    let addr = server.local_addrs()[0].clone();
    // Clients that never close by themselves: each close waits for them
    // until it gives up (a second), so closing them one after another
    // would take CLIENTS seconds.
    let clients: Vec<PacketConnection> = (0..CLIENTS).map(|i| connect(&addr, &format!("{name}{i}"))).collect();
    let started = Instant::now();
    for _ in 0..CLIENTS {
        let (_, reason) = seen.next_end();
        assert!(matches!(reason, EndReason::Idle(_)), "{reason:?}");
    }
    let took = started.elapsed();
    println!("{CLIENTS} idle connections closed within {took:?}");
    assert!(took < idle + Duration::from_secs(4), "{took:?}");
    shutdown_soon(server);
    drop(clients);
    seen.assert_once_each();
    assert_no_threads(&name);
}
