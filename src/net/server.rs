//! The server: listeners, the accept loop, the live connections, and
//! shutdown.
//!
//! Threads: an acceptor per socket listener (`<name>-accept-<i>`), which
//! hands sockets to the accept loop; the accept loop, on the caller's
//! thread ([`Server::run`]) or on `<name>-run-<i>` ([`Server::spawn`]),
//! which starts each connection (or refuses it, on `<name>-no-<i>`); the
//! watcher (`<name>-watch`), which notices ends and idleness with one
//! `Select` over every connection; the closers (`<name>-close-<i>`, up to
//! 64, started as ends come in, so that many ends close side by side) and,
//! at shutdown, `<name>-down-<i>`. Each connection has its own threads
//! (`<name>-<id>-reader`, ...). Shutdown joins them all.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Select, Sender};
use parking_lot::{Condvar, Mutex};

use super::addr::{Addr, Peer};
use super::config::ServerConfig;
use super::crew::Crew;
use super::end::EndReason;
use super::hooks::Hooks;
use super::info::ConnectionInfo;
use super::limits::{Counts, PeerKey, Refusal};
use super::listener::{Accepted, Acceptor, Listener};
use super::memory::{MemoryConn, MemoryListener};
use super::tracked::{Activity, Tracked};
use super::wake::{self, Waker};
use super::watch;
use crate::config::Config;
use crate::conn::close::CloseOptions;
use crate::conn::serve::handler::Handler;
use crate::conn::PacketConnection;
use crate::threads::{self, Thread};
use crate::transport::Transport;

/// How many accepted sockets may wait for the accept loop.
const ACCEPT_QUEUE: usize = 64;
/// A refusal's deadline: its quit step waits until then for the probe's
/// answer (a peer with the extensions answers at once, a plain
/// cs.packetstream peer refuses at once), and close keeps 200 ms more for
/// EOF, so that any peer sees the socket closed within a second, with room
/// for a loaded machine.
const REFUSAL_TIME: Duration = Duration::from_millis(500);
/// How many refusals may wait for a refusing thread.
const REFUSAL_QUEUE: usize = 16;
/// How many ends (peer closed, idle, broken) are closed at once: an idle or
/// broken peer may hold its close for [`QUICK_CLOSE`], and a thousand that
/// expire together must not wait for each other's. Started only as needed.
const CLOSERS: usize = 64;
/// How long the close of an idle or broken connection waits for the peer
/// to finish: it has had its chance.
pub(crate) const QUICK_CLOSE: Duration = Duration::from_secs(1);
/// How many connections shutdown closes at once.
const SHUTDOWN_CLOSERS: usize = 64;
/// The stack of the server's own threads, which run closes and the hooks.
const SERVER_STACK: usize = super::config::DEFAULT_SERVER_THREAD_STACK;
/// After shutdown's deadline, how long closes still get: close's own
/// interrupt grace, and a child's reaping.
const AFTER_DEADLINE: Duration = Duration::from_secs(3);
/// The quit reason a peer with the extensions reads at shutdown.
const SHUTDOWN_REASON: &str = "the server is shutting down";

/// Makes each connection's handler, seeing who connected. Closures
/// `Fn(&ConnectionInfo) -> H` implement it, for any [`Handler`] `H`:
///
/// ```
/// use packetstream::net::ConnectionInfo;
/// use packetstream::Request;
/// let factory = |info: &ConnectionInfo| {
///     let greeting = format!("hello, {}", info.peer());
///     move |_rq: Request| greeting.clone()
/// };
/// # fn takes(_: impl packetstream::net::HandlerFactory) {}
/// # takes(factory);
/// ```
pub trait HandlerFactory: Send + Sync + 'static {
    /// The handler type.
    type Handler: Handler;

    /// The handler of a new connection. It runs on the accept loop: keep it
    /// quick. A panic refuses the connection (the socket is closed).
    fn make(&self, connection: &ConnectionInfo) -> Self::Handler;
}

impl<F, H> HandlerFactory for F
where
    F: Fn(&ConnectionInfo) -> H + Send + Sync + 'static,
    H: Handler,
{
    type Handler = H;

    fn make(&self, connection: &ConnectionInfo) -> H {
        self(connection)
    }
}

