//! The admin side of the façade: views of every queue, peeking at waiting messages, purging,
//! moving messages between queues (redriving a dead-letter queue), changing a queue's settings at
//! run time, and labels front ends keep on a queue. Queue removal and bindings are in `registry`.

use std::sync::Arc;

use stampede_store::{Op, Ticket};
use tokio::sync::oneshot;

use crate::effects::Effects;
use crate::ids::message_id;
use crate::meta::QueueAttrs;
use crate::policy::SettingsOverride;
use crate::queue::Queue;
use crate::view::{BrokerStats, ChannelView, MessageView, QueueView};
use crate::{Broker, BrokerError};

impl Broker {
    /// Every durable queue, as it is now.
    pub fn queues(&self) -> Vec<QueueView> {
        let queues: Vec<Arc<Queue>> = self.queues.iter().map(|e| e.value().clone()).collect();
        queues.iter().map(|q| q.view()).collect()
    }

    /// The names of every durable queue, without looking inside any (cheap: for paging).
    pub fn queue_names(&self) -> Vec<Arc<str>> {
        self.queues
            .iter()
            .map(|e| e.value().name_arc().clone())
            .collect()
    }

    /// One durable queue, as it is now.
    pub fn queue_view(&self, name: &str) -> Option<QueueView> {
        self.find_queue(name).map(|q| q.view())
    }

    /// Counts of `channel`'s messages in queue `name` (`None`: no such queue).
    pub fn channel_view(&self, name: &str, channel: &str) -> Option<ChannelView> {
        self.find_queue(name).map(|q| q.channel_view(channel))
    }

    /// The channels of queue `name` that hold messages.
    pub fn channels(&self, name: &str) -> Vec<String> {
        self.find_queue(name)
            .map(|q| q.channels())
            .unwrap_or_default()
    }

    pub fn stats(&self) -> &BrokerStats {
        &self.stats
    }

    fn existing(&self, name: &str) -> Result<Arc<Queue>, BrokerError> {
        self.find_queue(name)
            .ok_or_else(|| BrokerError::UnknownQueue(name.to_owned()))
    }

    /// Up to `max` waiting messages of queue `name`, oldest first, without delivering them:
    /// those in memory, then those kept in the store.
    pub async fn peek(&self, name: &str, max: usize) -> Result<Vec<MessageView>, BrokerError> {
        let queue = self.existing(name)?;
        let (head, rest) = queue.peek_ready(max);
        let number = queue.number();
        let view = |seq, record, deliveries| MessageView {
            seq,
            message_id: message_id(number, seq),
            record,
            deliveries,
        };
        let mut out: Vec<MessageView> = head
            .into_iter()
            .map(|p| view(p.seq, p.record, p.deliveries))
            .collect();
        if let (Some(rest), true) = (rest, out.len() < max) {
            let (tx, rx) = oneshot::channel();
            let done = Box::new(move |read| {
                let _ = tx.send(read);
            });
            // Enough to make up for those a channel scan already brought into memory.
            let want = max - out.len() + rest.held.len();
            let held: std::collections::HashSet<u64> = rest.held.iter().copied().collect();
            self.store.read(rest.store_id, rest.after, want, done);
            let read = rx.await.map_err(|_| stampede_store::StoreError::Closed)??;
            out.extend(
                read.into_iter()
                    .filter(|m| !held.contains(&m.seq))
                    .map(|m| view(m.seq, m.record, m.deliveries)),
            );
            out.sort_by_key(|m| m.seq);
            out.truncate(max);
        }
        Ok(out)
    }

    /// Removes every waiting message of queue `name` (in flight ones stay with their consumers)
    /// in one commit, however many there are. Returns how many were removed.
    pub fn purge(&self, name: &str) -> Result<(u64, Ticket), BrokerError> {
        let queue = self.existing(name)?;
        let new_id = self.alloc_queue_id();
        let attrs = queue.attrs(|_| {});
        let create = Op::PutQueue {
            id: new_id,
            name: queue.name_arc().clone(),
            attrs: attrs.encode(),
            next_seq: queue.peek_next_seq(),
        };
        let mut fx = Effects::new();
        let purged = queue.purge(new_id, create, &mut fx);
        tracing::info!(queue = name, purged, "queue purged");
        Ok((purged, self.apply(fx)))
    }

    /// Removes up to `max` waiting messages of queue `name`, oldest first, in one commit, and
    /// returns them: handed out once, never delivered to a consumer (RabbitMQ's management
    /// `get` with `ack_requeue_false`). Only messages in memory are taken in one call.
    pub fn take(&self, name: &str, max: usize) -> Result<(Vec<MessageView>, Ticket), BrokerError> {
        let queue = self.existing(name)?;
        self.check_storage()?;
        let mut fx = Effects::new();
        let number = queue.number();
        let taken = queue
            .take_waiting(max, &mut fx)
            .into_iter()
            .map(|p| MessageView {
                seq: p.seq,
                message_id: message_id(number, p.seq),
                record: p.record,
                deliveries: p.deliveries,
            })
            .collect::<Vec<_>>();
        tracing::info!(queue = name, taken = taken.len(), "messages taken");
        Ok((taken, self.apply(fx)))
    }

