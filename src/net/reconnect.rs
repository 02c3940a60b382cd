//! The reconnecting client: a connection opened when first needed, and
//! opened again, with backoff, after the peer went away (cs.packetstream's
//! on-demand mode, over and over). Only the requests in flight when the
//! peer went away fail.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use parking_lot::Mutex;

use super::crash::{CrashLoop, Exits};
use super::error::{ClientCallError, ClientCallTimeoutError, ClientSubmitError, OpenError};
use super::opener::Opener;
use crate::config::Config;
use crate::conn::answer::Response;
use crate::conn::close::{CloseError, CloseOptions, Finished};
use crate::conn::error::{ConnectionError, SubmitError, SubmitTimeoutError};
use crate::conn::pending::{Pending, WaitTimeoutError};
use crate::conn::PacketConnection;
use crate::ext::rq_type;

/// How a [`Reconnecting`] client opens and reopens. Start from
/// [`ReconnectConfig::default()`] or change what you need through
/// [`ReconnectConfig::builder()`].
#[non_exhaustive]
#[derive(Debug, Clone)]
pub struct ReconnectConfig {
    connection: Config,
    initial_backoff: Duration,
    max_backoff: Duration,
}

impl Default for ReconnectConfig {
    fn default() -> Self {
        ReconnectConfig {
            connection: Config::default(),
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
        }
    }
}

impl ReconnectConfig {
    /// A builder starting from the defaults.
    pub fn builder() -> ReconnectConfigBuilder {
        ReconnectConfigBuilder::default()
    }

    /// See [`ReconnectConfigBuilder::connection`].
    pub fn connection(&self) -> &Config {
        &self.connection
    }

    /// See [`ReconnectConfigBuilder::backoff`].
    pub fn initial_backoff(&self) -> Duration {
        self.initial_backoff
    }

    /// See [`ReconnectConfigBuilder::backoff`].
    pub fn max_backoff(&self) -> Duration {
        self.max_backoff
    }

    /// The wait before attempt number `failures + 1`, after `failures` in
    /// a row.
    pub(crate) fn backoff(&self, failures: u32) -> Duration {
        match failures {
            0 => Duration::ZERO,
            n => self.initial_backoff.saturating_mul(1 << (n - 1).min(20)).min(self.max_backoff),
        }
    }
}

/// Builds a [`ReconnectConfig`].
#[derive(Debug, Clone, Default)]
pub struct ReconnectConfigBuilder {
    config: ReconnectConfig,
}

impl ReconnectConfigBuilder {
    pub(crate) fn from_config(config: ReconnectConfig) -> Self {
        ReconnectConfigBuilder { config }
    }

    /// The finished configuration.
    pub fn build(self) -> ReconnectConfig {
        self.config
    }

    /// The configuration of each connection. Default [`Config::default()`].
    pub fn connection(mut self, config: impl Into<Config>) -> Self {
        self.config.connection = config.into();
        self
    }

    /// After a failed open or a lost connection, the next open waits
    /// `initial`, doubling with each failure in a row up to `max`; a
    /// connection that lived longer than `max` starts the count again.
    /// Default 100 ms and 5 s.
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.config.initial_backoff = initial;
        self.config.max_backoff = max.max(initial);
        self
    }
}

impl From<ReconnectConfigBuilder> for ReconnectConfig {
    fn from(builder: ReconnectConfigBuilder) -> Self {
        builder.build()
    }
}

/// A client whose connection is opened by an [`Opener`] when first used,
/// and again, with backoff, when a request finds the peer gone. Requests in
/// flight when the peer goes fail with the connection's error; the next
/// request opens a new connection. Shared by reference among threads.
///
/// ```no_run
/// use std::time::Duration;
/// use packetstream::net::{Connect, Reconnecting, ReconnectConfig};
/// # fn main() -> Result<(), packetstream::Error> {
/// let opener = Connect::new("127.0.0.1:7000".parse().unwrap()).timeout(Duration::from_secs(2));
/// let client = Reconnecting::new(opener, ReconnectConfig::default());
/// let answer = client.call(0, 0, b"hello".to_vec())?; // connects now
/// # Ok(()) }
/// ```
pub struct Reconnecting {
    core: Core,
}

