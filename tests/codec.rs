//! The BSUInt integers and the packet frame codec, against the golden
//! vectors published in tests/data/golden/ (described in docs/protocol.md)
//! and by round trips through both decoders.

use std::io::{self, Cursor, Read};

use packetstream::wire::{
    self, decode, decode_varint, encode, encode_varint, encoded_len, varint_len, Control, Gate, Gated, PacketReader,
    ReadError, DEFAULT_MAX_PACKET_SIZE,
};
use packetstream::{Packet, ProtocolError, ValueTooLarge, MAX_REQUEST_FLAGS, MAX_RESPONSE_FLAGS, MAX_RQ_TYPE};

fn frame(packet: &Packet) -> Vec<u8> {
    let mut out = Vec::new();
    encode(packet, &mut out);
    out
}

fn varint(value: u64) -> Vec<u8> {
    let mut out = Vec::new();
    encode_varint(value, &mut out);
    out
}

/// Decodes exactly one frame that fills `bytes`.
fn decode_one(bytes: &[u8]) -> Packet {
    let (packet, used) = decode(bytes, DEFAULT_MAX_PACKET_SIZE).expect("valid frame").expect("a whole frame");
    assert_eq!(used, bytes.len(), "the frame uses every byte");
    packet
}

/// All packets of a stream, read with a `PacketReader` until a clean end.
fn read_all(stream: impl Read, max: usize) -> Result<Vec<Packet>, ReadError> {
    let mut reader = PacketReader::new(stream, max);
    let mut packets = Vec::new();
    while let Some(packet) = reader.read_packet()? {
        packets.push(packet);
    }
    Ok(packets)
}

/// The first packet (or error) of a stream.
fn read_first(bytes: Vec<u8>, max: usize) -> Result<Option<Packet>, ReadError> {
    PacketReader::new(Cursor::new(bytes), max).read_packet()
}

/// A stream that hands out at most `chunk` bytes per read call.
struct Chunked<R> {
    inner: R,
    chunk: usize,
    calls: usize,
}

impl<R: Read> Chunked<R> {
    fn new(inner: R, chunk: usize) -> Self {
        Chunked { inner, chunk, calls: 0 }
    }
}

impl<R: Read> Read for Chunked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.calls += 1;
        let n = buf.len().min(self.chunk);
        self.inner.read(&mut buf[..n])
    }
}

/// A stream whose every other read call is interrupted by a signal.
struct Interrupting<R> {
    inner: R,
    interrupt_next: bool,
}

impl<R: Read> Read for Interrupting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.interrupt_next = !self.interrupt_next;
        if self.interrupt_next {
            return Err(io::ErrorKind::Interrupted.into());
        }
        self.inner.read(buf)
    }
}

fn is_protocol(result: Result<Option<Packet>, ReadError>, expected: &ProtocolError) -> bool {
    matches!(result, Err(ReadError::Protocol(ref e)) if e == expected)
}

// ---------------------------------------------------------------------------
// BSUInt

#[test]
fn varint_is_big_endian_not_leb128() {
    // 300 = 0b10_0101100: LEB128 would be ac 02.
    assert_eq!(varint(300), [0x82, 0x2c]);
    assert_eq!(varint(u64::MAX), [0x81, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]);
    assert_eq!(decode_varint(&varint(u64::MAX)), Ok(Some((u64::MAX, 10))));
}

#[test]
fn varint_prefixes_ask_for_more() {
    for value in [128, 16384, 1 << 35, u64::MAX] {
        let bytes = varint(value);
        for cut in 0..bytes.len() {
            assert_eq!(decode_varint(&bytes[..cut]), Ok(None), "{value} cut at {cut}");
        }
    }
}

#[test]
fn varint_over_u64_is_an_overflow() {
    // 2^64: 0x82 then eight 0x80 then 0x00.
    let mut over = vec![0x82];
    over.extend_from_slice(&[0x80; 8]);
    over.push(0x00);
    assert_eq!(decode_varint(&over), Err(ProtocolError::VarintOverflow));
    assert_eq!(decode_varint(&[0xff; 10]), Err(ProtocolError::VarintOverflow));
}

#[test]
fn padded_varints_are_accepted_up_to_ten_bytes() {
    // cs.packetstream's decoder accepts leading 0x80 bytes; so does this one.
    assert_eq!(decode_varint(&[0x80, 0x80, 0x05]), Ok(Some((5, 3))));
    let mut eleven = vec![0x80; 10];
    eleven.push(0x05);
    assert_eq!(decode_varint(&eleven), Err(ProtocolError::VarintTooLong));
    // A padded length prefix frames like an unpadded one.
    let padded = [0x80, 0x03, 0x00, 0x02, 0x00];
    let (packet, used) = decode(&padded, DEFAULT_MAX_PACKET_SIZE).unwrap().unwrap();
    assert_eq!((packet, used), (Packet::eof(), 5));
}

// ---------------------------------------------------------------------------
// The golden vectors of tests/data/golden/: the files are the truth, for
// this crate and for any other implementation that reads them.

/// The rows of a golden file: tab-separated, `#` comments, a header line
/// naming the columns; each row as a map from column to field.
fn golden(text: &str) -> Vec<std::collections::HashMap<&str, &str>> {
    let mut lines = text.lines().filter(|line| !line.starts_with('#') && !line.is_empty());
    let header: Vec<&str> = lines.next().expect("a header line").split('\t').collect();
    lines
        .map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            assert_eq!(fields.len(), header.len(), "row {line:?}");
            header.iter().copied().zip(fields).collect()
        })
        .collect()
}

fn unhex(text: &str) -> Vec<u8> {
    assert!(text.len().is_multiple_of(2), "odd hex {text:?}");
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex")).collect()
}

/// A number column; `-` is `None`.
fn number(field: &str) -> Option<u64> {
    (field != "-").then(|| field.parse().unwrap_or_else(|_| panic!("not a number: {field:?}")))
}

