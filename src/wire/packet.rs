//! One packet of the wire format, as a value.

use std::fmt;

use super::error::ValueTooLarge;

/// The largest flags a request can carry: the wire packs them with two more
/// bits into one `u64`.
pub const MAX_REQUEST_FLAGS: u64 = u64::MAX >> 2;
/// The largest application flags a response can carry: one bit fewer than a
/// request, since the lowest wire flag is the ok bit.
pub const MAX_RESPONSE_FLAGS: u64 = u64::MAX >> 3;
/// The largest request type: the wire sends `rq_type + 1`.
pub const MAX_RQ_TYPE: u64 = u64::MAX - 1;

/// The two control packets of the protocol (requests with wire type 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// The sender will send nothing more.
    Eof,
    /// End of requests: the sender will send no new requests.
    Erq,
}

/// A packet: a request (with a request type) or a response (with an ok bit).
///
/// Packets are built only through the checked constructors, so every packet
/// can be encoded; the accessors give both the application's view (request
/// type, flags, ok) and the raw wire values.
#[derive(Clone, PartialEq, Eq)]
pub struct Packet {
    pub(crate) channel: u64,
    pub(crate) tag: u64,
    /// The flags as they travel; for a response the lowest bit is ok.
    pub(crate) wire_flags: u64,
    /// `Some(rq_type + 1)` for a request, `None` for a response.
    pub(crate) wire_type: Option<u64>,
    pub(crate) payload: Vec<u8>,
}

impl Packet {
    /// A request of type `rq_type` with `flags` and `payload`.
    ///
    /// # Errors
    /// [`ValueTooLarge`] when the type or the flags do not fit on the wire.
    pub fn request(
        channel: u64,
        tag: u64,
        rq_type: u64,
        flags: u64,
        payload: impl Into<Vec<u8>>,
    ) -> Result<Packet, ValueTooLarge> {
        check_request(rq_type, flags)?;
        Ok(Packet::request_unchecked(channel, tag, rq_type, flags, payload.into()))
    }

    /// A response: `ok` with the handler's flags and payload, or a failure.
    ///
    /// # Errors
    /// [`ValueTooLarge::Flags`] when `flags` exceed [`MAX_RESPONSE_FLAGS`].
    pub fn response(
        channel: u64,
        tag: u64,
        ok: bool,
        flags: u64,
        payload: impl Into<Vec<u8>>,
    ) -> Result<Packet, ValueTooLarge> {
        check_response_flags(flags)?;
        Ok(Packet::response_unchecked(channel, tag, ok, flags, payload.into()))
    }

    /// A request whose type and flags were checked already.
    pub(crate) fn request_unchecked(channel: u64, tag: u64, rq_type: u64, flags: u64, payload: Vec<u8>) -> Packet {
        Packet { channel, tag, wire_flags: flags, wire_type: Some(rq_type + 1), payload }
    }

    /// A response whose flags were checked already.
    pub(crate) fn response_unchecked(channel: u64, tag: u64, ok: bool, flags: u64, payload: Vec<u8>) -> Packet {
        Packet { channel, tag, wire_flags: (flags << 1) | u64::from(ok), wire_type: None, payload }
    }

    /// The EOF control packet: `03 00 02 00` on the wire.
    pub fn eof() -> Packet {
        Packet { channel: 0, tag: 0, wire_flags: 0, wire_type: Some(0), payload: Vec::new() }
    }

    /// The ERQ (end of requests) control packet: `03 01 02 00` on the wire.
    pub fn erq() -> Packet {
        Packet { channel: 0, tag: 1, wire_flags: 0, wire_type: Some(0), payload: Vec::new() }
    }

    /// Whether this is the EOF control packet.
    pub fn is_eof(&self) -> bool {
        self.wire_type == Some(0) && self.tag == 0 && self.channel == 0
    }

    /// The channel.
    pub fn channel(&self) -> u64 {
        self.channel
    }

    /// The tag, which pairs a response with its request on a channel.
    pub fn tag(&self) -> u64 {
        self.tag
    }

    /// Whether this is a request (control packets included).
    pub fn is_request(&self) -> bool {
        self.wire_type.is_some()
    }

    /// The wire type of a request (`rq_type + 1`; 0 for control packets).
    pub fn wire_type(&self) -> Option<u64> {
        self.wire_type
    }

    /// The application's request type, for a request that is not a control packet.
    pub fn rq_type(&self) -> Option<u64> {
        self.wire_type.and_then(|w| w.checked_sub(1))
    }

    /// The application's flags: a request's flags, or a response's flags
    /// without the ok bit.
    pub fn flags(&self) -> u64 {
        if self.is_request() {
            self.wire_flags
        } else {
            self.wire_flags >> 1
        }
    }

    /// The flags exactly as they travel.
    pub fn wire_flags(&self) -> u64 {
        self.wire_flags
    }

    /// For a response, whether it reports success.
    pub fn ok(&self) -> Option<bool> {
        if self.is_request() {
            None
        } else {
            Some(self.wire_flags & 1 == 1)
        }
    }

    /// The payload.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// Takes the payload out of the packet.
    pub fn into_payload(self) -> Vec<u8> {
        self.payload
    }

    /// Which control packet this is: `Some(Ok(..))` for EOF or ERQ,
    /// `Some(Err(()))` for a wire-type-0 request that is neither (malformed),
    /// `None` for an ordinary packet.
    pub fn control(&self) -> Option<Result<Control, ()>> {
        if self.wire_type != Some(0) {
            return None;
        }
        let plain = self.channel == 0 && self.wire_flags == 0 && self.payload.is_empty();
        Some(match (plain, self.tag) {
            (true, 0) => Ok(Control::Eof),
            (true, 1) => Ok(Control::Erq),
            _ => Err(()),
        })
    }
}

/// Whether a request of type `rq_type` with `flags` can be encoded.
pub(crate) fn check_request(rq_type: u64, flags: u64) -> Result<(), ValueTooLarge> {
    if flags > MAX_REQUEST_FLAGS {
        return Err(ValueTooLarge::Flags { flags, max: MAX_REQUEST_FLAGS });
    }
    if rq_type > MAX_RQ_TYPE {
        return Err(ValueTooLarge::RqType(rq_type));
    }
    Ok(())
}

/// Whether a response with `flags` can be encoded.
pub(crate) fn check_response_flags(flags: u64) -> Result<(), ValueTooLarge> {
    if flags > MAX_RESPONSE_FLAGS {
        return Err(ValueTooLarge::Flags { flags, max: MAX_RESPONSE_FLAGS });
    }
    Ok(())
}

impl fmt::Debug for Packet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = &self.payload[..self.payload.len().min(16)];
        let more = if self.payload.len() > shown.len() { ".." } else { "" };
        match (self.control(), self.wire_type) {
            (Some(Ok(control)), _) => write!(f, "{control:?}"),
            (_, Some(wire_type)) => write!(
                f,
                "Request {{ ch {}, tag {}, wire_type {wire_type}, flags {}, payload {} bytes {shown:02x?}{more} }}",
                self.channel,
                self.tag,
                self.wire_flags,
                self.payload.len()
            ),
            (_, None) => write!(
                f,
                "Response {{ ch {}, tag {}, ok {}, flags {}, payload {} bytes {shown:02x?}{more} }}",
                self.channel,
                self.tag,
                self.wire_flags & 1,
                self.wire_flags >> 1,
                self.payload.len()
            ),
        }
    }
}
