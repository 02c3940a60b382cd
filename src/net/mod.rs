//! Servers, clients, supervised children and in-process peers, on top of
//! [`PacketConnection`](crate::PacketConnection): the top layer.
//!
//! - [`Server`]: listens on TCP (IPv4, IPv6) and Unix addresses, and on
//!   in-process [`MemoryListener`]s; makes a handler for each connection
//!   with a [`HandlerFactory`] that sees the peer; calls hooks when a
//!   connection opens and ends (with its [`EndReason`]); lists the live
//!   connections; holds limits in total and per peer ([`Refusal`]) and an
//!   idle timeout; shuts down against one deadline ([`ServerHandle::shutdown`]).
//! - [`connect`]: a TCP address or a Unix path ([`Addr`]), with a timeout.
//! - [`Reconnecting`]: a client that opens its connection with any
//!   [`Opener`] when first used, and again after the peer went away, with
//!   backoff; only the requests in flight then fail.
//! - [`Supervised`]: a helper process talked to over its stdio, started on
//!   demand, checked at start-up, restarted with backoff, and given up
//!   after a crash loop; callers learn its exit status and last stderr
//!   lines.

mod addr;
mod client;
mod config;
mod crash;
mod crew;
mod end;
mod error;
mod hooks;
mod info;
mod limits;
mod listener;
mod memory;
mod opener;
mod reconnect;
mod server;
mod supervise;
mod tracked;
mod unix;
mod wake;
mod watch;

pub use addr::{Addr, AddrParseError, Peer};
pub use client::{connect, DEFAULT_CONNECT_TIMEOUT};
pub use config::{ServerConfig, ServerConfigBuilder, DEFAULT_SERVER_SEND_QUEUE, DEFAULT_SERVER_THREAD_STACK};
pub use crash::CrashLoop;
pub use end::EndReason;
pub use error::{ClientCallError, ClientCallTimeoutError, ClientSubmitError, OpenError};
pub use info::ConnectionInfo;
pub use limits::Refusal;
pub use memory::{MemoryConnector, MemoryListener};
pub use opener::{Connect, Opener, Spawn};
pub use reconnect::{ReconnectConfig, ReconnectConfigBuilder, Reconnecting};
pub use server::{HandlerFactory, Server, ServerBuilder, ServerHandle, ServerTotals, ShutdownReport};
pub use supervise::{SuperviseConfig, SuperviseConfigBuilder, Supervised};
