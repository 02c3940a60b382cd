//! A child process, talked to over its stdin and stdout.

use std::io;
use std::process::{Command, Stdio};
use std::sync::Arc;

use super::base::Transport;
use super::pipe::enlarge_pipe;
use super::process::{ChildProcess, StderrTail};

impl Transport {
    /// Starts `command` with piped stdin and stdout (stderr is left as the
    /// command has it, inherited by default) and talks to it over them. At
    /// close its stdin is closed, and the child is waited for, and killed if
    /// it outlives close's deadline; [`Finished::exit_status`] reports how it
    /// ended. When its stream ends first, waiting callers get
    /// [`ConnectionError::Child`](crate::ConnectionError::Child) with its exit
    /// status.
    ///
    /// [`Finished::exit_status`]: crate::Finished::exit_status
    ///
    /// # Errors
    /// When the child cannot be started; the error names the program.
    pub fn spawn(command: &mut Command) -> io::Result<Transport> {
        start(command, None)
    }

    /// [`Transport::spawn`], with the child's stderr piped through a thread
    /// that forwards each line to this process's stderr as it arrives and
    /// keeps the last `keep_lines`: when the child's stream ends, waiting
    /// callers get them with its exit status (the usual explanation of a
    /// helper process that died).
    ///
    /// # Errors
    /// As [`Transport::spawn`].
    pub fn spawn_forwarding_stderr(command: &mut Command, keep_lines: usize) -> io::Result<Transport> {
        start(command, Some(keep_lines))
    }
}

fn start(command: &mut Command, keep_stderr: Option<usize>) -> io::Result<Transport> {
    let program = command.get_program().to_string_lossy().into_owned();
    command.stdin(Stdio::piped()).stdout(Stdio::piped());
    if keep_stderr.is_some() {
        command.stderr(Stdio::piped());
    }
    let mut child =
        command.spawn().map_err(|error| io::Error::new(error.kind(), format!("cannot start {program:?}: {error}")))?;
    let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(io::Error::other(format!("{program:?} has no piped stdio")));
    };
    let stderr = match (keep_stderr, child.stderr.take()) {
        (Some(keep), Some(stderr)) => {
            let name = format!("{}-stderr", short_name(&program));
            match StderrTail::start(name, stderr, keep) {
                Ok(tail) => Some(tail),
                Err(error) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(error);
                }
            }
        }
        _ => None,
    };
    enlarge_pipe(&stdin);
    enlarge_pipe(&stdout);
    let child = Arc::new(ChildProcess::new(program, child, stderr));
    let killer = Arc::clone(&child);
    let mut transport = Transport::with_fd_reader(stdout, stdin).with_interrupt(move || killer.kill());
    transport.hooks.child = Some(child);
    transport.hooks.close_streams = true;
    transport.hooks.writes_to_pipe = true;
    Ok(transport)
}

/// The program's file name, cut so that `NAME-stderr` fits the 15 bytes
/// Linux keeps of a thread's name.
fn short_name(program: &str) -> String {
    let base = program.rsplit('/').next().unwrap_or(program);
    base.chars().take(8).collect()
}
