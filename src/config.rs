//! Settings of a connection.

use std::time::Duration;

use crate::codec::DEFAULT_MAX_PACKET_SIZE;

/// The default packet grace. See [`Config::packet_grace`].
pub const DEFAULT_PACKET_GRACE: Duration = Duration::from_millis(1);

/// The default wait spin. See [`Config::wait_spin`].
pub const DEFAULT_WAIT_SPIN: Duration = Duration::from_micros(20);

/// How a connection behaves. Start from [`Config::default()`] and change what
/// you need:
///
/// ```
/// use std::time::Duration;
/// let config = packetstream::Config::default()
///     .name("store-client")
///     .workers(8)
///     .close_timeout(Duration::from_secs(2));
/// assert_eq!(config.get_workers(), 8);
/// ```
#[non_exhaustive]
#[derive(Debug, Clone)]
pub struct Config {
    pub(crate) name: String,
    pub(crate) packet_grace: Duration,
    pub(crate) workers: usize,
    pub(crate) wait_spin: Duration,
    pub(crate) max_packet_size: usize,
    pub(crate) send_queue: usize,
    pub(crate) close_timeout: Duration,
    pub(crate) max_incoming: usize,
    pub(crate) serve_all_channels: bool,
    pub(crate) channels: Vec<u64>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            name: "packetstream".to_owned(),
            packet_grace: DEFAULT_PACKET_GRACE,
            workers: 4,
            wait_spin: DEFAULT_WAIT_SPIN,
            max_packet_size: DEFAULT_MAX_PACKET_SIZE,
            send_queue: 1024,
            close_timeout: Duration::from_secs(5),
            max_incoming: 65536,
            serve_all_channels: false,
            channels: vec![0],
        }
    }
}

macro_rules! getter {
    ($(#[$doc:meta])* $get:ident: $field:ident: $ty:ty) => {
        $(#[$doc])*
        pub fn $get(&self) -> $ty {
            self.$field.clone()
        }
    };
}

impl Config {
    /// The connection's name: it names the threads (`<name>-reader`, ...) and
    /// starts every log line. Default `packetstream`.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// How long a packet may be held back to leave with others while
    /// nobody waits for an answer. Default 1 ms; zero writes every packet
    /// at once.
    ///
    /// A packet is held back only under load: when more than a few requests
    /// are in flight. It leaves as soon as enough others have gathered for a
    /// write call, or any caller of this connection waits for an answer, or
    /// a worker goes idle, or the grace has passed (give or take one more
    /// grace, as the writer thread checks on a timer). A caller that waits
    /// for its answers never pays the grace. BENCHMARKS.md has the
    /// measurements behind the default.
    pub fn packet_grace(mut self, grace: Duration) -> Self {
        self.packet_grace = grace;
        self
    }

    /// How long a caller waiting for an answer stays awake before it
    /// sleeps: it polls the answer, yielding the CPU to any other runnable
    /// thread each time. Default 20 µs; zero sleeps at once. With more than
    /// 4 of this side's requests in flight, a caller spins only while it
    /// pays: after a spin the answer did not end, the next 8 such waits
    /// sleep at once.
    ///
    /// A sleeping thread takes a wake-up to resume, and on a virtual
    /// machine whose CPU went idle meanwhile that can cost tens of
    /// microseconds, more than a whole round trip. An answer that comes
    /// within the spin costs none. A wait that outlasts it costs at most
    /// this much CPU. BENCHMARKS.md has the measurements behind the default.
    pub fn wait_spin(mut self, spin: Duration) -> Self {
        self.wait_spin = spin;
        self
    }

    /// How many worker threads run request handlers at once. Default 4, as
    /// in cs.packetstream. At least 1. While they are all idle the reading
    /// thread runs a request itself (see [`Handler`](crate::Handler)).
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers.max(1);
        self
    }

    /// The largest frame (packet header and payload) accepted from the peer;
    /// a longer one is a protocol error that ends the connection. Default
    /// 16 MiB ([`DEFAULT_MAX_PACKET_SIZE`]).
    pub fn max_packet_size(mut self, bytes: usize) -> Self {
        self.max_packet_size = bytes;
        self
    }

    /// How many packets may wait for the writer. A full queue blocks whoever
    /// submits (backpressure). Default 1024. At least 1.
    pub fn send_queue(mut self, packets: usize) -> Self {
        self.send_queue = packets.max(1);
        self
    }

    /// How long [`close`](crate::PacketConnection::close) (and drop) may take
    /// before it stops waiting for the peer and for running handlers.
    /// Default 5 s.
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// How many of the peer's requests may be in service (read, not yet
    /// answered) at once. The reader never stops reading to wait for
    /// handlers, since that can deadlock two peers flooding each other; a peer
    /// that goes past this limit is a protocol error instead. Default 65536.
    pub fn max_incoming(mut self, requests: usize) -> Self {
        self.max_incoming = requests.max(1);
        self
    }

    /// Also serve requests on `channel` (channel 0 is always served). Requests
    /// on other channels are rejected with `unknown channel N`, as
    /// cs.packetstream does.
    pub fn serve_channel(mut self, channel: u64) -> Self {
        if !self.channels.contains(&channel) {
            self.channels.push(channel);
        }
        self
    }

    /// Serve requests on every channel.
    pub fn serve_all_channels(mut self) -> Self {
        self.serve_all_channels = true;
        self
    }

    pub(crate) fn serves(&self, channel: u64) -> bool {
        self.serve_all_channels || self.channels.contains(&channel)
    }

    getter!(
        /// See [`Config::name`].
        get_name: name: String
    );
    getter!(
        /// See [`Config::packet_grace`].
        get_packet_grace: packet_grace: Duration
    );
    getter!(
        /// See [`Config::wait_spin`].
        get_wait_spin: wait_spin: Duration
    );
    getter!(
        /// See [`Config::workers`].
        get_workers: workers: usize
    );
    getter!(
        /// See [`Config::max_packet_size`].
        get_max_packet_size: max_packet_size: usize
    );
    getter!(
        /// See [`Config::send_queue`].
        get_send_queue: send_queue: usize
    );
    getter!(
        /// See [`Config::close_timeout`].
        get_close_timeout: close_timeout: Duration
    );
    getter!(
        /// See [`Config::max_incoming`].
        get_max_incoming: max_incoming: usize
    );
}
