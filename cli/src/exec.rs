//! `serve --exec`: a request answered by a shell command, run once for it.

use std::io::{self, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use packetstream::{Failure, Request, Response};

use crate::sys::wait_until;

/// The largest answer: a response's header (tag, bits, channel) takes at
/// most 30 bytes of the default frame limit that peers hold to.
const MAX_ANSWER: usize = packetstream::wire::DEFAULT_MAX_PACKET_SIZE - 30;

/// A command that answers requests.
#[derive(Debug, Clone)]
pub struct Exec {
    /// The shell command, for `sh -c`.
    pub command: String,
    /// How long one run may take.
    pub timeout: Duration,
}

/// How a run ended.
enum End {
    Exited(ExitStatus),
    TimedOut,
}

impl Exec {
    /// Runs the command for `rq`: its payload on the command's stdin, its
    /// type, flags, channel and tag in the environment. Exit 0 answers ok
    /// with stdout; anything else fails with stderr, or with how it ended
    /// when stderr is empty.
    pub fn answer(&self, rq: Request) -> Result<Response, Failure> {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(&self.command)
            .env("PACKETSTREAM_RQ_TYPE", rq.rq_type.to_string())
            .env("PACKETSTREAM_FLAGS", rq.flags.to_string())
            .env("PACKETSTREAM_CHANNEL", rq.channel.to_string())
            .env("PACKETSTREAM_TAG", rq.tag.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so that a timeout ends whatever it
            // started too, and nothing holds its pipes open after.
            .process_group(0)
            .spawn()
            .map_err(|error| Failure::new(format!("cannot run sh -c {:?}: {error}", self.command)))?;
        let (stdout, stderr, end) = self.collect(&mut child, rq.payload);
        let stdout = stdout.map_err(|error| Failure::new(format!("cannot read the command's stdout: {error}")))?;
        let stderr = stderr.map_err(|error| Failure::new(format!("cannot read the command's stderr: {error}")))?;
        match end {
            // An answer over the peer's frame limit would end the connection
            // at the peer: the request fails instead, saying why.
            End::Exited(status) if status.success() && stdout.len() > MAX_ANSWER => Err(Failure::new(format!(
                "{:?} wrote {} bytes, more than an answer can carry ({MAX_ANSWER})",
                self.command,
                stdout.len()
            ))),
            End::Exited(status) if status.success() => Ok(Response { flags: 0, payload: stdout }),
            _ if !stderr.is_empty() => Err(Failure::with_flags(0, stderr)),
            End::Exited(status) => Err(Failure::new(describe(&self.command, status))),
            End::TimedOut => Err(Failure::new(format!(
                "{:?} was still running after {} s and was killed",
                self.command,
                self.timeout.as_secs_f64()
            ))),
        }
    }

    /// Feeds the child and reads it on threads of their own, within the
    /// timeout; a child over it is killed with its process group.
    fn collect(&self, child: &mut Child, payload: Vec<u8>) -> (io::Result<Vec<u8>>, io::Result<Vec<u8>>, End) {
        let deadline = Instant::now() + self.timeout;
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout: ChildStdout = child.stdout.take().expect("piped stdout");
        let stderr: ChildStderr = child.stderr.take().expect("piped stderr");
        thread::scope(|scope| {
            let feeder = thread::Builder::new().name("exec-stdin".into()).spawn_scoped(scope, move || {
                let mut stdin = stdin;
                // A command that does not read its input closes the pipe
                // early: not an error of the request.
                match stdin.write_all(&payload) {
                    Err(error) if error.kind() != io::ErrorKind::BrokenPipe => Err(error),
                    _ => Ok(()),
                }
            });
            let (out_rx, out_thread) = read_all(scope, "exec-stdout", stdout);
            let (err_rx, err_thread) = read_all(scope, "exec-stderr", stderr);
            let mut timed_out = false;
            let out = receive(&out_rx, deadline, &mut timed_out);
            let err = receive(&err_rx, deadline, &mut timed_out);
            let status = if timed_out { None } else { wait_until(child, deadline) };
            let end = match status {
                Some(status) => End::Exited(status),
                None => {
                    kill_group(child);
                    End::TimedOut
                }
            };
            // Killed, the group's pipes close and the threads end.
            let _ = child.wait();
            let out = out.unwrap_or_else(|| out_rx.recv().unwrap_or_else(|_| Ok(Vec::new())));
            let err = err.unwrap_or_else(|| err_rx.recv().unwrap_or_else(|_| Ok(Vec::new())));
            let fed = feeder.map(|feeder| feeder.join());
            let _ = (out_thread.map(|t| t.join()), err_thread.map(|t| t.join()));
            let out = match fed {
                Ok(Ok(Err(error))) => Err(error),
                Err(error) => Err(error),
                _ => out,
            };
            (out, err, end)
        })
    }
}

type Reading<'scope> = (Receiver<io::Result<Vec<u8>>>, io::Result<thread::ScopedJoinHandle<'scope, ()>>);

/// Reads `from` to its end on a thread of `scope`, the bytes sent on the channel.
fn read_all<'scope, R: Read + Send + 'scope>(
    scope: &'scope thread::Scope<'scope, '_>,
    name: &str,
    mut from: R,
) -> Reading<'scope> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    let spawned = thread::Builder::new().name(name.into()).spawn_scoped(scope, move || {
        let mut bytes = Vec::new();
        let _ = tx.send(from.read_to_end(&mut bytes).map(|_| bytes));
    });
    (rx, spawned)
}

