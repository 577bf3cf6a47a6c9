//! Counted limits: at most `max` connections open, at most so many in the
//! handshake. A [`Slot`] is one unit of a limit; the listener takes it
//! before a connection gets a thread, and dropping it gives it back, so a
//! slot cannot leak whichever way a connection ends.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// One unit of a counted limit, given back when dropped.
pub struct Slot(Arc<AtomicUsize>);

impl Slot {
    /// Takes a unit of `counter` if fewer than `max` are taken.
    pub fn take(counter: &Arc<AtomicUsize>, max: usize) -> Option<Slot> {
        counter.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1)).ok()?;
        Some(Slot(counter.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}