    /// The topics queue `name` is bound to, each with whether the binding is virtual (a
    /// `Consumer.X.VirtualTopic.T` queue, bound by its name), sorted by topic.
    pub fn topics_bound_to_queue(&self, name: &str) -> Vec<(Arc<str>, bool)> {
        let virtual_topic = crate::destination::virtual_topic_of(name);
        let mut out: Vec<(Arc<str>, bool)> = self
            .topics
            .iter()
            .filter(|t| t.bound().iter().any(|q| q.name() == name))
            .map(|t| {
                let topic = t.name();
                (Arc::from(topic), virtual_topic == Some(topic))
            })
            .collect();
        out.sort();
        out
    }

    /// Moves up to `max` waiting messages from queue `from` to queue `to` (created if need be),
    /// oldest first, in one commit: each leaves `from` and enters `to` together or not at all.
    /// Only messages in memory move in one call; call again to move the rest of a long backlog.
    /// Returns how many moved.
    pub fn move_messages(
        &self,
        from: &str,
        to: &str,
        max: usize,
    ) -> Result<(usize, Ticket), BrokerError> {
        crate::Destination::check_name(to)?;
        let source = self.existing(from)?;
        if from == to {
            return Ok((0, Ticket::ready(Ok(()))));
        }
        self.check_storage()?;
        let target = self.queue(to);
        let mut fx = Effects::new();
        let moved = source.take_waiting(max, &mut fx);
        let n = moved.len();
        for record in moved.into_iter().map(|m| m.record) {
            // A move is the operator's decision: the target's limits do not refuse it, as a
            // dead-letter queue's do not refuse dead letters.
            if target.stage(record.clone(), true, None, &mut fx).is_err() {
                let _ = self.queue(to).stage(record, true, None, &mut fx);
            }
        }
        tracing::info!(from, to, moved = n, "messages moved");
        Ok((n, self.apply(fx)))
    }

    /// Changes settings of queue `name` at run time (created if need be); the change is stored
    /// with the queue and outlives restarts. What `change` leaves `None` keeps its value.
    pub fn update_queue(
        &self,
        name: &str,
        change: &SettingsOverride,
    ) -> Result<Ticket, BrokerError> {
        crate::Destination::check_name(name)?;
        if let Some(dlq) = &change.dead_letter_queue {
            crate::Destination::check_name(&dlq.replace("{queue}", name))?;
        }
        let queue = self.queue(name);
        let mut fx = Effects::new();
        let ticket = self.change_settings(&queue, change, &mut fx);
        drop(self.apply(fx));
        Ok(ticket)
    }

    /// Sets (`Some`) or removes (`None`) labels front ends keep for queue `name`.
    pub fn set_labels(
        &self,
        name: &str,
        labels: &[(&str, Option<&str>)],
    ) -> Result<Ticket, BrokerError> {
        let queue = self.existing(name)?;
        let attrs = queue.attrs(|a| {
            for (k, v) in labels {
                match v {
                    Some(v) => a.labels.insert((*k).to_owned(), (*v).to_owned()),
                    None => a.labels.remove(*k),
                };
            }
        });
        Ok(self.put_queue(&queue, &attrs))
    }

    /// The labels of queue `name`.
    pub fn labels(&self, name: &str) -> Result<Vec<(String, String)>, BrokerError> {
        let queue = self.existing(name)?;
        Ok(queue.attrs(|_| {}).labels.into_iter().collect())
    }

    /// Applies `change` to `queue`'s stored attributes and live settings.
    pub(crate) fn change_settings(
        &self,
        queue: &Arc<Queue>,
        change: &SettingsOverride,
        fx: &mut Effects,
    ) -> Ticket {
        let attrs = queue.attrs(|a| a.overrides.merge(change));
        let settings = self.settings_for(queue.name(), &attrs.overrides);
        queue.set_settings(settings, fx);
        tracing::info!(queue = queue.name(), settings = ?queue.settings(), dead_letter_queue = queue.dead_letter_queue().as_deref(), "queue settings changed");
        self.put_queue(queue, &attrs)
    }

    fn put_queue(&self, queue: &Queue, attrs: &QueueAttrs) -> Ticket {
        let Some(id) = queue.store_id() else {
            return Ticket::ready(Ok(()));
        };
        self.store.commit(vec![Op::PutQueue {
            id,
            name: queue.name_arc().clone(),
            attrs: attrs.encode(),
            next_seq: 0,
        }])
    }
}
