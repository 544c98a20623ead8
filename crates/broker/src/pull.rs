//! The pull front end of the façade (OCI Queue's GetMessages, DeleteMessage, UpdateMessage): a
//! REST handler calls these with a queue name and receipts, without any session.

use std::time::Duration;

use stampede_store::Ticket;

use crate::effects::Effects;
use crate::queue::Pulled;
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
