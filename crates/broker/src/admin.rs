//! The admin side of the façade: views of every queue, peeking at waiting messages, purging,
//! redriving dead letters to where they died (or moving messages to another queue), changing a queue's settings at
//! run time, and labels front ends keep on a queue. Queue removal and bindings are in `registry`.

use std::sync::Arc;

use stampede_store::{MessageRecord, Op, Ticket};
use tokio::sync::oneshot;

use crate::destination::virtual_topic_of;
use crate::effects::Effects;
use crate::ids::message_id;
use crate::meta::QueueAttrs;
use crate::policy::SettingsOverride;
use crate::queue::Queue;
use crate::view::{
    BoundQueue, BrokerStats, ChannelView, MessageView, QueueCounters, QueueView, TopicView,
};
use crate::{Broker, BrokerError};

/// Headers a dead letter gets (see `apply`), which a redrive takes off again.
pub(crate) const ORIGINAL_DESTINATION: &str = "x-original-destination";
pub(crate) const DEATH_REASON: &str = "x-death-reason";

/// What [`Broker::redrive`] moves.
#[derive(Debug, Clone)]
pub struct Redrive {
    /// Only these messages (their `message-id`s); `None`: the oldest waiting ones.
    pub ids: Option<Vec<String>>,
    /// Everything to this queue; `None`: each message to its `x-original-destination`.
    pub to: Option<String>,
    /// At most this many in one commit.
    pub max: usize,
}

/// What [`Broker::redrive`] did (the admin API's answer as it is).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Redriven {
    pub moved: usize,
    /// How many went to each queue.
    pub by_destination: std::collections::BTreeMap<String, usize>,
    /// Passed over: they name no original queue (sent to the dead-letter queue directly).
    pub skipped: u64,
    /// Ids asked for that are not waiting in memory here.
    pub missing: Vec<String>,
    /// Still waiting in the source queue afterwards.
    pub remaining: u64,
}

