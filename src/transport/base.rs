//! What every transport is: a stream to read, a stream to write, and the
//! hooks that end them. The files beside this one add a constructor each.

use std::any::Any;
use std::io::{self, Read, Write};
use std::sync::Arc;

use super::process::ChildProcess;
use super::readiness::Readable;

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

/// The byte streams of a connection, with what it takes to end them.
///
/// Build one with a constructor for what you have: a reader/writer pair
/// ([`Transport::new`]), a socket ([`Transport::tcp`], [`Transport::unix`]),
/// file descriptors ([`Transport::fds`]), your own stdin/stdout
/// ([`Transport::stdio`]), a child process ([`Transport::spawn`]), a
/// function that opens streams when the connection starts
/// ([`Transport::on_demand`]), or an in-process pair with no file
/// descriptors ([`Transport::memory_pair`]).
pub struct Transport {
    pub(crate) source: Source,
    pub(crate) hooks: Hooks,
}

pub(crate) enum Source {
    Ready { reader: Box<dyn ReadHalf>, writer: Box<dyn WriteHalf> },
    OnDemand(Opener),
}

pub(crate) type Opener = Box<dyn FnOnce() -> io::Result<Transport> + Send>;

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
    /// A child to reap at close, which also explains an end of its stream.
    pub child: Option<Arc<ChildProcess>>,
    /// Runs at close, after the threads have ended.
    pub shutdown: Option<Box<dyn FnOnce() + Send>>,
    /// Whether the streams are closed at close (a child's are) rather than
    /// kept for [`Finished::into_streams`](crate::Finished::into_streams).
    pub close_streams: bool,
    /// The read half's descriptor, when it has one, so that a read can wait
    /// with a deadline (see [`readiness`](super::readiness)).
    pub readable: Option<Readable>,
    /// Whether the write half is known to be a pipe (the send path writes a
    /// bulk payload's header apart into one, see `Sink::push`).
    pub writes_to_pipe: bool,
}

impl Transport {
    /// Any reader and writer, for example the two ends of two pipes.
    pub fn new<R: Read + Send + 'static, W: Write + Send + 'static>(reader: R, writer: W) -> Transport {
        Transport {
            source: Source::Ready { reader: Box::new(reader), writer: Box::new(writer) },
            hooks: Hooks::default(),
        }
    }

    /// [`new`](Self::new) for a read half with a file descriptor (a pipe
    /// end, a socket, a file): the connection can then wait on it with a
    /// deadline, which lets a waiting caller read the stream itself (see
    /// [`ConfigBuilder::caller_reads`](crate::ConfigBuilder::caller_reads)).
    /// The constructors for descriptors, sockets and children do this.
    #[cfg(unix)]
    pub fn from_fd_reader<R, W>(reader: R, writer: W) -> Transport
    where
        R: Read + std::os::fd::AsFd + Send + 'static,
        W: Write + Send + 'static,
    {
        let mut transport = Transport::with_fd_reader(reader, writer);
        // Its reads may do more than read the descriptor: they are its own.
        if let Some(readable) = &mut transport.hooks.readable {
            readable.direct = false;
        }
        transport
    }

    /// [`new`](Self::new) for a read half with a file descriptor, which the
    /// connection may wait on.
    #[cfg(not(unix))]
    pub(crate) fn with_fd_reader<R, W>(reader: R, writer: W) -> Transport
    where
        R: Read + Send + 'static,
        W: Write + Send + 'static,
    {
        Transport::new(reader, writer)
    }

    /// [`new`](Self::new) for a read half that is a file descriptor the
    /// library opened, which the connection may wait on and read.
    #[cfg(unix)]
    pub(crate) fn with_fd_reader<R, W>(reader: R, writer: W) -> Transport
    where
        R: Read + std::os::fd::AsFd + Send + 'static,
        W: Write + Send + 'static,
    {
        use std::os::fd::AsRawFd;
        let fd = reader.as_fd().as_raw_fd();
        let mut transport = Transport::new(reader, writer);
        transport.hooks.readable = Some(Readable { fd, direct: true });
        transport
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
                    readable: inner.readable,
                    writes_to_pipe: inner.writes_to_pipe,
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
