//! Temporary queues: private to one session, in memory only, removed with it (STOMP's
//! `/temp-queue/NAME`, and the queue behind a rewritten `reply-to`). Their names carry
//! [`TEMP_PREFIX`], which no ordinary queue may take: a message sent to such a name once its queue
//! is gone is dropped and counted, never stored in a queue made anew that nobody would read.
//! Only the owning session consumes one; anybody may send to it.

use std::sync::Arc;

use crate::queue::Queue;
use crate::{Broker, BrokerError};

/// What every temporary queue's name starts with.
pub const TEMP_PREFIX: &str = "stampede.temp.";

pub(crate) fn is_temp(name: &str) -> bool {
    name.starts_with(TEMP_PREFIX)
}

impl Broker {
    /// Makes temporary queue `name` for session `owner`, unless it exists. Refused when the name
    /// lacks [`TEMP_PREFIX`] or another session owns it.
    pub fn create_temp_queue(&self, name: &str, owner: u64) -> Result<(), BrokerError> {
        if !is_temp(name) {
            return Err(BrokerError::InvalidDestination(name.to_owned()));
        }
        crate::Destination::check_plain(name)?;
        let queue = self
            .temps
            .entry(Arc::from(name))
            .or_insert_with(|| self.transient_queue(name, Some(owner)))
            .clone();
        if queue.owner() != Some(owner) {
            return Err(BrokerError::ExclusiveQueue(name.to_owned()));
        }
        Ok(())
    }

    /// Removes temporary queue `name` and what it holds (its session is closing).
    pub fn remove_temp_queue(&self, name: &str) {
        if let Some((_, queue)) = self.temps.remove(name) {
            // A publish holding it already sees it dropped; its messages go with the last handle.
            let _ = queue.mark_dropped();
        }
    }

    pub(crate) fn temp(&self, name: &str) -> Option<Arc<Queue>> {
        self.temps.get(name).map(|q| q.clone())
    }
}
