//! Settings of a connection: a [`Config`] read through plain getters, built
//! with a [`ConfigBuilder`].

use std::sync::Arc;
use std::time::Duration;

use crate::ext::service::{Service, Services};
use crate::stream::credit::{DEFAULT_WINDOW_BYTES, DEFAULT_WINDOW_ITEMS};
use crate::stream::{Credit, Overflow};
use crate::wire::DEFAULT_MAX_PACKET_SIZE;

/// The default packet grace. See [`ConfigBuilder::packet_grace`].
pub const DEFAULT_PACKET_GRACE: Duration = Duration::from_millis(1);

/// The default wait spin. See [`ConfigBuilder::wait_spin`].
pub const DEFAULT_WAIT_SPIN: Duration = Duration::from_micros(20);

/// After a takeover (or a slow handler on the reading thread), how long
/// requests go to the workers before the reading thread runs handlers
/// again: a handler that blocked once is likely to block again, and each
/// takeover costs a tick of stalled reading.
const DEFAULT_HANDLER_PAUSE: Duration = Duration::from_millis(100);

/// How a connection behaves. Start from [`Config::default()`], or change
/// what you need through [`Config::builder()`]; a builder can be passed
/// wherever a `Config` is asked for:
///
/// ```
/// use std::time::Duration;
/// let config = packetstream::Config::builder()
///     .name("store-client")
///     .workers(8)
///     .close_timeout(Duration::from_secs(2))
///     .build();
/// assert_eq!(config.workers(), 8);
/// assert_eq!(config.name(), "store-client");
/// ```
#[non_exhaustive]
#[derive(Debug, Clone)]
pub struct Config {
    name: String,
    packet_grace: Duration,
    workers: usize,
    wait_spin: Duration,
    max_packet_size: usize,
    send_queue: usize,
    close_timeout: Duration,
    max_incoming: usize,
    serve_all_channels: bool,
    channels: Vec<u64>,
    extensions: bool,
    services: Services,
    handler_pause: Duration,
    thread_stack: Option<usize>,
    keepalive: Option<(Duration, Duration)>,
    stream_window: Credit,
    stream_overflow: Overflow,
    max_streams: usize,
    caller_reads: bool,
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
            extensions: false,
            services: Services::default(),
            handler_pause: DEFAULT_HANDLER_PAUSE,
            thread_stack: None,
            keepalive: None,
            stream_window: Credit { items: DEFAULT_WINDOW_ITEMS, bytes: DEFAULT_WINDOW_BYTES },
            stream_overflow: Overflow::Block,
            max_streams: 1024,
            caller_reads: true,
        }
    }
}

impl Config {
    /// A builder starting from the defaults.
    pub fn builder() -> ConfigBuilder {
        ConfigBuilder::default()
    }

    /// The connection's name. See [`ConfigBuilder::name`].
    pub fn name(&self) -> &str {
        &self.name
    }

    /// See [`ConfigBuilder::packet_grace`].
    pub fn packet_grace(&self) -> Duration {
        self.packet_grace
    }

    /// See [`ConfigBuilder::workers`].
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// See [`ConfigBuilder::wait_spin`].
    pub fn wait_spin(&self) -> Duration {
        self.wait_spin
    }

    /// See [`ConfigBuilder::max_packet_size`].
    pub fn max_packet_size(&self) -> usize {
        self.max_packet_size
    }

    /// See [`ConfigBuilder::send_queue`].
    pub fn send_queue(&self) -> usize {
        self.send_queue
    }

    /// See [`ConfigBuilder::close_timeout`].
    pub fn close_timeout(&self) -> Duration {
        self.close_timeout
    }

    /// See [`ConfigBuilder::max_incoming`].
    pub fn max_incoming(&self) -> usize {
        self.max_incoming
    }

    /// The channels served besides 0. See [`ConfigBuilder::serve_channel`].
    pub fn served_channels(&self) -> &[u64] {
        &self.channels
    }

    /// See [`ConfigBuilder::serve_all_channels`].
    pub fn serves_all_channels(&self) -> bool {
        self.serve_all_channels
    }

    /// See [`ConfigBuilder::extensions`].
    pub fn extensions(&self) -> bool {
        self.extensions
    }

    /// See [`ConfigBuilder::handler_pause`].
    #[doc(hidden)]
    pub fn handler_pause(&self) -> Duration {
        self.handler_pause
    }

    /// See [`ConfigBuilder::thread_stack_size`]: `None` for the platform's
    /// default.
    pub fn thread_stack_size(&self) -> Option<usize> {
        self.thread_stack
    }