const FRAMES: &str = include_str!("data/golden/frames.tsv");
const VARINTS: &str = include_str!("data/golden/varints.tsv");
const MALFORMED: &str = include_str!("data/golden/malformed.tsv");

/// The packet a row of frames.tsv describes, built from its fields.
fn golden_packet(row: &std::collections::HashMap<&str, &str>) -> Packet {
    let (channel, tag, flags) = (number(row["channel"]), number(row["tag"]), number(row["flags"]));
    let (channel, tag, flags) = (channel.expect("channel"), tag.expect("tag"), flags.expect("flags"));
    let payload = unhex(row["payload_hex"]);
    match row["kind"] {
        "request" => Packet::request(channel, tag, number(row["rq_type"]).expect("rq_type"), flags, payload).unwrap(),
        "response" => Packet::response(channel, tag, row["ok"] == "1", flags, payload).unwrap(),
        "eof" => Packet::eof(),
        "erq" => Packet::erq(),
        other => panic!("unknown kind {other:?}"),
    }
}

#[test]
fn golden_frames_encode_and_decode() {
    let rows = golden(FRAMES);
    assert!(rows.len() >= 20, "{} rows", rows.len());
    for row in &rows {
        let name = row["name"];
        let packet = golden_packet(row);
        let bytes = unhex(row["frame_hex"]);
        assert_eq!(frame(&packet), bytes, "{name}: encoding");
        assert_eq!(encoded_len(&packet), bytes.len(), "{name}: length");
        let decoded = decode_one(&bytes);
        assert_eq!(decoded, packet, "{name}: decoding");
        // Every column agrees with what the decoder reports.
        assert_eq!(Some(decoded.channel()), number(row["channel"]), "{name}: channel");
        assert_eq!(Some(decoded.tag()), number(row["tag"]), "{name}: tag");
        assert_eq!(Some(decoded.flags()), number(row["flags"]), "{name}: flags");
        assert_eq!(decoded.rq_type(), number(row["rq_type"]), "{name}: rq_type");
        assert_eq!(decoded.wire_type(), number(row["wire_type"]), "{name}: wire_type");
        assert_eq!(decoded.ok(), number(row["ok"]).map(|ok| ok == 1), "{name}: ok");
        assert_eq!(decoded.payload(), unhex(row["payload_hex"]), "{name}: payload");
        let control = match row["kind"] {
            "eof" => Some(Ok(Control::Eof)),
            "erq" => Some(Ok(Control::Erq)),
            _ => None,
        };
        assert_eq!(decoded.control(), control, "{name}: control");
        assert_eq!(decoded.is_request(), row["kind"] != "response", "{name}: is_request");
    }
    for name in ["request-hi", "response-ok-hi", "eof", "erq", "request-channel-5-tag-300"] {
        assert!(rows.iter().any(|row| row["name"] == name), "the format's examples include {name}");
    }
}

#[test]
fn golden_frames_through_the_stream_reader() {
    let rows = golden(FRAMES);
    let packets: Vec<Packet> = rows.iter().map(golden_packet).collect();
    let bytes: Vec<u8> = rows.iter().flat_map(|row| unhex(row["frame_hex"])).collect();
    assert_eq!(read_all(Cursor::new(bytes.clone()), DEFAULT_MAX_PACKET_SIZE).unwrap(), packets);
    assert_eq!(read_all(Chunked::new(Cursor::new(bytes), 1), DEFAULT_MAX_PACKET_SIZE).unwrap(), packets);
}

#[test]
fn golden_varints() {
    let rows = golden(VARINTS);
    for row in &rows {
        let value: u64 = row["value"].parse().expect("a value");
        let bytes = unhex(row["hex"]);
        assert_eq!(decode_varint(&bytes), Ok(Some((value, bytes.len()))), "decoding {}", row["hex"]);
        // Bytes after the integer are not its business.
        let mut longer = bytes.clone();
        longer.extend_from_slice(&[0xff, 0x00]);
        assert_eq!(decode_varint(&longer), Ok(Some((value, bytes.len()))), "decoding {} with a tail", row["hex"]);
        match row["canonical"] {
            "yes" => {
                assert_eq!(varint(value), bytes, "encoding {value}");
                assert_eq!(varint_len(value), bytes.len(), "length of {value}");
            }
            "no" => assert_ne!(varint(value), bytes, "{} is not how {value} is written", row["hex"]),
            other => panic!("canonical {other:?}"),
        }
    }
    assert!(rows.iter().any(|row| row["value"] == u64::MAX.to_string()));
}

/// The name of a protocol error, as malformed.tsv writes it.
fn error_name(error: &ProtocolError) -> &'static str {
    match error {
        ProtocolError::VarintOverflow => "VarintOverflow",
        ProtocolError::VarintTooLong => "VarintTooLong",
        ProtocolError::PacketTooLarge { .. } => "PacketTooLarge",
        ProtocolError::TruncatedHeader => "TruncatedHeader",
        ProtocolError::UnexpectedEof => "UnexpectedEof",
        ProtocolError::BadControlPacket { .. } => "BadControlPacket",
        other => panic!("an error malformed.tsv does not name: {other:?}"),
    }
}

#[test]
fn golden_malformed_streams() {
    let rows = golden(MALFORMED);
    for row in &rows {
        let (name, expected) = (row["name"], row["error"]);
        let bytes = unhex(row["hex"]);
        let max = number(row["max_packet_size"]).map_or(DEFAULT_MAX_PACKET_SIZE, |max| max as usize);
        let sliced = decode(&bytes, max);
        let streamed = read_first(bytes.clone(), max);
        match expected {
            // Whole frames whose control packet is malformed: the codec
            // decodes them, and a connection refuses them.
            "BadControlPacket" => {
                let (packet, used) = sliced.unwrap_or_else(|e| panic!("{name}: {e}")).expect("a whole frame");
                assert_eq!(used, bytes.len(), "{name}");
                assert_eq!(packet.control(), Some(Err(())), "{name}");
                assert_eq!(streamed.unwrap_or_else(|e| panic!("{name}: {e}")), Some(packet), "{name}");
            }
            // A slice decoder cannot know that no more bytes will come.
            "UnexpectedEof" => {
                assert_eq!(sliced, Ok(None), "{name}: the slice asks for more");
                match streamed {
                    Err(ReadError::Protocol(error)) => assert_eq!(error_name(&error), expected, "{name}"),
                    other => panic!("{name}: {other:?}"),
                }
            }
            _ => {
                match sliced {
                    Err(error) => assert_eq!(error_name(&error), expected, "{name}: the slice decoder"),
                    other => panic!("{name}: the slice decoder gave {other:?}"),
                }
                match streamed {
                    Err(ReadError::Protocol(error)) => assert_eq!(error_name(&error), expected, "{name}: the reader"),
                    other => panic!("{name}: the reader gave {other:?}"),
                }
            }
        }
    }
    assert!(rows.len() >= 15, "{} rows", rows.len());
}

