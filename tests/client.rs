//! Clients: connecting with a timeout, the reconnecting client across a
//! server restart, and supervised children that crash, crash-loop or never
//! answer. Every wait is bounded.

mod util;

use std::net::TcpListener;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use packetstream::net::{
    self, Addr, ClientCallError, ClientCallTimeoutError, Connect, ConnectionInfo, OpenError, ReconnectConfig,
    Reconnecting, Server, ServerConfig, Spawn, SuperviseConfig, Supervised,
};
use packetstream::{Config, ConnectionError, Request, Transport};
use util::process::Clean;
use util::{assert_no_threads, socket_path, unique_name, LONG, PROMPT};

/// An echo server whose requests of type 9 are held until `held`
/// disconnects.
fn echo_server_on(addr: Addr, name: &str, held: crossbeam_channel::Receiver<()>) -> Server {
    let config = ServerConfig::builder().name(name).connection(Config::builder().close_timeout(Duration::from_secs(1)));
    let server = Server::builder()
        .config(config)
        .listen(addr)
        .serve(move |_: &ConnectionInfo| {
            let held = held.clone();
            move |rq: Request| {
                if rq.rq_type == 9 {
                    let _ = held.recv_timeout(LONG);
                }
                rq.payload
            }
        })
        .expect("serve");
    server.spawn().expect("accept");
    server
}

fn client_config(name: &str) -> packetstream::ConfigBuilder {
    Config::builder().name(name).close_timeout(Duration::from_secs(1))
}

#[test]
fn connecting_names_the_address_and_a_full_backlog_times_out() {
    let _clean = Clean::new("connecting_names_the_address_and_a_full_backlog_times_out");
    // Nothing listens on a port that was just free.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr: Addr = format!("127.0.0.1:{port}").parse().unwrap();
    let error = net::connect(&addr, LONG).unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::ConnectionRefused);
    assert!(error.to_string().contains(&addr.to_string()), "{error}");
    let missing = Addr::Unix(socket_path("missing"));
    let error = net::connect(&missing, LONG).unwrap_err();
    assert!(error.to_string().contains(&missing.to_string()), "{error}");

    // A Unix listener that accepts nothing: once its backlog is full, a
    // connect waits, and gives up at its timeout.
    let path = socket_path("backlog");
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let mut held = Vec::new();
    let timeout = Duration::from_millis(200);
    let started = loop {
        let started = Instant::now();
        match net::connect(&Addr::Unix(path.clone()), timeout) {
            Ok(transport) => held.push(transport),
            Err(error) => {
                assert_eq!(error.kind(), std::io::ErrorKind::TimedOut, "{error}");
                break started;
            }
        }
        assert!(held.len() < 10_000, "the backlog never filled");
    };
    let waited = started.elapsed();
    println!("the connect after {} others timed out after {waited:?}", held.len());
    assert!(waited >= timeout && waited < timeout + PROMPT, "{waited:?}");
    drop((held, listener));
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn the_reconnecting_client_opens_on_first_use_and_again_across_a_server_restart() {
    let _clean = Clean::new("the_reconnecting_client_opens_on_first_use_and_again_across_a_server_restart");
    let name = unique_name('r', 's');
    let (release, held) = crossbeam_channel::bounded::<()>(0);
    let server = echo_server_on("127.0.0.1:0".parse().unwrap(), &name, held.clone());
    let addr = server.local_addrs()[0].clone();
    let client_name = unique_name('r', 'c');
    let config = ReconnectConfig::builder()
        .connection(client_config(&client_name))
        .backoff(Duration::from_millis(20), Duration::from_millis(200));
    let client = Reconnecting::new(Connect::new(addr.clone()).timeout(PROMPT), config);
    assert_eq!(client.opened(), 0, "nothing is opened before the first use");
    assert_eq!(client.call(0, 1, b"first".to_vec()).unwrap().payload, b"first");
    assert_eq!(client.opened(), 1);

    // Requests in flight when the server goes fail; none hangs.
    let in_flight: Vec<_> = (0..3).map(|_| client.submit(9, 0, b"held".to_vec()).unwrap()).collect();
    assert!(util::wait_for(LONG, || server.connections().first().is_some_and(|info| info.in_service() == 3)));
    let report = server.shutdown(Instant::now() + Duration::from_millis(100));
    println!("server shut down: {report:?}");
    for pending in in_flight {
        match pending.wait_timeout(LONG) {
            Err(packetstream::WaitTimeoutError::Connection(error)) => println!("in flight: {error}"),
            other => panic!("a request in flight should fail with the connection's end: {other:?}"),
        }
    }
    // The handlers the shut-down server left running end now.
    drop(release);
    // While the server is down, a request fails to open (after the backoff).
    match client.call(0, 2, b"nobody".to_vec()) {
        Err(ClientCallError::Open(OpenError::Failed { error, .. })) => {
            assert_eq!(error.kind(), std::io::ErrorKind::ConnectionRefused)
        }
        other => panic!("expected a refused connect, got {other:?}"),
    }

    // The server comes back on the same port: the next request reopens.
    let again = echo_server_on(addr.clone(), &format!("{name}2"), held);
    let started = Instant::now();
    assert_eq!(client.call(0, 3, b"again".to_vec()).unwrap().payload, b"again");
    println!("reopened after {:?} (backoff included)", started.elapsed());
    assert_eq!(client.opened(), 2);
    assert!(client.call_timeout(0, 4, b"timed".to_vec(), LONG).is_ok());
    client.close().expect("a clean close");
    drop(again);
    assert_no_threads(&name);
    assert_no_threads(&client_name);
}

