//! Reading with a deadline: a stream whose read half is a file descriptor
//! can be asked whether it has bytes before a read, so that a read need not
//! block past a deadline. A caller waiting for its answer reads the stream
//! itself this way while nobody else does (see `conn::serve::lead`); it must
//! be able to stop at its own deadline, and give the stream back in the
//! middle of a frame (`PacketReader` resumes it).

use std::io::{self, Read};
use std::time::Instant;

use super::base::ReadHalf;

/// The descriptor of a read half, to wait on. Its owner is the read half
/// itself, which lives as long as the reading state holding both.
#[cfg(unix)]
pub(crate) type Fd = std::os::fd::RawFd;
/// No descriptors to wait on off Unix.
#[cfg(not(unix))]
pub(crate) type Fd = std::convert::Infallible;

/// A read half, with a deadline that reads honour when its descriptor is
/// known: past it, a read with nothing to read fails with
/// [`WouldBlock`](io::ErrorKind::WouldBlock) instead of blocking.
pub(crate) struct Deadlined {
    inner: Box<dyn ReadHalf>,
    fd: Option<Fd>,
    until: Option<Instant>,
}

impl Deadlined {
    pub fn new(inner: Box<dyn ReadHalf>, fd: Option<Fd>) -> Self {
        Deadlined { inner, fd, until: None }
    }

    /// Reads from now on give up at `until` (`None`: they block).
    pub fn set_deadline(&mut self, until: Option<Instant>) {
        self.until = until;
    }

    pub fn into_inner(self) -> Box<dyn ReadHalf> {
        self.inner
    }
}

impl Read for Deadlined {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let (Some(until), Some(fd)) = (self.until, self.fd) {
            if !readable(fd, until)? {
                return Err(io::ErrorKind::WouldBlock.into());
            }
        }
        self.inner.read(buf)
    }
}

/// Waits until `fd` has something to read (bytes, its end, an error) or
/// `until` passes; whether it has.
#[cfg(unix)]
fn readable(fd: Fd, until: Instant) -> io::Result<bool> {
    loop {
        let left = until.saturating_duration_since(Instant::now());
        // poll counts in milliseconds: rounded up, so that a wait does not
        // end before its deadline only to be made again.
        let millis = i32::try_from(left.as_micros().div_ceil(1000)).unwrap_or(i32::MAX);
        let mut entry = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        // SAFETY: `entry` is one initialised pollfd, passed with its count;
        // the descriptor is kept open by the read half that owns it, which
        // outlives this call.
        let ready = unsafe { libc::poll(&mut entry, 1, millis) };
        match ready {
            0 if millis == 0 || Instant::now() >= until => return Ok(false),
            0 => continue,
            n if n > 0 => return Ok(true),
            _ => {
                let error = io::Error::last_os_error();
                if error.kind() != io::ErrorKind::Interrupted {
                    return Err(error);
                }
            }
        }
    }
}

#[cfg(not(unix))]
fn readable(fd: Fd, _until: Instant) -> io::Result<bool> {
    match fd {}
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::io::Write;
    use std::time::Duration;

    #[test]
    fn a_read_past_its_deadline_would_block_and_a_later_one_reads() {
        use std::os::fd::AsRawFd;
        let (reader, mut writer) = io::pipe().unwrap();
        let fd = reader.as_raw_fd();
        let mut deadlined = Deadlined::new(Box::new(reader), Some(fd));
        let mut buf = [0; 8];
        deadlined.set_deadline(Some(Instant::now() + Duration::from_millis(5)));
        let started = Instant::now();
        let error = deadlined.read(&mut buf).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::WouldBlock);
        assert!(started.elapsed() >= Duration::from_millis(5), "not before its deadline");
        writer.write_all(b"hi").unwrap();
        assert_eq!(deadlined.read(&mut buf).unwrap(), 2);
        drop(writer);
        // The end of the stream is something to read too.
        assert_eq!(deadlined.read(&mut buf).unwrap(), 0);
    }
}
