//! Packets out of a byte stream that arrives in pieces, each with the offset
//! where its frame starts; the first bytes that break the format stop the
//! scan, with their offset and what is wrong. Used by `decode` and `tap`,
//! which must see every frame's bytes where the library's reader only hands
//! out packets.

use packetstream::wire::{self, decode_varint, Control, Packet, ProtocolError};

/// What the scan found.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// A whole packet; its frame starts at `offset`.
    Packet {
        /// Where its frame starts in the stream.
        offset: u64,
        /// The packet.
        packet: Packet,
    },
    /// The bytes from `offset` on are not a packet; nothing after is decoded.
    Malformed {
        /// Where the bad frame starts in the stream.
        offset: u64,
        /// What is wrong.
        error: String,
    },
}

/// The scan of one direction of a stream.
pub struct Scanner {
    buf: Vec<u8>,
    /// The stream offset of `buf[0]`.
    offset: u64,
    max_packet_size: usize,
    stopped: bool,
}

impl Scanner {
    /// A scan refusing frames longer than `max_packet_size`, as a connection would.
    pub fn new(max_packet_size: usize) -> Scanner {
        Scanner { buf: Vec::new(), offset: 0, max_packet_size, stopped: false }
    }

    /// Whether malformed bytes ended the scan.
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// Takes the next bytes of the stream; what they complete is pushed on `events`.
    pub fn push(&mut self, bytes: &[u8], events: &mut Vec<Event>) {
        if self.stopped {
            return;
        }
        self.buf.extend_from_slice(bytes);
        let mut used = 0;
        loop {
            let offset = self.offset + used as u64;
            match wire::decode(&self.buf[used..], self.max_packet_size) {
                Ok(Some((packet, len))) => {
                    if let Some(Err(())) = packet.control() {
                        let error = ProtocolError::BadControlPacket { channel: packet.channel(), tag: packet.tag() };
                        self.stop(offset, error.to_string(), events);
                        return;
                    }
                    used += len;
                    events.push(Event::Packet { offset, packet });
                }
                Ok(None) => break,
                Err(error) => {
                    let error = with_hint(error.to_string(), &self.buf[used..]);
                    self.stop(offset, error, events);
                    return;
                }
            }
        }
        // Only bytes after whole frames move: a long frame still arriving
        // sits at the front and is not copied again for each piece.
        if used > 0 {
            self.buf.drain(..used);
            self.offset += used as u64;
        }
    }

    /// The end of the stream: a frame cut short is malformed.
    pub fn finish(&mut self) -> Option<Event> {
        if self.stopped || self.buf.is_empty() {
            return None;
        }
        let have = self.buf.len();
        let error = match decode_varint(&self.buf) {
            Ok(Some((len, prefix))) => format!(
                "{}: the frame's length says {len} bytes follow its {prefix}-byte length, and {} did",
                ProtocolError::UnexpectedEof,
                have - prefix
            ),
            _ => format!("{}: {have} bytes of an unfinished length", ProtocolError::UnexpectedEof),
        };
        let error = with_hint(error, &self.buf);
        let mut events = Vec::new();
        self.stop(self.offset, error, &mut events);
        events.pop()
    }

    fn stop(&mut self, offset: u64, error: String, events: &mut Vec<Event>) {
        self.stopped = true;
        self.buf = Vec::new();
        events.push(Event::Malformed { offset, error });
    }
}

/// `error`, and what the bad bytes say if they are text (a program logging
/// to its stdout, the usual cause).
fn with_hint(error: String, bytes: &[u8]) -> String {
    match wire::text_hint(&bytes[..bytes.len().min(wire::FRAME_START_LEN)]) {
        Some(text) => format!("{error} (the bytes there look like text: {text})"),
        None => error,
    }
}

/// How a packet is named in logs: `request`, `response`, `eof` or `erq`.
pub fn kind(packet: &Packet) -> &'static str {
    match packet.control() {
        Some(Ok(Control::Eof)) => "eof",
        Some(Ok(Control::Erq)) => "erq",
        _ if packet.is_request() => "request",
        _ => "response",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(packet: &Packet) -> Vec<u8> {
        let mut out = Vec::new();
        wire::encode(packet, &mut out);
        out
    }

    fn scan(bytes: &[u8], piece: usize) -> Vec<Event> {
        let mut scanner = Scanner::new(wire::DEFAULT_MAX_PACKET_SIZE);
        let mut events = Vec::new();
        for chunk in bytes.chunks(piece.max(1)) {
            scanner.push(chunk, &mut events);
        }
        events.extend(scanner.finish());
        events
    }

    #[test]
    fn packets_with_their_offsets_however_the_bytes_are_cut() {
        let packets = [
            Packet::request(0, 2, 0, 0, b"hi".to_vec()).unwrap(),
            Packet::response(0, 2, true, 0, vec![7; 70_000]).unwrap(),
            Packet::erq(),
            Packet::eof(),
        ];
        let bytes: Vec<u8> = packets.iter().flat_map(frame).collect();
        let offsets = [0u64, 6, 6 + frame(&packets[1]).len() as u64, 6 + frame(&packets[1]).len() as u64 + 4];
        for piece in [1, 3, 4096, bytes.len()] {
            let events = scan(&bytes, piece);
            let expected: Vec<Event> = packets
                .iter()
                .zip(offsets)
                .map(|(packet, offset)| Event::Packet { offset, packet: packet.clone() })
                .collect();
            assert!(events == expected, "pieces of {piece}");
        }
        assert_eq!(kind(&packets[0]), "request");
        assert_eq!(kind(&packets[1]), "response");
        assert_eq!(kind(&packets[2]), "erq");
        assert_eq!(kind(&packets[3]), "eof");
    }

    #[test]
    fn the_first_bad_frame_ends_the_scan_at_its_offset() {
        let good = frame(&Packet::request(0, 2, 0, 0, b"hi".to_vec()).unwrap());
        let cases: [(&[u8], &str); 5] = [
            (&[0x00], "packet ends inside its header"),
            (&[0x03, 0x05, 0x02, 0x00], "malformed control packet (channel 0, tag 5)"),
            (&[0x82, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00], "integer does not fit in 64 bits"),
            (&[0x88, 0x80, 0x80, 0x01], "exceeds the maximum"),
            (&[0x05, 0x02, 0x02], "the frame's length says 5 bytes follow its 1-byte length, and 2 did"),
        ];
        for (bad, said) in cases {
            for piece in [1, 64] {
                let mut bytes = good.clone();
                bytes.extend_from_slice(bad);
                let events = scan(&bytes, piece);
                assert_eq!(events.len(), 2, "{bad:02x?}: {events:?}");
                match &events[1] {
                    Event::Malformed { offset, error } => {
                        assert_eq!(*offset, good.len() as u64, "{bad:02x?}");
                        assert!(error.contains(said), "{bad:02x?}: {error}");
                    }
                    other => panic!("{bad:02x?}: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn text_where_packets_belong_is_named() {
        let events = scan(b"Traceback (most recent call last):\n", 7);
        let [Event::Malformed { offset: 0, error }] = &events[..] else { panic!("{events:?}") };
        assert!(error.contains("look like text: \"Traceback"), "{error}");
    }

    #[test]
    fn nothing_after_a_bad_frame() {
        let mut scanner = Scanner::new(16);
        let mut events = Vec::new();
        scanner.push(&[0x40], &mut events);
        assert!(scanner.stopped());
        scanner.push(&frame(&Packet::eof()), &mut events);
        assert_eq!(scanner.finish(), None);
        assert_eq!(events.len(), 1);
    }
}
