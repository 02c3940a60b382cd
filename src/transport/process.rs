//! A child process at the other end of a transport: its reaping, and what
//! it tells about itself when its stream ends (how it exited, the last
//! lines it wrote to stderr).

use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::threads::{self, Thread};

/// How long a report waits for the child to exit after its stream ended:
/// a child that closes its stdout is usually exiting, and its status is the
/// most useful thing to tell the callers.
const EXIT_WAIT: Duration = Duration::from_millis(200);

/// How long a report waits for the child's last stderr lines to be read.
const STDERR_WAIT: Duration = Duration::from_millis(100);

/// The longest stderr line kept, in bytes.
const LINE_MAX: usize = 1024;

/// The child process of a [`Transport::spawn`](crate::Transport::spawn).
pub(crate) struct ChildProcess {
    program: String,
    child: Mutex<Child>,
    stderr: Option<StderrTail>,
}

/// What a child process says about itself when its stream ended.
pub(crate) struct ChildReport {
    pub program: String,
    /// `None` if it is still running.
    pub status: Option<ExitStatus>,
    /// Its last lines on stderr, oldest first, if they were kept.
    pub stderr: Vec<String>,
}

impl ChildProcess {
    pub fn new(program: String, child: Child, stderr: Option<StderrTail>) -> Self {
        ChildProcess { program, child: Mutex::new(child), stderr }
    }

    /// Kills the child (to interrupt a stream it holds).
    pub fn kill(&self) {
        let _ = self.child.lock().kill();
    }

    /// How the child is doing, waiting a little for it to exit and for its
    /// last stderr lines. Runs on the thread that found the stream ended.
    pub fn report(&self) -> ChildReport {
        let deadline = Instant::now() + EXIT_WAIT;
        let status = loop {
            match self.child.lock().try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if Instant::now() < deadline => {}
                _ => break None,
            }
            // std has no timed wait on a child: poll it.
            std::thread::sleep(Duration::from_millis(1));
        };
        let stderr = match &self.stderr {
            Some(tail) => tail.lines(if status.is_some() { STDERR_WAIT } else { Duration::ZERO }),
            None => Vec::new(),
        };
        ChildReport { program: self.program.clone(), status, stderr }
    }

    /// Waits for the child until `deadline`, then kills it, and lets the
    /// thread that forwards its stderr end (waiting for that too, until
    /// `deadline`: a grandchild can hold the pipe open, and is not ours to
    /// wait for).
    pub fn reap(&self, deadline: Instant) -> io::Result<ExitStatus> {
        let status = reap(&self.child, deadline);
        if let Some(tail) = &self.stderr {
            tail.finish(deadline.max(Instant::now() + STDERR_WAIT));
        }
        status
    }
}

/// Waits for a child until `deadline`, then kills it. Polls with a growing
/// delay: std offers no timed wait on a child.
fn reap(child: &Mutex<Child>, deadline: Instant) -> io::Result<ExitStatus> {
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

/// The last lines a child wrote to stderr, read (and forwarded to ours as
/// they arrive) by a thread of their own.
pub(crate) struct StderrTail {
    shared: std::sync::Arc<Lines>,
    thread: Mutex<Option<Thread<()>>>,
}

struct Lines {
    kept: Mutex<LinesState>,
    ended: Condvar,
}

struct LinesState {
    lines: VecDeque<String>,
    keep: usize,
    ended: bool,
}

impl StderrTail {
    /// Starts a thread called `name` that reads `stderr` line by line,
    /// writes each line to this process's stderr, and keeps the last `keep`.
    pub fn start(name: String, stderr: impl Read + Send + 'static, keep: usize) -> io::Result<StderrTail> {
        let shared = std::sync::Arc::new(Lines {
            kept: Mutex::new(LinesState { lines: VecDeque::new(), keep, ended: false }),
            ended: Condvar::new(),
        });
        let lines = std::sync::Arc::clone(&shared);
        let thread = threads::spawn(name, None, move || forward(stderr, &lines))?;
        Ok(StderrTail { shared, thread: Mutex::new(Some(thread)) })
    }

    /// The lines kept, once the stream has ended or `wait` has passed.
    fn lines(&self, wait: Duration) -> Vec<String> {
        let deadline = Instant::now() + wait;
        let mut kept = self.shared.kept.lock();
        while !kept.ended && !self.shared.ended.wait_until(&mut kept, deadline).timed_out() {}
        kept.lines.iter().cloned().collect()
    }

    /// Joins the forwarding thread if it ends by `deadline`; else leaves it
    /// (it ends when whoever holds the pipe closes it).
    fn finish(&self, deadline: Instant) {
        let Some(thread) = self.thread.lock().take() else { return };
        if thread.wait_until(deadline) {
            if let Err(panicked) = thread.join() {
                log::warn!("{panicked}");
            }
        } else {
            log::debug!("{}: the child's stderr is still open (a grandchild?): left running", thread.detach());
        }
    }
}

fn forward(stderr: impl Read, lines: &Lines) {
    let mut reader = BufReader::new(stderr);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                // As it arrives, whatever becomes of the connection.
                let _ = io::stderr().write_all(&line);
                let text = String::from_utf8_lossy(&line[..line.len().min(LINE_MAX)]);
                let text = text.trim_end_matches(['\n', '\r']).to_owned();
                let mut kept = lines.kept.lock();
                if kept.lines.len() == kept.keep {
                    kept.lines.pop_front();
                }
                if kept.keep > 0 {
                    kept.lines.push_back(text);
                }
            }
        }
    }
    lines.kept.lock().ended = true;
    lines.ended.notify_all();
}
