//! What a connection runs over: a stream to read, a stream to write, and how
//! to finish with them.
//!
//! Streams passed in by value are owned by the connection. After a clean
//! [`close`](crate::PacketConnection::close) they can be taken back with
//! [`Finished::into_streams`](crate::Finished::into_streams) (as
//! cs.packetstream leaves its handles open for reuse); otherwise they are
//! closed when the connection is dropped. A child's stdio is always closed at
//! close, since that is how the child learns to exit.

use std::any::Any;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// A readable stream the connection can own and later hand back.
pub trait ReadHalf: Read + Send + 'static {
    /// For handing the stream back: a `Box<dyn Any>` to downcast.
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send>;
}

impl<T: Read + Send + 'static> ReadHalf for T {
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send> {
        self
    }
}

/// A writable stream the connection can own and later hand back.
pub trait WriteHalf: Write + Send + 'static {
    /// For handing the stream back: a `Box<dyn Any>` to downcast.
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send>;
}

impl<T: Write + Send + 'static> WriteHalf for T {
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send> {
        self
    }
}

type Opener = Box<dyn FnOnce() -> io::Result<Transport> + Send>;

/// The byte streams of a connection, with what it takes to end them.
///
/// Build one with a constructor for what you have: a reader/writer pair
/// ([`Transport::new`]), a socket ([`Transport::tcp`], [`Transport::unix`]),
/// file descriptors ([`Transport::fds`]), your own stdin/stdout
/// ([`Transport::stdio`]), a child process ([`Transport::spawn`]), or a
/// function that opens streams when the connection starts
/// ([`Transport::on_demand`]).
pub struct Transport {
    pub(crate) source: Source,
    pub(crate) hooks: Hooks,
}

pub(crate) enum Source {
    Ready { reader: Box<dyn ReadHalf>, writer: Box<dyn WriteHalf> },
    OnDemand(Opener),
}

/// An opened transport, ready for the reader and writer threads.
pub(crate) struct Opened {
    pub reader: Box<dyn ReadHalf>,
    pub writer: Box<dyn WriteHalf>,
    pub hooks: Hooks,
}

/// What the connection does with the transport beyond reading and writing.
#[derive(Default)]
pub(crate) struct Hooks {
    /// Unblocks a reader or writer stuck on the stream, once close's deadline
    /// has passed: shut a socket down, kill a child.
    pub interrupt: Option<Arc<dyn Fn() + Send + Sync>>,
    /// A child to reap at close.
    pub child: Option<Arc<Mutex<Child>>>,
    /// Runs at close, after the threads have ended.
    pub shutdown: Option<Box<dyn FnOnce() + Send>>,
    /// Whether the streams are closed at close (a child's are) rather than
    /// kept for [`Finished::into_streams`](crate::Finished::into_streams).
    pub close_streams: bool,
}

impl Transport {
    /// Any reader and writer, for example the two ends of two pipes.
    pub fn new<R: Read + Send + 'static, W: Write + Send + 'static>(reader: R, writer: W) -> Transport {
        Transport {
            source: Source::Ready { reader: Box::new(reader), writer: Box::new(writer) },
            hooks: Hooks::default(),
        }
    }

    /// A TCP stream, read and written through two handles of the one socket.
    /// If close has to give up on the peer, the socket is shut down.
    ///
    /// # Errors
    /// When the handle cannot be cloned.
    pub fn tcp(stream: TcpStream) -> io::Result<Transport> {
        let interrupter = stream.try_clone()?;
        let reader = stream.try_clone()?;
        Ok(Transport::new(reader, stream).with_interrupt(move || {
            let _ = interrupter.shutdown(Shutdown::Both);
        }))
    }

    /// A Unix stream socket, like [`Transport::tcp`].
    ///
    /// # Errors
    /// When the handle cannot be cloned.
    #[cfg(unix)]
    pub fn unix(stream: std::os::unix::net::UnixStream) -> io::Result<Transport> {
        let interrupter = stream.try_clone()?;
        let reader = stream.try_clone()?;
        Ok(Transport::new(reader, stream).with_interrupt(move || {
            let _ = interrupter.shutdown(Shutdown::Both);
        }))
    }

    /// Two owned file descriptors, for example inherited pipe ends. They are
    /// read and written as [`std::fs::File`]s; [`Finished::into_streams`]
    /// hands them back as such.
    ///
    /// [`Finished::into_streams`]: crate::Finished::into_streams
    #[cfg(unix)]
    pub fn fds(read: std::os::fd::OwnedFd, write: std::os::fd::OwnedFd) -> Transport {
        Transport::new(std::fs::File::from(read), std::fs::File::from(write))
    }

    /// Two raw file descriptors, which the connection takes ownership of.
    ///
    /// # Safety
    /// Both must be open file descriptors that nothing else owns or closes,
    /// and distinct (use [`Transport::fds`] with a duplicate for one fd that
    /// goes both ways).
    #[cfg(unix)]
    pub unsafe fn from_raw_fds(read: std::os::fd::RawFd, write: std::os::fd::RawFd) -> Transport {
        use std::os::fd::{FromRawFd, OwnedFd};
        // SAFETY: the caller promises both descriptors are open and owned by
        // no one else, which is what OwnedFd requires.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(read), OwnedFd::from_raw_fd(write)) };
        Transport::fds(read, write)
    }

    /// This process's own stdin and stdout, for a program that serves a
    /// connection over its stdio. The descriptors are duplicated (with
    /// close-on-exec), so the standard handles stay valid; nothing else may
    /// write to stdout while the connection runs.
    ///
    /// # Errors
    /// When a descriptor cannot be duplicated.
    #[cfg(unix)]
    pub fn stdio() -> io::Result<Transport> {
        use std::os::fd::AsFd;
        let read = io::stdin().as_fd().try_clone_to_owned()?;
        let write = io::stdout().as_fd().try_clone_to_owned()?;
        Ok(Transport::fds(read, write))
    }