impl Reconnecting {
    /// A client that opens with `opener`; nothing is opened yet.
    pub fn new(opener: impl Opener, config: impl Into<ReconnectConfig>) -> Self {
        Reconnecting { core: Core::new(Box::new(opener), config.into(), Checks::default()) }
    }

    /// The connection, opened (after the backoff, if the last attempts
    /// failed) if there is none or the peer has gone.
    ///
    /// # Errors
    /// Why none could be opened.
    pub fn connection(&self) -> Result<Arc<PacketConnection>, OpenError> {
        self.core.connection(None).map_err(Unopened::into_open)
    }

    /// Sends a request on the connection (see
    /// [`PacketConnection::submit`]), opening one first if needed.
    ///
    /// # Errors
    /// [`ClientSubmitError::Open`] when no connection could be opened;
    /// otherwise as [`PacketConnection::submit`].
    pub fn submit(&self, rq_type: u64, flags: u64, payload: impl Into<Vec<u8>>) -> Result<Pending, ClientSubmitError> {
        self.core.submit(rq_type, flags, payload.into())
    }

    /// Sends a request and waits for its answer.
    ///
    /// # Errors
    /// As [`submit`](Self::submit) and [`Pending::wait`]: a request in
    /// flight when the peer went away gets [`ClientCallError::Connection`].
    pub fn call(&self, rq_type: u64, flags: u64, payload: impl Into<Vec<u8>>) -> Result<Response, ClientCallError> {
        self.core.call(rq_type, flags, payload.into())
    }

    /// [`call`](Self::call) within `timeout`, the backoff and the wait for
    /// another caller's open included. An open this call makes itself is
    /// bounded by the opener (a connect's timeout) and the start-up check,
    /// not by `timeout`: given up half-way, it would leave nothing usable.
    ///
    /// # Errors
    /// As [`call`](Self::call), plus [`ClientCallTimeoutError::Timeout`].
    pub fn call_timeout(
        &self,
        rq_type: u64,
        flags: u64,
        payload: impl Into<Vec<u8>>,
        timeout: Duration,
    ) -> Result<Response, ClientCallTimeoutError> {
        self.core.call_timeout(rq_type, flags, payload.into(), timeout)
    }

    /// How many connections it has opened.
    pub fn opened(&self) -> u64 {
        self.core.slot.lock().opened
    }

    /// Closes the connection, if one is open, in order.
    ///
    /// # Errors
    /// As [`PacketConnection::close`].
    pub fn close(self) -> Result<Option<Finished>, CloseError> {
        self.core.close(CloseOptions::new())
    }

    /// [`close`](Self::close) with options (a reason for the peer, a
    /// deadline).
    ///
    /// # Errors
    /// As [`PacketConnection::close_with`].
    pub fn close_with(self, options: CloseOptions) -> Result<Option<Finished>, CloseError> {
        self.core.close(options)
    }
}

impl std::fmt::Debug for Reconnecting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reconnecting").field("opener", &self.core.opener.describe()).finish()
    }
}

/// What a supervised child adds to a reconnecting client.
#[derive(Default)]
pub(crate) struct Checks {
    /// A ping must be answered this soon after opening.
    pub startup: Option<Duration>,
    /// Stop opening after this many unexpected ends within this long.
    pub crash_loop: Option<(usize, Duration)>,
}

/// The connection slot of a reconnecting client, shared with
/// [`Supervised`](super::Supervised).
pub(crate) struct Core {
    pub opener: Box<dyn Opener>,
    config: ReconnectConfig,
    checks: Checks,
    /// Held while opening, so that callers wait for the one attempt.
    pub slot: Mutex<Slot>,
    /// Disconnects at close: wakes a wait for the backoff.
    closing: Mutex<Option<Sender<()>>>,
    closed: Receiver<()>,
}

pub(crate) struct Slot {
    conn: Option<Arc<PacketConnection>>,
    opened_at: Instant,
    /// Failed opens and early losses in a row.
    failures: u32,
    last_attempt: Option<Instant>,
    pub opened: u64,
    pub exits: Exits,
    closed: bool,
}