#[test]
fn the_reconnecting_client_backs_off_between_failed_opens() {
    let _clean = Clean::new("the_reconnecting_client_backs_off_between_failed_opens");
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&attempts);
    let opener = move || -> std::io::Result<Transport> {
        seen.lock().unwrap().push(Instant::now());
        Err(std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "not today"))
    };
    let config = ReconnectConfig::builder().backoff(Duration::from_millis(20), Duration::from_millis(80));
    let client = Reconnecting::new(opener, config);
    for _ in 0..5 {
        match client.call(0, 0, Vec::new()) {
            Err(ClientCallError::Open(OpenError::Failed { error, .. })) => assert_eq!(error.to_string(), "not today"),
            other => panic!("{other:?}"),
        }
    }
    // A call whose timeout ends before the backoff does fails at its
    // timeout, not after the backoff: here a minute, against a bound of
    // seconds that a loaded machine keeps too.
    let refusing = || -> std::io::Result<Transport> {
        Err(std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "not today"))
    };
    let minute = Duration::from_secs(60);
    let patient = Reconnecting::new(refusing, ReconnectConfig::builder().backoff(minute, minute));
    assert!(matches!(patient.call(0, 0, Vec::new()), Err(ClientCallError::Open(OpenError::Failed { .. }))));
    let started = Instant::now();
    assert!(matches!(
        patient.call_timeout(0, 0, Vec::new(), Duration::from_millis(1)),
        Err(ClientCallTimeoutError::Timeout)
    ));
    assert!(started.elapsed() < PROMPT, "waited {:?}", started.elapsed());
    let times = attempts.lock().unwrap().clone();
    let gaps: Vec<Duration> = times.windows(2).map(|pair| pair[1] - pair[0]).collect();
    println!("gaps between attempts: {gaps:?}");
    assert_eq!(times.len(), 5);
    for (gap, least) in gaps.iter().zip([20, 40, 80, 80]) {
        assert!(*gap >= Duration::from_millis(least), "{gaps:?}");
    }
}

#[test]
fn the_reconnecting_client_gives_up_a_silent_server_with_its_keepalive() {
    let _clean = Clean::new("the_reconnecting_client_gives_up_a_silent_server_with_its_keepalive");
    // Accepts and never reads nor answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = Addr::Tcp(listener.local_addr().unwrap());
    let holder = thread::spawn(move || listener.accept().map(|(socket, _)| socket));
    let name = unique_name('r', 'k');
    let config = ReconnectConfig::builder()
        .connection(client_config(&name).keepalive(Duration::from_millis(20), Duration::from_millis(150)));
    let client = Reconnecting::new(Connect::new(addr), config);
    let started = Instant::now();
    match client.call(0, 0, b"hello?".to_vec()) {
        Err(ClientCallError::Connection(ConnectionError::Unresponsive { silent_for, waiting })) => {
            println!("given up after {:?}: silent for {silent_for:?}, {waiting} waiting", started.elapsed());
            assert!(silent_for >= Duration::from_millis(150));
            assert_eq!(waiting, 1);
        }
        other => panic!("expected Unresponsive, got {other:?}"),
    }
    drop(client);
    drop(holder.join().unwrap());
    assert_no_threads(&name);
}

