//! Settings of a server: a [`ServerConfig`] read through plain getters,
//! built with a [`ServerConfigBuilder`].

use std::time::Duration;

use crate::config::{Config, ConfigBuilder};

/// The stack of a server connection's threads unless its configuration
/// sets one: 256 KiB holds handlers that do not recurse deeply, and keeps
/// the address space of thousands of connections (three threads each) small.
/// BENCHMARKS.md has the measurements behind it.
pub const DEFAULT_SERVER_THREAD_STACK: usize = 256 * 1024;

/// How a server behaves. Start from [`ServerConfig::default()`] or change
/// what you need through [`ServerConfig::builder()`]:
///
/// ```
/// use std::time::Duration;
/// use packetstream::net::ServerConfig;
/// let config = ServerConfig::builder()
///     .name("store")
///     .max_connections(500)
///     .max_per_peer(20)
///     .idle_timeout(Duration::from_secs(300))
///     .build();
/// assert_eq!(config.max_connections(), Some(500));
/// ```
#[non_exhaustive]
#[derive(Debug, Clone)]
pub struct ServerConfig {
    name: String,
    connection: Config,
    max_connections: Option<usize>,
    max_per_peer: Option<usize>,
    idle_timeout: Option<Duration>,
    refusals: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            name: "server".to_owned(),
            connection: Config::default(),
            max_connections: None,
            max_per_peer: None,
            idle_timeout: None,
            refusals: 4,
        }
    }
}

impl ServerConfig {
    /// A builder starting from the defaults.
    pub fn builder() -> ServerConfigBuilder {
        ServerConfigBuilder::default()
    }

    /// See [`ServerConfigBuilder::name`].
    pub fn name(&self) -> &str {
        &self.name
    }

    /// See [`ServerConfigBuilder::connection`].
    pub fn connection(&self) -> &Config {
        &self.connection
    }

    /// See [`ServerConfigBuilder::max_connections`].
    pub fn max_connections(&self) -> Option<usize> {
        self.max_connections
    }

    /// See [`ServerConfigBuilder::max_per_peer`].
    pub fn max_per_peer(&self) -> Option<usize> {
        self.max_per_peer
    }

    /// See [`ServerConfigBuilder::idle_timeout`].
    pub fn idle_timeout(&self) -> Option<Duration> {
        self.idle_timeout
    }

    /// See [`ServerConfigBuilder::refusals`].
    pub fn refusals(&self) -> usize {
        self.refusals
    }

    /// The configuration of connection `name`: the template's, named, with
    /// the server's stack size unless the template sets one.
    pub(crate) fn connection_named(&self, name: String) -> Config {
        let stack = self.connection.thread_stack_size().unwrap_or(DEFAULT_SERVER_THREAD_STACK);
        ConfigBuilder::from(self.connection.clone()).name(name).thread_stack_size(stack).build()
    }
}

/// Builds a [`ServerConfig`]: every setter takes and returns the builder.
#[derive(Debug, Clone, Default)]
pub struct ServerConfigBuilder {
    config: ServerConfig,
}

impl ServerConfigBuilder {
    /// The finished configuration.
    pub fn build(self) -> ServerConfig {
        self.config
    }

    /// The server's name: its threads are `<name>-accept-<i>`,
    /// `<name>-watch`, ..., and connection number `N` is `<name>-N` (its
    /// threads `<name>-N-reader`, ...). Default `server`. Linux keeps 15
    /// bytes of a thread's name: keep it short.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.config.name = name.into();
        self
    }

    /// The configuration of every connection (its name is replaced by the
    /// connection's own). Default [`Config::default()`], with threads of
    /// [`DEFAULT_SERVER_THREAD_STACK`] bytes of stack unless it sets a stack
    /// size. With [`extensions`](ConfigBuilder::extensions) on, a peer that
    /// has them too learns why the server closes on it (idle, shutting
    /// down), and its own quit reason reaches the end hook.
    pub fn connection(mut self, config: impl Into<Config>) -> Self {
        self.config.connection = config.into();
        self
    }

    /// At most this many connections at once; one more is refused at once
    /// (see [`Refusal`](super::Refusal)). Default: no limit.
    pub fn max_connections(mut self, limit: usize) -> Self {
        self.config.max_connections = Some(limit);
        self
    }

    /// At most this many connections at once from one peer address (a TCP
    /// peer's IP address; Unix-socket and in-process peers count as one
    /// peer per listener). Default: no limit.
    pub fn max_per_peer(mut self, limit: usize) -> Self {
        self.config.max_per_peer = Some(limit);
        self
    }

    /// Closes a connection that has had no request either way, and none
    /// in service, for this long (telling the peer so, if it has the
    /// extensions). Keepalive pings do not count as requests. Default: none.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.config.idle_timeout = Some(timeout);
        self
    }

    /// How many refusals may run at once (each is a short-lived connection
    /// that tells the peer why, and closes within a second); sockets over
    /// that are closed at once. Default 4, at least 1.
    pub fn refusals(mut self, at_once: usize) -> Self {
        self.config.refusals = at_once.max(1);
        self
    }
}

impl From<ServerConfigBuilder> for ServerConfig {
    fn from(builder: ServerConfigBuilder) -> Self {
        builder.build()
    }
}
