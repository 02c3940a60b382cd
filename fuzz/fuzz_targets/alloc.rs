// Shared by the fuzz targets: a global allocator that remembers the largest
// single allocation, so a target can assert that no allocation is
// proportional to a length the input merely claims.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

pub struct Tracking;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

fn note(size: usize) {
    LARGEST.fetch_max(size, Relaxed);
}

// SAFETY: every call is passed straight to the system allocator; only a
// counter is updated on the side.
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: the caller's contract is forwarded unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Starts a new measurement.
pub fn reset() {
    LARGEST.store(0, Relaxed);
}

/// The largest single allocation since the last [`reset`].
pub fn largest() -> usize {
    LARGEST.load(Relaxed)
}

/// What any allocation may cost for an input of `len` bytes: the fixed
/// buffers of a connection (64 KiB read buffer, 256 KiB write batch, at most
/// 1 MiB of payload allocated ahead of the bytes that arrived) and a small
/// multiple of the input, never the lengths the input claims.
pub fn allowed(len: usize) -> usize {
    (4 << 20) + 4 * len
}
