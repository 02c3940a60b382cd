//! Listening sockets (TCP and Unix) and the thread that accepts on each.
//!
//! An acceptor waits in `poll(2)` for its socket and for the server's
//! [alarm](super::wake), so shutdown wakes it at once; it accepts without
//! blocking (a connection reset between the poll and the accept must not
//! hang it) and hands each socket to the server's accept loop. When the
//! process runs out of descriptors, accepting pauses for a moment instead of
//! spinning on a socket that stays readable.

use std::io;
use std::net::TcpListener;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixListener;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};

use super::addr::{Addr, Peer};
use super::unix::{self, SocketFile};
use super::wake::{Alarm, Woken};
use crate::transport::Transport;

/// How long accepting pauses when the process or the system is out of
/// descriptors or memory: long enough for connections to end, short enough
/// that a recovered server accepts again promptly.
const OUT_OF_RESOURCES_PAUSE: Duration = Duration::from_millis(100);

/// A bound listening socket.
#[derive(Debug)]
pub(crate) enum Listener {
    Tcp(TcpListener),
    /// With its socket file, removed when the listener goes.
    Unix {
        socket: UnixListener,
        _file: SocketFile,
    },
}

/// A socket accepted on listener number `listener`.
pub(crate) struct Accepted {
    pub transport: Transport,
    pub peer: Peer,
    pub listener: usize,
}

impl Listener {
    /// Binds `addr`; returns the listener and the address it is bound to
    /// (with the port the system chose for port 0).
    pub fn bind(addr: &Addr) -> io::Result<(Listener, Addr)> {
        let (listener, local) = match addr {
            Addr::Unix(path) => {
                let (listener, file) = unix::bind(path)?;
                (Listener::Unix { socket: listener, _file: file }, addr.clone())
            }
            Addr::Tcp(_) | Addr::Host { .. } => {
                let candidates = addr.resolve()?;
                let listener = TcpListener::bind(&candidates[..])
                    .map_err(|error| io::Error::new(error.kind(), format!("cannot listen on {addr}: {error}")))?;
                let local = Addr::Tcp(listener.local_addr()?);
                (Listener::Tcp(listener), local)
            }
        };
        // Accepting after a poll must not block: the connection may be gone.
        match &listener {
            Listener::Tcp(socket) => socket.set_nonblocking(true)?,
            Listener::Unix { socket, .. } => socket.set_nonblocking(true)?,
        }
        Ok((listener, local))
    }

    fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Listener::Tcp(socket) => socket.as_fd(),
            Listener::Unix { socket, .. } => socket.as_fd(),
        }
    }

    /// Accepts one connection, or `WouldBlock`.
    fn accept(&self) -> io::Result<(Transport, Peer)> {
        match self {
            Listener::Tcp(socket) => {
                let (stream, peer) = socket.accept()?;
                // Some systems pass the listener's non-blocking mode on.
                stream.set_nonblocking(false)?;
                // Requests and answers are small and awaited: no Nagle delay.
                stream.set_nodelay(true)?;
                Ok((Transport::tcp(stream)?, Peer::Tcp(peer)))
            }
            Listener::Unix { socket, .. } => {
                let (stream, peer) = socket.accept()?;
                stream.set_nonblocking(false)?;
                Ok((Transport::unix(stream)?, Peer::Unix(peer.as_pathname().map(Into::into))))
            }
        }
    }
}

/// What an acceptor thread works with.
pub(crate) struct Acceptor {
    pub number: usize,
    pub listener: Listener,
    pub alarm: Alarm,
    pub accepted: Sender<Accepted>,
    /// Disconnects at shutdown, which frees a hand-off blocked on a full
    /// queue.
    pub stop: Receiver<()>,
    /// For log lines.
    pub name: String,
}

impl Acceptor {
    /// Accepts until the alarm rings; returns the listener, whose socket
    /// file the server removes when it is done.
    pub fn run(self) -> Listener {
        loop {
            match self.alarm.wait(self.listener.fd(), None) {
                Ok(Woken::Ready) => {}
                Ok(_) => return self.listener,
                Err(error) => {
                    log::error!("{}: cannot wait for connections: {error}; pausing", self.name);
                    if self.pause() {
                        return self.listener;
                    }
                    continue;
                }
            }
            if !self.accept_ready() {
                return self.listener;
            }
        }
    }

    /// Accepts what is ready; false once shutdown has begun.
    fn accept_ready(&self) -> bool {
        loop {
            match self.listener.accept() {
                Ok((transport, peer)) => {
                    let accepted = Accepted { transport, peer, listener: self.number };
                    crossbeam_channel::select! {
                        send(self.accepted, accepted) -> sent => if sent.is_err() { return false },
                        recv(self.stop) -> _ => return false,
                    }
                }
                Err(error) => match error.kind() {
                    io::ErrorKind::WouldBlock => return true,
                    // The peer gave up before we accepted: nothing to do.
                    io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset | io::ErrorKind::Interrupted => {}
                    _ if out_of_resources(&error) => {
                        log::warn!("{}: cannot accept: {error}; pausing for {OUT_OF_RESOURCES_PAUSE:?}", self.name);
                        return !self.pause();
                    }
                    _ => {
                        log::warn!("{}: accept failed: {error}", self.name);
                        return !self.pause();
                    }
                },
            }
        }
    }

    /// Waits a moment, or until shutdown (true).
    fn pause(&self) -> bool {
        !matches!(self.alarm.sleep(OUT_OF_RESOURCES_PAUSE), Ok(Woken::TimedOut))
    }
}

fn out_of_resources(error: &io::Error) -> bool {
    matches!(error.raw_os_error(), Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM))
}