fn echo_server_failing_after(n: u32) -> Spawn {
    let program = util::process::echo_server().to_owned();
    Spawn::new(move || {
        let mut command = Command::new(&program);
        command.args(["--fail-after", &n.to_string()]);
        command
    })
}

fn sh(script: &'static str) -> Spawn {
    Spawn::new(move || {
        let mut command = Command::new("sh");
        command.args(["-c", script]);
        command
    })
}

#[test]
fn a_supervised_child_that_crashes_tells_the_callers_and_is_restarted() {
    let _clean = Clean::new("a_supervised_child_that_crashes_tells_the_callers_and_is_restarted");
    let name = unique_name('c', 'x');
    let config = SuperviseConfig::builder()
        .connection(client_config(&name))
        .backoff(Duration::from_millis(10), Duration::from_millis(100))
        .startup_timeout(LONG);
    let helper = Supervised::new(echo_server_failing_after(2), config);
    assert_eq!(helper.started(), 0);
    assert_eq!(helper.call(0, 1, b"one".to_vec()).unwrap().payload, b"one");
    assert_eq!(helper.call(0, 2, b"two".to_vec()).unwrap().payload, b"two");
    // The third request makes it exit with status 3, saying why on stderr.
    let error = match helper.call(0, 3, b"three".to_vec()) {
        Err(ClientCallError::Connection(error)) => error,
        other => panic!("expected the child's end, got {other:?}"),
    };
    println!("the caller got: {error}");
    let ConnectionError::Child(end) = &error else { panic!("{error:?}") };
    assert_eq!(end.status.and_then(|status| status.code()), Some(3), "{end:?}");
    assert!(end.stderr.iter().any(|line| line.contains("failing after 2 requests")), "{:?}", end.stderr);
    // The next request starts a new child.
    assert_eq!(helper.call(0, 4, b"four".to_vec()).unwrap().payload, b"four");
    assert_eq!(helper.started(), 2);
    assert!(helper.crash_loop().is_none());
    let finished = helper.close().unwrap().expect("a running child");
    assert!(finished.exit_status().is_some_and(|status| status.success()));
    assert_no_threads(&name);
}

#[test]
fn a_supervised_child_that_crash_loops_is_given_up_with_its_status_and_stderr() {
    let _clean = Clean::new("a_supervised_child_that_crash_loops_is_given_up_with_its_status_and_stderr");
    let name = unique_name('c', 'l');
    let config = SuperviseConfig::builder()
        .connection(client_config(&name))
        .backoff(Duration::from_millis(5), Duration::from_millis(20))
        .crash_loop(3, Duration::from_secs(60))
        .startup_timeout(LONG);
    let helper = Supervised::new(sh("echo 'config missing' >&2; exit 4"), config);
    let started = Instant::now();
    for attempt in 0..3 {
        match helper.call(0, 0, Vec::new()) {
            Err(ClientCallError::Open(OpenError::Startup { error, .. })) => {
                let ConnectionError::Child(end) = &error else { panic!("{error:?}") };
                assert_eq!(end.status.and_then(|status| status.code()), Some(4), "attempt {attempt}: {end:?}");
            }
            other => panic!("attempt {attempt}: expected a failed start-up, got {other:?}"),
        }
    }
    // Three exits within the window: not started again.
    let crash = match helper.call(0, 0, Vec::new()) {
        Err(ClientCallError::Open(OpenError::CrashLoop(crash))) => crash,
        other => panic!("expected the crash loop, got {other:?}"),
    };
    println!("after {:?}: {crash}", started.elapsed());
    assert_eq!(crash.exits, 3);
    assert_eq!(crash.last_status.and_then(|status| status.code()), Some(4));
    assert_eq!(crash.last_stderr, ["config missing"]);
    assert!(helper.crash_loop().is_some());
    assert_eq!(helper.started(), 0);
    // Until reset: then it is tried again at once.
    helper.reset();
    assert!(matches!(helper.call(0, 0, Vec::new()), Err(ClientCallError::Open(OpenError::Startup { .. }))));
    drop(helper);
    assert_no_threads(&name);
}

