//! The pull front end of the façade (OCI Queue's GetMessages, DeleteMessage, UpdateMessage): a
//! REST handler calls these with a queue name and receipts, without any session.

use std::time::Duration;

use stampede_store::Ticket;

use crate::effects::Effects;
use crate::queue::{PullOrWait, Pulled, Queue};
use crate::{Broker, BrokerError};

impl Broker {
    /// Hands up to `max` visible messages of queue `name` (of `channel` only, if given) out with
    /// receipts, hiding them for `visibility` (the queue's own visibility timeout when `None`).
    /// The queue is created if it does not exist, as a SEND or SUBSCRIBE would.
    pub fn pull(
        &self,
        name: &str,
        max: usize,
        visibility: Option<Duration>,
        channel: Option<&str>,
    ) -> Result<(Vec<Pulled>, Ticket), BrokerError> {
        crate::Destination::check_name(name)?;
        let queue = self.queue(name);
        let mut fx = Effects::new();
        let pulled = queue.pull(max, visibility, channel, &mut fx);
        Ok((pulled, self.apply(fx)))
    }

    /// [`Broker::pull`] as a long poll: when nothing is visible, waits up to `wait` for a message
    /// to arrive and takes it then. Waiters are served in the order they came; one that gives up
    /// (its future dropped) leaves the queue's waiter list at once. An empty result after the wait
    /// is no error.
    pub async fn pull_wait(
        &self,
        name: &str,
        max: usize,
        visibility: Option<Duration>,
        channel: Option<&str>,
        wait: Duration,
    ) -> Result<(Vec<Pulled>, Ticket), BrokerError> {
        crate::Destination::check_name(name)?;
        let deadline = tokio::time::Instant::now() + wait;
        let queue = self.queue(name);
        let mut woken = false;
        loop {
            let mut fx = Effects::new();
            let outcome = queue.pull_or_wait(max, visibility, channel, woken, &mut fx);
            let ticket = self.apply(fx);
            let (id, wake) = match outcome {
                PullOrWait::Pulled(pulled) => return Ok((pulled, ticket)),
                PullOrWait::Wait { id, wake } => (id, wake),
            };
            let mut waiting = Waiting {
                queue: &queue,
                id: Some(id),
            };
            if tokio::time::timeout_at(deadline, wake.notified())
                .await
                .is_err()
            {
                // Leaving on time (woken just now, it passes the wake-up on as it leaves), with
                // one last look: what is visible now is this poll's as much as anyone's.
                drop(waiting);
                drop(ticket);
                let mut fx = Effects::new();
                let pulled = queue.pull(max, visibility, channel, &mut fx);
                return Ok((pulled, self.apply(fx)));
            }
            // Its waker took it off the list.
            waiting.id = None;
            woken = true;
        }
    }

    /// Deletes a pulled message by its receipt.
    pub fn delete_pulled(&self, name: &str, receipt: &str) -> Result<Ticket, BrokerError> {
        let unknown = || BrokerError::UnknownMessage(receipt.to_owned());
        let queue = self.find_queue(name).ok_or_else(unknown)?;
        let mut fx = Effects::new();
        let settled = queue.delete(receipt, &mut fx);
        let ticket = self.apply(fx);
        settled.map_err(|_| unknown())?;
        Ok(ticket)
    }

    /// Deletes pulled messages by their receipts in one commit (OCI's DeleteMessages): each
    /// receipt's outcome, in order, and the ticket of the commit.
    pub fn delete_pulled_batch(
        &self,
        name: &str,
        receipts: &[&str],
    ) -> (Vec<Result<(), BrokerError>>, Ticket) {
        let unknown = |r: &str| BrokerError::UnknownMessage(r.to_owned());
        let Some(queue) = self.find_queue(name) else {
            let all = receipts.iter().map(|r| Err(unknown(r))).collect();
            return (all, Ticket::ready(Ok(())));
        };
        let mut fx = Effects::new();
        let outcomes = receipts
            .iter()
            .map(|r| queue.delete(r, &mut fx).map_err(|_| unknown(r)))
            .collect();
        (outcomes, self.apply(fx))
    }

    /// Hides a pulled message for `visibility` from now; returns when it becomes visible again
    /// (ms since the epoch).
    pub fn extend_pulled(
        &self,
        name: &str,
        receipt: &str,
        visibility: Duration,
    ) -> Result<u64, BrokerError> {
        let unknown = || BrokerError::UnknownMessage(receipt.to_owned());
        let queue = self.find_queue(name).ok_or_else(unknown)?;
        queue.extend(receipt, visibility).map_err(|_| unknown())
    }
}

/// A long poll registered in its queue: leaves the waiter list when dropped, also when the
/// request is cancelled mid-wait.
struct Waiting<'a> {
    queue: &'a Queue,
    id: Option<u64>,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            self.queue.leave_pull(id);
        }
    }
}
