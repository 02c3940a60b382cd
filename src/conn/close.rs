//! Closing a connection, as named steps, each with its deadline, and a
//! report of what each did.
//!
//! 1. **quit**: when a reason is given and both ends agreed on the quit
//!    feature, tell the peer why (if the negotiation has not settled yet,
//!    waits for it, at most [`QUIT_WAIT`]);
//! 2. **send ERQ**: this side makes no more requests;
//! 3. **drain handlers**: the peer's requests in service finish and their
//!    answers are sent;
//! 4. **send EOF**: nothing more follows;
//! 5. **await the peer's EOF**: the writer has written everything and the
//!    peer has ended its stream;
//! 6. **interrupt**: if the peer did not finish by the deadline, the
//!    transport is interrupted where it can be (a socket shut down, a child
//!    killed);
//! 7. **reap**: the threads are joined (those that cannot end are named and
//!    left detached), a child is waited for, the streams are handed back.
//!
//! The whole takes at most the close timeout, plus [`FAREWELL`] kept for
//! EOF when handlers used up the timeout, plus [`AFTER_INTERRUPT`] when the
//! transport had to be interrupted or a child reaped.

use std::any::Any;
use std::fmt;
use std::io;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};

use super::calls::Calls;
use super::control::Control;
use super::error::ConnectionError;
use super::keepalive::Keepalive;
use super::send::{NotSent, SendPath};
use super::serve::serving::Serving;
use crate::threads::{Panicked, Thread};
use crate::transport::{Hooks, WriteHalf};
use crate::wire::Packet;

/// After close has interrupted the transport, how long it still waits for
/// the threads to notice.
pub const AFTER_INTERRUPT: Duration = Duration::from_secs(1);

/// The least time close leaves for sending EOF and hearing the peer's, even
/// when handlers used up the close timeout.
pub const FAREWELL: Duration = Duration::from_millis(200);

/// The longest the quit step waits for the negotiation of extensions to
/// settle: a peer that has not answered the probe by then is unlikely to
/// read a reason, and the rest of close should not wait for it.
pub const QUIT_WAIT: Duration = Duration::from_secs(1);

/// The least time a child is given to exit after its stdin closed.
const CHILD_EXIT: Duration = Duration::from_millis(500);

/// How to close: [`PacketConnection::close_with`](crate::PacketConnection::close_with).
///
/// ```
/// use std::time::Duration;
/// use packetstream::CloseOptions;
/// let options = CloseOptions::new().reason("maintenance").timeout(Duration::from_secs(2));
/// assert_eq!(options.quit_reason(), Some("maintenance"));
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Default)]
pub struct CloseOptions {
    reason: Option<String>,
    timeout: Option<Duration>,
    deadline: Option<Instant>,
}

impl CloseOptions {
    /// The connection's own close timeout, no reason.
    pub fn new() -> Self {
        CloseOptions::default()
    }

    /// Tell the peer why (at most 1 KiB of it; see
    /// [`ConfigBuilder::extensions`](crate::ConfigBuilder::extensions)).
    /// To a peer without the extension this is an ordinary close.
    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    /// Take at most `timeout` (instead of the connection's
    /// [`close_timeout`](crate::Config::close_timeout)).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Finish by `deadline`: for closing many connections against one clock.
    /// Overrides [`timeout`](Self::timeout).
    pub fn deadline(mut self, deadline: Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// The reason given, if any.
    pub fn quit_reason(&self) -> Option<&str> {
        self.reason.as_deref()
    }
}

/// A step of close (see [`CloseReport`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseStep {
    /// Tell the peer the reason.
    Quit,
    /// Send ERQ: no more requests from this side.
    SendErq,
    /// Let the peer's requests in service finish.
    DrainHandlers,
    /// Send EOF.
    SendEof,
    /// Wait for everything to be written and for the peer's EOF.
    AwaitPeerEof,
    /// Interrupt the transport, the peer having not finished in time.
    Interrupt,
    /// Join the threads, reap a child, hand the streams back.
    Reap,
}

impl CloseStep {
    /// Every step, in order.
    pub const ALL: [CloseStep; 7] = [
        CloseStep::Quit,
        CloseStep::SendErq,
        CloseStep::DrainHandlers,
        CloseStep::SendEof,
        CloseStep::AwaitPeerEof,
        CloseStep::Interrupt,
        CloseStep::Reap,
    ];

