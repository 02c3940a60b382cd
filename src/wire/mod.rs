//! The byte format of cs.packetstream, as plain values and functions: no
//! I/O beyond the [`Read`](std::io::Read) a [`PacketReader`] is given, no
//! threads, no connection state, and nothing else of the crate.
//!
//! - [`Packet`]: one request, response or control packet, built only through
//!   checked constructors so that every packet can be encoded.
//! - [`encode`] / [`decode`]: frames to and from byte slices; `decode`
//!   returns `Ok(None)` while the slice holds only part of a frame.
//! - [`PacketReader`]: packets from a stream, many per read call.
//! - [`encode_varint`] / [`decode_varint`]: BSUInt, the integer of the format.
//!
//! `docs/protocol.md` in the repository describes the bytes.
//!
//! ```
//! use packetstream::wire::{self, Packet};
//!
//! // The request of the format's first example: channel 0, tag 2, type 0, payload "hi".
//! let request = Packet::request(0, 2, 0, 0, b"hi".to_vec()).unwrap();
//! let mut bytes = Vec::new();
//! wire::encode(&request, &mut bytes);
//! assert_eq!(bytes, [0x05, 0x02, 0x02, 0x01, b'h', b'i']);
//!
//! // Part of a frame asks for more; the whole frame decodes back.
//! assert_eq!(wire::decode(&bytes[..3], wire::DEFAULT_MAX_PACKET_SIZE).unwrap(), None);
//! let (decoded, used) = wire::decode(&bytes, wire::DEFAULT_MAX_PACKET_SIZE).unwrap().unwrap();
//! assert_eq!((decoded, used), (request, 6));
//! ```

mod error;
mod frame;
mod packet;
mod reader;
mod text;
mod varint;

pub use error::{ProtocolError, ReadError, ValueTooLarge};
pub use frame::{decode, encode, encode_header, encoded_len, DEFAULT_MAX_PACKET_SIZE};
pub(crate) use packet::{check_request, check_response_flags};
pub use packet::{Control, Packet, MAX_REQUEST_FLAGS, MAX_RESPONSE_FLAGS, MAX_RQ_TYPE};
pub use reader::{Gate, Gated, PacketReader, FRAME_START_LEN};
pub use text::text_hint;
pub use varint::{decode_varint, encode_varint, varint_len, MAX_VARINT_LEN};