// ---------------------------------------------------------------------------
// Round trips

const NUMBERS: [u64; 5] = [0, 1, 13, 17, 257];
const FLAGS: [u64; 4] = [0, 1, 15, 137];

fn payloads() -> Vec<Vec<u8>> {
    // Empty, short, and long enough for a two-byte length prefix.
    vec![Vec::new(), b"abc".to_vec(), (0..300u32).map(|i| (i * 7 % 251) as u8).collect()]
}

/// Every mix of request/response, channel, tag, flags, ok and payload.
fn every_mix() -> Vec<Packet> {
    let mut packets = Vec::new();
    for &channel in &NUMBERS {
        for &tag in &NUMBERS {
            for &flags in &FLAGS {
                for payload in payloads() {
                    for &rq_type in &NUMBERS {
                        packets.push(Packet::request(channel, tag, rq_type, flags, payload.clone()).unwrap());
                    }
                    for ok in [true, false] {
                        packets.push(Packet::response(channel, tag, ok, flags, payload.clone()).unwrap());
                    }
                }
            }
        }
    }
    packets
}

#[test]
fn every_mix_round_trips_through_decode() {
    let packets = every_mix();
    assert_eq!(packets.len(), 5 * 5 * 4 * 3 * (5 + 2));
    for packet in &packets {
        let bytes = frame(packet);
        assert_eq!(bytes.len(), encoded_len(packet), "{packet:?}");
        let decoded = decode_one(&bytes);
        assert_eq!(&decoded, packet);
        // The accessors give back what the constructor was given.
        assert_eq!(decoded.channel(), packet.channel());
        assert_eq!(decoded.tag(), packet.tag());
        assert_eq!(decoded.flags(), packet.flags());
        assert_eq!(decoded.ok(), packet.ok());
        assert_eq!(decoded.rq_type(), packet.rq_type());
        assert_eq!(decoded.payload(), packet.payload());
        // A frame followed by more bytes decodes the same and says how much it used.
        let mut longer = bytes.clone();
        longer.extend_from_slice(&[0x03, 0x00, 0x02, 0x00]);
        assert_eq!(decode(&longer, DEFAULT_MAX_PACKET_SIZE).unwrap(), Some((packet.clone(), bytes.len())));
    }
}

#[test]
fn every_mix_keeps_its_fields() {
    // Check the constructors against the values they were given, not just
    // against a second encode/decode.
    for &channel in &NUMBERS {
        for &tag in &NUMBERS {
            for &flags in &FLAGS {
                let request = decode_one(&frame(&Packet::request(channel, tag, 13, flags, b"x".to_vec()).unwrap()));
                assert_eq!(
                    (request.channel(), request.tag(), request.rq_type(), request.flags(), request.ok()),
                    (channel, tag, Some(13), flags, None)
                );
                assert_eq!(request.wire_flags(), flags);
                for ok in [true, false] {
                    let response = decode_one(&frame(&Packet::response(channel, tag, ok, flags, Vec::new()).unwrap()));
                    assert_eq!(
                        (response.channel(), response.tag(), response.ok(), response.flags(), response.rq_type()),
                        (channel, tag, Some(ok), flags, None)
                    );
                    assert_eq!(response.wire_flags(), (flags << 1) | u64::from(ok));
                }
            }
        }
    }
}

#[test]
fn every_proper_prefix_decodes_to_none() {
    for packet in every_mix() {
        let bytes = frame(&packet);
        for cut in 0..bytes.len() {
            assert_eq!(
                decode(&bytes[..cut], DEFAULT_MAX_PACKET_SIZE),
                Ok(None),
                "{packet:?} cut at {cut} of {}",
                bytes.len()
            );
        }
    }
}

#[test]
fn every_mix_round_trips_through_one_stream() {
    let packets = every_mix();
    let bytes: Vec<u8> = packets.iter().flat_map(frame).collect();
    let mut reader = PacketReader::new(Cursor::new(bytes.clone()), DEFAULT_MAX_PACKET_SIZE);
    for (i, packet) in packets.iter().enumerate() {
        assert_eq!(reader.read_packet().unwrap().as_ref(), Some(packet), "packet {i}");
    }
    assert_eq!(reader.read_packet().unwrap(), None, "a clean end after the last frame");
    assert_eq!(reader.bytes_read(), bytes.len() as u64);
    let (_, rest) = reader.into_parts();
    assert!(rest.is_empty());
}

#[test]
fn every_mix_round_trips_one_byte_per_read() {
    let packets = every_mix();
    let bytes: Vec<u8> = packets.iter().flat_map(frame).collect();
    let mut reader = PacketReader::new(Chunked::new(Cursor::new(bytes.clone()), 1), DEFAULT_MAX_PACKET_SIZE);
    for (i, packet) in packets.iter().enumerate() {
        assert_eq!(reader.read_packet().unwrap().as_ref(), Some(packet), "packet {i}");
    }
    assert_eq!(reader.read_packet().unwrap(), None);
    assert_eq!(reader.bytes_read(), bytes.len() as u64);
    let (stream, _) = reader.into_parts();
    // One byte per call: at least one call per byte.
    assert!(stream.calls > bytes.len(), "{} read calls for {} bytes", stream.calls, bytes.len());
}