    /// A short name: `quit`, `erq`, `drain`, `eof`, `await`, `interrupt`, `reap`.
    pub fn name(self) -> &'static str {
        match self {
            CloseStep::Quit => "quit",
            CloseStep::SendErq => "erq",
            CloseStep::DrainHandlers => "drain",
            CloseStep::SendEof => "eof",
            CloseStep::AwaitPeerEof => "await",
            CloseStep::Interrupt => "interrupt",
            CloseStep::Reap => "reap",
        }
    }
}

/// How a step went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StepOutcome {
    /// It did its work.
    Done,
    /// There was nothing to do (no reason given, nothing to interrupt...).
    Skipped,
    /// Its deadline passed first.
    TimedOut,
    /// It could not do its work (the connection had failed, a thread
    /// panicked, a child could not be reaped).
    Failed,
}

/// One step's line of a [`CloseReport`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepReport {
    /// Which step.
    pub step: CloseStep,
    /// How it went.
    pub outcome: StepOutcome,
    /// How long it took.
    pub took: Duration,
}

/// What close did, step by step: a fixed-size value, cheap to keep for
/// every connection a server closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloseReport {
    steps: [StepReport; 7],
}

impl CloseReport {
    fn new() -> Self {
        CloseReport {
            steps: CloseStep::ALL.map(|step| StepReport { step, outcome: StepOutcome::Skipped, took: Duration::ZERO }),
        }
    }

    fn set(&mut self, step: CloseStep, outcome: StepOutcome, took: Duration) {
        self.steps[step as usize] = StepReport { step, outcome, took };
    }

    /// Every step, in order.
    pub fn steps(&self) -> &[StepReport] {
        &self.steps
    }

    /// The line of one step.
    pub fn step(&self, step: CloseStep) -> StepReport {
        self.steps[step as usize]
    }

    /// How long close took.
    pub fn took(&self) -> Duration {
        self.steps.iter().map(|step| step.took).sum()
    }

    /// Whether no step timed out or failed.
    pub fn is_clean(&self) -> bool {
        self.steps.iter().all(|step| matches!(step.outcome, StepOutcome::Done | StepOutcome::Skipped))
    }
}

impl fmt::Display for CloseReport {
    /// `quit skipped, erq done 0.0 ms, ...`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, step) in self.steps.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            let outcome = match step.outcome {
                StepOutcome::Done => "done",
                StepOutcome::Skipped => "skipped",
                StepOutcome::TimedOut => "timed out",
                StepOutcome::Failed => "failed",
            };
            write!(f, "{} {outcome}", step.step.name())?;
            if step.outcome != StepOutcome::Skipped {
                write!(f, " {:.1} ms", step.took.as_secs_f64() * 1e3)?;
            }
        }
        Ok(())
    }
}

/// What went wrong in a close.
#[non_exhaustive]
#[derive(Debug, Clone)]
pub enum CloseProblem {
    /// The connection had failed (before or during close): an I/O or
    /// protocol error, which the requests in flight got too.
    Connection(ConnectionError),
    /// The deadline passed first; the text says what was still running.
    /// Threads that could not be stopped were left running detached.
    TimedOut(String),
    /// One of the connection's threads panicked.
    Panicked {
        /// The thread's name.
        thread: String,
        /// The panic message, if it was a string.
        message: String,
    },
    /// The child process could not be reaped.
    Child(Arc<io::Error>),
}

impl fmt::Display for CloseProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseProblem::Connection(error) => fmt::Display::fmt(error, f),
            CloseProblem::TimedOut(what) => write!(f, "close timed out: {what}"),
            CloseProblem::Panicked { thread, message } => write!(f, "thread {thread} panicked: {message}"),
            CloseProblem::Child(error) => write!(f, "child process: {error}"),
        }
    }
}

impl From<Panicked> for CloseProblem {
    fn from(panicked: Panicked) -> Self {
        CloseProblem::Panicked { thread: panicked.thread, message: panicked.message }
    }
}

/// A close that did not go cleanly: the first problem, with the report and
/// what is known of how a child ended.
#[derive(Debug, Clone)]
pub struct CloseError(Box<Failed>);

/// What a [`CloseError`] holds, boxed so that a `Result` of close stays small.
#[derive(Debug, Clone)]
struct Failed {
    problem: CloseProblem,
    report: CloseReport,
    exit_status: Option<ExitStatus>,
}

impl CloseError {
    /// The first thing that went wrong.
    pub fn problem(&self) -> &CloseProblem {
        &self.0.problem
    }

    /// What each step did.
    pub fn report(&self) -> &CloseReport {
        &self.0.report
    }

