//! Topics. Every current subscriber gets its own copy through a transient queue of its own (so
//! topic subscribers get the same ack modes, prefetch and redelivery as queue consumers), and
//! every durable queue bound to the topic (a durable subscription, a RabbitMQ-style `x-queue-name`
//! binding) stores a copy, subscribers present or not. Copies share one record: the body is never
//! copied.

use std::sync::Arc;

use parking_lot::RwLock;

use crate::queue::Queue;

/// A named topic, its current subscribers' queues and the durable queues bound to it.
#[derive(Debug)]
pub(crate) struct Topic {
    name: Arc<str>,
    subscribers: RwLock<Vec<Arc<Queue>>>,
    bound: RwLock<Vec<Arc<Queue>>>,
}

impl Topic {
    pub fn new(name: Arc<str>) -> Arc<Topic> {
        Arc::new(Topic {
            name,
            subscribers: RwLock::new(Vec::new()),
            bound: RwLock::new(Vec::new()),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn attach(&self, queue: Arc<Queue>) {
        self.subscribers.write().push(queue);
    }

    pub fn detach(&self, queue: &Arc<Queue>) {
        self.subscribers.write().retain(|q| !Arc::ptr_eq(q, queue));
    }

    /// Binds a durable queue; false if it was bound already.
    pub fn bind(&self, queue: Arc<Queue>) -> bool {
        let mut bound = self.bound.write();
        if bound.iter().any(|q| Arc::ptr_eq(q, &queue)) {
            return false;
        }
        bound.push(queue);
        true
    }

    /// Unbinds the durable queue named `queue`; false if it was not bound.
    pub fn unbind(&self, queue: &str) -> bool {
        let mut bound = self.bound.write();
        let before = bound.len();
        bound.retain(|q| q.name() != queue);
        bound.len() != before
    }

    /// Runs `f` on every current subscriber's queue, under the topic's read lock (the lock order
    /// is topic, then queue; nothing takes them the other way round).
    pub fn each_subscriber(&self, mut f: impl FnMut(&Arc<Queue>)) {
        for queue in self.subscribers.read().iter() {
            f(queue);
        }
    }

    pub fn bound(&self) -> Vec<Arc<Queue>> {
        self.bound.read().clone()
    }

    pub fn subscriber_count(&self) -> usize {
        self.subscribers.read().len()
    }

    pub fn is_unused(&self) -> bool {
        self.subscribers.read().is_empty() && self.bound.read().is_empty()
    }
}
