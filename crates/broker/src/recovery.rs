//! Start-up: rebuilding the registry from what the store recovered — every durable queue with its
//! attributes, the head of its messages and its totals; topic bindings; durable subscriptions —
//! before any connection is accepted.

use std::sync::atomic::Ordering;

use stampede_store::Op;
use tracing::{info, warn};

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
        // What a previous run left that should not outlive it: temporary queues, bindings and
        // subscriptions of queues that are gone. Removed in one commit before any client comes.
        let mut stale = Vec::new();
        for stored in recovered.queues {
            let attrs = QueueAttrs::decode(&stored.attrs).unwrap_or_else(|e| {
                warn!(queue = %stored.name, error = %e, "unreadable queue attributes; using the configuration's settings");
                QueueAttrs::default()
            });
            // Numbers come from the same counter as store ids; keep allocating above both.
            self.next_queue_id
                .fetch_max(attrs.number + 1, Ordering::Relaxed);
            if attrs.temporary {
                info!(queue = %stored.name, messages = stored.messages, "temporary queue removed at start");
                stale.push(Op::DropQueue { id: stored.id });
                continue;
            }
            let queue = self.durable_queue(
                stored.name.clone(),
                stored.id,
                &attrs,
                stored.next_seq,
                None,
            );
            found.queues += 1;
            found.messages += stored.messages as usize;
            queue.recover(stored, &mut fx);
            self.bind_virtual(&queue);
            self.queues.insert(queue.name_arc().clone(), queue);
        }
        for (k, value) in recovered.meta {
            if let Some((topic, queue)) = key::parse_binding(&k) {
                match self.find_queue(queue) {
                    Some(q) => {
                        self.bind_recovered(topic, q);
                    }
                    None => stale.push(Op::DeleteMeta { key: k.clone() }),
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
        // A durable subscription whose queue went with a temporary one goes too.
        let gone: Vec<_> = self
            .durable
            .iter()
            .filter(|d| self.find_queue(&d.queue).is_none())
            .map(|d| d.key().clone())
            .collect();
        for id in gone {
            self.durable.remove(&id);
            if let Some((client, name)) = id.split_once('\t') {
                stale.push(Op::DeleteMeta {
                    key: key::durable(client, name),
                });
            }
        }
        if !stale.is_empty() {
            drop(self.store.commit(stale));
        }
        drop(self.apply(fx));
        Ok(found)
    }
}
