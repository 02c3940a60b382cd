//! A supervised child: a helper process talked to over its stdio, started
//! when first needed, checked at start-up, started again (with backoff)
//! after it exits, and given up after a crash loop.

use std::sync::Arc;
use std::time::Duration;

use super::crash::CrashLoop;
use super::error::{ClientCallError, ClientCallTimeoutError, ClientSubmitError, OpenError};
use super::opener::Spawn;
use super::reconnect::{Checks, Core, ReconnectConfig, ReconnectConfigBuilder, Unopened};
use crate::config::Config;
use crate::conn::answer::Response;
use crate::conn::close::{CloseError, CloseOptions, Finished};
use crate::conn::pending::Pending;
use crate::conn::PacketConnection;

/// How a [`Supervised`] child is started, checked and restarted. Start from
/// [`SuperviseConfig::default()`] or change what you need through
/// [`SuperviseConfig::builder()`].
#[non_exhaustive]
#[derive(Debug, Clone)]
pub struct SuperviseConfig {
    reconnect: ReconnectConfig,
    startup_timeout: Duration,
    max_exits: usize,
    exit_window: Duration,
}

impl Default for SuperviseConfig {
    fn default() -> Self {
        SuperviseConfig {
            reconnect: ReconnectConfig::default(),
            startup_timeout: Duration::from_secs(5),
            max_exits: 5,
            exit_window: Duration::from_secs(60),
        }
    }
}

impl SuperviseConfig {
    /// A builder starting from the defaults.
    pub fn builder() -> SuperviseConfigBuilder {
        SuperviseConfigBuilder::default()
    }

    /// See [`SuperviseConfigBuilder::connection`].
    pub fn connection(&self) -> &Config {
        self.reconnect.connection()
    }

    /// See [`SuperviseConfigBuilder::backoff`].
    pub fn initial_backoff(&self) -> Duration {
        self.reconnect.initial_backoff()
    }

    /// See [`SuperviseConfigBuilder::backoff`].
    pub fn max_backoff(&self) -> Duration {
        self.reconnect.max_backoff()
    }

    /// See [`SuperviseConfigBuilder::startup_timeout`].
    pub fn startup_timeout(&self) -> Duration {
        self.startup_timeout
    }

    /// See [`SuperviseConfigBuilder::crash_loop`]: the number of exits.
    pub fn max_exits(&self) -> usize {
        self.max_exits
    }

    /// See [`SuperviseConfigBuilder::crash_loop`]: the window.
    pub fn exit_window(&self) -> Duration {
        self.exit_window
    }
}

/// Builds a [`SuperviseConfig`].
#[derive(Debug, Clone, Default)]
pub struct SuperviseConfigBuilder {
    config: SuperviseConfig,
}

impl SuperviseConfigBuilder {
    /// The finished configuration.
    pub fn build(self) -> SuperviseConfig {
        self.config
    }

    /// The configuration of the connection to each child. Default
    /// [`Config::default()`].
    pub fn connection(mut self, config: impl Into<Config>) -> Self {
        let builder = ReconnectConfigBuilder::from_config(self.config.reconnect);
        self.config.reconnect = builder.connection(config).build();
        self
    }

    /// The wait before starting a child again after it exited (or failed
    /// to start), doubling with each exit in a row; see
    /// [`ReconnectConfigBuilder::backoff`]. Default 100 ms and 5 s.
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        let builder = ReconnectConfigBuilder::from_config(self.config.reconnect);
        self.config.reconnect = builder.backoff(initial, max).build();
        self
    }

    /// How long a new child has to answer a ping (any answer: a plain
    /// cs.packetstream peer refuses it) before it is killed and the callers
    /// fail. Default 5 s.
    pub fn startup_timeout(mut self, timeout: Duration) -> Self {
        self.config.startup_timeout = timeout;
        self
    }

    /// After `exits` ends (exits, crashes, failed start-ups) within
    /// `window`, the child is not started again: requests fail with
    /// [`OpenError::CrashLoop`] until [`Supervised::reset`]. Default 5
    /// within 60 s.
    pub fn crash_loop(mut self, exits: usize, window: Duration) -> Self {
        self.config.max_exits = exits.max(1);
        self.config.exit_window = window;
        self
    }
}