type Factory = Box<dyn Fn(&ConnectionInfo) -> Box<dyn Handler> + Send + Sync>;

/// Builds a [`Server`]: where it listens, its settings and hooks; then
/// [`serve`](Self::serve) binds and starts it.
#[must_use]
#[derive(Default)]
pub struct ServerBuilder {
    config: ServerConfig,
    addrs: Vec<Addr>,
    memory: Vec<MemoryListener>,
    hooks: Hooks,
}

impl ServerBuilder {
    /// The server's settings (default [`ServerConfig::default()`]).
    pub fn config(mut self, config: impl Into<ServerConfig>) -> Self {
        self.config = config.into();
        self
    }

    /// Listens on `addr` (TCP, IPv4 or IPv6, or a Unix socket path);
    /// may be given many times.
    pub fn listen(mut self, addr: Addr) -> Self {
        self.addrs.push(addr);
        self
    }

    /// Also serves the in-process clients of `listener`.
    pub fn listen_memory(mut self, listener: MemoryListener) -> Self {
        self.memory.push(listener);
        self
    }

    /// Called once for each connection, when it has started (its handler
    /// may be serving already), before its end hook; on the accept loop.
    pub fn on_open(mut self, hook: impl Fn(&ConnectionInfo) + Send + Sync + 'static) -> Self {
        self.hooks.on_open = Some(Box::new(hook));
        self
    }

    /// Called once for each connection that was opened, after it has been
    /// closed, with why it ended; on one of the server's threads.
    pub fn on_end(mut self, hook: impl Fn(&ConnectionInfo, &EndReason) + Send + Sync + 'static) -> Self {
        self.hooks.on_end = Some(Box::new(hook));
        self
    }

    /// Called for each connection refused over a limit (which gets no other
    /// hook); on the accept loop.
    pub fn on_refused(mut self, hook: impl Fn(&Peer, &Refusal) + Send + Sync + 'static) -> Self {
        self.hooks.on_refused = Some(Box::new(hook));
        self
    }

    /// Binds every address and starts accepting into a short queue; the
    /// connections start once the accept loop runs ([`Server::run`],
    /// [`Server::spawn`]).
    ///
    /// # Errors
    /// When an address cannot be bound (the error names it; a Unix path
    /// where a live server listens, or that is not a socket, is not taken
    /// over), or a thread cannot start. What was bound is released.
    pub fn serve(self, factory: impl HandlerFactory) -> io::Result<Server> {
        let ServerBuilder { config, addrs, memory, hooks } = self;
        let mut listeners = Vec::new();
        let mut locals = Vec::new();
        for addr in &addrs {
            let (listener, local) = Listener::bind(addr)?;
            listeners.push(listener);
            locals.push(Some(local));
        }
        let memory: Vec<(usize, Receiver<MemoryConn>)> = memory
            .into_iter()
            .enumerate()
            .map(|(i, listener)| (listeners.len() + i, listener.into_incoming()))
            .collect();
        locals.extend(memory.iter().map(|_| None));

        let name: Arc<str> = config.name().into();
        let (stop_tx, stop) = crossbeam_channel::bounded::<()>(0);
        let (accepted_tx, accepted) = crossbeam_channel::bounded(ACCEPT_QUEUE);
        let (watch_tx, watch_rx) = crossbeam_channel::unbounded();
        let factory: Factory = Box::new(move |info| Box::new(factory.make(info)));
        let shared = Arc::new(Shared {
            closers: Crew::new(format!("{name}-close"), CLOSERS, Some(SERVER_STACK), None),
            refusers: Crew::new(format!("{name}-no"), config.refusals(), Some(SERVER_STACK), Some(REFUSAL_QUEUE)),
            name: Arc::clone(&name),
            config,
            hooks,
            factory,
            locals,
            registry: Mutex::new(Registry::default()),
            started: Condvar::new(),
            epoch: Instant::now(),
            totals: Totals::default(),
            stop,
            accepted,
            memory,
            watch: watch_tx,
            parts: Mutex::new(None),
            down: Mutex::new(Stage::Running),
            down_changed: Condvar::new(),
        });

        let mut parts = Parts {
            stop: stop_tx,
            waker: None,
            accepted: accepted_tx,
            acceptors: Vec::new(),
            watcher: None,
            loops: Vec::new(),
        };
        let started = (|| -> io::Result<()> {
            if !listeners.is_empty() {
                let (waker, alarm) = wake::alarm()?;
                parts.waker = Some(waker);
                for (number, listener) in listeners.into_iter().enumerate() {
                    let acceptor = Acceptor {
                        number,
                        listener,
                        alarm: alarm.clone(),
                        accepted: parts.accepted.clone(),
                        stop: shared.stop.clone(),
                        name: name.to_string(),
                    };
                    let thread =
                        threads::spawn(format!("{name}-accept-{number}"), Some(SERVER_STACK), move || acceptor.run())?;
                    parts.acceptors.push(thread);
                }
            }
            let watched = Arc::clone(&shared);
            parts.watcher = Some(threads::spawn(format!("{name}-watch"), Some(SERVER_STACK), move || {
                watch::run(&watched, &watch_rx)
            })?);
            Ok(())
        })();
        *shared.parts.lock() = Some(parts);
        let server = Server { shared };
        match started {
            Ok(()) => Ok(server),
            // Dropping it shuts down what did start.
            Err(error) => Err(error),
        }
    }
}

