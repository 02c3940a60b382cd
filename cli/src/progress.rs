//! A progress bar on stderr, redrawn by a thread of its own while the
//! measured threads count what they do.

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{RecvTimeoutError, Sender};

/// How often the bar is redrawn.
const TICK: Duration = Duration::from_millis(100);
/// The bar's width in characters.
const WIDTH: usize = 30;

/// What the bar shows.
struct Stage {
    label: String,
    unit: &'static str,
    started: Instant,
    /// The stages before this one.
    done: usize,
}

/// A progress bar over `stages` stages of about `per_stage` each; silent
/// when it is off.
pub struct Progress {
    ops: Arc<AtomicU64>,
    stage: Arc<Mutex<Option<Stage>>>,
    stop: Option<Sender<()>>,
    drawer: Option<JoinHandle<()>>,
}

impl Progress {
    /// Starts the bar (`on`), or a counter that draws nothing.
    pub fn start(on: bool, stages: usize, per_stage: Duration) -> Progress {
        let ops = Arc::new(AtomicU64::new(0));
        let stage: Arc<Mutex<Option<Stage>>> = Arc::new(Mutex::new(None));
        if !on {
            return Progress { ops, stage, stop: None, drawer: None };
        }
        let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
        let (ops_seen, stage_seen) = (Arc::clone(&ops), Arc::clone(&stage));
        let drawer = thread::Builder::new()
            .name("progress".into())
            .spawn(move || {
                let mut stderr = io::stderr();
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(TICK) {
                    let line = stage_seen.lock().unwrap_or_else(|p| p.into_inner()).as_ref().map(|stage| {
                        let elapsed = stage.started.elapsed();
                        render(stage, elapsed, ops_seen.load(Ordering::Relaxed), stages, per_stage)
                    });
                    if let Some(line) = line {
                        let _ = write!(stderr, "\r{line}\x1b[K");
                        let _ = stderr.flush();
                    }
                }
                let _ = write!(stderr, "\r\x1b[K");
                let _ = stderr.flush();
            })
            .ok();
        Progress { ops, stage, stop: Some(stop), drawer }
    }

    /// The counter the measured code adds its operations to.
    pub fn ops(&self) -> &AtomicU64 {
        &self.ops
    }

    /// A new stage begins: its label, and what its operations are called.
    pub fn stage(&self, label: &str, unit: &'static str, done: usize) {
        self.ops.store(0, Ordering::Relaxed);
        *self.stage.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(Stage { label: label.to_owned(), unit, started: Instant::now(), done });
    }

    /// Clears the bar and joins its thread.
    pub fn finish(mut self) {
        self.stop.take();
        if let Some(drawer) = self.drawer.take() {
            let _ = drawer.join();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(drawer) = self.drawer.take() {
            let _ = drawer.join();
        }
    }
}

/// One frame of the bar: `[=======>      ]  45%  B pipelined x64  12,345 req/s`.
fn render(stage: &Stage, elapsed: Duration, ops: u64, stages: usize, per_stage: Duration) -> String {
    let total = per_stage.as_secs_f64() * stages.max(1) as f64;
    let spent = per_stage.as_secs_f64() * stage.done as f64 + elapsed.as_secs_f64().min(per_stage.as_secs_f64());
    let fraction = if total > 0.0 { (spent / total).clamp(0.0, 1.0) } else { 1.0 };
    let filled = (fraction * WIDTH as f64) as usize;
    let mut bar = "=".repeat(filled);
    if filled < WIDTH {
        bar.push('>');
        bar.push_str(&" ".repeat(WIDTH - filled - 1));
    }
    let rate = ops as f64 / elapsed.as_secs_f64().max(1e-3);
    format!("[{bar}] {:>3}%  {}  {} {}", (fraction * 100.0) as u32, stage.label, thousands(rate), stage.unit)
}

/// A number rounded, with commas every three digits.
pub fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames() {
        let stage = Stage { label: "A sequential".into(), unit: "calls/s", started: Instant::now(), done: 1 };
        let line = render(&stage, Duration::from_millis(500), 5000, 4, Duration::from_secs(1));
        assert_eq!(line, format!("[{}>{}]  37%  A sequential  10,000 calls/s", "=".repeat(11), " ".repeat(18)));
        let done = render(&stage, Duration::from_secs(9), 1, 2, Duration::from_secs(1));
        assert!(done.starts_with(&format!("[{}] 100%", "=".repeat(30))), "{done}");
        assert_eq!(thousands(1234567.4), "1,234,567");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(0.2), "0");
    }

    #[test]
    fn off_draws_nothing_and_counts() {
        let progress = Progress::start(false, 1, Duration::from_secs(1));
        progress.stage("x", "ops", 0);
        progress.ops().fetch_add(3, Ordering::Relaxed);
        assert_eq!(progress.ops().load(Ordering::Relaxed), 3);
        progress.finish();
    }
}