#[test]
fn a_supervised_child_that_never_answers_fails_the_callers_at_start_up() {
    let _clean = Clean::new("a_supervised_child_that_never_answers_fails_the_callers_at_start_up");
    let name = unique_name('c', 'n');
    let startup = Duration::from_millis(300);
    let config = SuperviseConfig::builder().connection(client_config(&name)).startup_timeout(startup);
    // Reads nothing, answers nothing, lives long.
    let helper = Supervised::new(sh("exec sleep 60"), config);
    let started = Instant::now();
    match helper.call(0, 0, b"anyone?".to_vec()) {
        Err(ClientCallError::Open(OpenError::NoAnswer { waited, opener })) => {
            println!("{opener}: no answer within {waited:?}; the call failed after {:?}", started.elapsed());
            assert_eq!(waited, startup);
        }
        other => panic!("expected NoAnswer, got {other:?}"),
    }
    // Killed, not left running: the call returned soon after the check.
    assert!(started.elapsed() < startup + PROMPT, "{:?}", started.elapsed());
    drop(helper);
    assert_no_threads(&name);
}

#[test]
fn a_supervised_child_against_a_plain_peer_passes_the_start_up_check() {
    let _clean = Clean::new("a_supervised_child_against_a_plain_peer_passes_the_start_up_check");
    // echo_server without extensions refuses the ping: that is an answer.
    let name = unique_name('c', 'p');
    let calls = Arc::new(AtomicUsize::new(0));
    let config = SuperviseConfig::builder().connection(client_config(&name)).startup_timeout(LONG);
    let program = util::process::echo_server().to_owned();
    let helper = Supervised::new(Spawn::new(move || Command::new(&program)), config);
    for i in 0..10u64 {
        assert_eq!(helper.call(0, i, b"x".to_vec()).unwrap().flags, i);
        calls.fetch_add(1, Ordering::Relaxed);
    }
    assert_eq!(helper.started(), 1);
    drop(helper);
    assert_no_threads(&name);
}

#[test]
fn a_supervised_child_with_a_keepalive_lives_on_while_it_answers_the_pings() {
    let _clean = Clean::new("a_supervised_child_with_a_keepalive_lives_on_while_it_answers_the_pings");
    let name = unique_name('c', 'a');
    let keepalive = client_config(&name).keepalive(Duration::from_millis(20), Duration::from_millis(150));
    let config = SuperviseConfig::builder().connection(keepalive).startup_timeout(LONG);
    let program = util::process::echo_server().to_owned();
    let helper = Supervised::new(Spawn::new(move || Command::new(&program)), config);
    assert_eq!(helper.call(0, 1, b"before".to_vec()).unwrap().flags, 1);
    // Idle for several keepalive timeouts: the plain child refuses every
    // ping, which shows it is there; it is neither given up nor replaced.
    let conn = helper.connection().unwrap();
    let idle = conn.join_recv_timeout(Duration::from_millis(600));
    assert!(matches!(idle, Err(packetstream::JoinTimeoutError::Timeout)), "{idle:?}");
    drop(conn);
    assert_eq!(helper.call(0, 2, b"after".to_vec()).unwrap().flags, 2);
    assert_eq!(helper.started(), 1);
    drop(helper);
    assert_no_threads(&name);
}

#[test]
fn a_timed_call_does_not_wait_out_another_callers_open() {
    let _clean = Clean::new("a_timed_call_does_not_wait_out_another_callers_open");
    let (opening_tx, opening) = crossbeam_channel::bounded::<()>(1);
    let (release, held) = crossbeam_channel::bounded::<()>(0);
    let opener = move || -> std::io::Result<Transport> {
        let _ = opening_tx.try_send(());
        // Blocks like a connect to a host that does not answer.
        let _ = held.recv_timeout(LONG);
        Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "released"))
    };
    let client = Arc::new(Reconnecting::new(opener, ReconnectConfig::default()));
    let first = {
        let client = Arc::clone(&client);
        thread::spawn(move || client.call(0, 0, Vec::new()).map(drop))
    };
    opening.recv_timeout(LONG).expect("the first call opens");
    let started = Instant::now();
    let timed = client.call_timeout(0, 0, Vec::new(), Duration::from_millis(100));
    let took = started.elapsed();
    assert!(matches!(timed, Err(ClientCallTimeoutError::Timeout)), "{timed:?}");
    assert!(took < PROMPT, "the timed call waited {took:?} for the other caller's open");
    drop(release);
    assert!(matches!(first.join().expect("first caller"), Err(ClientCallError::Open(_))));
}
