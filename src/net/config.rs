//! Settings of a server: a [`ServerConfig`] read through plain getters,
//! built with a [`ServerConfigBuilder`].

use std::time::Duration;

use crate::config::{Config, ConfigBuilder};

/// The stack of a server connection's threads in
/// [`ServerConfig::connection_defaults`]: 256 KiB holds handlers that do not
/// recurse deeply, and keeps the address space of thousands of connections
/// (three threads each) at a few hundred KiB each instead of 6 MiB; only the
/// pages touched cost memory either way. BENCHMARKS.md has the measurements.
pub const DEFAULT_SERVER_THREAD_STACK: usize = 256 * 1024;

/// The send queue of a server connection in
/// [`ServerConfig::connection_defaults`], in packets: a queue's slots are
/// allocated and touched when the connection starts (80 bytes each), and
/// small answers do not go through it (they are staged), so 64 serves as
/// well as the 1,024 of a lone connection at a twelfth of the memory.
pub const DEFAULT_SERVER_SEND_QUEUE: usize = 64;

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
            connection: ServerConfig::connection_defaults().build(),
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

    /// The defaults of a server's connections, to start a
    /// [`connection`](ServerConfigBuilder::connection) configuration from:
    /// [`Config::default()`] with threads of [`DEFAULT_SERVER_THREAD_STACK`]
    /// bytes of stack and a send queue of [`DEFAULT_SERVER_SEND_QUEUE`]
    /// packets, for servers holding thousands of connections.
    pub fn connection_defaults() -> ConfigBuilder {
        Config::builder().thread_stack_size(DEFAULT_SERVER_THREAD_STACK).send_queue(DEFAULT_SERVER_SEND_QUEUE)
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

    /// The configuration of connection `name`: the template's, named.
    pub(crate) fn connection_named(&self, name: String) -> Config {
        ConfigBuilder::from(self.connection.clone()).name(name).build()
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
    /// connection's own). Default [`ServerConfig::connection_defaults()`]:
    /// start from it to keep its lighter threads and queue
    /// (`ServerConfig::connection_defaults().extensions(true)`). With
    /// [`extensions`](ConfigBuilder::extensions) on, a peer that has them
    /// too learns why the server closes on it (idle, shutting down), and its
    /// own quit reason reaches the end hook.
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