/// A server: accepts connections on its listeners and serves each with a
/// handler made for it, until it is shut down. Dropping it shuts it down
/// (within the connections' close timeout).
///
/// ```no_run
/// use std::time::{Duration, Instant};
/// use packetstream::net::{ConnectionInfo, Server, ServerConfig};
/// use packetstream::Request;
/// # fn main() -> Result<(), packetstream::Error> {
/// let server = Server::builder()
///     .config(ServerConfig::builder().name("echo").max_connections(100))
///     .listen("127.0.0.1:7000".parse().unwrap())
///     .listen("unix:/tmp/echo.sock".parse().unwrap())
///     .on_end(|info, reason| eprintln!("{} from {}: {reason}", info.name(), info.peer()))
///     .serve(|_: &ConnectionInfo| |rq: Request| rq.payload)?;
/// let handle = server.handle();
/// std::thread::spawn(move || {
///     std::thread::sleep(Duration::from_secs(60));
///     handle.shutdown(Instant::now() + Duration::from_secs(5));
/// });
/// server.run(); // until the handle shuts it down
/// # Ok(()) }
/// ```
pub struct Server {
    shared: Arc<Shared>,
}

/// Reaches a [`Server`] from anywhere: its connections, its totals, its
/// shutdown. Cheap to clone; needs no `&mut` to the server, so it can shut
/// down a server that another thread is running or borrowing.
#[derive(Clone)]
pub struct ServerHandle {
    shared: Arc<Shared>,
}

/// Counters of a server's life so far.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerTotals {
    /// Connections accepted and started (refused ones not counted).
    pub connections: u64,
    /// Connections refused over a limit.
    pub refused: u64,
    /// Requests the handlers answered, ok or failed (those the connection
    /// refused by itself, such as on an unserved channel, not counted).
    pub requests: u64,
    /// Connections that ended and were closed.
    pub ended: u64,
}

/// What [`ServerHandle::shutdown`] did.
#[non_exhaustive]
#[derive(Debug, Clone, Default)]
pub struct ShutdownReport {
    /// How long it took.
    pub took: Duration,
    /// How many connections it closed.
    pub closed: usize,
    /// How many of those did not close cleanly (requests still in service
    /// at the deadline, a peer that did not finish: see the end hook).
    pub unclean: usize,
    /// The server's totals at the end.
    pub totals: ServerTotals,
    /// What went wrong in the server's own threads: a panic, a thread left
    /// running, a hook that panicked.
    pub problems: Vec<String>,
}