    /// How the child process ended, for a [`Transport::spawn`](crate::Transport::spawn)
    /// connection whose child could be reaped.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        self.0.exit_status
    }

    /// Whether the deadline passed first.
    pub fn is_timeout(&self) -> bool {
        matches!(self.0.problem, CloseProblem::TimedOut(_))
    }
}

impl fmt::Display for CloseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.problem, f)
    }
}

impl std::error::Error for CloseError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.0.problem {
            CloseProblem::Connection(error) => Some(error),
            CloseProblem::Child(error) => Some(&**error),
            _ => None,
        }
    }
}

/// What is left after a clean close.
pub struct Finished {
    exit_status: Option<ExitStatus>,
    streams: Option<(Box<dyn Any + Send>, Box<dyn Any + Send>)>,
    unread: Vec<u8>,
    peer_quit_reason: Option<Arc<str>>,
    report: CloseReport,
}

impl Finished {
    /// How the child process ended, for a [`Transport::spawn`](crate::Transport::spawn)
    /// connection.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        self.exit_status
    }

    /// Bytes the peer sent after its EOF packet, which nothing read.
    pub fn unread(&self) -> &[u8] {
        &self.unread
    }

    /// Why the peer said it closed, if it closed with a reason (see
    /// [`CloseOptions::reason`]).
    pub fn peer_quit_reason(&self) -> Option<&str> {
        self.peer_quit_reason.as_deref()
    }

    /// What each step of close did.
    pub fn report(&self) -> &CloseReport {
        &self.report
    }

    /// The streams the connection was given, still open, for reuse: `R` and
    /// `W` are the types passed to [`Transport::new`](crate::Transport::new)
    /// (`TcpStream` for [`Transport::tcp`](crate::Transport::tcp), `File`
    /// for [`Transport::fds`](crate::Transport::fds), ...). `None` if the
    /// types do not match, or for a child's stdio, which close has closed.
    pub fn into_streams<R: 'static, W: 'static>(self) -> Option<(R, W)> {
        let (reader, writer) = self.streams?;
        match (reader.downcast::<R>(), writer.downcast::<W>()) {
            (Ok(reader), Ok(writer)) => Some((*reader, *writer)),
            _ => None,
        }
    }
}

impl fmt::Debug for Finished {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Finished")
            .field("exit_status", &self.exit_status)
            .field("streams", &self.streams.is_some())
            .field("unread", &self.unread.len())
            .field("peer_quit_reason", &self.peer_quit_reason)
            .field("report", &self.report)
            .finish()
    }
}

/// The connection's threads, which close joins.
pub(crate) struct Threads {
    pub reader: Thread<()>,
    pub writer: Thread<Result<Box<dyn WriteHalf>, ConnectionError>>,
    pub keepalive: Option<Keepalive>,
}

/// What close works on: the connection's parts, borrowed, and what it
/// takes over (the threads and the transport's hooks).
pub(crate) struct Parts<'a> {
    pub name: &'a str,
    pub calls: &'a Calls,
    pub send: &'a SendPath,
    pub serving: &'a Serving,
    pub control: &'a Control,
    pub reading_done: &'a Receiver<()>,
    pub threads: Threads,
    pub hooks: Hooks,
    pub timeout: Duration,
}

/// The report being written, and the first problem met.
struct Log {
    report: CloseReport,
    problem: Option<CloseProblem>,
}

impl Log {
    fn step<T>(&mut self, step: CloseStep, run: impl FnOnce(&mut Option<CloseProblem>) -> (StepOutcome, T)) -> T {
        let started = Instant::now();
        let (outcome, value) = run(&mut self.problem);
        self.report.set(step, outcome, started.elapsed());
        value
    }
}

/// Keeps the first problem: later ones are mostly its consequences.
fn first(problem: &mut Option<CloseProblem>, found: impl Into<CloseProblem>) {
    if problem.is_none() {
        *problem = Some(found.into());
    }
}

impl From<ConnectionError> for CloseProblem {
    fn from(error: ConnectionError) -> Self {
        CloseProblem::Connection(error)
    }
}

