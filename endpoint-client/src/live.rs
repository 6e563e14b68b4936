//! Counts of what a call holds while it runs — GStreamer pipelines, peer connections, call
//! tasks — so the status (and the many-calls test) can check that each call gives back what it
//! took. A [`Live`] guard counts one of them from creation to drop.

use std::sync::atomic::{AtomicI64, Ordering};

use serde::Serialize;

/// Live GStreamer pipelines (senders and receivers).
pub static PIPELINES: AtomicI64 = AtomicI64::new(0);
/// webrtc-rs peer connections built and not yet closed.
pub static PEER_CONNECTIONS: AtomicI64 = AtomicI64::new(0);
/// Tasks of calls: the call's own task, its media pumps and its receivers.
pub static CALL_TASKS: AtomicI64 = AtomicI64::new(0);

/// Counts one live thing in `counter` until dropped.
#[derive(Debug)]
pub struct Live(&'static AtomicI64);

impl Live {
    pub fn new(counter: &'static AtomicI64) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        Self(counter)
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What the status shows of the counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LiveCounts {
    pub pipelines: i64,
    pub peer_connections: i64,
    pub call_tasks: i64,
    /// Every task alive in the runtime (signaling, UI, uploads… besides calls).
    pub runtime_tasks: usize,
}

impl LiveCounts {
    /// The counts now (`runtime_tasks` is 0 outside a Tokio runtime).
    pub fn now() -> Self {
        Self {
            pipelines: PIPELINES.load(Ordering::Relaxed),
            peer_connections: PEER_CONNECTIONS.load(Ordering::Relaxed),
            call_tasks: CALL_TASKS.load(Ordering::Relaxed),
            runtime_tasks: tokio::runtime::Handle::try_current()
                .map(|h| h.metrics().num_alive_tasks())
                .unwrap_or(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static C: AtomicI64 = AtomicI64::new(0);

    #[test]
    fn a_guard_counts_until_dropped() {
        let a = Live::new(&C);
        let b = Live::new(&C);
        assert_eq!(C.load(Ordering::Relaxed), 2);
        drop(a);
        assert_eq!(C.load(Ordering::Relaxed), 1);
        drop(b);
        assert_eq!(C.load(Ordering::Relaxed), 0);
    }
}