impl Server {
    /// A builder.
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }

    /// A handle to shut the server down with, from any thread.
    pub fn handle(&self) -> ServerHandle {
        ServerHandle { shared: Arc::clone(&self.shared) }
    }

    /// Runs the accept loop on this thread until the server is shut down
    /// (from a [`ServerHandle`] on another thread); returns at once if it
    /// already is. Several threads may run it.
    pub fn run(&self) {
        self.shared.accept_loop();
    }

    /// Runs the accept loop on a thread of its own (`<name>-run-<i>`),
    /// joined at shutdown.
    ///
    /// # Errors
    /// When the thread cannot start, or the server is shut down.
    pub fn spawn(&self) -> io::Result<()> {
        let mut parts = self.shared.parts.lock();
        let Some(parts) = parts.as_mut() else {
            return Err(io::Error::new(io::ErrorKind::NotConnected, "the server is shut down"));
        };
        let shared = Arc::clone(&self.shared);
        let name = format!("{}-run-{}", self.shared.name, parts.loops.len());
        parts.loops.push(threads::spawn(name, Some(SERVER_STACK), move || shared.accept_loop())?);
        Ok(())
    }

    /// The addresses it listens on, as bound (with the ports chosen for
    /// port 0), in the order given.
    pub fn local_addrs(&self) -> Vec<Addr> {
        self.shared.local_addrs()
    }

    /// See [`ServerHandle::connections`].
    pub fn connections(&self) -> Vec<ConnectionInfo> {
        self.shared.connections()
    }

    /// See [`ServerHandle::totals`].
    pub fn totals(&self) -> ServerTotals {
        self.shared.totals()
    }

    /// See [`ServerHandle::shutdown`].
    pub fn shutdown(self, deadline: Instant) -> ShutdownReport {
        self.shared.shutdown(deadline)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let timeout = self.shared.config.connection().close_timeout();
        let report = self.shared.shutdown(Instant::now() + timeout);
        for problem in &report.problems {
            log::warn!("{}: shutdown on drop: {problem}", self.shared.name);
        }
    }
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("name", &self.shared.name).field("listening", &self.local_addrs()).finish()
    }
}

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle").field("name", &self.shared.name).finish()
    }
}

impl ServerHandle {
    /// Shuts the server down: stops accepting (waking the accept loop and
    /// the acceptors at once), sends ERQ on every connection, lets the
    /// requests in service finish until `deadline`, closes every
    /// connection (all at once, against the one deadline, telling peers
    /// with the extensions why), interrupts those still open at the
    /// deadline, and joins every thread; Unix socket files are removed.
    /// Returns within a few seconds after the deadline whatever the peers
    /// do. A second call waits for the first and gets its report.
    pub fn shutdown(&self, deadline: Instant) -> ShutdownReport {
        self.shared.shutdown(deadline)
    }

    /// The live connections, by id.
    pub fn connections(&self) -> Vec<ConnectionInfo> {
        self.shared.connections()
    }

    /// The server's counters.
    pub fn totals(&self) -> ServerTotals {
        self.shared.totals()
    }

    /// See [`Server::local_addrs`].
    pub fn local_addrs(&self) -> Vec<Addr> {
        self.shared.local_addrs()
    }

    /// Whether shutdown has begun.
    pub fn is_shut_down(&self) -> bool {
        !matches!(*self.shared.down.lock(), Stage::Running)
    }
}

/// What the server's threads share.
pub(crate) struct Shared {
    pub name: Arc<str>,
    pub config: ServerConfig,
    hooks: Hooks,
    factory: Factory,
    /// The address of each listener by number; `None` for a memory one.
    locals: Vec<Option<Addr>>,
    pub registry: Mutex<Registry>,
    /// Signalled when no connection is starting any more.
    started: Condvar,
    /// For the handlers' activity clocks.
    epoch: Instant,
    totals: Totals,
    /// Disconnects at shutdown: wakes the accept loops, the acceptors and
    /// the watcher.
    pub stop: Receiver<()>,
    accepted: Receiver<Accepted>,
    memory: Vec<(usize, Receiver<MemoryConn>)>,
    /// New connections for the watcher.
    watch: Sender<(u64, Receiver<()>)>,
    closers: Crew,
    refusers: Crew,
    /// What shutdown takes.
    parts: Mutex<Option<Parts>>,
    down: Mutex<Stage>,
    down_changed: Condvar,
}

#[derive(Default)]
struct Totals {
    connections: AtomicU64,
    refused: AtomicU64,
    requests: Arc<AtomicU64>,
    ended: AtomicU64,
}

