//! Pipes and file descriptors: descriptors a program already has (inherited
//! pipe ends, its own stdio), and pipe pairs the library makes.

use std::io;

use super::base::Transport;

impl Transport {
    /// Two owned file descriptors, for example inherited pipe ends. They are
    /// read and written as [`std::fs::File`]s; [`Finished::into_streams`]
    /// hands them back as such.
    ///
    /// [`Finished::into_streams`]: crate::Finished::into_streams
    #[cfg(unix)]
    pub fn fds(read: std::os::fd::OwnedFd, write: std::os::fd::OwnedFd) -> Transport {
        use std::os::unix::fs::FileTypeExt;
        let write = std::fs::File::from(write);
        let into_pipe = write.metadata().is_ok_and(|meta| meta.file_type().is_fifo());
        let mut transport = Transport::with_fd_reader(std::fs::File::from(read), write);
        transport.hooks.writes_to_pipe = into_pipe;
        transport
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
        let (mut a, mut b) = (Transport::with_fd_reader(a_read, a_write), Transport::with_fd_reader(b_read, b_write));
        a.hooks.writes_to_pipe = true;
        b.hooks.writes_to_pipe = true;
        Ok((a, b))
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
pub(super) fn enlarge_pipe(fd: &impl std::os::fd::AsRawFd) {
    // SAFETY: fcntl on a descriptor that `fd` keeps open for the duration of
    // the call; F_SETPIPE_SZ takes an int and touches no memory of ours.
    let result = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_BUFFER) };
    if result < 0 {
        log::debug!("could not enlarge a pipe to {PIPE_BUFFER} bytes: {}", io::Error::last_os_error());
    }
}

#[cfg(not(target_os = "linux"))]
pub(super) fn enlarge_pipe<T>(_: &T) {}

#[cfg(all(test, unix))]
mod tests {
    use std::os::fd::OwnedFd;
    use std::os::unix::net::UnixStream;

    use super::*;

    #[test]
    fn descriptors_say_whether_their_write_half_is_a_pipe() {
        let (read, write) = io::pipe().unwrap();
        let piped = Transport::fds(OwnedFd::from(read), OwnedFd::from(write));
        assert!(piped.hooks.writes_to_pipe);
        let (a, b) = UnixStream::pair().unwrap();
        let socket = Transport::fds(OwnedFd::from(a), OwnedFd::from(b));
        assert!(!socket.hooks.writes_to_pipe, "a socket, which may delay small writes, is not");
        let (one, other) = Transport::pipe_pair().unwrap();
        assert!(one.hooks.writes_to_pipe && other.hooks.writes_to_pipe);
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = std::net::TcpStream::connect(tcp.local_addr().unwrap()).unwrap();
        assert!(!Transport::tcp(stream).unwrap().hooks.writes_to_pipe);
    }

    #[test]
    fn only_descriptors_the_library_reads_itself_are_read_directly() {
        let direct = |transport: &Transport| transport.hooks.readable.map(|readable| readable.direct);
        let (read, write) = io::pipe().unwrap();
        assert_eq!(direct(&Transport::fds(OwnedFd::from(read), OwnedFd::from(write))), Some(true));
        let (one, _other) = Transport::pipe_pair().unwrap();
        assert_eq!(direct(&one), Some(true));
        let (a, _b) = UnixStream::pair().unwrap();
        assert_eq!(direct(&Transport::unix(a).unwrap()), Some(true));
        // A reader the application brought may do more in its reads.
        let (read, write) = io::pipe().unwrap();
        assert_eq!(direct(&Transport::from_fd_reader(read, write)), Some(false));
        let (read, write) = io::pipe().unwrap();
        assert_eq!(direct(&Transport::new(read, write)), None);
    }
}
