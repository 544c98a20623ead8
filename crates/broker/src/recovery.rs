//! Start-up: rebuilding the registry from what the store recovered — every durable queue with its
//! attributes, the head of its messages and its totals; topic bindings; durable subscriptions —
//! before any connection is accepted.

use std::sync::atomic::Ordering;

use tracing::warn;

use crate::effects::Effects;
use crate::meta::{self, key, QueueAttrs};
use crate::{Broker, BrokerError};

/// What recovery found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recovery {
    pub queues: usize,
    pub messages: usize,
}

impl Broker {
    /// Rebuilds the broker from the store: messages become visible again (in-flight ones too)
    /// with their delivery counts. Call once, before accepting connections. Blocking.
    pub fn recover(&self) -> Result<Recovery, BrokerError> {
        let recovered = self.store.recover(self.config.window.messages)?;
        self.next_queue_id
            .fetch_max(recovered.next_queue_id, Ordering::Relaxed);
        let mut found = Recovery::default();
        let mut fx = Effects::new();
        for stored in recovered.queues {
            let attrs = QueueAttrs::decode(&stored.attrs).unwrap_or_else(|e| {
                warn!(queue = %stored.name, error = %e, "unreadable queue attributes; using the configuration's settings");
                QueueAttrs::default()
            });
            // Numbers come from the same counter as store ids; keep allocating above both.
            self.next_queue_id
                .fetch_max(attrs.number + 1, Ordering::Relaxed);
            let queue = self.durable_queue(stored.name.clone(), stored.id, &attrs, stored.next_seq);
            found.queues += 1;
            found.messages += stored.messages as usize;
            queue.recover(stored, &mut fx);
            self.queues.insert(queue.name_arc().clone(), queue);
        }
        for (k, value) in recovered.meta {
            if let Some((topic, queue)) = key::parse_binding(&k) {
                match self.find_queue(queue) {
                    Some(q) => {
                        self.bind_recovered(topic, q);
                    }
                    None => warn!(
                        topic,
                        queue, "binding to a queue that does not exist; ignored"
                    ),
                }
            } else if let Some((client, name)) = key::parse_durable(&k) {
                match meta::decode_durable(&value) {
                    Some(sub) => {
                        self.durable
                            .insert(meta::arc(&format!("{client}\t{name}")), sub);
                    }
                    None => warn!(client, name, "unreadable durable subscription; ignored"),
                }
            }
        }
        drop(self.apply(fx));
        Ok(found)
    }
}
