//! Streams inside a request, carried by a connection: the messages and
//! credit arithmetic of [`stream`](crate::stream) put to work.
//!
//! - [`state`]: one end's state of one stream, fed by the reader and used
//!   by the application's threads;
//! - [`handles`]: the [`StreamSender`](handles::StreamSender) and
//!   [`StreamReceiver`](handles::StreamReceiver) an application holds, at
//!   either end;
//! - [`calling`]: the caller's end: opening, its conversation in the tag
//!   map, the final reply;
//! - [`served`]: the serving end's open streams and their handlers' threads.
//!
//! The serving side's reader hands stream messages here from
//! [`serve`](super::serve); this module never looks up to it.

pub(crate) mod calling;
pub(crate) mod handles;
pub(crate) mod served;
pub(crate) mod state;
