//! The messages of a stream, and their packets.
//!
//! A stream is a conversation between the end that opened it (the caller)
//! and the end that serves it. Every message is a packet framed as a
//! request (never answered: both ends agreed on the extension), on one of
//! two reserved channels that say its direction, with the conversation's
//! tag (the caller's tag on the up channel) and the message's kind as its
//! request type:
//!
//! ```text
//! kind     dir   flags                    payload
//! 0 OPEN   up    the request's flags      rq_type mode credit.items credit.bytes budget payload
//! 1 ITEM   both  0                        the item
//! 2 CREDIT both  0                        items bytes
//! 3 WARN   both  0                        code text
//! 4 END    both  0                        (empty): the sender's items end
//! 5 STOP   both  0                        code text: send me no more items
//! 6 CANCEL both  0                        code text: the conversation is off
//! 7 REPLY  down  (flags << 1) | ok        the reply's payload
//! ```
//!
//! All integers are BSUInt; `mode` has bit 0 set when the caller sends
//! items and bit 1 when it takes them; `budget` is 0 for none, else the
//! caller's time budget in microseconds plus one; text is UTF-8, the rest
//! of the payload. `docs/protocol.md` has the whole.

use std::fmt;
use std::time::Duration;

use super::code::Code;
use super::credit::Credit;
use crate::ext::RESERVED_CHANNELS;
use crate::wire::{decode_varint, encode_varint, Packet, ProtocolError, ValueTooLarge, MAX_RESPONSE_FLAGS};

/// The channel of the caller's messages.
pub const UP: u64 = RESERVED_CHANNELS.0 + 1;
/// The channel of the serving end's messages.
pub const DOWN: u64 = RESERVED_CHANNELS.0 + 2;

/// What opens a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Open {
    /// The application's request type.
    pub rq_type: u64,
    /// The request's flags.
    pub flags: u64,
    /// Whether the caller will send items.
    pub caller_sends: bool,
    /// Whether the caller takes items.
    pub caller_receives: bool,
    /// The caller's first grant for the serving end's items.
    pub credit: Credit,
    /// The caller's time budget for the whole conversation.
    pub budget: Option<Duration>,
    /// The request's payload.
    pub payload: Vec<u8>,
}

/// A warning: out-of-band news attached to a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// Its kind.
    pub code: Code,
    /// What it says.
    pub text: String,
}

/// The serving end's final answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Ok or failed.
    pub ok: bool,
    /// The application's flags.
    pub flags: u64,
    /// The payload.
    pub payload: Vec<u8>,
}

/// One message of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// The caller opens the conversation.
    Open(Open),
    /// An item.
    Item(Vec<u8>),
    /// More credit for the other end's items.
    Credit(Credit),
    /// A warning.
    Warn(Warning),
    /// The sender's items end.
    End,
    /// The receiver wants no more items.
    Stop(Code, String),
    /// The conversation is off for the sender.
    Cancel(Code, String),
    /// The serving end's final answer.
    Reply(Reply),
}

/// A stream packet that cannot be read.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageError {
    /// A response, where stream messages are all requests.
    NotARequest,
    /// A kind this crate does not know.
    UnknownKind(u64),
    /// A message that cannot travel in this direction.
    WrongDirection(u64),
    /// A bad integer in a field.
    BadField {
        /// Which field.
        field: &'static str,
        /// What is wrong with it.
        error: ProtocolError,
    },
    /// The payload ends inside a field.
    Truncated(&'static str),
    /// Text that is not UTF-8.
    BadText,
    /// Bytes after the fields of a message that has no payload of its own.
    TrailingBytes,
    /// Flags on a message that has none.
    UnexpectedFlags(u64),
}

impl fmt::Display for MessageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MessageError::NotARequest => write!(f, "a stream message must be a request"),
            MessageError::UnknownKind(kind) => write!(f, "unknown stream message kind {kind}"),
            MessageError::WrongDirection(kind) => write!(f, "stream message kind {kind} in the wrong direction"),
            MessageError::BadField { field, error } => write!(f, "bad {field} in a stream message: {error}"),
            MessageError::Truncated(field) => write!(f, "stream message ends inside its {field}"),
            MessageError::BadText => write!(f, "stream message text is not UTF-8"),
            MessageError::TrailingBytes => write!(f, "bytes after the end of a stream message"),
            MessageError::UnexpectedFlags(flags) => write!(f, "flags {flags} on a stream message that has none"),
        }
    }
}

impl std::error::Error for MessageError {}

mod kind {
    pub const OPEN: u64 = 0;
    pub const ITEM: u64 = 1;
    pub const CREDIT: u64 = 2;
    pub const WARN: u64 = 3;
    pub const END: u64 = 4;
    pub const STOP: u64 = 5;
    pub const CANCEL: u64 = 6;
    pub const REPLY: u64 = 7;
}