#[test]
fn every_mix_round_trips_in_odd_chunks() {
    let packets = every_mix();
    let bytes: Vec<u8> = packets.iter().flat_map(frame).collect();
    for chunk in [2, 3, 7, 64, 4095] {
        let got = read_all(Chunked::new(Cursor::new(bytes.clone()), chunk), DEFAULT_MAX_PACKET_SIZE).unwrap();
        assert_eq!(got, packets, "chunks of {chunk}");
    }
}

#[test]
fn interrupted_reads_are_retried() {
    let packets = every_mix();
    let bytes: Vec<u8> = packets.iter().flat_map(frame).collect();
    let stream = Interrupting { inner: Chunked::new(Cursor::new(bytes), 5), interrupt_next: false };
    assert_eq!(read_all(stream, DEFAULT_MAX_PACKET_SIZE).unwrap(), packets);
}

#[test]
fn large_payloads_round_trip_through_the_stream() {
    // Sizes around the reader's buffer (64 KiB) and its preallocation step
    // (1 MiB), between small frames so that the frames behind a large
    // payload are found too.
    let sizes = [0, 1, 32 << 10, (64 << 10) - 1, 64 << 10, (64 << 10) + 1, 100_000, (1 << 20) + 3, 3 << 20];
    let mut packets = Vec::new();
    for (i, &size) in sizes.iter().enumerate() {
        let payload: Vec<u8> = (0..size).map(|j| (j * 31 + i) as u8).collect();
        packets.push(Packet::request(0, i as u64 + 2, 0, 0, payload.clone()).unwrap());
        packets.push(Packet::response(0, i as u64 + 2, true, 3, b"small".to_vec()).unwrap());
        packets.push(Packet::response(1, i as u64, false, 0, payload).unwrap());
    }
    let bytes: Vec<u8> = packets.iter().flat_map(frame).collect();
    for chunk in [usize::MAX, 65_537, 300_000] {
        let got = read_all(Chunked::new(Cursor::new(bytes.clone()), chunk), DEFAULT_MAX_PACKET_SIZE).unwrap();
        assert_eq!(got.len(), packets.len(), "chunks of {chunk}");
        assert!(got == packets, "chunks of {chunk}: packets differ");
    }
    // And the slice decoder, frame by frame.
    let mut at = 0;
    for packet in &packets {
        let (decoded, used) = decode(&bytes[at..], DEFAULT_MAX_PACKET_SIZE).unwrap().unwrap();
        assert!(&decoded == packet);
        at += used;
    }
    assert_eq!(at, bytes.len());
}

#[test]
fn payloads_past_the_buffer_in_small_reads() {
    // Payloads the reader reads straight into their own buffer, arriving a
    // little at a time.
    let packets: Vec<Packet> = [40_000usize, 100_000, 200_000]
        .iter()
        .enumerate()
        .map(|(i, &size)| Packet::request(0, i as u64, 1, 0, vec![i as u8 + 1; size]).unwrap())
        .collect();
    let bytes: Vec<u8> = packets.iter().flat_map(frame).collect();
    for chunk in [997, 4096] {
        let got = read_all(Chunked::new(Cursor::new(bytes.clone()), chunk), DEFAULT_MAX_PACKET_SIZE).unwrap();
        assert!(got == packets, "chunks of {chunk}: packets differ");
    }
}

#[test]
fn a_large_payload_in_pieces_reads_in_linear_time() {
    // 15 MiB arriving 64 KiB per read call, as from a pipe or socket, and
    // 70 kB arriving a byte at a time. The copying itself takes well under
    // a second even unoptimised.
    let cases = [(15 << 20, 64 << 10), (70_000, 1)];
    for (size, chunk) in cases {
        let packets = vec![Packet::request(0, 2, 0, 0, vec![0x5au8; size]).unwrap(), Packet::eof(), Packet::erq()];
        let bytes: Vec<u8> = packets.iter().flat_map(frame).collect();
        let started = std::time::Instant::now();
        let got = read_all(Chunked::new(Cursor::new(bytes), chunk), DEFAULT_MAX_PACKET_SIZE).unwrap();
        let took = started.elapsed();
        assert!(got == packets, "{size} bytes in pieces of {chunk}: packets differ");
        assert!(took < std::time::Duration::from_secs(3), "reading {size} bytes in pieces of {chunk} took {took:?}");
    }
}

// ---------------------------------------------------------------------------
// Limits and malformed input

#[test]
fn default_max_packet_size_is_16_mib() {
    assert_eq!(DEFAULT_MAX_PACKET_SIZE, 16 * 1024 * 1024);
    assert_eq!(packetstream::Config::default().max_packet_size(), DEFAULT_MAX_PACKET_SIZE);
}

#[test]
fn frame_over_the_maximum_is_too_large() {
    let packet = Packet::request(0, 2, 0, 0, vec![7u8; 97]).unwrap();
    let bytes = frame(&packet);
    let body = (bytes.len() - 1) as u64; // a one-byte length prefix
    assert_eq!(body, 100);
    // At the limit it is fine, one under it is refused, by both decoders.
    assert_eq!(decode(&bytes, 100).unwrap(), Some((packet.clone(), bytes.len())));
    assert_eq!(decode(&bytes, 99), Err(ProtocolError::PacketTooLarge { len: 100, max: 99 }));
    assert_eq!(read_first(bytes.clone(), 100).unwrap(), Some(packet));
    assert!(is_protocol(read_first(bytes.clone(), 99), &ProtocolError::PacketTooLarge { len: 100, max: 99 }));
    // Refused from the length prefix alone, before the body arrives.
    assert_eq!(decode(&bytes[..1], 99), Err(ProtocolError::PacketTooLarge { len: 100, max: 99 }));
    assert!(is_protocol(read_first(bytes[..1].to_vec(), 99), &ProtocolError::PacketTooLarge { len: 100, max: 99 }));
}

