//! What std does not offer: waiting for a descriptor to become readable,
//! or for a child to exit, within a bound.

use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::process::{Child, ExitStatus};
use std::thread;
use std::time::{Duration, Instant};

/// The child's exit status once it exits, or `None` at the deadline. std
/// has no timed wait on a child: it is polled, briefly at first, since
/// callers ask when it is about to exit.
pub fn wait_until(child: &mut Child, deadline: Instant) -> Option<ExitStatus> {
    let mut pause = Duration::from_micros(100);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        thread::sleep(pause.min(left));
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// Whether `fd` has something to read (data, or its end) within `timeout`.
pub fn readable(fd: &impl AsFd, timeout: Duration) -> io::Result<bool> {
    let mut pollfd = libc::pollfd { fd: fd.as_fd().as_raw_fd(), events: libc::POLLIN, revents: 0 };
    let millis = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: one pollfd, valid for the call, with a descriptor the caller
    // keeps open through it.
    let ready = unsafe { libc::poll(&mut pollfd, 1, millis) };
    match ready {
        -1 => {
            let error = io::Error::last_os_error();
            if error.kind() == io::ErrorKind::Interrupted {
                Ok(false)
            } else {
                Err(error)
            }
        }
        0 => Ok(false),
        _ => Ok(true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_child_is_waited_for_within_the_bound() {
        let mut quick = std::process::Command::new("true").spawn().unwrap();
        let status = wait_until(&mut quick, Instant::now() + Duration::from_secs(30));
        assert!(status.is_some_and(|status| status.success()));
        let mut slow = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        assert_eq!(wait_until(&mut slow, Instant::now() + Duration::from_millis(50)), None);
        slow.kill().unwrap();
        slow.wait().unwrap();
    }

    #[test]
    fn a_pipe_becomes_readable() {
        let (reader, mut writer) = io::pipe().unwrap();
        assert!(!readable(&reader, Duration::from_millis(10)).unwrap());
        writer.write_all(b"x").unwrap();
        assert!(readable(&reader, Duration::from_secs(5)).unwrap());
        drop(writer);
        assert!(readable(&reader, Duration::from_secs(5)).unwrap());
    }
}