    /// See [`ConfigBuilder::keepalive`]: the interval and the timeout.
    pub fn keepalive(&self) -> Option<(Duration, Duration)> {
        self.keepalive
    }

    /// See [`ConfigBuilder::stream_window`].
    pub fn stream_window(&self) -> Credit {
        self.stream_window
    }

    /// See [`ConfigBuilder::stream_overflow`].
    pub fn stream_overflow(&self) -> Overflow {
        self.stream_overflow
    }

    /// See [`ConfigBuilder::max_streams`].
    pub fn max_streams(&self) -> usize {
        self.max_streams
    }

    /// See [`ConfigBuilder::caller_reads`].
    pub fn caller_reads(&self) -> bool {
        self.caller_reads
    }

    /// The control-channel services of a layer above the connection.
    pub(crate) fn services(&self) -> &Services {
        &self.services
    }
}

/// Builds a [`Config`]: every setter takes and returns the builder.
#[derive(Debug, Clone, Default)]
pub struct ConfigBuilder {
    config: Config,
}

impl ConfigBuilder {
    /// The finished configuration.
    pub fn build(self) -> Config {
        self.config
    }

    /// The connection's name: it names the threads (`<name>-reader`, ...) and
    /// starts every log line. Default `packetstream`. Linux keeps 15 bytes of
    /// a thread's name, so a short one keeps them apart.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.config.name = name.into();
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
        self.config.packet_grace = grace;
        self
    }

    /// How long a caller waiting for an answer stays awake before it
    /// sleeps: it polls the answer, yielding the CPU to any other runnable
    /// thread each time. Default 20 µs; zero sleeps at once. With more than
    /// 4 of this side's requests in flight, a caller spins only while it
    /// pays: after a spin the answer did not end, the next 8 such waits
    /// sleep at once. A connection started by a thread bound to one CPU
    /// (Linux affinity, as `taskset -c 0` sets it) never spins: no other
    /// thread could answer meanwhile.
    ///
    /// A sleeping thread takes a wake-up to resume, and on a virtual
    /// machine whose CPU went idle meanwhile that can cost tens of
    /// microseconds, more than a whole round trip. An answer that comes
    /// within the spin costs none. A wait that outlasts it costs at most
    /// this much CPU. BENCHMARKS.md has the measurements behind the default.
    pub fn wait_spin(mut self, spin: Duration) -> Self {
        self.config.wait_spin = spin;
        self
    }

    /// How many worker threads run request handlers at once. Default 4, as
    /// in cs.packetstream. At least 1. While they are all idle the reading
    /// thread runs a request itself (see [`Handler`](crate::Handler)).
    pub fn workers(mut self, workers: usize) -> Self {
        self.config.workers = workers.max(1);
        self
    }

    /// The largest frame (packet header and payload) accepted from the peer;
    /// a longer one is a protocol error that ends the connection. Default
    /// 16 MiB ([`DEFAULT_MAX_PACKET_SIZE`]).
    pub fn max_packet_size(mut self, bytes: usize) -> Self {
        self.config.max_packet_size = bytes;
        self
    }

    /// How many packets may wait for the writer. A full queue blocks whoever
    /// submits (backpressure). Default 1024. At least 1.
    pub fn send_queue(mut self, packets: usize) -> Self {
        self.config.send_queue = packets.max(1);
        self
    }

    /// How long [`close`](crate::PacketConnection::close) (and drop) may take
    /// before it stops waiting for the peer and for running handlers.
    /// Default 5 s.
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.config.close_timeout = timeout;
        self
    }

    /// How many of the peer's requests may be in service (read, not yet
    /// answered) at once. The reader never stops reading to wait for
    /// handlers, since that can deadlock two peers flooding each other; a peer
    /// that goes past this limit is a protocol error instead. Default 65536.
    pub fn max_incoming(mut self, requests: usize) -> Self {
        self.config.max_incoming = requests.max(1);
        self
    }

    /// Also serve requests on `channel` (channel 0 is always served). Requests
    /// on other channels are refused with `unknown channel N`, as
    /// cs.packetstream does. The channels of
    /// [`ext::RESERVED_CHANNELS`](crate::ext::RESERVED_CHANNELS) cannot be
    /// served: a connection asked to fails to start.
    pub fn serve_channel(mut self, channel: u64) -> Self {
        if !self.config.channels.contains(&channel) {
            self.config.channels.push(channel);
        }
        self
    }

    /// Serve requests on every channel, but those reserved for extensions.
    pub fn serve_all_channels(mut self) -> Self {
        self.config.serve_all_channels = true;
        self
    }

    /// Turn the protocol extensions on (off by default). The connection then
    /// probes its peer once, at start, with a request on a reserved channel
    /// ([`ext`](crate::ext)), and answers the peer's probe. Against a peer
    /// with extensions too, both use the features both have; against a
    /// plain cs.packetstream peer, which refuses the probe, nothing changes.
    /// Requests sent before the answer use the plain format.
    ///
    /// Features: a close may carry a reason
    /// ([`CloseOptions::reason`](crate::CloseOptions::reason)), which the
    /// peer's [`Finished::peer_quit_reason`](crate::Finished::peer_quit_reason)
    /// reports.
    ///
    /// Off, a connection neither probes nor answers probes (it refuses them
    /// as cs.packetstream does): it behaves as a plain peer.
    pub fn extensions(mut self, on: bool) -> Self {
        self.config.extensions = on;
        self
    }

    /// The stack size of the connection's threads (reader, writer,
    /// workers, keepalive), in bytes; by default the platform's (2 MiB on
    /// Linux, of which only the pages touched cost memory). Handlers run on
    /// the reader and the workers, so a smaller stack must still hold the
    /// deepest handler. A server holding thousands of connections may want
    /// less address space per thread; 128 KiB is plenty for handlers that do
    /// not recurse deeply.
    pub fn thread_stack_size(mut self, bytes: usize) -> Self {
        self.config.thread_stack = Some(bytes);
        self
    }

    /// Checks that the peer is there: when nothing has arrived from it for
    /// `interval`, the connection sends a ping (a request on the control
    /// channel, which any peer answers: one with extensions ok, a plain
    /// cs.packetstream peer with a refusal); when nothing at all has arrived
    /// for `timeout`, the connection fails with
    /// [`ConnectionError::Unresponsive`](crate::ConnectionError::Unresponsive),
    /// which every waiting caller gets, and the transport is interrupted.
    /// Off by default; it takes a thread of its own (`<name>-alive`).
    pub fn keepalive(mut self, interval: Duration, timeout: Duration) -> Self {
        self.config.keepalive = Some((interval, timeout.max(interval)));
        self
    }

    /// The window this end grants for the items of streams the peer opens
    /// and sends on: the peer never has more than `items` items, or `bytes`
    /// bytes of items, unread by the handler in flight. Default 64 items,
    /// 1 MiB. (The caller's window for the items it takes is in its
    /// [`StreamOptions`](crate::StreamOptions).)
    pub fn stream_window(mut self, items: u64, bytes: u64) -> Self {
        self.config.stream_window = Credit { items: items.max(1), bytes: bytes.max(1) };
        self
    }

    /// What this end does when a handler falls behind the items of a stream
    /// the peer sends: wait (the default), drop the oldest, or end the
    /// stream.
    pub fn stream_overflow(mut self, overflow: Overflow) -> Self {
        self.config.stream_overflow = overflow;
        self
    }

    /// How many streams the peer may have open here at once, each with a
    /// handler thread of its own; past it an open is refused (failed with a
    /// text that says so). Default 1,024.
    pub fn max_streams(mut self, streams: usize) -> Self {
        self.config.max_streams = streams.max(1);
        self
    }

    /// Whether a caller waiting for its answer may read the stream itself
    /// while nobody else does (on by default). Between bursts the reading
    /// thread then leaves the stream for up to a millisecond to the next
    /// caller that waits, which reads its answer as a program that writes a
    /// request and reads the reply would: a thread wake-up less per call. A
    /// request from the peer arriving in such a gap waits up to that
    /// millisecond. Only for streams with a file descriptor (pipes, sockets,
    /// a child's stdio); the in-memory transport keeps its reading thread.
    pub fn caller_reads(mut self, on: bool) -> Self {
        self.config.caller_reads = on;
        self
    }

    /// Adds a control-channel service (for the layers above the connection,
    /// such as the typed-request registry); implies extensions on.
    pub(crate) fn service(mut self, service: Arc<dyn Service>) -> Self {
        self.config.services.add(service);
        self.config.extensions = true;
        self
    }

    /// After a handler that blocked on the reading thread (a worker took
    /// reading over), or one that was slow there, requests go to the workers
    /// for this long before the reading thread runs handlers again. Default
    /// 100 ms; zero turns the pause off. For the benchmarks that measure it.
    #[doc(hidden)]
    pub fn handler_pause(mut self, pause: Duration) -> Self {
        self.config.handler_pause = pause;
        self
    }
}

impl From<Config> for ConfigBuilder {
    /// A builder starting from `config`, to change a few settings of it.
    fn from(config: Config) -> Self {
        ConfigBuilder { config }
    }
}

impl From<ConfigBuilder> for Config {
    fn from(builder: ConfigBuilder) -> Self {
        builder.build()
    }
}