#[test]
fn default_maximum_applies() {
    let max = DEFAULT_MAX_PACKET_SIZE as u64;
    let over = varint(max + 1);
    let expected = ProtocolError::PacketTooLarge { len: max + 1, max: DEFAULT_MAX_PACKET_SIZE };
    assert_eq!(decode(&over, DEFAULT_MAX_PACKET_SIZE), Err(expected.clone()));
    assert!(is_protocol(read_first(over, DEFAULT_MAX_PACKET_SIZE), &expected));
    // Exactly the maximum is allowed: the slice decoder waits for the body.
    let at_max = varint(max);
    assert_eq!(decode(&at_max, DEFAULT_MAX_PACKET_SIZE), Ok(None));
    // A length past u64 is an overflow, not a huge packet.
    let mut huge = vec![0x82];
    huge.extend_from_slice(&[0x80; 8]);
    huge.push(0x00);
    assert_eq!(decode(&huge, DEFAULT_MAX_PACKET_SIZE), Err(ProtocolError::VarintOverflow));
}

#[test]
fn a_large_claimed_length_then_eof_is_unexpected_eof() {
    let claimed = 15 << 20;
    // The claim and a few bytes of the header only.
    let mut short = varint(claimed);
    short.extend_from_slice(&[0x02, 0x02]);
    assert!(is_protocol(read_first(short.clone(), DEFAULT_MAX_PACKET_SIZE), &ProtocolError::UnexpectedEof));
    assert_eq!(decode(&short, DEFAULT_MAX_PACKET_SIZE), Ok(None));
    // The whole header and some payload, then the end.
    let mut some = varint(claimed);
    some.extend_from_slice(&[0x02, 0x02, 0x01]);
    some.extend_from_slice(&[0xaa; 5000]);
    assert!(is_protocol(read_first(some.clone(), DEFAULT_MAX_PACKET_SIZE), &ProtocolError::UnexpectedEof));
    assert!(is_protocol(
        PacketReader::new(Chunked::new(Cursor::new(some), 333), DEFAULT_MAX_PACKET_SIZE).read_packet(),
        &ProtocolError::UnexpectedEof
    ));
}

#[test]
fn stream_ends_inside_a_frame() {
    let bytes = frame(&Packet::request(3, 400, 2, 9, b"payload".to_vec()).unwrap());
    // Ending cleanly between frames is not an error; anywhere inside one is.
    assert_eq!(read_first(Vec::new(), DEFAULT_MAX_PACKET_SIZE).unwrap(), None);
    for cut in 1..bytes.len() {
        let result = read_first(bytes[..cut].to_vec(), DEFAULT_MAX_PACKET_SIZE);
        assert!(is_protocol(result, &ProtocolError::UnexpectedEof), "cut at {cut}");
    }
    // The same after a whole frame.
    let mut two = bytes.clone();
    two.extend_from_slice(&bytes[..bytes.len() - 1]);
    let mut reader = PacketReader::new(Cursor::new(two), DEFAULT_MAX_PACKET_SIZE);
    assert!(reader.read_packet().unwrap().is_some());
    assert!(is_protocol(reader.read_packet(), &ProtocolError::UnexpectedEof));
}

#[test]
fn integer_overflow_is_refused() {
    let mut over = vec![0x82];
    over.extend_from_slice(&[0x80; 8]);
    over.push(0x00);
    // As the length prefix.
    assert_eq!(decode(&over, DEFAULT_MAX_PACKET_SIZE), Err(ProtocolError::VarintOverflow));
    assert!(is_protocol(read_first(over.clone(), DEFAULT_MAX_PACKET_SIZE), &ProtocolError::VarintOverflow));
    // As the tag, inside a body.
    let mut body = over.clone();
    body.extend_from_slice(&[0x02, 0x01]);
    let mut bytes = varint(body.len() as u64);
    bytes.extend_from_slice(&body);
    assert_eq!(decode(&bytes, DEFAULT_MAX_PACKET_SIZE), Err(ProtocolError::VarintOverflow));
    assert!(is_protocol(read_first(bytes, DEFAULT_MAX_PACKET_SIZE), &ProtocolError::VarintOverflow));
    // Eleven bytes of padding are too long.
    let mut long = vec![0x80; 10];
    long.push(0x01);
    assert_eq!(decode(&long, DEFAULT_MAX_PACKET_SIZE), Err(ProtocolError::VarintTooLong));
}

#[test]
fn empty_and_truncated_headers() {
    // 00: an empty frame.
    assert_eq!(decode(&[0x00], DEFAULT_MAX_PACKET_SIZE), Err(ProtocolError::TruncatedHeader));
    assert!(is_protocol(read_first(vec![0x00], DEFAULT_MAX_PACKET_SIZE), &ProtocolError::TruncatedHeader));
    let truncated: &[&[u8]] = &[
        &[0x01, 0x02],             // tag only
        &[0x01, 0x82],             // half a tag
        &[0x02, 0x02, 0x03],       // bits say channel and wire type follow; neither does
        &[0x03, 0x02, 0x03, 0x05], // channel but no wire type
        &[0x02, 0x02, 0x01],       // a response on a channel, without the channel
    ];
    for &bytes in truncated {
        assert_eq!(decode(bytes, DEFAULT_MAX_PACKET_SIZE), Err(ProtocolError::TruncatedHeader), "{bytes:02x?}");
        // Followed by more frames, the stream reader must not read into them.
        let mut stream = bytes.to_vec();
        stream.extend_from_slice(&frame(&Packet::eof()));
        assert!(
            is_protocol(read_first(stream, DEFAULT_MAX_PACKET_SIZE), &ProtocolError::TruncatedHeader),
            "{bytes:02x?}"
        );
    }
}

