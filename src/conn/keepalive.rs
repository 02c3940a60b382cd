//! The keepalive: a thread that notices a peer gone silent. When nothing
//! has arrived for an interval it pings the peer (any peer answers: one
//! with extensions ok, a plain one with a refusal), and when nothing at all
//! has arrived for the timeout it gives the connection up: every waiting
//! caller learns how long the peer was silent, and the transport is
//! interrupted so that the threads blocked on it end.

use std::io;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{RecvTimeoutError, Sender};

use super::calls::Calls;
use super::control::Control;
use super::error::ConnectionError;
use super::send::SendPath;
use super::serve::serving::Serving;
use crate::threads::{self, Thread};

/// The parts the keepalive watches and acts through.
pub(crate) struct Watched {
    pub calls: Arc<Calls>,
    pub send: Arc<SendPath>,
    pub serving: Arc<Serving>,
    pub control: Arc<Control>,
    /// Unblocks the threads on the stream when the peer is given up.
    pub interrupt: Option<Arc<dyn Fn() + Send + Sync>>,
}

/// A running keepalive; dropping `stop` (in [`Keepalive::stop`]) ends it.
pub(crate) struct Keepalive {
    stop: Option<Sender<()>>,
    pub thread: Thread<()>,
}

impl Keepalive {
    /// Starts `<name>-alive`, pinging after `interval` of silence and
    /// giving up after `timeout`.
    pub fn start(
        name: &str,
        stack: Option<usize>,
        interval: Duration,
        timeout: Duration,
        watched: Watched,
    ) -> io::Result<Keepalive> {
        let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
        let thread = threads::spawn(format!("{name}-alive"), stack, move || {
            watch(&stopped, interval, timeout, &watched);
        })?;
        Ok(Keepalive { stop: Some(stop), thread })
    }

    /// Tells the thread to end; it does at once.
    pub fn stop(mut self) -> Thread<()> {
        self.stop.take();
        self.thread
    }
}

fn watch(stopped: &crossbeam_channel::Receiver<()>, interval: Duration, timeout: Duration, watched: &Watched) {
    let counters = &watched.serving.counters;
    let mut heard = counters.packets_in.load(Relaxed);
    let mut silent_since = Instant::now();
    let mut pinged = false;
    loop {
        match stopped.recv_timeout(interval) {
            Err(RecvTimeoutError::Timeout) => {}
            _ => return,
        }
        if watched.serving.reading_outcome().is_some() {
            // The stream has ended; there is nobody to watch.
            return;
        }
        let now_heard = counters.packets_in.load(Relaxed);
        if now_heard != heard {
            heard = now_heard;
            silent_since = Instant::now();
            pinged = false;
            continue;
        }
        let silent_for = silent_since.elapsed();
        if silent_for >= timeout {
            let reason = ConnectionError::Unresponsive { silent_for, waiting: watched.calls.callers_waiting() };
            log::debug!("{}: {reason}: giving the connection up", watched.serving.name);
            watched.serving.abort(reason);
            if let Some(interrupt) = &watched.interrupt {
                interrupt();
            }
            return;
        }
        if !pinged {
            pinged = true;
            if let Some(ping) = watched.control.ping(&watched.calls) {
                // A failed send has failed the connection: the next look ends.
                let _ = watched.send.send(ping, true, None);
            }
        }
    }
}
