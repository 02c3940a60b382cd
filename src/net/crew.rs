//! A few named threads that run jobs from a queue (closing connections,
//! refusing them), started one at a time when jobs outnumber the idle
//! ones, and joined when the server is done.

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use parking_lot::Mutex;

use crate::threads::{self, panic_message, Thread};

pub(crate) type Job = Box<dyn FnOnce() + Send>;

pub(crate) struct Crew {
    name: String,
    max: usize,
    stack: Option<usize>,
    queue: Mutex<Option<Sender<Job>>>,
    shared: Arc<Shared>,
    threads: Mutex<Vec<Thread<()>>>,
}

struct Shared {
    jobs: Receiver<Job>,
    /// Threads waiting for a job.
    idle: AtomicUsize,
}

impl Crew {
    /// At most `max` threads called `<name>-<i>`; a queue of `capacity`
    /// jobs (`None`: no limit).
    pub fn new(name: String, max: usize, stack: Option<usize>, capacity: Option<usize>) -> Crew {
        let (queue, jobs) = match capacity {
            Some(capacity) => crossbeam_channel::bounded(capacity),
            None => crossbeam_channel::unbounded(),
        };
        Crew {
            name,
            max: max.max(1),
            stack,
            queue: Mutex::new(Some(queue)),
            shared: Arc::new(Shared { jobs, idle: AtomicUsize::new(0) }),
            threads: Mutex::new(Vec::new()),
        }
    }

    /// Queues `job`, starting a thread for it if the queued jobs outnumber
    /// the idle threads. Gives the job back when the queue is full or the
    /// crew is finished. If no thread can be started at all, runs it here.
    pub fn submit(&self, job: Job) -> Result<(), Job> {
        let queue = self.queue.lock().clone();
        let Some(queue) = queue else { return Err(job) };
        match queue.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(job) | TrySendError::Disconnected(job)) => return Err(job),
        }
        let mut threads = self.threads.lock();
        if self.shared.jobs.len() > self.shared.idle.load(SeqCst) && threads.len() < self.max {
            let number = threads.len();
            let shared = Arc::clone(&self.shared);
            match threads::spawn(format!("{}-{number}", self.name), self.stack, move || work(&shared)) {
                Ok(thread) => threads.push(thread),
                Err(error) if threads.is_empty() => {
                    drop(threads);
                    log::warn!("{}: cannot start a thread ({error}): running the job here", self.name);
                    if let Ok(job) = self.shared.jobs.try_recv() {
                        run(job);
                    }
                }
                // The running threads take it.
                Err(error) => log::warn!("{}: cannot start another thread: {error}", self.name),
            }
        }
        Ok(())
    }

    /// Takes no more jobs, lets the queued ones run, and joins the threads
    /// that end by `deadline`; says what went wrong (a panic, a thread left
    /// running).
    pub fn finish(&self, deadline: Instant) -> Vec<String> {
        self.queue.lock().take();
        let threads = std::mem::take(&mut *self.threads.lock());
        let mut problems = Vec::new();
        if threads.is_empty() {
            // Jobs queued while no thread could start.
            while let Ok(job) = self.shared.jobs.try_recv() {
                run(job);
            }
        }
        for thread in threads {
            if thread.wait_until(deadline) {
                if let Err(panicked) = thread.join() {
                    problems.push(panicked.to_string());
                }
            } else {
                problems.push(format!("{} still running at the deadline, left running", thread.detach()));
            }
        }
        problems
    }
}

fn work(shared: &Shared) {
    loop {
        shared.idle.fetch_add(1, SeqCst);
        let job = shared.jobs.recv();
        shared.idle.fetch_sub(1, SeqCst);
        match job {
            Ok(job) => run(job),
            Err(_) => return,
        }
    }
}

fn run(job: Job) {
    if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(job)) {
        log::error!("a server job panicked: {}", panic_message(&*payload));
    }
}