fn coded(code: Code, text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + text.len());
    encode_varint(code.wire(), &mut out);
    out.extend_from_slice(text.as_bytes());
    out
}

impl Message {
    /// The packet of this message for conversation `tag`, on `channel`
    /// ([`UP`] or [`DOWN`]).
    ///
    /// # Errors
    /// Flags too large: an open's over what a request carries, a reply's over
    /// what a response carries.
    pub fn into_packet(self, channel: u64, tag: u64) -> Result<Packet, ValueTooLarge> {
        let (kind, flags, payload) = match self {
            Message::Open(open) => {
                let mut payload = Vec::with_capacity(8 + open.payload.len());
                encode_varint(open.rq_type, &mut payload);
                encode_varint(u64::from(open.caller_sends) | (u64::from(open.caller_receives) << 1), &mut payload);
                encode_varint(open.credit.items, &mut payload);
                encode_varint(open.credit.bytes, &mut payload);
                let budget = open.budget.map_or(0, |budget| (budget.as_micros() as u64).saturating_add(1));
                encode_varint(budget, &mut payload);
                payload.extend_from_slice(&open.payload);
                (kind::OPEN, open.flags, payload)
            }
            Message::Item(item) => (kind::ITEM, 0, item),
            Message::Credit(credit) => {
                let mut payload = Vec::with_capacity(4);
                encode_varint(credit.items, &mut payload);
                encode_varint(credit.bytes, &mut payload);
                (kind::CREDIT, 0, payload)
            }
            Message::Warn(warning) => (kind::WARN, 0, coded(warning.code, &warning.text)),
            Message::End => (kind::END, 0, Vec::new()),
            Message::Stop(code, text) => (kind::STOP, 0, coded(code, &text)),
            Message::Cancel(code, text) => (kind::CANCEL, 0, coded(code, &text)),
            Message::Reply(reply) => {
                if reply.flags > MAX_RESPONSE_FLAGS {
                    return Err(ValueTooLarge::Flags { flags: reply.flags, max: MAX_RESPONSE_FLAGS });
                }
                (kind::REPLY, (reply.flags << 1) | u64::from(reply.ok), reply.payload)
            }
        };
        Packet::request(channel, tag, kind, flags, payload)
    }

    /// The message of a stream packet.
    ///
    /// # Errors
    /// A [`MessageError`] saying what is wrong.
    pub fn from_packet(packet: Packet) -> Result<Message, MessageError> {
        let kind = packet.rq_type().ok_or(MessageError::NotARequest)?;
        let (channel, flags) = (packet.channel(), packet.flags());
        let payload = packet.into_payload();
        let up = channel == UP;
        if kind != kind::OPEN && kind != kind::REPLY && flags != 0 {
            return Err(MessageError::UnexpectedFlags(flags));
        }
        match kind {
            kind::OPEN if up => {
                let mut fields = Fields::new(&payload);
                let rq_type = fields.integer("request type")?;
                let mode = fields.integer("mode")?;
                let credit = Credit { items: fields.integer("credit")?, bytes: fields.integer("credit")? };
                let budget = match fields.integer("budget")? {
                    0 => None,
                    micros => Some(Duration::from_micros(micros - 1)),
                };
                let at = fields.at;
                let mut payload = payload;
                // The request's own payload follows the fields: moved down
                // in place, not copied to a new buffer.
                payload.drain(..at);
                Ok(Message::Open(Open {
                    rq_type,
                    flags,
                    caller_sends: mode & 1 != 0,
                    caller_receives: mode & 2 != 0,
                    credit,
                    budget,
                    payload,
                }))
            }
            kind::ITEM => Ok(Message::Item(payload)),
            kind::CREDIT => {
                let mut fields = Fields::new(&payload);
                let credit = Credit { items: fields.integer("credit")?, bytes: fields.integer("credit")? };
                fields.finish()?;
                Ok(Message::Credit(credit))
            }
            kind::WARN => {
                let (code, text) = code_and_text(&payload)?;
                Ok(Message::Warn(Warning { code, text }))
            }
            kind::END => {
                Fields::new(&payload).finish()?;
                Ok(Message::End)
            }
            kind::STOP => {
                let (code, text) = code_and_text(&payload)?;
                Ok(Message::Stop(code, text))
            }
            kind::CANCEL => {
                let (code, text) = code_and_text(&payload)?;
                Ok(Message::Cancel(code, text))
            }
            kind::REPLY if !up => Ok(Message::Reply(Reply { ok: flags & 1 == 1, flags: flags >> 1, payload })),
            kind::OPEN | kind::REPLY => Err(MessageError::WrongDirection(kind)),
            other => Err(MessageError::UnknownKind(other)),
        }
    }
}