/// Closes the connection whose parts these are.
pub(crate) fn close(parts: Parts<'_>, options: CloseOptions) -> Result<Finished, CloseError> {
    let Parts { name, calls, send, serving, control, reading_done, mut threads, mut hooks, timeout } = parts;
    let deadline = options.deadline.unwrap_or_else(|| Instant::now() + options.timeout.unwrap_or(timeout));
    // A close is not a silence: no ping goes out during one.
    let keepalive = threads.keepalive.take().map(Keepalive::stop);
    let mut log = Log { report: CloseReport::new(), problem: None };
    log::debug!("{name}: closing");
    calls.refuse_new(ConnectionError::Closed);

    log.step(CloseStep::Quit, |_| {
        let Some(reason) = options.reason.as_deref() else { return (StepOutcome::Skipped, ()) };
        if !control.is_on() {
            return (StepOutcome::Skipped, ());
        }
        control.wait_settled(Some(deadline.min(Instant::now() + QUIT_WAIT)));
        match control.quit(calls, reason) {
            Some(packet) => match send.send_control(packet, Some(deadline)) {
                Ok(()) => (StepOutcome::Done, ()),
                Err(NotSent::Timeout(_)) => (StepOutcome::TimedOut, ()),
                Err(NotSent::Ended(_)) => (StepOutcome::Failed, ()),
            },
            None => (StepOutcome::Skipped, ()),
        }
    });

    // If the writer is gone this cannot be sent; its end says why.
    log.step(CloseStep::SendErq, |_| match send.send_control(Packet::erq(), Some(deadline)) {
        Ok(()) => (StepOutcome::Done, ()),
        Err(NotSent::Timeout(_)) => (StepOutcome::TimedOut, ()),
        Err(NotSent::Ended(_)) => (StepOutcome::Failed, ()),
    });

    log.step(CloseStep::DrainHandlers, |problem| match serving.pool.drain(deadline) {
        Ok(()) => (StepOutcome::Done, ()),
        Err(what) => {
            first(problem, CloseProblem::TimedOut(what));
            // Streams still open would hold their handlers for good: they
            // end now, and their handlers get a moment to reply.
            serving.streams.end_all(&ConnectionError::Closed);
            let _ = serving.pool.drain(Instant::now() + FAREWELL);
            (StepOutcome::TimedOut, ())
        }
    });

    // Handlers may have used up the deadline; the goodbye still gets a
    // moment to go out.
    let deadline = deadline.max(Instant::now() + FAREWELL);
    log.step(CloseStep::SendEof, |problem| match send.send_control(Packet::eof(), Some(deadline)) {
        Ok(()) => (StepOutcome::Done, ()),
        Err(NotSent::Timeout(_)) => {
            first(problem, CloseProblem::TimedOut("the peer is not reading: send queue still full".into()));
            (StepOutcome::TimedOut, ())
        }
        Err(NotSent::Ended(_)) => (StepOutcome::Failed, ()),
    });

    let reading_ended = |until: Instant| !matches!(reading_done.recv_deadline(until), Err(RecvTimeoutError::Timeout));
    let (mut writer_done, mut read_done) = log.step(CloseStep::AwaitPeerEof, |_| {
        let writer_done = threads.writer.wait_until(deadline);
        let read_done = writer_done && reading_ended(deadline);
        let outcome = if writer_done && read_done { StepOutcome::Done } else { StepOutcome::TimedOut };
        (outcome, (writer_done, read_done))
    });

    if !(writer_done && read_done) {
        (writer_done, read_done) = log.step(CloseStep::Interrupt, |problem| match &hooks.interrupt {
            Some(interrupt) => {
                log::debug!("{name}: close deadline passed: interrupting the transport");
                // Said before the threads are looked at: an interrupted
                // socket reads as a clean end, which it was not.
                first(
                    problem,
                    CloseProblem::TimedOut("the peer did not finish by the deadline: transport interrupted".into()),
                );
                interrupt();
                let grace = Instant::now() + AFTER_INTERRUPT;
                (StepOutcome::Done, (threads.writer.wait_until(grace), reading_ended(grace)))
            }
            None => (StepOutcome::Skipped, (writer_done, reading_ended(Instant::now()))),
        });
    }

    // What ended reading (or gave the connection up) is the cause; a
    // writer's broken pipe after it is only a consequence.
    if let Some(error) = serving.aborted().or_else(|| serving.reading_outcome().and_then(Result::err)) {
        first(&mut log.problem, error);
    }

    let (streams, unread, exit_status) = log.step(CloseStep::Reap, |problem| {
        let (writer, mut clean) = join_threads(threads, serving, writer_done, read_done, problem);
        if let Some(keepalive) = keepalive {
            // Told to stop at the start of close: it has, or does at once.
            if !keepalive.wait_until(Instant::now() + AFTER_INTERRUPT) {
                first(problem, CloseProblem::TimedOut(format!("{} did not stop", keepalive.detach())));
                clean = false;
            } else if let Err(panicked) = keepalive.join() {
                first(problem, panicked);
                clean = false;
            }
        }
        calls.fail_all(ConnectionError::Closed);
        let reader = serving.take_reader_end();
        let unread = reader.as_ref().map(|end| end.unread.clone()).unwrap_or_default();
        let streams = match (reader, writer) {
            (Some(reader), Some(writer)) if !hooks.close_streams => Some((reader.reader.into_any(), writer.into_any())),
            _ => None,
        };
        let mut exit_status = None;
        if let Some(child) = hooks.child.take() {
            // Its stdin was closed with the writer's stream, so it can exit.
            let reap_by = deadline.max(Instant::now() + CHILD_EXIT);
            match child.reap(reap_by) {
                Ok(status) => exit_status = Some(status),
                Err(error) => {
                    first(problem, CloseProblem::Child(Arc::new(error)));
                    clean = false;
                }
            }
        }
        if let Some(shutdown) = hooks.shutdown.take() {
            shutdown();
        }
        let outcome = if clean { StepOutcome::Done } else { StepOutcome::Failed };
        (outcome, (streams, unread, exit_status))
    });

    log::debug!("{name}: closed: {}", log.report);
    match log.problem {
        Some(problem) => Err(CloseError(Box::new(Failed { problem, report: log.report, exit_status }))),
        None => Ok(Finished {
            exit_status,
            streams,
            unread,
            peer_quit_reason: control.peer_quit_reason(),
            report: log.report,
        }),
    }
}

