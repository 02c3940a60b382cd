//! Reading with a deadline: a stream whose read half is a file descriptor
//! can be asked whether it has bytes, and how many, before a read, so that
//! no read blocks past a deadline. A caller waiting for its answer reads the
//! stream itself this way while nobody else does (see `conn::serve::lead`):
//! it must stop at its own deadline, and may give the stream back in the
//! middle of a frame (a [`PacketReader`](crate::wire::PacketReader) resumes
//! it). This is the [`Gate`](crate::wire::Gate) of its reads.

use std::io;
use std::time::Instant;

use crate::wire::Gated;

/// The descriptor of a read half, to wait on. Its owner is the read half
/// itself, which lives as long as the reading state holding both.
#[cfg(unix)]
pub(crate) type Fd = std::os::fd::RawFd;
/// No descriptors to wait on off Unix.
#[cfg(not(unix))]
pub(crate) type Fd = std::convert::Infallible;

/// A read half's descriptor, as the connection may use it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Readable {
    pub fd: Fd,
    /// The read half is this descriptor and nothing more (no bytes of its
    /// own, no work in its reads): one that the library opened. Reads may
    /// then go to the descriptor itself, as reads that cannot block (see
    /// [`gate`]). Not a reader the application brought
    /// ([`Transport::from_fd_reader`](crate::Transport::from_fd_reader)),
    /// whose reads may do more. Cleared once such a read turns out not to
    /// be supported.
    pub direct: bool,
}

/// Where a caller reading for itself runs, which decides whether it looks
/// before it waits, and whether it gives way first (see [`gate`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cpu {
    /// Several CPUs: the peer runs beside the caller.
    Several,
    /// One CPU, shared with other callers of the connection that wait too:
    /// given way to, they would run before the peer.
    Shared,
    /// One CPU, and the caller's request the only one its connection's
    /// callers wait for: the thread that its request woke is likely the
    /// peer, which runs only when the caller gives way.
    Alone,
}

/// The gate of a read of `readable` into `buf` that gives up at `until`
/// (see [`Gate`](crate::wire::Gate)): [`WouldBlock`](io::ErrorKind::WouldBlock)
/// once the deadline has passed with nothing to read.
///
/// A descriptor the library opened is read here, with reads that cannot
/// block, where asking first (a wait for readiness, or a count) and then
/// reading would be two system calls for one:
/// - in the middle of a payload, whose rest the peer is likely writing
///   now, always;
/// - at a frame's start, on one CPU: a caller reading its own answer finds
///   it there once the peer has run, and a caller [`Cpu::Alone`] gives way
///   to the peer once before it waits. On several CPUs the answer is rarely
///   there at the first look, and a read that found nothing would be a call
///   more: the wait comes first.
pub(crate) fn gate(
    readable: &mut Readable,
    until: Instant,
    buf: &mut [u8],
    exact: bool,
    cpu: Cpu,
) -> io::Result<Gated> {
    if readable.direct && !buf.is_empty() && (exact || cpu != Cpu::Several) {
        if let Some(read) = read_or_wait(readable, until, buf, cpu == Cpu::Alone)? {
            return Ok(Gated::Read(read));
        }
    }
    counted_gate(readable.fd, until, exact).map(Gated::Ready)
}

/// Reads what is there into `buf` with reads that cannot block, waiting
/// until `until` for something if nothing is: how many bytes, or `None` if
/// such reads are not to be had here after all.
/// `give_way`: once, before the first wait.
fn read_or_wait(readable: &mut Readable, until: Instant, buf: &mut [u8], give_way: bool) -> io::Result<Option<usize>> {
    let mut gave_way = !give_way;
    let mut waited = false;
    loop {
        match read_now(readable.fd, buf) {
            Ok(n) => return Ok(Some(n)),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                if !gave_way {
                    gave_way = true;
                    std::thread::yield_now();
                } else if !waited {
                    if !wait_readable(readable.fd, until)? {
                        return Err(io::ErrorKind::WouldBlock.into());
                    }
                    waited = true;
                } else {
                    // Ready, yet not for a read that cannot block (a file
                    // whose pages are not in memory, say): one that may
                    // wait.
                    return Ok(None);
                }
            }
            Err(error) if unsupported(&error) => {
                readable.direct = false;
                return Ok(None);
            }
            Err(error) => return Err(error),
        }
    }
}

