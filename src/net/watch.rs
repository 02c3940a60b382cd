//! The watcher: one thread that notices every connection's end (peer
//! closed, error, keepalive) with one `Select` over them all, and the idle
//! ones, and hands them to the closers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Select};

use super::end::EndReason;
use super::server::{Shared, QUICK_CLOSE};
use crate::conn::close::CloseOptions;

enum Woke {
    Stop,
    Watch(u64, Receiver<()>),
    Ended(usize),
    Check,
}

/// Watches until shutdown. `new` brings each connection started, with the
/// receiver that disconnects when its reading ends.
pub(crate) fn run(shared: &Arc<Shared>, new: &Receiver<(u64, Receiver<()>)>) {
    let idle = shared.config.idle_timeout();
    let mut watched: Vec<(u64, Receiver<()>)> = Vec::new();
    let mut next_check = idle.map(|idle| Instant::now() + idle);
    loop {
        let woke = {
            let mut select = Select::new();
            select.recv(&shared.stop);
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
                        let _ = operation.recv(&shared.stop);
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
                // Gone already if idleness or shutdown took it.
                if let Some(live) = shared.take(id) {
                    let reason = EndReason::of(&live.conn);
                    // A clean end is the peer's: it finishes promptly,
                    // while its last requests may still be in service.
                    let options = match reason {
                        EndReason::PeerClosed | EndReason::PeerQuit(_) => CloseOptions::new(),
                        _ => CloseOptions::new().timeout(QUICK_CLOSE),
                    };
                    shared.end(live, reason, options);
                }
            }
            Woke::Check => {
                if let Some(idle) = idle {
                    next_check = Some(close_idle(shared, idle));
                }
            }
        }
    }
}

/// Closes the connections idle for `idle`; returns when to look again.
fn close_idle(shared: &Arc<Shared>, idle: Duration) -> Instant {
    let now = Instant::now();
    let mut next = now + idle;
    let mut expired = Vec::new();
    for (&id, live) in &shared.registry.lock().live {
        // Busy either way: its clock starts again when it is done.
        if live.activity.in_service() > 0 || live.conn.outstanding() > 0 {
            continue;
        }
        // The server's own requests show in the counters only.
        let stats = live.conn.stats();
        let ours = stats.requests_out + stats.responses_in;
        let mut seen = live.seen.lock();
        if seen.0 != ours {
            *seen = (ours, now);
        }
        let since = live.activity.last().max(seen.1);
        let expires = since + idle;
        if expires <= now {
            expired.push((id, now - since));
        } else {
            next = next.min(expires);
        }
    }
    for (id, after) in expired {
        if let Some(live) = shared.take(id) {
            let reason = EndReason::Idle(after);
            let options = CloseOptions::new().reason(reason.to_string()).timeout(QUICK_CLOSE);
            shared.end(live, reason, options);
        }
    }
    next
}
