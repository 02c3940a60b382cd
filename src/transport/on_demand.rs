//! Streams opened when the connection starts, by a function the caller
//! gives, as cs.packetstream's callable `recv_send`.

use std::io;

use super::base::{Hooks, Source, Transport};

impl Transport {
    /// Streams opened by `open` when the connection starts, as
    /// cs.packetstream's callable `recv_send`. Give the transport it returns
    /// a [`with_shutdown`](Self::with_shutdown) for what must run at close.
    pub fn on_demand<F>(open: F) -> Transport
    where
        F: FnOnce() -> io::Result<Transport> + Send + 'static,
    {
        Transport { source: Source::OnDemand(Box::new(open)), hooks: Hooks::default() }
    }
}