impl From<SuperviseConfigBuilder> for SuperviseConfig {
    fn from(builder: SuperviseConfigBuilder) -> Self {
        builder.build()
    }
}

/// A helper process talked to over its stdin and stdout: started when
/// first needed, with its stderr forwarded to ours (the last lines kept);
/// checked with a ping at start-up, so that a child that exits or never
/// answers fails the callers at once; started again on the next request
/// after it exits, with backoff; and no longer started after a crash loop.
/// A caller whose request was in flight when the child exited gets
/// [`ConnectionError::Child`](crate::ConnectionError::Child) with its exit status and last stderr lines.
///
/// ```no_run
/// use std::process::Command;
/// use packetstream::net::{Spawn, Supervised, SuperviseConfig};
/// # fn main() -> Result<(), packetstream::Error> {
/// let helper = Supervised::new(Spawn::new(|| Command::new("my-helper")), SuperviseConfig::default());
/// let answer = helper.call(0, 0, b"work".to_vec())?; // starts it now
/// # Ok(()) }
/// ```
pub struct Supervised {
    core: Core,
}

impl Supervised {
    /// A supervisor of the children `spawn` starts; none is started yet.
    pub fn new(spawn: Spawn, config: impl Into<SuperviseConfig>) -> Self {
        let config = config.into();
        let checks =
            Checks { startup: Some(config.startup_timeout), crash_loop: Some((config.max_exits, config.exit_window)) };
        Supervised { core: Core::new(Box::new(spawn), config.reconnect, checks) }
    }

    /// The connection to the running child, started (and checked) if none
    /// runs.
    ///
    /// # Errors
    /// Why none could be started: it failed to start, exited or did not
    /// answer at start-up, or crash-looped.
    pub fn connection(&self) -> Result<Arc<PacketConnection>, OpenError> {
        self.core.connection(None).map_err(Unopened::into_open)
    }

    /// Sends a request to the child, starting it first if needed.
    ///
    /// # Errors
    /// As [`Reconnecting::submit`](super::Reconnecting::submit).
    pub fn submit(&self, rq_type: u64, flags: u64, payload: impl Into<Vec<u8>>) -> Result<Pending, ClientSubmitError> {
        self.core.submit(rq_type, flags, payload.into())
    }

    /// Sends a request and waits for its answer.
    ///
    /// # Errors
    /// As [`Reconnecting::call`](super::Reconnecting::call).
    pub fn call(&self, rq_type: u64, flags: u64, payload: impl Into<Vec<u8>>) -> Result<Response, ClientCallError> {
        self.core.call(rq_type, flags, payload.into())
    }

    /// [`call`](Self::call) within `timeout`, a start included.
    ///
    /// # Errors
    /// As [`Reconnecting::call_timeout`](super::Reconnecting::call_timeout).
    pub fn call_timeout(
        &self,
        rq_type: u64,
        flags: u64,
        payload: impl Into<Vec<u8>>,
        timeout: Duration,
    ) -> Result<Response, ClientCallTimeoutError> {
        self.core.call_timeout(rq_type, flags, payload.into(), timeout)
    }

    /// The crash loop that stopped the supervisor, if one did.
    pub fn crash_loop(&self) -> Option<Arc<CrashLoop>> {
        self.core.crash_loop()
    }

    /// How many children it has started (and found answering).
    pub fn started(&self) -> u64 {
        self.core.slot.lock().opened
    }

    /// Stops the running child (closing its connection in order) and
    /// forgets past exits and the crash loop: the next request starts a
    /// child at once.
    pub fn reset(&self) {
        self.core.reset();
    }

    /// What it starts.
    pub fn program(&self) -> String {
        self.core.opener.describe()
    }

    /// Closes the connection to the running child in order, if one runs;
    /// the child is reaped.
    ///
    /// # Errors
    /// As [`PacketConnection::close`].
    pub fn close(self) -> Result<Option<Finished>, CloseError> {
        self.core.close(CloseOptions::new())
    }
}

impl std::fmt::Debug for Supervised {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervised").field("program", &self.program()).finish()
    }
}
