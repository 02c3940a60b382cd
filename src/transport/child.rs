//! A child process, talked to over its stdin and stdout.

use std::io;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::base::Transport;
use super::pipe::enlarge_pipe;

impl Transport {
    /// Starts `command` with piped stdin and stdout (stderr is left as the
    /// command has it, inherited by default) and talks to it over them. At
    /// close its stdin is closed, and the child is waited for, and killed if
    /// it outlives close's deadline; [`Finished::exit_status`] reports how it
    /// ended.
    ///
    /// [`Finished::exit_status`]: crate::Finished::exit_status
    ///
    /// # Errors
    /// When the child cannot be started.
    pub fn spawn(command: &mut Command) -> io::Result<Transport> {
        let mut child = command.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::other("child has no piped stdio"));
        };
        enlarge_pipe(&stdin);
        enlarge_pipe(&stdout);
        let child = Arc::new(Mutex::new(child));
        let killer = Arc::clone(&child);
        let mut transport = Transport::new(stdout, stdin).with_interrupt(move || {
            let _ = killer.lock().kill();
        });
        transport.hooks.child = Some(child);
        transport.hooks.close_streams = true;
        Ok(transport)
    }
}

/// Waits for a child until `deadline`, then kills it. Polls with a growing
/// delay: std offers no timed wait on a child.
pub(crate) fn reap(child: &Mutex<Child>, deadline: Instant) -> io::Result<ExitStatus> {
    let mut delay = Duration::from_millis(1);
    loop {
        if let Some(status) = child.lock().try_wait()? {
            return Ok(status);
        }
        let now = Instant::now();
        if now >= deadline {
            let mut child = child.lock();
            log::debug!("child {} outlived close: killing it", child.id());
            let _ = child.kill();
            return child.wait();
        }
        std::thread::sleep(delay.min(deadline - now));
        delay = (delay * 2).min(Duration::from_millis(50));
    }
}
