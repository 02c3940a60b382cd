//! Crash loops: a supervised child that ends too often too quickly is no
//! longer started, and what its callers are told then.

use std::collections::VecDeque;
use std::fmt;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::conn::error::ConnectionError;

/// A child process that ended too often too quickly: what the requests get
/// once its supervisor stopped starting it.
#[derive(Debug)]
pub struct CrashLoop {
    /// What was started.
    pub program: String,
    /// How many times it ended within [`window`](Self::window).
    pub exits: usize,
    /// The window.
    pub window: Duration,
    /// Its last exit status, if it had exited when its stream ended.
    pub last_status: Option<ExitStatus>,
    /// The last lines it wrote to stderr, oldest first.
    pub last_stderr: Vec<String>,
    /// How its last connection ended.
    pub last_error: ConnectionError,
}

impl fmt::Display for CrashLoop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ended {} times within {:.1} s and is not started again; the last time: {}",
            self.program,
            self.exits,
            self.window.as_secs_f64(),
            self.last_error
        )
    }
}

/// The recent ends of a supervised child, and the crash loop that stopped
/// it, if one did.
#[derive(Debug, Default)]
pub(crate) struct Exits {
    times: VecDeque<Instant>,
    stopped: Option<Arc<CrashLoop>>,
}

impl Exits {
    /// Counts an end; stops after `count` within `window`.
    pub fn record(&mut self, reason: &ConnectionError, count: usize, window: Duration, program: &str) {
        let now = Instant::now();
        self.times.push_back(now);
        while self.times.front().is_some_and(|&first| now.duration_since(first) > window) {
            self.times.pop_front();
        }
        if self.times.len() >= count {
            let (last_status, last_stderr) = match reason {
                ConnectionError::Child(end) => (end.status, end.stderr.clone()),
                _ => (None, Vec::new()),
            };
            self.stopped = Some(Arc::new(CrashLoop {
                program: program.to_owned(),
                exits: self.times.len(),
                window,
                last_status,
                last_stderr,
                last_error: reason.clone(),
            }));
        }
    }

    pub fn stopped(&self) -> Option<Arc<CrashLoop>> {
        self.stopped.clone()
    }
}
