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
//!   error for a stream that stops inside a frame); with the top bit of the
//!   chunk size set, through a gate that reads the pieces itself into the
//!   buffers it is given (as a descriptor's gate does), counts where it is
//!   given none, and refuses every third time (each refusal resumed);
//! - no single allocation is proportional to a claimed length.

#![no_main]

use std::cell::Cell;
use std::io::{self, Read};
use std::rc::Rc;

use libfuzzer_sys::fuzz_target;
use packetstream::wire::{self, decode_varint, encode_varint, Gated, Packet, PacketReader, ReadError, MAX_VARINT_LEN};

#[path = "alloc.rs"]
mod alloc;

#[global_allocator]
static ALLOCATOR: alloc::Tracking = alloc::Tracking;

const MAX_SIZES: [usize; 8] = [0, 1, 3, 16, 300, 4096, wire::DEFAULT_MAX_PACKET_SIZE, usize::MAX];

/// Hands out the input at most `chunk` bytes per read call; shared with
/// the gate that may read it too.
struct Trickle<'a> {
    data: Rc<Cell<&'a [u8]>>,
    chunk: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Ok(take(&self.data, buf, self.chunk))
    }
}

fn take(data: &Cell<&[u8]>, buf: &mut [u8], chunk: usize) -> usize {
    let rest = data.get();
    let n = buf.len().min(chunk).min(rest.len());
    buf[..n].copy_from_slice(&rest[..n]);
    data.set(&rest[n..]);
    n
}

/// The reader's next packet: read plainly, or through a gate that reads
/// for it and refuses every third call (a refused read is resumed).
fn next(
    reader: &mut PacketReader<Trickle<'_>>,
    gated: Option<(&Cell<&[u8]>, usize)>,
    calls: &mut u32,
) -> Result<Option<Packet>, ReadError> {
    let Some((data, chunk)) = gated else {
        return reader.read_packet();
    };
    let mut gate = |buf: &mut [u8], _exact: bool| -> io::Result<Gated> {
        *calls += 1;
        if *calls % 3 == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        if buf.is_empty() {
            return Ok(Gated::Ready(chunk));
        }
        Ok(Gated::Read(take(data, buf, chunk)))
    };
    loop {
        match reader.read_packet_gated(&mut gate) {
            Err(ReadError::Io(error)) if error.kind() == io::ErrorKind::WouldBlock => {}
            other => return other,
        }
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
    let chunk = usize::from((control >> 3) & 0xf) + 1;
    let through_gate = control & 0x80 != 0;
    alloc::reset();

    check_varint(stream);

    let source = Rc::new(Cell::new(stream));
    let mut reader = PacketReader::new(Trickle { data: Rc::clone(&source), chunk }, max);
    let gated = through_gate.then_some((&*source, chunk));
    let mut calls = 0;
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
                match next(&mut reader, gated, &mut calls) {
                    Ok(Some(read)) => assert_eq!(read, packet),
                    other => panic!("decode gave {packet:?}, the reader {other:?}"),
                }
                rest = &rest[used..];
            }
            Ok(None) if rest.is_empty() => {
                assert!(matches!(next(&mut reader, gated, &mut calls), Ok(None)));
                break;
            }
            Ok(None) => {
                // The stream stops inside a frame.
                match next(&mut reader, gated, &mut calls) {
                    Err(ReadError::Protocol(_)) => {}
                    other => panic!("{} trailing bytes: the reader gave {other:?}", rest.len()),
                }
                break;
            }
            Err(error) => {
                match next(&mut reader, gated, &mut calls) {
                    Err(ReadError::Protocol(read)) => assert_eq!(read, error),
                    other => panic!("decode failed with {error:?}, the reader gave {other:?}"),
                }
                break;
            }
        }
    }
    assert!(alloc::largest() <= alloc::allowed(data.len()), "allocated {} bytes", alloc::largest());
});
