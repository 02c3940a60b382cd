//! What opens a client's connection: [`Opener`], with openers for an
//! address ([`Connect`]), a child process ([`Spawn`]), an in-process
//! listener ([`MemoryConnector`]) and any closure.

use std::io;
use std::process::Command;
use std::time::Duration;

use super::addr::Addr;
use super::client::{connect, DEFAULT_CONNECT_TIMEOUT};
use super::memory::MemoryConnector;
use crate::transport::Transport;

/// Opens the transport of a client's connection, each time it needs one.
/// Closures `Fn() -> io::Result<Transport>` are openers.
pub trait Opener: Send + Sync + 'static {
    /// A new transport.
    ///
    /// # Errors
    /// Why none could be opened.
    fn open(&self) -> io::Result<Transport>;

    /// What it opens, for errors and logs: an address, a program.
    fn describe(&self) -> String;
}

impl<F> Opener for F
where
    F: Fn() -> io::Result<Transport> + Send + Sync + 'static,
{
    fn open(&self) -> io::Result<Transport> {
        self()
    }

    fn describe(&self) -> String {
        "the connection".to_owned()
    }
}

/// Connects to an address, within a timeout ([`DEFAULT_CONNECT_TIMEOUT`]
/// unless set).
#[derive(Debug, Clone)]
pub struct Connect {
    addr: Addr,
    timeout: Duration,
}

impl Connect {
    /// Connects to `addr`.
    pub fn new(addr: Addr) -> Self {
        Connect { addr, timeout: DEFAULT_CONNECT_TIMEOUT }
    }

    /// Gives each connect at most `timeout`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The address.
    pub fn addr(&self) -> &Addr {
        &self.addr
    }
}

impl Opener for Connect {
    fn open(&self) -> io::Result<Transport> {
        connect(&self.addr, self.timeout)
    }

    fn describe(&self) -> String {
        self.addr.to_string()
    }
}

impl Opener for MemoryConnector {
    fn open(&self) -> io::Result<Transport> {
        self.connect(DEFAULT_CONNECT_TIMEOUT)
    }

    fn describe(&self) -> String {
        "the memory listener".to_owned()
    }
}

/// Starts a child process and talks to it over its stdin and stdout, with
/// its stderr forwarded to ours and the last lines kept for the callers'
/// errors (see [`Transport::spawn_forwarding_stderr`]).
pub struct Spawn {
    command: Box<dyn Fn() -> Command + Send + Sync>,
    program: String,
    keep_stderr: usize,
}

impl Spawn {
    /// Starts the command `command` makes, each time one is needed; keeps
    /// its last 16 stderr lines.
    pub fn new(command: impl Fn() -> Command + Send + Sync + 'static) -> Self {
        let program = command().get_program().to_string_lossy().into_owned();
        Spawn { command: Box::new(command), program, keep_stderr: 16 }
    }

    /// Keeps the last `lines` of the child's stderr (0: none; it is still
    /// forwarded).
    pub fn keep_stderr(mut self, lines: usize) -> Self {
        self.keep_stderr = lines;
        self
    }

    /// The program's name.
    pub fn program(&self) -> &str {
        &self.program
    }
}

impl std::fmt::Debug for Spawn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spawn").field("program", &self.program).field("keep_stderr", &self.keep_stderr).finish()
    }
}

impl Opener for Spawn {
    fn open(&self) -> io::Result<Transport> {
        Transport::spawn_forwarding_stderr(&mut (self.command)(), self.keep_stderr)
    }

    fn describe(&self) -> String {
        format!("the child {:?}", self.program)
    }
}