/// The bytes of one reader, if they came by the deadline; notes a timeout.
fn receive(rx: &Receiver<io::Result<Vec<u8>>>, deadline: Instant, timed_out: &mut bool) -> Option<io::Result<Vec<u8>>> {
    if *timed_out {
        return None;
    }
    match rx.recv_deadline(deadline) {
        Ok(bytes) => Some(bytes),
        Err(RecvTimeoutError::Timeout) => {
            *timed_out = true;
            None
        }
        Err(RecvTimeoutError::Disconnected) => Some(Err(io::Error::other("the reading thread did not start"))),
    }
}

/// Kills the child's whole process group: `sh` and whatever it started.
fn kill_group(child: &mut Child) {
    if let Ok(pgid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill(2) takes plain integers. The child is not yet reaped,
        // so its pid, and with it the group id, cannot have been reused.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
    let _ = child.kill();
}

/// How a run that wrote nothing on stderr ended, for its failure.
fn describe(command: &str, status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("{command:?} exited with status {code}"),
        (None, Some(signal)) => format!("{command:?} was killed by signal {signal}"),
        (None, None) => format!("{command:?} ended: {status}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(command: &str, payload: &[u8], timeout: Duration) -> Result<Response, Failure> {
        let exec = Exec { command: command.to_owned(), timeout };
        exec.answer(Request::new(0, 7, 3, 9, payload.to_vec()))
    }

    #[test]
    fn stdout_answers_ok_and_stderr_fails() {
        let ok = run("tr a-z A-Z", b"hello", Duration::from_secs(10)).unwrap();
        assert_eq!((ok.flags, ok.payload), (0, b"HELLO".to_vec()));
        let env =
            run("echo $PACKETSTREAM_RQ_TYPE $PACKETSTREAM_FLAGS $PACKETSTREAM_CHANNEL $PACKETSTREAM_TAG", b"", LONG)
                .unwrap();
        assert_eq!(env.payload, b"3 9 0 7\n");
        let failed = run("echo out; echo bad >&2; exit 4", b"", LONG).unwrap_err();
        assert_eq!(failed.payload, b"bad\n");
        let silent = run("exit 5", b"", LONG).unwrap_err();
        assert_eq!(silent.text(), "\"exit 5\" exited with status 5");
        let killed = run("kill -9 $$", b"", LONG).unwrap_err();
        assert_eq!(killed.text(), "\"kill -9 $$\" was killed by signal 9");
    }

    #[test]
    fn an_answer_too_large_for_a_frame_fails() {
        let failed = run("head -c 16777216 /dev/zero", b"", LONG).unwrap_err();
        assert!(failed.text().contains("wrote 16777216 bytes, more than an answer can carry"), "{}", failed.text());
    }

    #[test]
    fn input_it_does_not_read_is_no_error() {
        let big = vec![b'x'; 4 << 20];
        assert_eq!(run("echo done", &big, LONG).unwrap().payload, b"done\n");
    }

    #[test]
    fn a_command_over_its_time_is_killed_with_what_it_started() {
        let started = Instant::now();
        // The background sleep holds stdout open: only the group's kill ends it.
        let failed = run("sleep 30 & sleep 30", b"", Duration::from_millis(300)).unwrap_err();
        assert!(failed.text().contains("still running after 0.3 s"), "{}", failed.text());
        assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    }

    const LONG: Duration = Duration::from_secs(30);
}
