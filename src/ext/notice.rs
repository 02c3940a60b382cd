//! Notices: control requests that are never answered, which tell the peer
//! something about one of this end's requests. Sent only when both ends
//! agreed on [`Feature::Cancel`](super::Feature::Cancel).
//!
//! ```text
//! CANCEL  (rq_type 4)  channel tag            the caller gave the request up
//! BUDGET  (rq_type 5)  channel tag micros     the caller waits at most this long
//! ```
//!
//! All three are BSUInts. A budget notice goes just before its request, so
//! the serving end has it when the request arrives; the budget is relative,
//! so the two ends' clocks need not agree.

use std::time::Duration;

use crate::wire::{decode_varint, encode_varint, ProtocolError};

/// What a notice says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// The caller gave up request `(channel, tag)`: its answer will be
    /// dropped.
    Cancel {
        /// The request's channel.
        channel: u64,
        /// Its tag.
        tag: u64,
    },
    /// The caller of request `(channel, tag)` waits at most `budget`.
    Budget {
        /// The request's channel.
        channel: u64,
        /// Its tag.
        tag: u64,
        /// How long the caller waits, from when it sent the request.
        budget: Duration,
    },
}

/// Why a notice cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoticeError {
    /// A bad or missing integer.
    Field(&'static str, Option<ProtocolError>),
    /// Bytes after the last field.
    TrailingBytes,
}

impl std::fmt::Display for NoticeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NoticeError::Field(field, Some(error)) => write!(f, "bad {field} in a notice: {error}"),
            NoticeError::Field(field, None) => write!(f, "a notice ends before its {field}"),
            NoticeError::TrailingBytes => write!(f, "bytes after the end of a notice"),
        }
    }
}

impl std::error::Error for NoticeError {}

impl Notice {
    /// The notice's control request type.
    pub fn rq_type(&self) -> u64 {
        match self {
            Notice::Cancel { .. } => super::rq_type::CANCEL,
            Notice::Budget { .. } => super::rq_type::BUDGET,
        }
    }

    /// Its payload.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(12);
        match *self {
            Notice::Cancel { channel, tag } => {
                encode_varint(channel, &mut out);
                encode_varint(tag, &mut out);
            }
            Notice::Budget { channel, tag, budget } => {
                encode_varint(channel, &mut out);
                encode_varint(tag, &mut out);
                encode_varint(u64::try_from(budget.as_micros()).unwrap_or(u64::MAX), &mut out);
            }
        }
        out
    }

    /// The notice of control request type `rq_type` with `payload`; `None`
    /// if that type is not a notice.
    pub fn decode(rq_type: u64, payload: &[u8]) -> Option<Result<Notice, NoticeError>> {
        let budget = match rq_type {
            super::rq_type::CANCEL => false,
            super::rq_type::BUDGET => true,
            _ => return None,
        };
        Some(decode_fields(payload, budget))
    }
}

fn decode_fields(payload: &[u8], budget: bool) -> Result<Notice, NoticeError> {
    let mut at = 0;
    let mut field = |name: &'static str| match decode_varint(&payload[at..]) {
        Ok(Some((value, used))) => {
            at += used;
            Ok(value)
        }
        Ok(None) => Err(NoticeError::Field(name, None)),
        Err(error) => Err(NoticeError::Field(name, Some(error))),
    };
    let channel = field("channel")?;
    let tag = field("tag")?;
    let notice = if budget {
        Notice::Budget { channel, tag, budget: Duration::from_micros(field("budget")?) }
    } else {
        Notice::Cancel { channel, tag }
    };
    if at != payload.len() {
        return Err(NoticeError::TrailingBytes);
    }
    Ok(notice)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ext::rq_type;

    #[test]
    fn notices_round_trip_with_their_bytes() {
        let cancel = Notice::Cancel { channel: 0, tag: 300 };
        assert_eq!(cancel.encode(), [0x00, 0x82, 0x2c]);
        assert_eq!(Notice::decode(rq_type::CANCEL, &cancel.encode()), Some(Ok(cancel)));
        let budget = Notice::Budget { channel: 5, tag: 2, budget: Duration::from_millis(250) };
        // 250,000 µs = 0x3d090: 7-bit groups 0f 21 10.
        assert_eq!(budget.encode(), [0x05, 0x02, 0x8f, 0xa1, 0x10]);
        assert_eq!(Notice::decode(rq_type::BUDGET, &budget.encode()), Some(Ok(budget)));
    }

    #[test]
    fn other_types_are_not_notices_and_bad_ones_say_why() {
        assert_eq!(Notice::decode(rq_type::PING, b""), None);
        assert_eq!(Notice::decode(rq_type::CANCEL, b"\x01"), Some(Err(NoticeError::Field("tag", None))));
        assert_eq!(Notice::decode(rq_type::CANCEL, b"\x01\x02\x03"), Some(Err(NoticeError::TrailingBytes)));
        assert!(matches!(Notice::decode(rq_type::BUDGET, b"\x01\x02"), Some(Err(NoticeError::Field("budget", None)))));
    }
}
