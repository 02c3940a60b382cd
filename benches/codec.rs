//! Micro-benchmarks of the codec: encoding and decoding one packet, in
//! nanoseconds per packet.
//!
//!     cargo bench --bench codec
//!
//! - `encode`: `wire::encode` of a packet into a reused buffer;
//! - `decode_slice`: `wire::decode` of one frame from a byte slice (the
//!   payload is copied out into the packet's own `Vec`);
//! - `decode_reader`: `PacketReader::read_packet` over a `Cursor` holding many
//!   frames back to back, as the connection's reader thread reads them (only
//!   the reads are timed, not building the reader).
//!
//! Each for a request with a 16-byte and a 64 KiB payload; `encode` also for a
//! 16-byte response. Every measured iteration handles one packet, so the
//! reported time is the time per packet.

use std::hint::black_box;
use std::io::Cursor;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use packetstream::wire::{self, PacketReader};
use packetstream::Packet;

/// Frames in one cursor for `decode_reader`: enough that building the reader
/// is rare, few enough to stay in cache for small packets.
const FRAMES_SMALL: usize = 4096;
const FRAMES_LARGE: usize = 64;

fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + 7) as u8).collect()
}

fn request(len: usize) -> Packet {
    // Channel 0, a tag past the control tags, request type 0, some flags:
    // the common case on the wire.
    Packet::request(0, 123_456, 0, 5, payload(len)).expect("a valid request")
}

fn cases() -> [(&'static str, usize, usize); 2] {
    [("16B", 16, FRAMES_SMALL), ("64KiB", 64 << 10, FRAMES_LARGE)]
}

fn bench_encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    for (name, len, _) in cases() {
        let packet = request(len);
        let mut out = Vec::with_capacity(wire::encoded_len(&packet));
        group.throughput(Throughput::Bytes(wire::encoded_len(&packet) as u64));
        group.bench_function(BenchmarkId::new("request", name), |b| {
            b.iter(|| {
                out.clear();
                wire::encode(black_box(&packet), &mut out);
                black_box(out.len())
            })
        });
    }
    let response = Packet::response(0, 123_456, true, 5, payload(16)).expect("a valid response");
    let mut out = Vec::with_capacity(wire::encoded_len(&response));
    group.throughput(Throughput::Bytes(wire::encoded_len(&response) as u64));
    group.bench_function(BenchmarkId::new("response", "16B"), |b| {
        b.iter(|| {
            out.clear();
            wire::encode(black_box(&response), &mut out);
            black_box(out.len())
        })
    });
    group.finish();
}

fn bench_decode_slice(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode_slice");
    for (name, len, _) in cases() {
        let mut frame = Vec::new();
        wire::encode(&request(len), &mut frame);
        group.throughput(Throughput::Bytes(frame.len() as u64));
        group.bench_function(BenchmarkId::new("request", name), |b| {
            b.iter(|| {
                let (packet, used) = wire::decode(black_box(&frame), wire::DEFAULT_MAX_PACKET_SIZE)
                    .expect("a valid frame")
                    .expect("a whole frame");
                black_box((packet, used))
            })
        });
    }
    group.finish();
}

fn bench_decode_reader(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode_reader");
    for (name, len, frames) in cases() {
        let packet = request(len);
        let mut stream = Vec::with_capacity(wire::encoded_len(&packet) * frames);
        for _ in 0..frames {
            wire::encode(&packet, &mut stream);
        }
        group.throughput(Throughput::Bytes(wire::encoded_len(&packet) as u64));
        group.bench_function(BenchmarkId::new("request", name), |b| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let batch = left.min(frames as u64);
                    let mut reader = PacketReader::new(Cursor::new(&stream[..]), wire::DEFAULT_MAX_PACKET_SIZE);
                    let start = Instant::now();
                    for _ in 0..batch {
                        black_box(reader.read_packet().expect("a valid frame").expect("a packet"));
                    }
                    timed += start.elapsed();
                    left -= batch;
                }
                timed
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = codec_benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = bench_encode, bench_decode_slice, bench_decode_reader
}
criterion_main!(codec_benches);
