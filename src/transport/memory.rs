//! In-process streams with no file descriptors: two connections in one
//! process, tests without fds, a program's components talking as if over a
//! pipe.
//!
//! Each direction is a bounded byte queue behind a mutex, with a pipe's
//! semantics: a read blocks until bytes arrive and returns 0 once the writer
//! is gone; a write blocks while the queue is full and fails with
//! `BrokenPipe` once the reader is gone. Interrupting a transport (what close
//! does when the peer will not finish) shuts both of its directions, as
//! `shutdown(Both)` does a socket.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};

use super::base::Transport;

/// How many bytes one direction holds before a writer waits: as much as
/// the pipes the library enlarges hold, so that the two kinds behave alike.
const CAPACITY: usize = 1 << 20;

struct Queue {
    bytes: VecDeque<u8>,
    reader_gone: bool,
    writer_gone: bool,
    /// Set by an interrupt: reads end, writes fail.
    shut: bool,
}

struct Direction {
    queue: Mutex<Queue>,
    readable: Condvar,
    writable: Condvar,
}

impl Direction {
    fn new() -> Arc<Direction> {
        Arc::new(Direction {
            queue: Mutex::new(Queue { bytes: VecDeque::new(), reader_gone: false, writer_gone: false, shut: false }),
            readable: Condvar::new(),
            writable: Condvar::new(),
        })
    }

    fn shut(&self) {
        self.queue.lock().shut = true;
        self.readable.notify_all();
        self.writable.notify_all();
    }
}

/// The read end of one in-memory direction (see [`Transport::memory_pair`]).
pub struct MemoryReader(Arc<Direction>);

/// The write end of one in-memory direction (see [`Transport::memory_pair`]).
pub struct MemoryWriter(Arc<Direction>);

impl Read for MemoryReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let direction = &*self.0;
        let mut queue = direction.queue.lock();
        while queue.bytes.is_empty() && !queue.writer_gone && !queue.shut {
            direction.readable.wait(&mut queue);
        }
        if queue.shut {
            return Ok(0);
        }
        let (front, back) = queue.bytes.as_slices();
        let n = front.len().min(buf.len());
        buf[..n].copy_from_slice(&front[..n]);
        let m = back.len().min(buf.len() - n);
        buf[n..n + m].copy_from_slice(&back[..m]);
        queue.bytes.drain(..n + m);
        drop(queue);
        direction.writable.notify_one();
        Ok(n + m)
    }
}

impl Write for MemoryWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let direction = &*self.0;
        let mut queue = direction.queue.lock();
        loop {
            if queue.reader_gone || queue.shut {
                return Err(io::ErrorKind::BrokenPipe.into());
            }
            if queue.bytes.len() < CAPACITY {
                break;
            }
            direction.writable.wait(&mut queue);
        }
        let n = buf.len().min(CAPACITY - queue.bytes.len());
        queue.bytes.extend(&buf[..n]);
        drop(queue);
        direction.readable.notify_one();
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for MemoryReader {
    fn drop(&mut self) {
        self.0.queue.lock().reader_gone = true;
        self.0.writable.notify_all();
    }
}

impl Drop for MemoryWriter {
    fn drop(&mut self) {
        self.0.queue.lock().writer_gone = true;
        self.0.readable.notify_all();
    }
}

/// One in-memory direction: what is written to the [`MemoryWriter`] is read
/// from the [`MemoryReader`], with a pipe's semantics (see
/// [`std::io::pipe`]) and no file descriptor. Two of them make a
/// [`Transport::new`] for a peer worked by hand; [`Transport::memory_pair`]
/// joins two transports at once.
pub fn memory_pipe() -> (MemoryReader, MemoryWriter) {
    let direction = Direction::new();
    (MemoryReader(Arc::clone(&direction)), MemoryWriter(direction))
}

impl Transport {
    /// Two transports joined in memory, with no file descriptor: what one
    /// writes the other reads. For two connections in one process, and for
    /// tests. [`Finished::into_streams`](crate::Finished::into_streams)
    /// hands back a [`MemoryReader`] and a [`MemoryWriter`].
    pub fn memory_pair() -> (Transport, Transport) {
        let (a_to_b, b_to_a) = (Direction::new(), Direction::new());
        let side = |read: &Arc<Direction>, write: &Arc<Direction>| {
            let (read_shut, write_shut) = (Arc::clone(read), Arc::clone(write));
            Transport::new(MemoryReader(Arc::clone(read)), MemoryWriter(Arc::clone(write))).with_interrupt(move || {
                read_shut.shut();
                write_shut.shut();
            })
        };
        (side(&b_to_a, &a_to_b), side(&a_to_b, &b_to_a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread;

    fn ends() -> (MemoryWriter, MemoryReader) {
        let (reader, writer) = memory_pipe();
        (writer, reader)
    }

    #[test]
    fn bytes_cross_in_order_and_the_end_reads_as_zero() {
        let (mut writer, mut reader) = ends();
        writer.write_all(b"hello ").unwrap();
        writer.write_all(b"world").unwrap();
        drop(writer);
        let mut got = String::new();
        reader.read_to_string(&mut got).unwrap();
        assert_eq!(got, "hello world");
    }

    #[test]
    fn a_full_queue_blocks_the_writer_until_the_reader_takes() {
        let (mut writer, mut reader) = ends();
        let total = 3 * CAPACITY + 17;
        let sender = thread::spawn(move || {
            let data: Vec<u8> = (0..total).map(|i| i as u8).collect();
            writer.write_all(&data).unwrap();
        });
        let mut got = Vec::new();
        reader.read_to_end(&mut got).unwrap();
        sender.join().unwrap();
        assert_eq!(got.len(), total);
        assert!(got.iter().enumerate().all(|(i, &b)| b == i as u8));
    }

    #[test]
    fn writing_to_a_gone_reader_is_a_broken_pipe() {
        let (mut writer, reader) = ends();
        drop(reader);
        assert_eq!(writer.write(b"x").unwrap_err().kind(), io::ErrorKind::BrokenPipe);
    }

    #[test]
    fn a_shut_direction_wakes_a_blocked_reader() {
        let direction = Direction::new();
        let mut reader = MemoryReader(Arc::clone(&direction));
        let _writer = MemoryWriter(Arc::clone(&direction));
        let blocked = thread::spawn(move || reader.read(&mut [0; 8]).unwrap());
        direction.shut();
        assert_eq!(blocked.join().unwrap(), 0);
    }
}
