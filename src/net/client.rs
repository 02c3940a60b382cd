//! Connecting to a server: a TCP address (a name tried at each of its
//! addresses) or a Unix path, within a timeout.

use std::io;
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use super::addr::Addr;
use crate::transport::Transport;

/// The connect timeout of an [`Opener`](super::Opener) that has none of its
/// own.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects to `addr` within `timeout` and returns the transport, for
/// [`PacketConnection::new`](crate::PacketConnection::new):
///
/// ```no_run
/// use std::time::Duration;
/// use packetstream::{net, Config, PacketConnection};
/// # fn main() -> Result<(), packetstream::Error> {
/// let transport = net::connect(&"127.0.0.1:7000".parse().unwrap(), Duration::from_secs(2))?;
/// let conn = PacketConnection::new(transport, Config::default())?;
/// # Ok(()) }
/// ```
///
/// A TCP socket gets `TCP_NODELAY` (requests are small and awaited). A
/// name that resolves to several addresses is tried at each in turn, within
/// the one timeout.
///
/// # Errors
/// The connect's error, naming the address (`TimedOut` when the time ran
/// out).
pub fn connect(addr: &Addr, timeout: Duration) -> io::Result<Transport> {
    let named = |error: io::Error| io::Error::new(error.kind(), format!("cannot connect to {addr}: {error}"));
    match addr {
        Addr::Unix(path) => Transport::unix(connect_unix(path, timeout).map_err(named)?),
        Addr::Tcp(_) | Addr::Host { .. } => {
            let deadline = Instant::now() + timeout;
            let mut last = None;
            for candidate in addr.resolve()? {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                match TcpStream::connect_timeout(&candidate, left) {
                    Ok(stream) => {
                        stream.set_nodelay(true)?;
                        return Transport::tcp(stream);
                    }
                    Err(error) => last = Some(error),
                }
            }
            Err(named(last.unwrap_or_else(|| io::ErrorKind::TimedOut.into())))
        }
    }
}

/// A Unix-socket connect that gives up after `timeout`: it blocks only
/// while the listener's backlog is full, and Linux bounds that wait by the
/// socket's send timeout, which std cannot set before connecting.
#[cfg(target_os = "linux")]
fn connect_unix(path: &Path, timeout: Duration) -> io::Result<UnixStream> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::ffi::OsStrExt;

    let bytes = path.as_os_str().as_bytes();
    // SAFETY: sockaddr_un is plain data, for which all zeroes is valid.
    let mut address: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    if bytes.len() >= address.sun_path.len() || bytes.contains(&0) {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a usable Unix socket path"));
    }
    address.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (to, &from) in address.sun_path.iter_mut().zip(bytes) {
        *to = from as libc::c_char;
    }
    // SAFETY: socket(2) takes no pointers.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by socket(2) and nothing else owns it.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    // A zero timeout would mean none at all.
    let timeout = timeout.max(Duration::from_micros(1));
    set_send_timeout(&socket, Some(timeout))?;
    let length = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
    // SAFETY: `address` is an initialised sockaddr_un of `length` bytes, and
    // `socket` is open for the call.
    let connected = unsafe { libc::connect(socket.as_raw_fd(), (&raw const address).cast::<libc::sockaddr>(), length) };
    if connected < 0 {
        let error = io::Error::last_os_error();
        return Err(match error.raw_os_error() {
            Some(libc::EAGAIN | libc::EINPROGRESS) => {
                io::Error::new(io::ErrorKind::TimedOut, "the listener's backlog stayed full")
            }
            _ => error,
        });
    }
    // Writes must not time out later.
    set_send_timeout(&socket, None)?;
    Ok(UnixStream::from(socket))
}

#[cfg(target_os = "linux")]
fn set_send_timeout(socket: &std::os::fd::OwnedFd, timeout: Option<Duration>) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let timeout = timeout.unwrap_or_default();
    let value = libc::timeval {
        tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_usec: libc::suseconds_t::from(timeout.subsec_micros() as i32),
    };
    // SAFETY: `value` is an initialised timeval whose size is passed, and
    // `socket` is open for the call.
    let set = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDTIMEO,
            (&raw const value).cast::<libc::c_void>(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if set < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Elsewhere the connect has no timeout of its own: it blocks only while
/// the listener's backlog is full.
#[cfg(not(target_os = "linux"))]
fn connect_unix(path: &Path, _timeout: Duration) -> io::Result<UnixStream> {
    UnixStream::connect(path)
}