#[test]
fn flags_and_types_too_large_for_the_wire() {
    assert!(Packet::request(0, 2, 0, MAX_REQUEST_FLAGS, Vec::new()).is_ok());
    assert!(matches!(
        Packet::request(0, 2, 0, MAX_REQUEST_FLAGS + 1, Vec::new()),
        Err(ValueTooLarge::Flags { flags, max }) if flags == MAX_REQUEST_FLAGS + 1 && max == MAX_REQUEST_FLAGS
    ));
    assert!(matches!(
        Packet::request(0, 2, 0, u64::MAX, Vec::new()),
        Err(ValueTooLarge::Flags { flags: u64::MAX, max }) if max == MAX_REQUEST_FLAGS
    ));
    assert!(Packet::response(0, 2, true, MAX_RESPONSE_FLAGS, Vec::new()).is_ok());
    assert!(matches!(
        Packet::response(0, 2, true, MAX_RESPONSE_FLAGS + 1, Vec::new()),
        Err(ValueTooLarge::Flags { flags, max }) if flags == MAX_RESPONSE_FLAGS + 1 && max == MAX_RESPONSE_FLAGS
    ));
    assert!(matches!(
        Packet::response(0, 2, false, MAX_RESPONSE_FLAGS + 1, Vec::new()),
        Err(ValueTooLarge::Flags { .. })
    ));
    assert_eq!(MAX_REQUEST_FLAGS, u64::MAX >> 2);
    assert_eq!(MAX_RESPONSE_FLAGS, u64::MAX >> 3);
    assert!(Packet::request(0, 2, MAX_RQ_TYPE, 0, Vec::new()).is_ok());
    assert!(
        matches!(Packet::request(0, 2, MAX_RQ_TYPE + 1, 0, Vec::new()), Err(ValueTooLarge::RqType(t)) if t == u64::MAX)
    );
}

#[test]
fn decode_with_no_size_limit_does_not_panic() {
    // With the limit lifted, a frame claiming u64::MAX bytes must still be
    // "need more bytes" (or an error), never an arithmetic overflow.
    let claim = varint(u64::MAX);
    let result = std::panic::catch_unwind(|| decode(&claim, usize::MAX));
    assert!(matches!(result, Ok(Ok(None)) | Ok(Err(_))), "decode panicked on a u64::MAX length with no limit");
}

#[test]
fn leftover_bytes_are_given_back() {
    let mut bytes = frame(&Packet::eof());
    bytes.extend_from_slice(b"after");
    let mut reader = PacketReader::new(Cursor::new(bytes), DEFAULT_MAX_PACKET_SIZE);
    assert_eq!(reader.read_packet().unwrap(), Some(Packet::eof()));
    let (_, rest) = reader.into_parts();
    assert_eq!(rest, b"after");
}

#[test]
fn encode_appends() {
    let mut out = b"prefix".to_vec();
    encode(&Packet::erq(), &mut out);
    assert_eq!(out, b"prefix\x03\x01\x02\x00");
    let mut header = Vec::new();
    let packet = Packet::request(0, 2, 0, 0, b"hi".to_vec()).unwrap();
    wire::encode_header(&packet, &mut header);
    assert_eq!(header, [0x05, 0x02, 0x02, 0x01]);
}

#[test]
fn the_start_of_a_frame_that_broke_the_format_is_kept() {
    // A peer writing a log line where packets belong: 'h' claims a 104-byte frame.
    for chunk in [1, 3, 64 << 10] {
        let mut reader = PacketReader::new(Chunked::new(Cursor::new(b"hello world\n".to_vec()), chunk), 1 << 20);
        assert!(matches!(reader.read_packet(), Err(ReadError::Protocol(ProtocolError::UnexpectedEof))));
        assert_eq!(reader.frame_start(), b"hello world\n", "read {chunk} bytes at a time");
        assert_eq!(packetstream::wire::text_hint(reader.frame_start()).as_deref(), Some("\"hello world\\n\""));
    }
    // After good packets, the bad frame's own bytes, and at most FRAME_START_LEN of them.
    let mut bytes = frame(&Packet::request(0, 2, 0, 0, b"fine".to_vec()).unwrap());
    // '~' claims 126 bytes, more than follow.
    let text = "~~ Traceback (most recent call last): File \"x.py\", line 1, in <module> and so on\n";
    bytes.extend_from_slice(text.as_bytes());
    let mut reader = PacketReader::new(Chunked::new(Cursor::new(bytes), 7), 1 << 20);
    assert!(reader.read_packet().unwrap().is_some());
    assert!(reader.read_packet().is_err());
    assert_eq!(reader.frame_start(), &text.as_bytes()[..packetstream::wire::FRAME_START_LEN]);
}

/// A stream that gives up (WouldBlock) before every read that would return
/// bytes, at most `chunk` of them per read: a reader that suspends at every
/// point of every frame.
struct Suspending<R> {
    inner: R,
    chunk: usize,
    ready: bool,
    suspensions: usize,
}

impl<R: Read> Read for Suspending<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !std::mem::replace(&mut self.ready, false) {
            self.ready = true;
            self.suspensions += 1;
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = buf.len().min(self.chunk);
        self.inner.read(&mut buf[..n])
    }
}

/// Reads every packet, calling again after each suspension; the number of
/// suspensions seen.
fn read_all_resuming(stream: impl Read, max: usize) -> (Result<Vec<Packet>, ReadError>, usize) {
    let mut reader = PacketReader::new(stream, max);
    let mut packets = Vec::new();
    let mut suspended = 0;
    loop {
        match reader.read_packet() {
            Ok(Some(packet)) => packets.push(packet),
            Ok(None) => return (Ok(packets), suspended),
            Err(ReadError::Io(error)) if error.kind() == io::ErrorKind::WouldBlock => suspended += 1,
            Err(error) => return (Err(error), suspended),
        }
    }
}