/// Why a connection could not be had.
pub(crate) enum Unopened {
    Open(OpenError),
    /// The caller's deadline passed first.
    Timeout,
}

impl Unopened {
    pub fn into_open(self) -> OpenError {
        match self {
            Unopened::Open(error) => error,
            // Only with a deadline.
            Unopened::Timeout => OpenError::Closed,
        }
    }
}

impl Core {
    pub fn new(opener: Box<dyn Opener>, config: ReconnectConfig, checks: Checks) -> Core {
        let (closing, closed) = crossbeam_channel::bounded(0);
        Core {
            opener,
            config,
            checks,
            slot: Mutex::new(Slot {
                conn: None,
                opened_at: Instant::now(),
                failures: 0,
                last_attempt: None,
                opened: 0,
                exits: Exits::default(),
                closed: false,
            }),
            closing: Mutex::new(Some(closing)),
            closed,
        }
    }

    /// The live connection, opened if needed, by `deadline` if there is one.
    pub fn connection(&self, deadline: Option<Instant>) -> Result<Arc<PacketConnection>, Unopened> {
        // Another caller may hold the slot through its backoff and open.
        let mut slot = match deadline {
            None => self.slot.lock(),
            Some(deadline) => self.slot.try_lock_until(deadline).ok_or(Unopened::Timeout)?,
        };
        if slot.closed {
            return Err(Unopened::Open(OpenError::Closed));
        }
        if let Some(conn) = &slot.conn {
            match conn.closed_reason() {
                None => return Ok(Arc::clone(conn)),
                Some(reason) => {
                    let lived = slot.opened_at.elapsed();
                    log::debug!("{}: lost after {lived:?}: {reason}", self.opener.describe());
                    // The last holder's drop closes it (here, unless a
                    // caller still holds it).
                    slot.conn = None;
                    slot.failures = if lived > self.config.max_backoff() { 1 } else { slot.failures + 1 };
                    if let Some((count, within)) = self.checks.crash_loop {
                        slot.exits.record(&reason, count, within, &self.opener.describe());
                    }
                }
            }
        }
        if let Some(crash) = slot.exits.stopped() {
            return Err(Unopened::Open(OpenError::CrashLoop(crash)));
        }
        if let Some(last) = slot.last_attempt {
            let not_before = last + self.config.backoff(slot.failures);
            if Instant::now() < not_before {
                if deadline.is_some_and(|deadline| deadline < not_before) {
                    return Err(Unopened::Timeout);
                }
                if let Err(RecvTimeoutError::Disconnected) = self.closed.recv_deadline(not_before) {
                    return Err(Unopened::Open(OpenError::Closed));
                }
            }
        }
        slot.last_attempt = Some(Instant::now());
        match self.open() {
            Ok(conn) => {
                let conn = Arc::new(conn);
                slot.conn = Some(Arc::clone(&conn));
                slot.opened_at = Instant::now();
                slot.opened += 1;
                Ok(conn)
            }
            Err(error) => {
                // The backoff runs from the failure: an open that took long
                // to fail has not waited for it.
                slot.last_attempt = Some(Instant::now());
                slot.failures += 1;
                if let (Some((count, within)), OpenError::Startup { error: reason, .. }) =
                    (self.checks.crash_loop, &error)
                {
                    slot.exits.record(reason, count, within, &self.opener.describe());
                }
                if let (Some((count, within)), OpenError::NoAnswer { .. }) = (self.checks.crash_loop, &error) {
                    slot.exits.record(&ConnectionError::Closed, count, within, &self.opener.describe());
                }
                log::debug!("{error}");
                Err(Unopened::Open(error))
            }
        }
    }