/// The parts of a running server that shutdown stops and joins.
struct Parts {
    stop: Sender<()>,
    waker: Option<Waker>,
    accepted: Sender<Accepted>,
    acceptors: Vec<Thread<Listener>>,
    watcher: Option<Thread<()>>,
    loops: Vec<Thread<()>>,
}

enum Stage {
    Running,
    Stopping,
    Done(ShutdownReport),
}

/// The live connections and what counts against the limits.
#[derive(Default)]
pub(crate) struct Registry {
    pub live: HashMap<u64, Live>,
    counts: Counts,
    /// Accepted and starting: counted in the limits already.
    starting: usize,
    /// The interrupters of the connections being closed, for shutdown's
    /// deadline.
    closing: HashMap<u64, Arc<dyn Fn() + Send + Sync>>,
    next_id: u64,
    /// Shutdown's deadline, once it has begun.
    closed: Option<Instant>,
}

impl Registry {
    /// Takes connection `id` out to be closed: no longer counted in the
    /// limits, its interrupter kept for shutdown's deadline.
    fn take(&mut self, id: u64) -> Option<Live> {
        let live = self.live.remove(&id)?;
        self.counts.release(&live.key);
        if let Some(interrupt) = live.conn.interrupter() {
            self.closing.insert(id, interrupt);
        }
        Some(live)
    }
}

/// A live connection.
pub(crate) struct Live {
    pub conn: PacketConnection,
    pub info: ConnectionInfo,
    key: PeerKey,
    pub activity: Arc<Activity>,
    /// The server's own requests and their answers as the watcher last
    /// counted them, and when that count changed.
    pub seen: Mutex<(u64, Instant)>,
}

impl Live {
    fn snapshot(&self) -> ConnectionInfo {
        ConnectionInfo { stats: self.conn.stats(), in_service: self.activity.in_service(), ..self.info.clone() }
    }
}

impl Shared {
    fn local_addrs(&self) -> Vec<Addr> {
        self.locals.iter().flatten().cloned().collect()
    }

    fn connections(&self) -> Vec<ConnectionInfo> {
        let registry = self.registry.lock();
        let mut found: Vec<ConnectionInfo> = registry.live.values().map(Live::snapshot).collect();
        found.sort_by_key(|info| info.id);
        found
    }

    fn totals(&self) -> ServerTotals {
        ServerTotals {
            connections: self.totals.connections.load(Relaxed),
            refused: self.totals.refused.load(Relaxed),
            requests: self.totals.requests.load(Relaxed),
            ended: self.totals.ended.load(Relaxed),
        }
    }

    /// Accepts until shutdown.
    fn accept_loop(self: &Arc<Self>) {
        loop {
            let mut select = Select::new();
            select.recv(&self.stop);
            select.recv(&self.accepted);
            for (_, incoming) in &self.memory {
                select.recv(incoming);
            }
            let operation = select.select();
            match operation.index() {
                0 => {
                    let _ = operation.recv(&self.stop);
                    return;
                }
                1 => match operation.recv(&self.accepted) {
                    Ok(Accepted { transport, peer, listener }) => self.admit(transport, peer, listener),
                    Err(_) => return,
                },
                i => {
                    let (number, incoming) = &self.memory[i - 2];
                    match operation.recv(incoming) {
                        Ok(conn) => self.admit(conn.transport, Peer::Memory(conn.peer), *number),
                        // The server holds no sender: only at shutdown.
                        Err(_) => return,
                    }
                }
            }
        }
    }

