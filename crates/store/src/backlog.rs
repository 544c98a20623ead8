//! Bytes of message data handed to a store and not yet durable. The broker bounds this so a
//! producer that never asks for receipts cannot pile its messages up in the commit queue faster
//! than the disk takes them: its connection waits in [`Backlog::room`] instead of being read.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Notify;

/// A byte count with a way to wait until it falls below a limit.
#[derive(Debug, Default)]
pub struct Backlog {
    bytes: AtomicU64,
    drained: Notify,
}

impl Backlog {
    /// Data accepted for writing.
    pub fn add(&self, bytes: u64) {
        if bytes > 0 {
            self.bytes.fetch_add(bytes, Ordering::AcqRel);
        }
    }

    /// Data made durable (or given up on): wakes whoever waits for room.
    pub fn remove(&self, bytes: u64) {
        if bytes == 0 {
            return;
        }
        let _ = self
            .bytes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                Some(n.saturating_sub(bytes))
            });
        self.drained.notify_waiters();
    }

    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Acquire)
    }

    /// Resolves once fewer than `limit` bytes are pending; returns whether it had to wait.
    pub async fn room(&self, limit: u64) -> bool {
        let mut waited = false;
        loop {
            let drained = self.drained.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            if self.bytes() < limit {
                return waited;
            }
            waited = true;
            drained.await;
        }
    }
}

/// Bytes a commit adds to the backlog: the message data it writes.
pub fn op_bytes(ops: &[crate::Op]) -> u64 {
    ops.iter()
        .map(|op| match op {
            crate::Op::Put { record, .. } => record.size() as u64,
            _ => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    #[test]
    fn room_waits_while_at_or_over_the_limit_and_wakes_on_remove() {
        let backlog = std::sync::Arc::new(Backlog::default());
        assert_eq!(backlog.room(100).now_or_never(), Some(false));
        backlog.add(150);
        let mut wait = Box::pin(backlog.room(100));
        assert!((&mut wait).now_or_never().is_none(), "over the limit");
        backlog.remove(40);
        assert!(
            (&mut wait).now_or_never().is_none(),
            "110 is still over 100"
        );
        backlog.remove(40);
        assert_eq!(wait.now_or_never(), Some(true));
        assert_eq!(backlog.bytes(), 70);
        backlog.remove(1000);
        assert_eq!(backlog.bytes(), 0, "never below zero");
    }
}