    /// Opens a connection and checks it.
    fn open(&self) -> Result<PacketConnection, OpenError> {
        let opener = self.opener.describe();
        let failed = |error| OpenError::Failed { opener: opener.clone(), error: Arc::new(error) };
        let transport = self.opener.open().map_err(failed)?;
        let conn = PacketConnection::new(transport, self.config.connection().clone()).map_err(failed)?;
        let Some(wait) = self.checks.startup else { return Ok(conn) };
        let ended = |error| OpenError::Startup { opener: opener.clone(), error };
        let ping = match conn.control_request(rq_type::PING, Vec::new()) {
            Ok(ping) => ping,
            // Ended already (a child that exited at once).
            Err(SubmitError::Connection(error)) => return Err(ended(error)),
            Err(SubmitError::Invalid(error)) => unreachable!("a ping is a valid request: {error}"),
        };
        match ping.wait_timeout(wait) {
            // Any answer will do: a plain peer refuses the ping.
            Ok(_) | Err(WaitTimeoutError::Failed(_)) => Ok(conn),
            Err(WaitTimeoutError::Connection(error)) => Err(ended(error)),
            Err(WaitTimeoutError::Timeout(_)) => {
                // Never answered: killed at once, not after a close timeout.
                let _ = conn.close_with(CloseOptions::new().timeout(Duration::ZERO));
                Err(OpenError::NoAnswer { opener, waited: wait })
            }
        }
    }

    pub fn submit(&self, rq_type: u64, flags: u64, payload: Vec<u8>) -> Result<Pending, ClientSubmitError> {
        let conn = self.connection(None).map_err(Unopened::into_open)?;
        Ok(conn.submit(rq_type, flags, payload)?)
    }

    pub fn call(&self, rq_type: u64, flags: u64, payload: Vec<u8>) -> Result<Response, ClientCallError> {
        Ok(self.submit(rq_type, flags, payload)?.wait()?)
    }

    pub fn call_timeout(
        &self,
        rq_type: u64,
        flags: u64,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> Result<Response, ClientCallTimeoutError> {
        let deadline = Instant::now() + timeout;
        let conn = match self.connection(Some(deadline)) {
            Ok(conn) => conn,
            Err(Unopened::Timeout) => return Err(ClientCallTimeoutError::Timeout),
            Err(Unopened::Open(error)) => return Err(ClientCallTimeoutError::Open(error)),
        };
        let left = deadline.saturating_duration_since(Instant::now());
        let pending = match conn.submit_timeout(0, rq_type, flags, payload, left) {
            Ok(pending) => pending,
            Err(SubmitTimeoutError::Timeout(_)) => return Err(ClientCallTimeoutError::Timeout),
            Err(SubmitTimeoutError::Invalid(error)) => return Err(ClientCallTimeoutError::Invalid(error)),
            Err(SubmitTimeoutError::Connection(error)) => return Err(ClientCallTimeoutError::Connection(error)),
        };
        pending.wait_deadline(deadline).map_err(|error| match error {
            WaitTimeoutError::Timeout(_) => ClientCallTimeoutError::Timeout,
            WaitTimeoutError::Failed(failure) => ClientCallTimeoutError::Failed(failure),
            WaitTimeoutError::Connection(error) => ClientCallTimeoutError::Connection(error),
        })
    }

    /// Ends the connection for good, if one is open.
    pub fn close(&self, options: CloseOptions) -> Result<Option<Finished>, CloseError> {
        self.closing.lock().take();
        let conn = {
            let mut slot = self.slot.lock();
            slot.closed = true;
            slot.conn.take()
        };
        let Some(conn) = conn else { return Ok(None) };
        match Arc::try_unwrap(conn) {
            Ok(conn) => conn.close_with(options).map(Some),
            // A caller still holds it: its drop closes it.
            Err(_) => Ok(None),
        }
    }

    /// Drops the connection (closing it) and forgets the failures and
    /// exits, so that the next request opens at once.
    pub fn reset(&self) {
        let conn = {
            let mut slot = self.slot.lock();
            slot.failures = 0;
            slot.last_attempt = None;
            slot.exits = Exits::default();
            slot.conn.take()
        };
        drop(conn);
    }

    /// The crash loop that stopped it, if one did.
    pub fn crash_loop(&self) -> Option<Arc<CrashLoop>> {
        self.slot.lock().exits.stopped()
    }
}

impl Drop for Core {
    fn drop(&mut self) {
        // Wakes nobody (no caller can hold `&self` now); the connection's
        // own drop closes it.
        self.closing.lock().take();
    }
}
