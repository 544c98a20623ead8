//! The registry: every durable queue and topic by name, created on first use, removable; topic
//! bindings and durable subscriptions, kept in the store's metadata so they survive restarts.
//! A virtual topic's consumer queue (`Consumer.<name>.VirtualTopic.<X>`) is bound to its topic
//! by its name alone, whenever it exists: nothing is stored for that binding, so it cannot
//! disagree with the queue.
//!
//! A durable queue is made known to the store (its `PutQueue`) while its map entry is being
//! created, before any other caller can see it: commits are applied in submission order, so
//! every message staged into the queue reaches the store after the queue itself. Lock order: a
//! queue's map entry, then a topic's (creating a consumer queue binds it).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use stampede_store::{Op, QueueId, Ticket};
use tracing::info;

use crate::destination::virtual_topic_of;
use crate::meta::{self, key, DurableSub, Overrides, QueueAttrs};
use crate::queue::{Queue, QueueInit, QueueKind};
use crate::subscribe::Lifecycle;
use crate::topic::Topic;
use crate::wildcard::is_pattern;
use crate::{Broker, BrokerError, QueueSettings};

impl Broker {
    pub(crate) fn alloc_queue_id(&self) -> QueueId {
        self.next_queue_id.fetch_add(1, Ordering::Relaxed)
    }

    /// The durable queue `name`, created on first use with the settings its name selects.
    pub(crate) fn queue(&self, name: &str) -> Arc<Queue> {
        self.declare(name, Lifecycle::DURABLE, 0)
    }

    /// The queue `name`; created with `life` (owned by `session` when exclusive) if it does not
    /// exist. An existing queue keeps how it lives: the first declaration wins.
    pub(crate) fn declare(&self, name: &str, life: Lifecycle, session: u64) -> Arc<Queue> {
        if let Some(q) = self.queues.get(name) {
            return q.clone();
        }
        let name: Arc<str> = Arc::from(name);
        self.queues
            .entry(name.clone())
            .or_insert_with(|| {
                let attrs = QueueAttrs {
                    auto_delete: life.auto_delete,
                    temporary: !life.durable || life.exclusive,
                    ..QueueAttrs::default()
                };
                self.create_queue(name, attrs, life.exclusive.then_some(session))
            })
            .clone()
    }

    /// An existing durable queue, without creating it.
    pub(crate) fn find_queue(&self, name: &str) -> Option<Arc<Queue>> {
        self.queues.get(name).map(|q| q.clone())
    }

    /// A durable queue `name` with `attrs`, new to the store. The caller holds its map entry.
    fn create_queue(
        &self,
        name: Arc<str>,
        mut attrs: QueueAttrs,
        owner: Option<u64>,
    ) -> Arc<Queue> {
        let id = self.alloc_queue_id();
        attrs.number = id;
        attrs.created_at_ms = self.now_ms();
        drop(self.store.commit(vec![Op::PutQueue {
            id,
            name: name.clone(),
            attrs: attrs.encode(),
            next_seq: 1,
        }]));
        let queue = self.durable_queue(name, id, &attrs, 1, owner);
        let st = queue.settings();
        let (_, pattern) = self.policy.settings_for(queue.name());
        info!(
            queue = queue.name(),
            pattern,
            visibility_timeout_ms = st.visibility_timeout.map(|d| d.as_millis() as u64),
            max_deliveries = st.max_deliveries,
            dead_letter_queue = queue.dead_letter_queue().as_deref(),
            retention_s = st.retention.as_secs(),
            max_messages = st.max_messages,
            max_bytes = st.max_bytes,
            auto_delete = attrs.auto_delete,
            temporary = attrs.temporary,
            exclusive = owner.is_some(),
            "queue created"
        );
        self.bind_virtual(&queue);
        queue
    }

    /// Binds a virtual topic's consumer queue to its topic (see the module docs).
    pub(crate) fn bind_virtual(&self, queue: &Arc<Queue>) {
        if let Some(topic) = virtual_topic_of(queue.name()) {
            self.with_topic(topic, |t| t.bind(queue.clone()));
        }
    }

