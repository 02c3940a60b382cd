//! Waiting for answers within a bound, with the outcomes every command
//! tells apart: ok, failed by the peer, or no answer at all.

use std::time::Duration;

use packetstream::{Failure, Pending, Response, WaitTimeoutError};

/// What came back for a request: `Ok(Ok)` an ok answer, `Ok(Err)` the peer
/// failed it, `Err` no answer (the reason).
pub type Answer = Result<Result<Response, Failure>, String>;

/// Waits at most `timeout` for the answer to `pending`; one that does not
/// come is given up.
pub fn wait(pending: Pending, timeout: Duration) -> Answer {
    match pending.wait_timeout(timeout) {
        Ok(response) => Ok(Ok(response)),
        Err(WaitTimeoutError::Failed(failure)) => Ok(Err(failure)),
        Err(WaitTimeoutError::Timeout(pending)) => {
            pending.cancel();
            Err(format!("no answer within {}", seconds(timeout)))
        }
        Err(WaitTimeoutError::Connection(error)) => Err(format!("no answer: {error}")),
        Err(_) => Err("no answer".to_owned()),
    }
}

/// A duration as people write it: `10 s`, `0.25 s`.
pub fn seconds(duration: Duration) -> String {
    format!("{} s", duration.as_secs_f64())
}

/// A failure's text and flags, for a message.
pub fn failure_text(failure: &Failure) -> String {
    // A command's stderr ends with a newline that a message does not need.
    let text = failure.text();
    let text = text.trim_end();
    match failure.flags {
        0 => text.to_owned(),
        flags => format!("{text} (flags {flags})"),
    }
}