    /// Starts a connection on an accepted socket, or refuses it.
    fn admit(self: &Arc<Self>, transport: Transport, peer: Peer, listener: usize) {
        let key = PeerKey::of(&peer, listener);
        let id = {
            let mut registry = self.registry.lock();
            if registry.closed.is_some() {
                return;
            }
            let admitted = registry.counts.admit(&key, self.config.max_connections(), self.config.max_per_peer());
            if let Err(refusal) = admitted {
                drop(registry);
                self.refuse(transport, peer, refusal);
                return;
            }
            registry.starting += 1;
            registry.next_id += 1;
            registry.next_id
        };
        let live = self.start(id, transport, peer, listener, key.clone());
        let late = {
            let mut registry = self.registry.lock();
            match (live, registry.closed) {
                (None, _) => {
                    registry.counts.release(&key);
                    None
                }
                (Some(live), None) => {
                    let ended = live.conn.reading_ended();
                    registry.live.insert(id, live);
                    // The watcher is gone only at shutdown, which then has
                    // the connection from the registry.
                    let _ = self.watch.send((id, ended));
                    None
                }
                (Some(live), Some(deadline)) => {
                    registry.counts.release(&key);
                    Some((live, deadline))
                }
            }
        };
        if let Some((live, deadline)) = late {
            // Shutdown began while it started; it waits for this close.
            let options = CloseOptions::new().reason(SHUTDOWN_REASON).deadline(deadline);
            self.finish(live, EndReason::ShutDown, options);
        }
        let mut registry = self.registry.lock();
        registry.starting -= 1;
        if registry.starting == 0 {
            self.started.notify_all();
        }
    }