#[test]
fn a_read_that_would_block_suspends_the_frame_and_the_next_call_resumes_it() {
    let mut packets = every_mix();
    // Payloads past the read buffer, and one just under half of it (read
    // through the buffer as a short tail).
    packets.push(Packet::request(3, 9, 1, 2, (0..200_000u32).map(|i| i as u8).collect::<Vec<u8>>()).unwrap());
    packets.push(Packet::response(0, 4, true, 7, vec![0xab; 100_000]).unwrap());
    packets.push(Packet::request(0, 5, 0, 0, vec![0xcd; 70_000]).unwrap());
    let bytes: Vec<u8> = packets.iter().flat_map(frame).collect();
    for chunk in [1, 3, 7, 1000, 65_536] {
        let stream = Suspending { inner: Cursor::new(bytes.clone()), chunk, ready: false, suspensions: 0 };
        let (read, suspended) = read_all_resuming(stream, DEFAULT_MAX_PACKET_SIZE);
        assert_eq!(read.expect("every packet"), packets, "chunk {chunk}");
        // Every read of the stream was preceded by a suspension.
        assert!(suspended >= bytes.len().div_ceil(chunk.max(65_536)), "chunk {chunk}: suspended {suspended} times");
        if chunk == 1 {
            assert!(suspended >= bytes.len(), "a suspension at every byte");
        }
    }
}

#[test]
fn a_stream_ending_after_a_suspension_inside_a_frame_is_an_unexpected_eof() {
    let whole = frame(&Packet::request(0, 2, 0, 0, vec![1; 150_000]).unwrap());
    for cut in [1, 3, 10, 40_000, 149_000] {
        let stream = Suspending { inner: Cursor::new(whole[..cut].to_vec()), chunk: 512, ready: false, suspensions: 0 };
        let (read, _) = read_all_resuming(stream, DEFAULT_MAX_PACKET_SIZE);
        assert!(matches!(read, Err(ReadError::Protocol(ProtocolError::UnexpectedEof))), "cut at {cut}: {read:?}");
    }
}

/// Every packet of the stream, read through `gate`, each refusal resumed.
fn read_all_gated(reader: &mut PacketReader<impl Read>, gate: &mut Gate<'_>) -> Vec<Packet> {
    let mut read = Vec::new();
    loop {
        match reader.read_packet_gated(gate) {
            Ok(Some(packet)) => read.push(packet),
            Ok(None) => return read,
            Err(ReadError::Io(error)) if error.kind() == io::ErrorKind::WouldBlock => {}
            Err(error) => panic!("{error}"),
        }
    }
}

/// A gate that allows a few bytes at a time and suspends before every
/// other read: the same packets come out, resumed, and no read asks for
/// more than the gate allowed.
#[test]
fn a_gated_read_reads_no_more_than_the_gate_allows_and_resumes_when_it_refuses() {
    let mut packets = every_mix();
    packets.push(Packet::request(3, 9, 1, 2, vec![0x5a; 150_000]).unwrap());
    let bytes: Vec<u8> = packets.iter().flat_map(frame).collect();
    struct Limited {
        inner: Cursor<Vec<u8>>,
        allowed: std::rc::Rc<std::cell::Cell<usize>>,
    }
    impl Read for Limited {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            assert!(buf.len() <= self.allowed.get(), "asked for {} with {} allowed", buf.len(), self.allowed.get());
            self.inner.read(buf)
        }
    }
    let allowed = std::rc::Rc::new(std::cell::Cell::new(0));
    let stream = Limited { inner: Cursor::new(bytes), allowed: std::rc::Rc::clone(&allowed) };
    let mut reader = PacketReader::new(stream, DEFAULT_MAX_PACKET_SIZE);
    let mut open = false;
    let mut gate = |_buf: &mut [u8], _exact: bool| -> io::Result<Gated> {
        open = !open;
        if open {
            allowed.set(777);
            Ok(Gated::Ready(777))
        } else {
            allowed.set(0);
            Err(io::ErrorKind::WouldBlock.into())
        }
    };
    assert_eq!(read_all_gated(&mut reader, &mut gate), packets);
}

/// A gate that reads the stream itself (as one over a descriptor does, with
/// reads that cannot block): the reader's own stream is never read, except
/// for a growing payload's bytes, where the gate is given no buffer; the
/// same packets come out, resumed after each refusal.
#[test]
fn a_gate_that_reads_for_the_reader_fills_its_buffers() {
    let mut packets = every_mix();
    packets.push(Packet::request(3, 9, 1, 2, vec![0x5a; 150_000]).unwrap());
    let bytes: Vec<u8> = packets.iter().flat_map(frame).collect();
    let shared = std::rc::Rc::new(std::cell::RefCell::new(Cursor::new(bytes)));
    struct Counted(std::rc::Rc<std::cell::RefCell<Cursor<Vec<u8>>>>);
    impl Read for Counted {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.0.borrow_mut().read(buf)
        }
    }
    let mut reader = PacketReader::new(Counted(std::rc::Rc::clone(&shared)), DEFAULT_MAX_PACKET_SIZE);
    let (mut calls, mut gate_reads, mut counts) = (0u32, 0u32, 0u32);
    let mut gate = |buf: &mut [u8], _exact: bool| -> io::Result<Gated> {
        calls += 1;
        if calls % 3 == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        if buf.is_empty() {
            counts += 1;
            return Ok(Gated::Ready(4096));
        }
        gate_reads += 1;
        let room = buf.len().min(1000);
        shared.borrow_mut().read(&mut buf[..room]).map(Gated::Read)
    };
    assert_eq!(read_all_gated(&mut reader, &mut gate), packets);
    assert!(gate_reads > 0 && counts > 0, "read by the gate {gate_reads} times, counted {counts}");
    assert_eq!(reader.bytes_read(), shared.borrow().get_ref().len() as u64);
}

