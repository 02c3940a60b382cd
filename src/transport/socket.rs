//! Sockets: TCP and Unix stream sockets, read and written through two
//! handles of the one socket, and shut down when close must give up.

use std::io;
use std::net::{Shutdown, TcpStream};

use super::base::Transport;

impl Transport {
    /// A TCP stream, read and written through two handles of the one socket.
    /// If close has to give up on the peer, the socket is shut down.
    ///
    /// # Errors
    /// When the handle cannot be cloned.
    pub fn tcp(stream: TcpStream) -> io::Result<Transport> {
        let interrupter = stream.try_clone()?;
        let reader = stream.try_clone()?;
        Ok(Transport::with_fd_reader(reader, stream).with_interrupt(move || {
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
        Ok(Transport::with_fd_reader(reader, stream).with_interrupt(move || {
            let _ = interrupter.shutdown(Shutdown::Both);
        }))
    }
}
