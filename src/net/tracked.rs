//! A connection's handler, watched: how many of the peer's requests it is
//! serving, when it last started or finished one (for the idle timeout),
//! and how many it answered (for the server's totals).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::conn::answer::{Failure, Response};
use crate::conn::serve::handler::{Handler, Request};

/// What the watching records.
pub(crate) struct Activity {
    in_service: AtomicUsize,
    /// When a request last started or finished, in nanoseconds after `epoch`.
    last: AtomicU64,
    epoch: Instant,
    /// The server's count of requests answered.
    answered: Arc<AtomicU64>,
}

impl Activity {
    pub fn new(epoch: Instant, answered: Arc<AtomicU64>) -> Activity {
        let activity = Activity { in_service: AtomicUsize::new(0), last: AtomicU64::new(0), epoch, answered };
        activity.touch();
        activity
    }

    fn touch(&self) {
        let nanos = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.last.store(nanos, Relaxed);
    }

    /// How many requests the handler is serving.
    pub fn in_service(&self) -> usize {
        self.in_service.load(Relaxed)
    }

    /// When a request last started or finished (or the connection opened).
    pub fn last(&self) -> Instant {
        self.epoch + Duration::from_nanos(self.last.load(Relaxed))
    }
}

/// The application's handler with its [`Activity`].
pub(crate) struct Tracked {
    pub handler: Box<dyn Handler>,
    pub activity: Arc<Activity>,
}

/// Ends a request's service however the handler ends (a panic included:
/// the connection turns it into a failed answer).
struct InService<'a>(&'a Activity);

impl Drop for InService<'_> {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_service.fetch_sub(1, Relaxed);
        self.0.answered.fetch_add(1, Relaxed);
    }
}

impl Handler for Tracked {
    fn handle(&self, request: Request) -> Result<Response, Failure> {
        self.activity.in_service.fetch_add(1, Relaxed);
        self.activity.touch();
        let _in_service = InService(&self.activity);
        self.handler.handle(request)
    }
}
