//! Temporary queues: private to one session, in memory only, removed with it (STOMP's
//! `/temp-queue/NAME`, and the queue behind a rewritten `reply-to`). Their names carry
//! [`TEMP_PREFIX`], which no ordinary queue may take: a message sent to such a name once its queue
//! is gone is dropped and counted, never stored in a queue made anew that nobody would read.
//! Only the owning session consumes one; anybody may send to it.
//!
//! Temporary topics (`/temp-topic/NAME`) keep nothing, so they need no registry: their names carry
//! [`TEMP_TOPIC_PREFIX`] and the owning session's number, only that session may subscribe to one,
//! and no wildcard subscription sees what is sent to one (as on ActiveMQ, where temporary
//! destinations live outside the wildcard namespace).

use std::sync::Arc;

use crate::queue::Queue;
use crate::{Broker, BrokerError};

/// What every temporary queue's name starts with.
pub const TEMP_PREFIX: &str = "stampede.temp.";

/// What every temporary topic's name starts with.
pub const TEMP_TOPIC_PREFIX: &str = "stampede.temp-topic.";

pub(crate) fn is_temp_topic(name: &str) -> bool {
    name.starts_with(TEMP_TOPIC_PREFIX)
}

pub(crate) fn is_temp(name: &str) -> bool {
    name.starts_with(TEMP_PREFIX)
}

impl Broker {
    /// The broker-wide name of session `session`'s temporary destination `name`; `prefix` is
    /// [`TEMP_PREFIX`] for a queue, [`TEMP_TOPIC_PREFIX`] for a topic. The broker instance in it
    /// keeps a name from one run from meaning a session of the next.
    pub fn temp_name(&self, prefix: &str, session: u64, name: &str) -> String {
        format!("{prefix}{session:x}.{:x}.{name}", self.instance())
    }

    /// Refuses a subscription to another session's temporary topic.
    pub(crate) fn check_temp_topic(&self, topic: &str, session: u64) -> Result<(), BrokerError> {
        if is_temp_topic(topic)
            && !topic.starts_with(&self.temp_name(TEMP_TOPIC_PREFIX, session, ""))
        {
            return Err(BrokerError::TemporaryElsewhere(topic.to_owned()));
        }
        Ok(())
    }

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
