//! The watcher: one thread that notices every connection's end (peer
//! closed, error, keepalive) with one `Select` over them all, and the idle
//! ones, and hands them to the closers.

use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Select};

/// What the watcher needs of the server, which owns the connections.
pub(crate) trait Watched {
    /// Disconnects when the server shuts down.
    fn stop_signal(&self) -> &Receiver<()>;
    fn idle_timeout(&self) -> Option<Duration>;
    /// Connection `id`'s reading ended: it is closed, unless idleness or
    /// shutdown took it already.
    fn ended(&self, id: u64);
    /// Closes the connections idle for `idle`; returns when to look again.
    fn close_idle(&self, idle: Duration) -> Instant;
}

enum Woke {
    Stop,
    Watch(u64, Receiver<()>),
    Ended(usize),
    Check,
}

/// Watches until shutdown. `new` brings each connection started, with the
/// receiver that disconnects when its reading ends.
pub(crate) fn run(shared: &impl Watched, new: &Receiver<(u64, Receiver<()>)>) {
    let idle = shared.idle_timeout();
    let mut watched: Vec<(u64, Receiver<()>)> = Vec::new();
    let mut next_check = idle.map(|idle| Instant::now() + idle);
    loop {
        let woke = {
            let mut select = Select::new();
            select.recv(shared.stop_signal());
            select.recv(new);
            for (_, ended) in &watched {
                select.recv(ended);
            }
            let operation = match next_check {
                Some(at) => select.select_deadline(at).ok(),
                None => Some(select.select()),
            };
            match operation {
                None => Woke::Check,
                Some(operation) => match operation.index() {
                    0 => {
                        let _ = operation.recv(shared.stop_signal());
                        Woke::Stop
                    }
                    1 => match operation.recv(new) {
                        Ok((id, ended)) => Woke::Watch(id, ended),
                        Err(_) => Woke::Stop,
                    },
                    i => {
                        let _ = operation.recv(&watched[i - 2].1);
                        Woke::Ended(i - 2)
                    }
                },
            }
        };
        match woke {
            Woke::Stop => return,
            // A new connection expires no earlier than the next check.
            Woke::Watch(id, ended) => watched.push((id, ended)),
            Woke::Ended(at) => {
                let (id, _) = watched.swap_remove(at);
                shared.ended(id);
            }
            Woke::Check => {
                if let Some(idle) = idle {
                    next_check = Some(shared.close_idle(idle));
                }
            }
        }
    }
}
