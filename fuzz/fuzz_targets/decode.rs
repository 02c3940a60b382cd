//! The packet decoder on arbitrary bytes.
//!
//! The first input byte picks the maximum packet size and how many bytes each
//! `read` call of the streaming reader returns; the rest is the stream. The
//! target checks, besides "no panic":
//!
//! - every packet `wire::decode` cuts from the buffer re-encodes and decodes
//!   back to itself;
//! - the streaming `PacketReader`, fed the same bytes in small pieces, yields
//!   exactly the same packets, then the same error (or a clean end, or an
//!   error for a stream that stops inside a frame);
//! - no single allocation is proportional to a claimed length.

#![no_main]

use std::io::{self, Read};

use libfuzzer_sys::fuzz_target;
use packetstream::wire::{self, decode_varint, encode_varint, PacketReader, ReadError, MAX_VARINT_LEN};

#[path = "alloc.rs"]
mod alloc;

#[global_allocator]
static ALLOCATOR: alloc::Tracking = alloc::Tracking;

const MAX_SIZES: [usize; 8] = [0, 1, 3, 16, 300, 4096, wire::DEFAULT_MAX_PACKET_SIZE, usize::MAX];

/// Hands out the input at most `chunk` bytes per read call.
struct Trickle<'a> {
    data: &'a [u8],
    chunk: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.chunk).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

fn check_varint(bytes: &[u8]) {
    if let Ok(Some((value, used))) = decode_varint(bytes) {
        assert!((1..=MAX_VARINT_LEN).contains(&used) && used <= bytes.len());
        let mut canonical = Vec::new();
        encode_varint(value, &mut canonical);
        assert!(canonical.len() <= used);
        assert_eq!(decode_varint(&canonical), Ok(Some((value, canonical.len()))));
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, stream)) = data.split_first() else {
        return;
    };
    let max = MAX_SIZES[usize::from(control & 7)];
    let chunk = usize::from(control >> 3) + 1;
    alloc::reset();

    check_varint(stream);

    let mut reader = PacketReader::new(Trickle { data: stream, chunk }, max);
    let mut rest = stream;
    loop {
        match wire::decode(rest, max) {
            Ok(Some((packet, used))) => {
                assert!(used > 0 && used <= rest.len(), "used {used} of {}", rest.len());
                let mut again = Vec::new();
                wire::encode(&packet, &mut again);
                assert_eq!(again.len(), wire::encoded_len(&packet));
                // The re-encoding is canonical, so never longer than the input frame.
                assert!(again.len() <= used);
                assert_eq!(wire::decode(&again, usize::MAX >> 1), Ok(Some((packet.clone(), again.len()))));
                match reader.read_packet() {
                    Ok(Some(read)) => assert_eq!(read, packet),
                    other => panic!("decode gave {packet:?}, the reader {other:?}"),
                }
                rest = &rest[used..];
            }
            Ok(None) if rest.is_empty() => {
                assert!(matches!(reader.read_packet(), Ok(None)));
                break;
            }
            Ok(None) => {
                // The stream stops inside a frame.
                match reader.read_packet() {
                    Err(ReadError::Protocol(_)) => {}
                    other => panic!("{} trailing bytes: the reader gave {other:?}", rest.len()),
                }
                break;
            }
            Err(error) => {
                match reader.read_packet() {
                    Err(ReadError::Protocol(read)) => assert_eq!(read, error),
                    other => panic!("decode failed with {error:?}, the reader gave {other:?}"),
                }
                break;
            }
        }
    }
    assert!(alloc::largest() <= alloc::allowed(data.len()), "allocated {} bytes", alloc::largest());
});