    /// Builds the in-memory queue for durable queue `name` (new or recovered).
    pub(crate) fn durable_queue(
        &self,
        name: Arc<str>,
        store_id: QueueId,
        attrs: &QueueAttrs,
        next_seq: u64,
        owner: Option<u64>,
    ) -> Arc<Queue> {
        let settings = self.settings_for(&name, &attrs.overrides);
        Queue::new(QueueInit {
            number: if attrs.number > 0 {
                attrs.number
            } else {
                store_id
            },
            name,
            kind: QueueKind::Durable,
            settings,
            store_id: Some(store_id),
            next_seq,
            attrs: attrs.clone(),
            owner,
            env: self.durable_env.clone(),
        })
    }

    /// The settings of queue `name` with run-time changes `changed`. Queues with none share one
    /// value per configuration pattern: a broker may hold many queues, and most are alike.
    pub(crate) fn settings_for(&self, name: &str, changed: &Overrides) -> Arc<QueueSettings> {
        if *changed != Overrides::default() {
            return Arc::new(self.policy.resolve(name, &changed.as_override()).0);
        }
        let (settings, pattern) = self.policy.settings_for(name);
        let mut cache = self.settings_cache.lock();
        cache
            .entry(pattern.map(str::to_owned))
            .or_insert_with(|| Arc::new(settings))
            .clone()
    }

    /// A queue in memory only: a topic subscription's own, or (with its `owner`) a temporary
    /// queue.
    pub(crate) fn transient_queue(&self, name: &str, owner: Option<u64>) -> Arc<Queue> {
        Queue::new(QueueInit {
            name: Arc::from(name),
            number: self.alloc_queue_id(),
            kind: QueueKind::Transient {
                max_ready: self.config.topic_subscriber_buffer,
            },
            settings: self.transient_settings.clone(),
            store_id: None,
            next_seq: 1,
            attrs: QueueAttrs::default(),
            owner,
            env: self.transient_env.clone(),
        })
    }

