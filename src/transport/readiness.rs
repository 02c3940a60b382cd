//! Reading with a deadline: a stream whose read half is a file descriptor
//! can be asked whether it has bytes, and how many, before a read, so that
//! no read blocks past a deadline. A caller waiting for its answer reads the
//! stream itself this way while nobody else does (see `conn::serve::lead`):
//! it must stop at its own deadline, and may give the stream back in the
//! middle of a frame (a [`PacketReader`](crate::wire::PacketReader) resumes
//! it). This is the [`Gate`](crate::wire::Gate) of its reads.

use std::io;
use std::time::Instant;

/// The descriptor of a read half, to wait on. Its owner is the read half
/// itself, which lives as long as the reading state holding both.
#[cfg(unix)]
pub(crate) type Fd = std::os::fd::RawFd;
/// No descriptors to wait on off Unix.
#[cfg(not(unix))]
pub(crate) type Fd = std::convert::Infallible;

/// The gate of a read of `fd` that gives up at `until`: how many bytes may
/// be read now (see [`Gate`](crate::wire::Gate)), or
/// [`WouldBlock`](io::ErrorKind::WouldBlock) once the deadline has passed
/// with nothing to read.
pub(crate) fn gate(fd: Fd, until: Instant, exact: bool) -> io::Result<usize> {
    if exact {
        // In the middle of a payload, whose rest the peer is likely writing
        // now: how much is there is asked first. That waits on the pipe's
        // (or socket's) lock while a write copies, on the CPU, and returns
        // as it ends, where a wait for readiness sleeps and is woken only
        // after it, a thread wake-up later (tens of microseconds on a
        // virtual machine whose other CPU went idle).
        let there = available(fd)?;
        if there > 0 {
            return Ok(there);
        }
    }
    if !readable(fd, until)? {
        return Err(io::ErrorKind::WouldBlock.into());
    }
    if !exact {
        // One read call returns whatever is there.
        return Ok(usize::MAX);
    }
    // Nothing there though readable: the end of the stream, or an error,
    // which one read shows.
    Ok(available(fd)?.max(1))
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

/// How many bytes `fd` has to read now.
#[cfg(unix)]
fn available(fd: Fd) -> io::Result<usize> {
    let mut count: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int through the pointer, which points at
    // `count`; the descriptor is open (see `readable`).
    if unsafe { libc::ioctl(fd, libc::FIONREAD, &mut count) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(usize::try_from(count).unwrap_or(0))
}

#[cfg(not(unix))]
fn readable(fd: Fd, _until: Instant) -> io::Result<bool> {
    match fd {}
}

#[cfg(not(unix))]
fn available(fd: Fd) -> io::Result<usize> {
    match fd {}
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::time::Duration;

    #[test]
    fn the_gate_waits_until_its_deadline_and_counts_what_is_there() {
        let (reader, mut writer) = io::pipe().unwrap();
        let fd = reader.as_raw_fd();
        let started = Instant::now();
        let error = gate(fd, Instant::now() + Duration::from_millis(5), false).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::WouldBlock);
        assert!(started.elapsed() >= Duration::from_millis(5), "not before its deadline");
        writer.write_all(b"hello").unwrap();
        assert_eq!(gate(fd, Instant::now(), false).unwrap(), usize::MAX);
        assert_eq!(gate(fd, Instant::now(), true).unwrap(), 5);
        drop(writer);
        drop(reader);
    }

    #[test]
    fn the_end_of_a_stream_is_something_to_read() {
        let (reader, writer) = io::pipe().unwrap();
        drop(writer);
        assert_eq!(gate(reader.as_raw_fd(), Instant::now(), true).unwrap(), 1);
    }
}
