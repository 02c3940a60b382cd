//! Waking threads blocked on a listening socket: each waits in `poll(2)`
//! for its socket or for a pipe whose write end shutdown closes. A closed
//! pipe wakes every poller at once, deterministically: no timeout to poll
//! again on, no connection to ourselves that a full backlog could block.

use std::io::{self, PipeReader, PipeWriter};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::sync::Arc;
use std::time::Duration;

/// The end that wakes: dropping it wakes every [`Alarm`].
pub(crate) struct Waker(#[allow(dead_code)] PipeWriter);

/// The end pollers watch, shared by them.
#[derive(Clone)]
pub(crate) struct Alarm(Arc<PipeReader>);

/// Makes a waker and the alarm it rings.
pub(crate) fn alarm() -> io::Result<(Waker, Alarm)> {
    // std makes both ends close-on-exec.
    let (reader, writer) = io::pipe()?;
    Ok((Waker(writer), Alarm(Arc::new(reader))))
}

/// What a wait ended on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Woken {
    /// The watched descriptor is ready.
    Ready,
    /// The waker was dropped.
    Rung,
    /// The timeout passed.
    TimedOut,
}

impl Alarm {
    /// Waits until `fd` is readable (a listener has a connection to accept),
    /// the waker is dropped, or `timeout` passes (`None`: no limit).
    pub fn wait(&self, fd: BorrowedFd<'_>, timeout: Option<Duration>) -> io::Result<Woken> {
        self.poll(Some(fd), timeout)
    }

    /// Waits until the waker is dropped or `timeout` passes.
    pub fn sleep(&self, timeout: Duration) -> io::Result<Woken> {
        self.poll(None, Some(timeout))
    }

    fn poll(&self, fd: Option<BorrowedFd<'_>>, timeout: Option<Duration>) -> io::Result<Woken> {
        let entry = |fd: i32| libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        // The alarm first: a shutdown wins over a waiting connection.
        let mut fds = [entry(self.0.as_fd().as_raw_fd()), entry(fd.map_or(-1, |fd| fd.as_raw_fd()))];
        let count = if fd.is_some() { 2 } else { 1 };
        let millis = match timeout {
            None => -1,
            Some(timeout) => i32::try_from(timeout.as_millis().max(1)).unwrap_or(i32::MAX),
        };
        loop {
            // SAFETY: `fds` is an array of initialised pollfd of which the
            // first `count` are passed; both descriptors are kept open by
            // their owners (`self`, the caller's borrow) for the call.
            let ready = unsafe { libc::poll(fds.as_mut_ptr(), count as libc::nfds_t, millis) };
            if ready < 0 {
                let error = io::Error::last_os_error();
                if error.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(error);
            }
            if ready == 0 {
                return Ok(Woken::TimedOut);
            }
            if fds[0].revents != 0 {
                return Ok(Woken::Rung);
            }
            return Ok(Woken::Ready);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn dropping_the_waker_wakes_a_blocked_wait_and_every_later_one() {
        let (waker, alarm) = alarm().unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let waiting = {
            let alarm = alarm.clone();
            let fd = listener.try_clone().unwrap();
            std::thread::spawn(move || alarm.wait(fd.as_fd(), None).unwrap())
        };
        drop(waker);
        assert_eq!(waiting.join().unwrap(), Woken::Rung);
        assert_eq!(alarm.sleep(Duration::from_secs(10)).unwrap(), Woken::Rung);
    }

    #[test]
    fn a_connection_is_ready_and_a_sleep_times_out() {
        let (_waker, alarm) = alarm().unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let _client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        assert_eq!(alarm.wait(listener.as_fd(), Some(Duration::from_secs(10))).unwrap(), Woken::Ready);
        let started = Instant::now();
        assert_eq!(alarm.sleep(Duration::from_millis(20)).unwrap(), Woken::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(19));
    }
}
