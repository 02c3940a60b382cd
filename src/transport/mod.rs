//! What a connection runs over: a stream to read, a stream to write, and how
//! to finish with them. One file per kind of stream.
//!
//! Streams passed in by value are owned by the connection. After a clean
//! [`close`](crate::PacketConnection::close) they can be taken back with
//! [`Finished::into_streams`](crate::Finished::into_streams) (as
//! cs.packetstream leaves its handles open for reuse); otherwise they are
//! closed when the connection is dropped. A child's stdio is always closed at
//! close, since that is how the child learns to exit.

mod base;
mod child;
mod memory;
mod on_demand;
mod pipe;
mod process;
mod readiness;
mod socket;

pub(crate) use base::{Hooks, Opened};
pub use base::{ReadHalf, Transport, WriteHalf};
pub use memory::{memory_pipe, MemoryReader, MemoryWriter};
pub(crate) use process::{ChildProcess, ChildReport};
pub(crate) use readiness::{gate, Cpu, Readable};