    /// Makes the handler and starts the connection.
    fn start(&self, id: u64, transport: Transport, peer: Peer, listener: usize, key: PeerKey) -> Option<Live> {
        let name: Arc<str> = format!("{}-{id}", self.name).into();
        let info = ConnectionInfo {
            id,
            name: Arc::clone(&name),
            peer,
            local: self.locals.get(listener).cloned().flatten(),
            opened: Instant::now(),
            stats: Default::default(),
            in_service: 0,
        };
        let handler = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (self.factory)(&info))) {
            Ok(handler) => handler,
            Err(payload) => {
                let message = crate::threads::panic_message(&*payload);
                log::error!("{name}: the handler factory panicked ({message}): connection from {} dropped", info.peer);
                return None;
            }
        };
        let activity = Arc::new(Activity::new(self.epoch, Arc::clone(&self.totals.requests)));
        let tracked = Tracked { handler, activity: Arc::clone(&activity) };
        let config = self.config.connection_named(name.to_string());
        let conn = match PacketConnection::with_handler(transport, config, tracked) {
            Ok(conn) => conn,
            Err(error) => {
                log::error!("{name}: cannot start a connection from {}: {error}", info.peer);
                return None;
            }
        };
        self.totals.connections.fetch_add(1, Relaxed);
        log::debug!("{name}: connection from {}", info.peer);
        self.hooks.opened(&info);
        Some(Live { conn, info, key, activity, seen: Mutex::new((0, Instant::now())) })
    }

    /// Refuses a socket over a limit, on a refusing thread: a short-lived
    /// connection that tells a peer with the extensions why, then closes.
    fn refuse(self: &Arc<Self>, transport: Transport, peer: Peer, refusal: Refusal) {
        self.totals.refused.fetch_add(1, Relaxed);
        log::info!("{}: refusing a connection from {peer}: {refusal}", self.name);
        self.hooks.refused(&self.name, &peer, &refusal);
        let shared = Arc::clone(self);
        let job = Box::new(move || {
            if shared.registry.lock().closed.is_some() {
                return;
            }
            let deadline = Instant::now() + REFUSAL_TIME;
            let config = Config::builder()
                .name(format!("{}-no", shared.name))
                .extensions(true)
                .workers(1)
                .thread_stack_size(SERVER_STACK)
                .close_timeout(REFUSAL_TIME);
            match PacketConnection::new(transport, config) {
                Ok(conn) => {
                    let _ = conn.close_with(CloseOptions::new().reason(refusal.to_string()).deadline(deadline));
                }
                Err(error) => log::debug!("{}: refusal to {peer}: {error}", shared.name),
            }
        });
        // Too many refusals at once: this socket is closed without a word.
        let _ = self.refusers.submit(job);
    }

    /// Takes connection `id` out of the registry to be closed, unless it is
    /// gone already (closed by another path).
    pub(crate) fn take(&self, id: u64) -> Option<Live> {
        self.registry.lock().take(id)
    }

    /// Closes a connection taken out of the registry on a closing thread.
    pub(crate) fn end(self: &Arc<Self>, live: Live, reason: EndReason, options: CloseOptions) {
        let shared = Arc::clone(self);
        let job = Box::new(move || {
            shared.finish(live, reason, options);
        });
        if let Err(job) = self.closers.submit(job) {
            // Finished already (shutdown): close here.
            job();
        }
    }

    /// Closes the connection and calls its end hook; whether it closed
    /// cleanly.
    fn finish(&self, live: Live, reason: EndReason, options: CloseOptions) -> bool {
        let Live { conn, info, activity, .. } = live;
        let info = ConnectionInfo { stats: conn.stats(), in_service: activity.in_service(), ..info };
        let clean = match conn.close_with(options) {
            Ok(_) => true,
            Err(error) => {
                log::debug!("{}: close: {error} ({})", info.name, error.report());
                false
            }
        };
        self.registry.lock().closing.remove(&info.id);
        self.totals.ended.fetch_add(1, Relaxed);
        log::debug!("{}: ended: {reason}", info.name);
        self.hooks.ended(&info, &reason);
        clean
    }

    fn shutdown(self: &Arc<Self>, deadline: Instant) -> ShutdownReport {
        {
            let mut down = self.down.lock();
            loop {
                match &*down {
                    Stage::Done(report) => return report.clone(),
                    Stage::Stopping => {
                        // The first caller's work is bounded by its deadline.
                        let _ = self.down_changed.wait_until(&mut down, deadline + AFTER_DEADLINE * 4);
                        if matches!(*down, Stage::Stopping) {
                            return ShutdownReport {
                                problems: vec!["another shutdown is still running".into()],
                                ..ShutdownReport::default()
                            };
                        }
                    }
                    Stage::Running => {
                        *down = Stage::Stopping;
                        break;
                    }
                }
            }
        }
        let report = self.shut(deadline);
        *self.down.lock() = Stage::Done(report.clone());
        self.down_changed.notify_all();
        report
    }

    fn shut(self: &Arc<Self>, deadline: Instant) -> ShutdownReport {
        let began = Instant::now();
        let mut problems = Vec::new();
        let late = deadline.max(began) + AFTER_DEADLINE;
        log::debug!("{}: shutting down", self.name);

        // Stop accepting: the alarm wakes the acceptors, the stop channel
        // the accept loops and the watcher.
        let parts = self.parts.lock().take();
        let mut listeners = Vec::new();
        if let Some(parts) = parts {
            let Parts { stop, waker, accepted, acceptors, watcher, loops } = parts;
            drop((stop, waker, accepted));
            for thread in acceptors {
                match join(thread, late) {
                    Ok(listener) => listeners.push(listener),
                    Err(problem) => problems.push(problem),
                }
            }
            for thread in loops.into_iter().chain(watcher) {
                if let Err(problem) = join(thread, late) {
                    problems.push(problem);
                }
            }
        }
        // Sockets accepted but not taken by an accept loop are closed here.
        while self.accepted.try_recv().is_ok() {}
        for (_, incoming) in &self.memory {
            while incoming.try_recv().is_ok() {}
        }

        // No connection starts from now on; those starting finish first.
        let live: Vec<Live> = {
            let mut registry = self.registry.lock();
            registry.closed = Some(deadline);
            while registry.starting > 0 {
                if self.started.wait_until(&mut registry, late).timed_out() {
                    problems.push(format!("{} connections still starting at the deadline", registry.starting));
                    break;
                }
            }
            let taken: Vec<u64> = registry.live.keys().copied().collect();
            taken.into_iter().filter_map(|id| registry.take(id)).collect::<Vec<_>>()
        };
        let closed = live.len();

        // ERQ to all at once, then the closes, all against the deadline.
        let crew =
            Crew::new(format!("{}-down", self.name), closed.clamp(1, SHUTDOWN_CLOSERS), Some(SERVER_STACK), None);
        let (done_tx, done) = crossbeam_channel::unbounded::<bool>();
        let slots: Vec<Arc<Mutex<Option<Live>>>> =
            live.into_iter().map(|live| Arc::new(Mutex::new(Some(live)))).collect();
        for slot in &slots {
            let slot = Arc::clone(slot);
            let _ = crew.submit(Box::new(move || {
                if let Some(live) = &*slot.lock() {
                    // Fails only for a connection already ended.
                    let _ = live.conn.end_requests();
                }
            }));
        }
        for slot in slots {
            let (shared, done_tx) = (Arc::clone(self), done_tx.clone());
            let _ = crew.submit(Box::new(move || {
                let Some(live) = slot.lock().take() else { return };
                // One that ended by itself meanwhile ends for its own reason.
                let ended =
                    matches!(live.conn.reading_ended().try_recv(), Err(crossbeam_channel::TryRecvError::Disconnected));
                let reason = if ended { EndReason::of(&live.conn) } else { EndReason::ShutDown };
                let options = CloseOptions::new().reason(SHUTDOWN_REASON).deadline(deadline);
                let _ = done_tx.send(shared.finish(live, reason, options));
            }));
        }
        drop(done_tx);
        let mut unclean = 0;
        let mut count = |until: Instant| loop {
            match done.recv_deadline(until) {
                Ok(clean) => unclean += usize::from(!clean),
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return true,
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => return false,
            }
        };
        if !count(deadline) {
            // The deadline: whatever is still open is cut, here and in the
            // closes of connections that had ended before shutdown.
            let interrupts: Vec<_> = self.registry.lock().closing.values().cloned().collect();
            log::debug!("{}: shutdown deadline: interrupting {} connections", self.name, interrupts.len());
            for interrupt in interrupts {
                interrupt();
            }
            if !count(late) {
                problems.push("closes still running after the deadline".to_owned());
            }
        }
        problems.extend(crew.finish(late));
        problems.extend(self.closers.finish(late));
        problems.extend(self.refusers.finish(late));
        // Removes the Unix socket files.
        drop(listeners);
        let panics = self.hooks.panics.load(Relaxed);
        if panics > 0 {
            problems.push(format!("{panics} hook calls panicked"));
        }
        for problem in &problems {
            log::warn!("{}: shutdown: {problem}", self.name);
        }
        let report = ShutdownReport { took: began.elapsed(), closed, unclean, totals: self.totals(), problems };
        log::debug!("{}: shut down: {report:?}", self.name);
        report
    }
}

