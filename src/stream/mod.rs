//! Streams inside a request, as pure values and arithmetic: the messages
//! of a stream and their packets ([`message`]), credit flow control
//! ([`credit`]), and moat-lib-cmd's error codes ([`code`]). The connection
//! carries them (see [`PacketConnection::stream`](crate::PacketConnection::stream)).

pub mod code;
pub mod credit;
pub mod message;

pub use code::Code;
pub use credit::{Credit, Overflow};