/// The queue a dead letter came from, from its `x-original-destination` (`/queue/NAME`).
fn original_queue(record: &MessageRecord) -> Option<&str> {
    record
        .headers
        .iter()
        .find(|(k, _)| k == ORIGINAL_DESTINATION)
        .and_then(|(_, v)| v.strip_prefix("/queue/"))
        .filter(|name| crate::Destination::check_name(name).is_ok())
}

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

    /// Every durable queue's counters, read without taking any queue's lock (for rates).
    pub fn queue_counters(&self) -> Vec<(Arc<str>, QueueCounters)> {
        self.queues
            .iter()
            .map(|e| (e.key().clone(), e.value().counters()))
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

    /// Every topic that has subscribers or bound queues, by name.
    pub fn topics(&self) -> Vec<TopicView> {
        let mut out: Vec<TopicView> = self
            .topics
            .iter()
            .map(|t| {
                let topic = t.value();
                TopicView {
                    name: Arc::from(topic.name()),
                    subscribers: topic.subscriber_count(),
                    bound: topic
                        .bound()
                        .iter()
                        .map(|q| BoundQueue {
                            queue: q.name_arc().clone(),
                            by_name: virtual_topic_of(q.name()) == Some(topic.name()),
                        })
                        .collect(),
                }
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// The topics queue `name` is bound to, by name, and whether each binding is by its name
    /// alone (a virtual topic's consumer queue).
    pub fn bindings_of(&self, name: &str) -> Vec<(String, bool)> {
        let mut out: Vec<(String, bool)> = self
            .topics
            .iter()
            .filter(|t| t.value().bound().iter().any(|q| q.name() == name))
            .map(|t| {
                let topic = t.value().name().to_owned();
                let by_name = virtual_topic_of(name) == Some(topic.as_str());
                (topic, by_name)
            })
            .collect();
        out.sort();
        out
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
        let taken: Vec<MessageView> = queue
            .take_waiting(max, |_, _| true, &mut fx)
            .taken
            .into_iter()
            .map(|p| MessageView {
                seq: p.seq,
                message_id: message_id(number, p.seq),
                record: p.record,
                deliveries: p.deliveries,
            })
            .collect();
        tracing::info!(queue = name, taken = taken.len(), "messages taken");
        Ok((taken, self.apply(fx)))
    }

    /// Moves waiting dead letters of queue `from` back where they died, or all to one queue, in
    /// one commit: each leaves `from` and enters its target together or not at all. Only
    /// messages in memory move in one call (call again while [`Redriven::remaining`] is above
    /// zero to move a long backlog). The death headers are removed: a redriven message arrives as
    /// it was first sent. Without [`Redrive::to`], `from` must be a dead-letter queue.
    pub fn redrive(&self, from: &str, how: &Redrive) -> Result<(Redriven, Ticket), BrokerError> {
        let source = self.existing(from)?;
        if let Some(to) = &how.to {
            crate::Destination::check_name(to)?;
            if to == from {
                return Err(BrokerError::InvalidName {
                    name: to.clone(),
                    reason: "messages cannot be moved to the queue they are in",
                });
            }
        } else if !self.is_dead_letter_queue(&source) {
            return Err(BrokerError::NotADeadLetterQueue(from.to_owned()));
        }
        self.check_storage()?;
        // Ids of another queue, or not of the `<queue>-<seq>` form, name nothing here.
        let mut wanted = std::collections::HashMap::new();
        let mut missing = Vec::new();
        for id in how.ids.iter().flatten() {
            match crate::DeliveryTag::parse(id) {
                Some(t) if t.queue == source.number() && t.count.is_none() => {
                    wanted.insert(t.seq, id.clone());
                }
                _ => missing.push(id.clone()),
            }
        }
        let mut skipped = 0;
        let mut fx = Effects::new();
        let moved = source.take_waiting(
            how.max,
            |seq, record| {
                if how.ids.is_some() && wanted.remove(&seq).is_none() {
                    return false;
                }
                let goes = how.to.is_some() || original_queue(record).is_some();
                skipped += u64::from(!goes);
                goes
            },
            &mut fx,
        );
        missing.extend(wanted.into_values());
        let now = self.now_ms();
        let mut by_destination = std::collections::BTreeMap::new();
        for record in moved.taken.into_iter().map(|m| m.record) {
            let to = match &how.to {
                Some(to) => to.clone(),
                None => original_queue(&record).unwrap_or_default().to_owned(),
            };
            let mut headers = record.headers.clone();
            headers.retain(|(k, _)| k != ORIGINAL_DESTINATION && k != DEATH_REASON);
            let record = Arc::new(MessageRecord {
                headers,
                enqueued_at_ms: now,
                ..(*record).clone()
            });
            // A move is the operator's decision: the target's limits do not refuse it, as a
            // dead-letter queue's do not refuse dead letters.
            if self
                .queue(&to)
                .stage(record.clone(), true, None, &mut fx)
                .is_err()
            {
                let _ = self.queue(&to).stage(record, true, None, &mut fx);
            }
            *by_destination.entry(to).or_insert(0) += 1;
        }
        let ticket = self.apply(fx);
        let moved = by_destination.values().sum();
        tracing::info!(from, moved, skipped, "messages redriven");
        let redriven = Redriven {
            moved,
            by_destination,
            skipped,
            missing,
            remaining: source.view().visible,
        };
        Ok((redriven, ticket))
    }

    /// Whether some queue sends its dead letters to `queue`, or `queue`'s name makes it a
    /// dead-letter queue by its own settings' template (`DLQ.orders` under `DLQ.{queue}`) — so a
    /// dead-letter queue whose source was deleted is still one.
    fn is_dead_letter_queue(&self, queue: &Queue) -> bool {
        let name = queue.name();
        queue.settings().dead_letter_queue_of(name).is_none()
            || self
                .queues
                .iter()
                .any(|q| q.value().dead_letter_queue().as_deref() == Some(name))
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