/// How many bytes may be read from `fd` now, asked before a read, or
/// [`WouldBlock`](io::ErrorKind::WouldBlock) at `until` with nothing there.
fn counted_gate(fd: Fd, until: Instant, exact: bool) -> io::Result<usize> {
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
    if !wait_readable(fd, until)? {
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

/// Reads what `fd` has now into `buf` without waiting for more, whatever
/// the descriptor's own blocking mode (which other holders of it may
/// rely on): `RWF_NOWAIT`, which pipes and sockets take.
#[cfg(all(target_os = "linux", any(target_env = "gnu", target_env = "musl")))]
fn read_now(fd: Fd, buf: &mut [u8]) -> io::Result<usize> {
    let entry = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    // SAFETY: one iovec describing `buf`, which is valid for writes of its
    // length for the whole call; offset -1 reads at the descriptor's
    // position as read(2) does; the descriptor is kept open by the read
    // half that owns it, which outlives this call.
    let n = unsafe { libc::preadv2(fd, &entry, 1, -1, libc::RWF_NOWAIT) };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

/// Elsewhere no read can be asked not to block without changing the
/// descriptor for every holder: the count and wait of [`counted_gate`].
#[cfg(all(unix, not(all(target_os = "linux", any(target_env = "gnu", target_env = "musl")))))]
fn read_now(_fd: Fd, _buf: &mut [u8]) -> io::Result<usize> {
    Err(io::ErrorKind::Unsupported.into())
}

#[cfg(not(unix))]
fn read_now(fd: Fd, _buf: &mut [u8]) -> io::Result<usize> {
    match fd {}
}

/// A read that cannot block is not to be had from this descriptor (or
/// kernel): `EOPNOTSUPP` from a file without it, `EINVAL` and `ENOSYS` from
/// kernels older than the flag or the call, `EPERM` from a sandbox's
/// system-call filter that does not allow the call.
fn unsupported(error: &io::Error) -> bool {
    #[cfg(unix)]
    if matches!(error.raw_os_error(), Some(libc::EOPNOTSUPP | libc::EINVAL | libc::ENOSYS | libc::EPERM)) {
        return true;
    }
    error.kind() == io::ErrorKind::Unsupported
}

/// Waits until `fd` has something to read (bytes, its end, an error) or
/// `until` passes; whether it has.
#[cfg(unix)]
fn wait_readable(fd: Fd, until: Instant) -> io::Result<bool> {
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
    // `count`; the descriptor is open (see `wait_readable`).
    if unsafe { libc::ioctl(fd, libc::FIONREAD, &mut count) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(usize::try_from(count).unwrap_or(0))
}

#[cfg(not(unix))]
fn wait_readable(fd: Fd, _until: Instant) -> io::Result<bool> {
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

    fn counting(fd: Fd) -> Readable {
        Readable { fd, direct: false }
    }

    #[test]
    fn the_gate_waits_until_its_deadline_and_counts_what_is_there() {
        let (reader, mut writer) = io::pipe().unwrap();
        let mut readable = counting(reader.as_raw_fd());
        let started = Instant::now();
        let error =
            gate(&mut readable, Instant::now() + Duration::from_millis(5), &mut [0; 8], false, Cpu::Alone).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::WouldBlock);
        assert!(started.elapsed() >= Duration::from_millis(5), "not before its deadline");
        writer.write_all(b"hello").unwrap();
        assert_eq!(
            gate(&mut readable, Instant::now(), &mut [0; 8], false, Cpu::Alone).unwrap(),
            Gated::Ready(usize::MAX)
        );
        assert_eq!(gate(&mut readable, Instant::now(), &mut [0; 8], true, Cpu::Alone).unwrap(), Gated::Ready(5));
        drop(writer);
        drop(reader);
    }

    #[test]
    fn only_errors_of_a_missing_read_that_cannot_block_turn_it_off() {
        for code in [libc::EOPNOTSUPP, libc::EINVAL, libc::ENOSYS, libc::EPERM] {
            assert!(unsupported(&io::Error::from_raw_os_error(code)), "{code}");
        }
        assert!(unsupported(&io::ErrorKind::Unsupported.into()));
        for code in [libc::EBADF, libc::EIO, libc::ECONNRESET, libc::EAGAIN] {
            assert!(!unsupported(&io::Error::from_raw_os_error(code)), "{code}");
        }
    }

    /// A descriptor that refuses reads that cannot block (a file of
    /// `/proc`) turns them off, and the gate counts instead; a read that
    /// fails otherwise (a bad descriptor) is the read's error.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_refused_read_that_cannot_block_falls_back_to_counting() {
        let file = std::fs::File::open("/proc/self/stat").unwrap();
        let mut refusing = Readable { fd: file.as_raw_fd(), direct: true };
        assert_eq!(
            gate(&mut refusing, Instant::now(), &mut [0; 8], false, Cpu::Alone).unwrap(),
            Gated::Ready(usize::MAX)
        );
        assert!(!refusing.direct, "turned off once refused");
        let mut closed = Readable { fd: -1, direct: true };
        let error = gate(&mut closed, Instant::now(), &mut [0; 8], false, Cpu::Alone).unwrap_err();
        assert_eq!(error.raw_os_error(), Some(libc::EBADF));
        assert!(closed.direct, "a bad descriptor is an error, not a refusal");
    }

    #[test]
    fn the_end_of_a_stream_is_something_to_read() {
        let (reader, writer) = io::pipe().unwrap();
        drop(writer);
        let mut readable = counting(reader.as_raw_fd());
        assert_eq!(gate(&mut readable, Instant::now(), &mut [0; 8], true, Cpu::Alone).unwrap(), Gated::Ready(1));
        let mut direct = Readable { direct: true, ..readable };
        assert_eq!(gate(&mut direct, Instant::now(), &mut [0; 8], false, Cpu::Alone).unwrap(), Gated::Read(0));
    }

    /// A descriptor the library opened is read by the gate, without
    /// blocking and at once when bytes are there, and waited on with a
    /// deadline when none are; with no buffer to read into, it counts. On
    /// several CPUs a frame's start is waited for first, then read as
    /// before.
    #[test]
    fn a_direct_gate_reads_what_is_there_and_waits_for_the_rest() {
        let (reader, mut writer) = io::pipe().unwrap();
        let mut readable = Readable { fd: reader.as_raw_fd(), direct: true };
        writer.write_all(b"x").unwrap();
        assert_eq!(
            gate(&mut readable, Instant::now(), &mut [0; 8], false, Cpu::Several).unwrap(),
            Gated::Ready(usize::MAX)
        );
        assert_eq!(gate(&mut readable, Instant::now(), &mut [0; 8], true, Cpu::Several).unwrap(), Gated::Read(1));
        let mut buf = [0; 8];
        let started = Instant::now();
        let error =
            gate(&mut readable, Instant::now() + Duration::from_millis(5), &mut buf, false, Cpu::Alone).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::WouldBlock);
        assert!(started.elapsed() >= Duration::from_millis(5), "not before its deadline");
        writer.write_all(b"hello, world").unwrap();
        assert_eq!(gate(&mut readable, Instant::now(), &mut buf, true, Cpu::Alone).unwrap(), Gated::Read(8));
        assert_eq!(&buf, b"hello, w");
        assert_eq!(gate(&mut readable, Instant::now(), &mut [], true, Cpu::Alone).unwrap(), Gated::Ready(4));
        assert_eq!(gate(&mut readable, Instant::now(), &mut buf, false, Cpu::Alone).unwrap(), Gated::Read(4));
        assert_eq!(&buf[..4], b"orld");
        // Bytes written while the gate waits (or just before) end the wait.
        let (go, started) = std::sync::mpsc::channel();
        let late = std::thread::spawn(move || {
            started.recv().unwrap();
            writer.write_all(b"late").unwrap();
            writer
        });
        go.send(()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        assert_eq!(gate(&mut readable, deadline, &mut buf, false, Cpu::Alone).unwrap(), Gated::Read(4));
        assert_eq!(&buf[..4], b"late");
        drop(late.join().unwrap());
        assert!(readable.direct, "pipes take reads that cannot block");
    }
}