/// A gate that says it read more than its buffer holds is an error, not a
/// panic or a frame cut wrong.
#[test]
fn a_gate_that_claims_more_than_its_buffer_is_an_error() {
    let bytes = frame(&Packet::request(0, 2, 1, 0, b"hello".to_vec()).unwrap());
    let mut reader = PacketReader::new(Cursor::new(bytes), DEFAULT_MAX_PACKET_SIZE);
    let mut gate = |buf: &mut [u8], _exact: bool| -> io::Result<Gated> { Ok(Gated::Read(buf.len() + 1)) };
    match reader.read_packet_gated(&mut gate) {
        Err(ReadError::Io(error)) => assert_eq!(error.kind(), io::ErrorKind::InvalidInput, "{error}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_large_payload_is_read_into_the_spare_buffer_given_and_a_small_one_is_not() {
    let big = Packet::request(0, 5, 1, 0, vec![9; 300 << 10]).unwrap();
    let small = Packet::request(0, 6, 1, 0, b"hi".to_vec()).unwrap();
    let mut bytes = frame(&small);
    bytes.extend(frame(&big));
    let mut reader = PacketReader::new(Cursor::new(bytes), DEFAULT_MAX_PACKET_SIZE);
    let spare = Vec::with_capacity(512 << 10);
    let at = spare.as_ptr();
    reader.give_spare(spare);
    assert!(reader.has_spare());
    let first = reader.read_packet().unwrap().unwrap();
    assert_eq!(first, small);
    assert!(reader.has_spare(), "a payload in the read buffer needs none");
    let second = reader.read_packet().unwrap().unwrap();
    assert_eq!(second, big);
    assert!(!reader.has_spare());
    assert_eq!(second.payload().as_ptr(), at, "read into the buffer given");
}

#[test]
fn a_spare_buffer_too_small_is_kept_for_later() {
    let big = Packet::request(0, 5, 1, 0, vec![1; 200 << 10]).unwrap();
    let mut reader = PacketReader::new(Cursor::new(frame(&big)), DEFAULT_MAX_PACKET_SIZE);
    reader.give_spare(Vec::with_capacity(100 << 10));
    assert_eq!(reader.read_packet().unwrap().unwrap(), big);
    assert!(reader.has_spare(), "too small for that payload, not thrown away");
}

/// Counts the read calls made of it.
struct Counting<R> {
    inner: R,
    calls: std::rc::Rc<std::cell::Cell<usize>>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.calls.set(self.calls.get() + 1);
        self.inner.read(buf)
    }
}

#[test]
fn a_spare_buffer_with_its_bytes_is_read_into_in_place_in_as_few_calls_as_the_bytes_come_in() {
    let payload: Vec<u8> = (0..700_000u32).map(|i| (i % 251) as u8).collect();
    let big = Packet::request(0, 5, 1, 0, payload).unwrap();
    let calls = std::rc::Rc::new(std::cell::Cell::new(0));
    let stream = Counting { inner: Cursor::new(frame(&big)), calls: std::rc::Rc::clone(&calls) };
    let mut reader = PacketReader::new(stream, DEFAULT_MAX_PACKET_SIZE);
    // A buffer an earlier, longer payload was in: its stale bytes must not show.
    let spare = vec![0xee; 1 << 20];
    let at = spare.as_ptr();
    reader.give_spare(spare);
    let read = reader.read_packet().unwrap().unwrap();
    assert_eq!(read, big, "the payload's bytes, and its length, not the buffer's");
    assert_eq!(read.payload().as_ptr(), at, "read into the buffer given");
    // One call fills the read buffer, one reads the rest of the payload
    // (a growing payload starts with small calls and doubles them).
    assert_eq!(calls.get(), 2);
    let emptied = Packet::request(0, 6, 1, 0, vec![3; 700_000]).unwrap();
    let calls = std::rc::Rc::new(std::cell::Cell::new(0));
    let stream = Counting { inner: Cursor::new(frame(&emptied)), calls: std::rc::Rc::clone(&calls) };
    let mut reader = PacketReader::new(stream, DEFAULT_MAX_PACKET_SIZE);
    reader.give_spare(Vec::with_capacity(1 << 20));
    assert_eq!(reader.read_packet().unwrap().unwrap(), emptied);
    assert!(calls.get() > 2, "an emptied buffer grows: {} calls", calls.get());
}

#[test]
fn a_payload_read_in_place_resumes_after_suspensions_and_ends_short_as_an_unexpected_eof() {
    let payload: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    let big = Packet::response(0, 4, true, 7, payload).unwrap();
    let small = Packet::request(0, 8, 0, 0, b"after".to_vec()).unwrap();
    let mut bytes = frame(&big);
    bytes.extend(frame(&small));
    for chunk in [1, 999, 65_536, 200_000] {
        let stream = Suspending { inner: Cursor::new(bytes.clone()), chunk, ready: false, suspensions: 0 };
        let mut reader = PacketReader::new(stream, DEFAULT_MAX_PACKET_SIZE);
        reader.give_spare(vec![0x11; 400_000]);
        let mut read = Vec::new();
        loop {
            match reader.read_packet() {
                Ok(Some(packet)) => read.push(packet),
                Ok(None) => break,
                Err(ReadError::Io(error)) if error.kind() == io::ErrorKind::WouldBlock => {}
                Err(error) => panic!("chunk {chunk}: {error}"),
            }
        }
        assert_eq!(read, [big.clone(), small.clone()], "chunk {chunk}");
    }
    let whole = frame(&big);
    let cut = whole.len() - 1000;
    let mut reader = PacketReader::new(Cursor::new(whole[..cut].to_vec()), DEFAULT_MAX_PACKET_SIZE);
    reader.give_spare(vec![0x11; 400_000]);
    assert!(matches!(reader.read_packet(), Err(ReadError::Protocol(ProtocolError::UnexpectedEof))));
    assert_eq!(reader.frame_start(), &whole[..64], "the frame's start, not the buffer's old bytes");
    // Cut three bytes into the payload: the frame's start is its header and
    // those three bytes, none of the buffer's.
    let header_len = whole.len() - big.payload().len();
    let mut reader = PacketReader::new(Cursor::new(whole[..header_len + 3].to_vec()), DEFAULT_MAX_PACKET_SIZE);
    reader.give_spare(vec![0x11; 400_000]);
    assert!(matches!(reader.read_packet(), Err(ReadError::Protocol(ProtocolError::UnexpectedEof))));
    assert_eq!(reader.frame_start(), &whole[..header_len + 3]);
}