fn code_and_text(payload: &[u8]) -> Result<(Code, String), MessageError> {
    let mut fields = Fields::new(payload);
    let code = Code::from_wire(fields.integer("code")?);
    let text = std::str::from_utf8(&payload[fields.at..]).map_err(|_| MessageError::BadText)?;
    Ok((code, text.to_owned()))
}

/// The integers at the front of a payload.
struct Fields<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Fields<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Fields { bytes, at: 0 }
    }

    fn integer(&mut self, field: &'static str) -> Result<u64, MessageError> {
        match decode_varint(&self.bytes[self.at..]) {
            Ok(Some((value, used))) => {
                self.at += used;
                Ok(value)
            }
            Ok(None) => Err(MessageError::Truncated(field)),
            Err(error) => Err(MessageError::BadField { field, error }),
        }
    }

    fn finish(self) -> Result<(), MessageError> {
        if self.at == self.bytes.len() {
            Ok(())
        } else {
            Err(MessageError::TrailingBytes)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire;

    fn round_trip(message: Message, channel: u64) -> Vec<u8> {
        let packet = message.clone().into_packet(channel, 9).unwrap();
        let mut bytes = Vec::new();
        wire::encode(&packet, &mut bytes);
        let (decoded, _) = wire::decode(&bytes, 1 << 20).unwrap().unwrap();
        assert_eq!(Message::from_packet(decoded).unwrap(), message);
        bytes
    }

    #[test]
    fn every_message_round_trips_in_its_directions() {
        let open = Open {
            rq_type: 3,
            flags: 5,
            caller_sends: true,
            caller_receives: true,
            credit: Credit { items: 64, bytes: 1 << 20 },
            budget: Some(Duration::from_millis(250)),
            payload: b"args".to_vec(),
        };
        round_trip(Message::Open(open), UP);
        for channel in [UP, DOWN] {
            round_trip(Message::Item(b"item".to_vec()), channel);
            round_trip(Message::Item(Vec::new()), channel);
            round_trip(Message::Credit(Credit { items: 2, bytes: 300 }), channel);
            round_trip(Message::Warn(Warning { code: Code::DataLoss, text: "missed 3".into() }), channel);
            round_trip(Message::End, channel);
            round_trip(Message::Stop(Code::Stop, String::new()), channel);
            round_trip(Message::Cancel(Code::Cancel, "no longer needed".into()), channel);
        }
        round_trip(Message::Reply(Reply { ok: false, flags: 4, payload: b"no".to_vec() }), DOWN);
    }

    #[test]
    fn the_bytes_of_an_open_and_an_item() {
        let open = Open {
            rq_type: 0,
            flags: 0,
            caller_sends: false,
            caller_receives: true,
            credit: Credit { items: 2, bytes: 100 },
            budget: None,
            payload: b"gimme".to_vec(),
        };
        // len tag bits channel(ff fe 01) wire type 1, then rq_type mode items bytes budget payload.
        let bytes = round_trip(Message::Open(open), UP);
        assert_eq!(
            bytes,
            [0x10, 0x09, 0x03, 0xff, 0xfe, 0x01, 0x01, 0x00, 0x02, 0x02, 0x64, 0x00, b'g', b'i', b'm', b'm', b'e']
        );
        let item = round_trip(Message::Item(b"ONE".to_vec()), DOWN);
        assert_eq!(item, [0x09, 0x09, 0x03, 0xff, 0xfe, 0x02, 0x02, b'O', b'N', b'E']);
    }

    #[test]
    fn bad_messages_say_what_is_wrong() {
        let request =
            |channel, kind, flags, payload: &[u8]| Packet::request(channel, 1, kind, flags, payload.to_vec()).unwrap();
        assert_eq!(Message::from_packet(request(DOWN, 0, 0, b"")), Err(MessageError::WrongDirection(0)));
        assert_eq!(Message::from_packet(request(UP, 7, 0, b"")), Err(MessageError::WrongDirection(7)));
        assert_eq!(Message::from_packet(request(UP, 8, 0, b"")), Err(MessageError::UnknownKind(8)));
        assert_eq!(Message::from_packet(request(UP, 2, 0, b"\x01")), Err(MessageError::Truncated("credit")));
        assert_eq!(Message::from_packet(request(UP, 2, 0, b"\x01\x01\x01")), Err(MessageError::TrailingBytes));
        assert_eq!(Message::from_packet(request(UP, 4, 3, b"")), Err(MessageError::UnexpectedFlags(3)));
        assert_eq!(Message::from_packet(request(UP, 3, 0, b"\x05\xff")), Err(MessageError::BadText));
        let response = Packet::response(UP, 1, true, 0, Vec::new()).unwrap();
        assert_eq!(Message::from_packet(response), Err(MessageError::NotARequest));
        assert!(matches!(Message::from_packet(request(UP, 0, 0, b"\xff")), Err(MessageError::Truncated(_))));
    }
}
