//! Topics: every current subscriber gets its own copy. Each subscription owns a transient queue,
//! so topic subscribers get the same ack modes, prefetch and redelivery as queue consumers.

use std::sync::Arc;

use parking_lot::RwLock;
use stampede_store::MessageRecord;

use crate::effects::Effects;
use crate::queue::Queue;

/// A named topic and the queues of its current subscribers.
#[derive(Debug)]
pub struct Topic {
    name: Arc<str>,
    subscribers: RwLock<Vec<Arc<Queue>>>,
}

impl Topic {
    pub fn new(name: &str) -> Arc<Topic> {
        Arc::new(Topic {
            name: Arc::from(name),
            subscribers: RwLock::new(Vec::new()),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Copies `record` to every subscriber; the body is shared, not copied. Returns the number of
    /// subscribers reached.
    pub fn publish(&self, record: &Arc<MessageRecord>, fx: &mut Effects) -> usize {
        let subs = self.subscribers.read();
        for q in subs.iter() {
            let seq = q.next_seq();
            q.publish(seq, record.clone(), false, fx);
        }
        subs.len()
    }

    pub fn attach(&self, queue: Arc<Queue>) {
        self.subscribers.write().push(queue);
    }

    pub fn detach(&self, queue: &Arc<Queue>) {
        self.subscribers.write().retain(|q| !Arc::ptr_eq(q, queue));
    }

    pub fn subscriber_count(&self) -> usize {
        self.subscribers.read().len()
    }
}