/// Joins the writer, the workers and the reader thread; those that cannot
/// end (in a handler, or blocked on a stream that was not interrupted) are
/// named and left detached. Returns the writer's stream, if it gave it
/// back, and whether every thread ended cleanly.
fn join_threads(
    threads: Threads,
    serving: &Serving,
    writer_done: bool,
    read_done: bool,
    problem: &mut Option<CloseProblem>,
) -> (Option<Box<dyn WriteHalf>>, bool) {
    let pool = &serving.pool;
    let before = problem.is_some();
    let mut stuck = Vec::new();
    // The thread blocked on the stream, if reading did not end.
    let reading_thread = (!read_done).then(|| pool.reading_thread_number());
    let writer = if writer_done {
        match threads.writer.join() {
            Ok(Ok(writer)) => Some(writer),
            // The peer ended cleanly and went away before our own EOF could
            // reach it: nothing was lost.
            Ok(Err(ConnectionError::Io(error)))
                if peer_gone(&error) && matches!(serving.reading_outcome(), Some(Ok(()))) =>
            {
                None
            }
            Ok(Err(error)) => {
                first(problem, error);
                None
            }
            Err(panicked) => {
                first(problem, panicked);
                None
            }
        }
    } else {
        stuck.push(threads.writer.detach());
        None
    };
    // Reading is over (or stuck for good): the workers and the reader
    // thread can go, except a thread stuck in a handler or on the stream.
    let exit_by = Instant::now() + AFTER_INTERRUPT;
    let closed = pool.close(exit_by, reading_thread);
    if !closed.stuck.is_empty() {
        first(
            problem,
            CloseProblem::TimedOut(format!("request handlers still running on {}", closed.stuck.join(", "))),
        );
    }
    if let Some(panicked) = closed.panicked {
        first(problem, panicked);
    }
    // Their streams ended with the reading, or at the drain's deadline.
    let (panicked, stuck_streams) = serving.streams.join(exit_by);
    if !stuck_streams.is_empty() {
        first(
            problem,
            CloseProblem::TimedOut(format!("stream handlers still running on {}", stuck_streams.join(", "))),
        );
    }
    if let Some(panicked) = panicked {
        first(problem, panicked);
    }
    let reader_number = pool.reader_number();
    let reader_stuck = pool.is_busy(reader_number) || reading_thread == Some(reader_number);
    if threads.reader.wait_until(if reader_stuck { Instant::now() } else { exit_by }) {
        if let Err(panicked) = threads.reader.join() {
            first(problem, panicked);
        }
    } else {
        let name = threads.reader.detach();
        if reading_thread != Some(reader_number) {
            first(problem, CloseProblem::TimedOut(format!("request handlers still running on {name}")));
        }
    }
    if let Some(number) = reading_thread {
        stuck.push(pool.thread_name(number));
    }
    if !stuck.is_empty() {
        first(
            problem,
            CloseProblem::TimedOut(format!("{} still blocked on the stream, left running", stuck.join(" and "))),
        );
    }
    (writer, problem.is_some() == before)
}

fn peer_gone(error: &io::Error) -> bool {
    matches!(error.kind(), io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset)
}