    pub(crate) fn find_topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics.get(name).map(|t| t.clone())
    }

    /// Runs `f` on topic `name` (created if missing) while holding its registry entry, so a topic
    /// found unused and removed ([`Broker::forget_topic_if_unused`]) cannot be gaining a
    /// subscriber or binding at the same time. A new wildcard pattern joins the pattern trie.
    fn with_topic<T>(&self, name: &str, f: impl FnOnce(&Arc<Topic>) -> T) -> T {
        use dashmap::mapref::entry::Entry;
        match self.topics.entry(Arc::from(name)) {
            Entry::Occupied(e) => f(e.get()),
            Entry::Vacant(v) => {
                let topic = Topic::new(Arc::from(name));
                if is_pattern(name) {
                    self.patterns.write().insert(name, topic.clone());
                }
                f(&v.insert(topic))
            }
        }
    }

    /// The topics a message published to `name` reaches: the topic itself, and the wildcard
    /// patterns matching it (empty, and no allocation, while no pattern exists).
    pub(crate) fn topics_for(&self, name: &str) -> (Option<Arc<Topic>>, Vec<Arc<Topic>>) {
        let mut matched = Vec::new();
        // Temporary topics are outside the wildcard namespace (temp.rs).
        if !crate::temp::is_temp_topic(name) {
            let patterns = self.patterns.read();
            if !patterns.is_empty() {
                patterns.matches(name, &mut matched);
            }
        }
        (self.find_topic(name), matched)
    }

    /// Attaches a subscriber's transient queue to topic `name`.
    pub(crate) fn attach_subscriber(&self, name: &str, queue: Arc<Queue>) -> Arc<Topic> {
        self.with_topic(name, |t| {
            t.attach(queue);
            t.clone()
        })
    }

    /// Restores a binding found at recovery.
    pub(crate) fn bind_recovered(&self, topic: &str, queue: Arc<Queue>) {
        self.with_topic(topic, |t| t.bind(queue));
    }

    /// Detaches a subscriber; a topic left with no subscribers and no bindings is removed.
    pub(crate) fn detach_subscriber(&self, topic: &Arc<Topic>, queue: &Arc<Queue>) {
        topic.detach(queue);
        self.forget_topic_if_unused(topic.name());
    }

    fn forget_topic_if_unused(&self, name: &str) {
        if let Some((_, topic)) = self.topics.remove_if(name, |_, t| t.is_unused()) {
            if is_pattern(name) {
                self.patterns.write().remove(name, &topic);
            }
        }
    }

    /// Binds durable queue `queue` (created if need be) to topic `topic`: every message sent to the
    /// topic is stored in the queue from now on, whoever is subscribed. Survives restarts.
    pub fn bind(&self, topic: &str, queue: &str) -> Result<Ticket, BrokerError> {
        crate::Destination::check_name(queue)?;
        // Before the queue is made: a refused binding leaves nothing behind.
        crate::Destination::check_name(topic)?;
        let q = self.queue(queue);
        self.bind_queue(topic, &q)
    }

    /// [`Broker::bind`] for a queue in hand.
    pub(crate) fn bind_queue(&self, topic: &str, q: &Arc<Queue>) -> Result<Ticket, BrokerError> {
        crate::Destination::check_name(topic)?;
        if !self.with_topic(topic, |t| t.bind(q.clone())) {
            return Ok(Ticket::ready(Ok(())));
        }
        info!(topic, queue = q.name(), "queue bound to topic");
        Ok(self.store.commit(vec![Op::PutMeta {
            key: key::binding(topic, q.name()),
            value: Bytes::new(),
        }]))
    }

    /// Undoes [`Broker::bind`]; the queue and its messages stay.
    pub fn unbind(&self, topic: &str, queue: &str) -> Ticket {
        match self.find_topic(topic) {
            Some(t) if t.unbind(queue) => {
                self.forget_topic_if_unused(topic);
                self.store.commit(vec![Op::DeleteMeta {
                    key: key::binding(topic, queue),
                }])
            }
            _ => Ticket::ready(Ok(())),
        }
    }

    /// The queue of durable subscription `name` of client `client` to `topic`, made (and bound to
    /// the topic) the first time: it keeps receiving the topic's messages while its subscriber is
    /// away, and across restarts. A subscription that comes back for another topic is moved to
    /// it. The queue is named `durable.<client>.<name>` (`durable.<name>` without a client id).
    pub fn durable_subscription(
        &self,
        client: &str,
        name: &str,
        topic: &str,
    ) -> Result<(Arc<str>, Ticket), BrokerError> {
        crate::Destination::check_name(topic)?;
        let id: Arc<str> = meta::arc(&format!("{client}\t{name}"));
        let queue_name = if client.is_empty() {
            format!("durable.{name}")
        } else {
            format!("durable.{client}.{name}")
        };
        crate::Destination::check_name(&queue_name)?;
        let existing = self.durable.get(&id).map(|d| d.clone());
        let mut ops = Vec::new();
        if let Some(old) = &existing {
            if old.topic == topic {
                let queue = self.queue(&old.queue);
                self.with_topic(topic, |t| t.bind(queue.clone()));
                return Ok((queue.name_arc().clone(), Ticket::ready(Ok(()))));
            }
            if let Some(t) = self.find_topic(&old.topic) {
                t.unbind(&old.queue);
                self.forget_topic_if_unused(&old.topic);
            }
            ops.push(Op::DeleteMeta {
                key: key::binding(&old.topic, &old.queue),
            });
        }
        let queue = self.queue(&queue_name);
        self.with_topic(topic, |t| t.bind(queue.clone()));
        let sub = DurableSub {
            topic: topic.to_owned(),
            queue: queue_name.clone(),
        };
        ops.push(Op::PutMeta {
            key: key::durable(client, name),
            value: meta::encode_durable(&sub),
        });
        ops.push(Op::PutMeta {
            key: key::binding(topic, &queue_name),
            value: Bytes::new(),
        });
        self.durable.insert(id, sub);
        info!(client, name, topic, queue = %queue_name, "durable subscription");
        Ok((queue.name_arc().clone(), self.store.commit(ops)))
    }

    /// The topic durable subscription `name` of `client` is bound to, if it exists.
    pub fn durable_topic(&self, client: &str, name: &str) -> Option<String> {
        let id = format!("{client}\t{name}");
        self.durable.get(id.as_str()).map(|d| d.topic.clone())
    }

    /// True while durable subscription `name` of `client` has a consumer.
    pub(crate) fn durable_in_use(&self, client: &str, name: &str) -> bool {
        let queue = self
            .durable
            .get(format!("{client}\t{name}").as_str())
            .map(|d| d.queue.clone());
        queue
            .and_then(|q| self.find_queue(&q))
            .is_some_and(|q| q.consumer_count() > 0)
    }

    /// Removes durable subscription `name` of `client`, its queue and the messages in it.
    pub fn drop_durable_subscription(
        &self,
        client: &str,
        name: &str,
    ) -> Result<Ticket, BrokerError> {
        let id = format!("{client}\t{name}");
        // Refused while in use before anything changes: deleting the queue would refuse later,
        // with the subscription already forgotten.
        let queue = self.durable.get(id.as_str()).map(|d| d.queue.clone());
        if let Some(q) = queue.and_then(|q| self.find_queue(&q)) {
            let consumers = q.consumer_count();
            if consumers > 0 {
                return Err(BrokerError::QueueInUse {
                    queue: q.name_arc().to_string(),
                    consumers,
                });
            }
        }
        let Some((_, sub)) = self.durable.remove(id.as_str()) else {
            return Ok(Ticket::ready(Ok(())));
        };
        drop(self.store.commit(vec![Op::DeleteMeta {
            key: key::durable(client, name),
        }]));
        self.delete_queue(&sub.queue)
    }

    /// Removes queue `name` with every message in it, its bindings and the durable subscription
    /// it serves, in one commit. Refused while consumers are attached. A message racing the
    /// removal is removed with the queue; a later SEND creates the queue anew.
    pub fn delete_queue(&self, name: &str) -> Result<Ticket, BrokerError> {
        let queue = self
            .find_queue(name)
            .ok_or_else(|| BrokerError::UnknownQueue(name.to_owned()))?;
        self.remove_queue(&queue)
    }

    /// [`Broker::delete_queue`] for this very queue (not another made since under its name).
    pub(crate) fn remove_queue(&self, queue: &Arc<Queue>) -> Result<Ticket, BrokerError> {
        let name = queue.name();
        let store_id = queue
            .mark_dropped()
            .map_err(|consumers| BrokerError::QueueInUse {
                queue: name.to_owned(),
                consumers,
            })?;
        self.queues.remove_if(name, |_, q| Arc::ptr_eq(q, queue));
        let mut ops: Vec<Op> = store_id
            .map(|id| Op::DropQueue { id })
            .into_iter()
            .collect();
        let bound_to: Vec<Arc<Topic>> = self
            .topics
            .iter()
            .filter(|t| t.unbind(name))
            .map(|t| t.clone())
            .collect();
        for topic in bound_to {
            ops.push(Op::DeleteMeta {
                key: key::binding(topic.name(), name),
            });
            self.forget_topic_if_unused(topic.name());
        }
        self.durable.retain(|id, sub| {
            if sub.queue != name {
                return true;
            }
            if let Some((client, sub_name)) = id.split_once('\t') {
                ops.push(Op::DeleteMeta {
                    key: key::durable(client, sub_name),
                });
            }
            false
        });
        info!(queue = name, "queue deleted");
        Ok(self.store.commit(ops))
    }
}
