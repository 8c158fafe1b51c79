//! Striped counters: each thread adds to its own cache line, so counting on
//! every request does not bounce one line between cores.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Stripes per counter set. Sixteen covers the cores of the machines a
/// gateway runs on; threads beyond that share stripes, which is still
/// correct, only slower.
pub(crate) const STRIPES: usize = 16;

static NEXT: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static STRIPE: usize = NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES;
}

/// This thread's stripe.
#[inline]
pub(crate) fn stripe() -> usize {
    STRIPE.with(|s| *s)
}

/// `N` counters, striped.
pub(crate) struct Striped<const N: usize> {
    cells: [Line<N>; STRIPES],
}

#[repr(align(128))]
struct Line<const N: usize>([AtomicU64; N]);

impl<const N: usize> Default for Striped<N> {
    fn default() -> Self {
        Striped {
            cells: std::array::from_fn(|_| Line(std::array::from_fn(|_| AtomicU64::new(0)))),
        }
    }
}

impl<const N: usize> Striped<N> {
    /// Adds `v` to counter `i`.
    #[inline]
    pub(crate) fn add(&self, i: usize, v: u64) {
        self.cells[stripe()].0[i].fetch_add(v, Ordering::Relaxed);
    }

    /// The sum of counter `i` over all stripes.
    pub(crate) fn sum(&self, i: usize) -> u64 {
        self.cells
            .iter()
            .map(|c| c.0[i].load(Ordering::Relaxed))
            .sum()
    }

    /// Takes and zeroes counter `i` over all stripes.
    pub(crate) fn take(&self, i: usize) -> u64 {
        self.cells
            .iter()
            .map(|c| c.0[i].swap(0, Ordering::Relaxed))
            .sum()
    }
}