impl watch::Watched for Arc<Shared> {
    fn stop_signal(&self) -> &Receiver<()> {
        &self.stop
    }

    fn idle_timeout(&self) -> Option<Duration> {
        self.config.idle_timeout()
    }

    fn ended(&self, id: u64) {
        if let Some(live) = self.take(id) {
            let reason = EndReason::of(&live.conn);
            // A clean end is the peer's: it finishes promptly, while its
            // last requests may still be in service.
            let options = match reason {
                EndReason::PeerClosed | EndReason::PeerQuit(_) => CloseOptions::new(),
                _ => CloseOptions::new().timeout(QUICK_CLOSE),
            };
            self.end(live, reason, options);
        }
    }

    fn close_idle(&self, idle: Duration) -> Instant {
        let now = Instant::now();
        let mut next = now + idle;
        let mut expired = Vec::new();
        for (&id, live) in &self.registry.lock().live {
            // Busy either way: its clock starts again when it is done.
            if live.activity.in_service() > 0 || live.conn.outstanding() > 0 {
                continue;
            }
            // The server's own requests show in the counters only.
            let stats = live.conn.stats();
            let ours = stats.requests_out + stats.responses_in;
            let mut seen = live.seen.lock();
            if seen.0 != ours {
                *seen = (ours, now);
            }
            let since = live.activity.last().max(seen.1);
            let expires = since + idle;
            if expires <= now {
                expired.push((id, now - since));
            } else {
                next = next.min(expires);
            }
        }
        for (id, after) in expired {
            if let Some(live) = self.take(id) {
                let reason = EndReason::Idle(after);
                let options = CloseOptions::new().reason(reason.to_string()).timeout(QUICK_CLOSE);
                self.end(live, reason, options);
            }
        }
        next
    }
}

/// Joins a thread that should end by `deadline`.
fn join<T>(thread: Thread<T>, deadline: Instant) -> Result<T, String> {
    if thread.wait_until(deadline) {
        thread.join().map_err(|panicked| panicked.to_string())
    } else {
        Err(format!("{} did not stop, left running", thread.detach()))
    }
}