    /// Starts `command` with piped stdin and stdout (stderr is left as the
    /// command has it, inherited by default) and talks to it over them. At
    /// close its stdin is closed, and the child is waited for, and killed if
    /// it outlives close's deadline; [`Finished::exit_status`] reports how it
    /// ended.
    ///
    /// [`Finished::exit_status`]: crate::Finished::exit_status
    ///
    /// # Errors
    /// When the child cannot be started.
    pub fn spawn(command: &mut Command) -> io::Result<Transport> {
        let mut child = command.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::other("child has no piped stdio"));
        };
        enlarge_pipe(&stdin);
        enlarge_pipe(&stdout);
        let child = Arc::new(Mutex::new(child));
        let killer = Arc::clone(&child);
        let mut transport = Transport::new(stdout, stdin).with_interrupt(move || {
            let _ = killer.lock().kill();
        });
        transport.hooks.child = Some(child);
        transport.hooks.close_streams = true;
        Ok(transport)
    }

    /// Two pipes joined crosswise: what one transport writes the other reads.
    /// Handy for tests and for two connections in one process.
    ///
    /// # Errors
    /// When a pipe cannot be made.
    pub fn pipe_pair() -> io::Result<(Transport, Transport)> {
        let (a_read, b_write) = io::pipe()?;
        let (b_read, a_write) = io::pipe()?;
        enlarge_pipe(&a_write);
        enlarge_pipe(&b_write);
        Ok((Transport::new(a_read, a_write), Transport::new(b_read, b_write)))
    }

    /// Streams opened by `open` when the connection starts, as
    /// cs.packetstream's callable `recv_send`. Give the transport it returns
    /// a [`with_shutdown`](Self::with_shutdown) for what must run at close.
    pub fn on_demand<F>(open: F) -> Transport
    where
        F: FnOnce() -> io::Result<Transport> + Send + 'static,
    {
        Transport { source: Source::OnDemand(Box::new(open)), hooks: Hooks::default() }
    }

    /// Runs `shutdown` at close, after the connection's threads have ended
    /// and its streams are given back or closed.
    pub fn with_shutdown(mut self, shutdown: impl FnOnce() + Send + 'static) -> Transport {
        self.hooks.shutdown = Some(Box::new(shutdown));
        self
    }

    /// Sets how to unblock a reader or writer stuck on the streams when
    /// close's deadline passes (for example, shutting a socket down). Without
    /// one, a thread blocked on a stream that never wakes is left running,
    /// detached, and close reports it.
    pub fn with_interrupt(mut self, interrupt: impl Fn() + Send + Sync + 'static) -> Transport {
        self.hooks.interrupt = Some(Arc::new(interrupt));
        self
    }

    /// Opens an on-demand transport; merges its hooks with this one's.
    pub(crate) fn open(self) -> io::Result<Opened> {
        match self.source {
            Source::Ready { reader, writer } => Ok(Opened { reader, writer, hooks: self.hooks }),
            Source::OnDemand(open) => {
                let mut opened = open()?.open()?;
                let (inner, outer) = (opened.hooks, self.hooks);
                opened.hooks = Hooks {
                    interrupt: inner.interrupt.or(outer.interrupt),
                    child: inner.child.or(outer.child),
                    shutdown: inner.shutdown.or(outer.shutdown),
                    close_streams: inner.close_streams || outer.close_streams,
                };
                Ok(opened)
            }
        }
    }
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.source {
            Source::Ready { .. } => "ready",
            Source::OnDemand(_) => "on demand",
        };
        f.debug_struct("Transport").field("source", &kind).field("child", &self.hooks.child.is_some()).finish()
    }
}

/// The buffer size asked for on the pipes the library creates (a child's
/// stdio, [`Transport::pipe_pair`]). Linux's default of 64 KiB makes a large
/// payload cross in many small steps, each a pair of thread wake-ups; 1 MiB
/// is the most an unprivileged process may ask for by default.
#[cfg(target_os = "linux")]
const PIPE_BUFFER: libc::c_int = 1 << 20;

/// Asks for a larger pipe buffer, best effort: a refusal (a pipe-size limit
/// set lower, or a descriptor that is not a pipe) leaves the pipe as it was.
#[cfg(target_os = "linux")]
fn enlarge_pipe(fd: &impl std::os::fd::AsRawFd) {
    // SAFETY: fcntl on a descriptor that `fd` keeps open for the duration of
    // the call; F_SETPIPE_SZ takes an int and touches no memory of ours.
    let result = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_BUFFER) };
    if result < 0 {
        log::debug!("could not enlarge a pipe to {PIPE_BUFFER} bytes: {}", io::Error::last_os_error());
    }
}

#[cfg(not(target_os = "linux"))]
fn enlarge_pipe<T>(_: &T) {}

/// Waits for a child until `deadline`, then kills it. Polls with a growing
/// delay: std offers no timed wait on a child.
pub(crate) fn reap(child: &Mutex<Child>, deadline: Instant) -> io::Result<ExitStatus> {
    let mut delay = Duration::from_millis(1);
    loop {
        if let Some(status) = child.lock().try_wait()? {
            return Ok(status);
        }
        let now = Instant::now();
        if now >= deadline {
            let mut child = child.lock();
            log::debug!("child {} outlived close: killing it", child.id());
            let _ = child.kill();
            return child.wait();
        }
        std::thread::sleep(delay.min(deadline - now));
        delay = (delay * 2).min(Duration::from_millis(50));
    }
}
