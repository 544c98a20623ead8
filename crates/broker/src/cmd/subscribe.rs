//! SUBSCRIBE and UNSUBSCRIBE: attach a consumer to a queue (competing consumers) or give a topic
//! subscriber its own transient queue; cancelling returns unsettled messages to their queue.

use std::sync::Arc;

use stampede_proto::{AckMode, Subscribe};

use crate::effects::Effects;
use crate::queue::ConsumerSpec;
use crate::session::{detach, Sub};
use crate::{BrokerError, Destination, Session};

impl Session {
    pub fn subscribe(&mut self, req: Subscribe) -> Result<(), BrokerError> {
        if self.subs.contains_key(&req.id) {
            return Err(BrokerError::DuplicateSubscription(req.id));
        }
        let (queue, topic) = match Destination::parse(&req.destination)? {
            Destination::Queue(name) => (self.broker.queue(&name), None),
            Destination::Topic(name) => {
                let topic = self.broker.topic(&name);
                let own = self.broker.transient_queue(&name);
                topic.attach(own.clone());
                (own, Some(topic))
            }
        };
        // RabbitMQ's header for where this queue's dead letters go.
        if let Some(dlq) = req.headers.get("x-dead-letter-routing-key") {
            if let Ok(Destination::Queue(name)) = Destination::parse(dlq) {
                queue.set_dead_letter_queue(&name);
            }
        }
        let consumer = self.broker.consumer_id();
        let prefetch = req
            .prefetch
            .unwrap_or(self.broker.config().default_prefetch);
        self.subs.insert(
            req.id.clone(),
            Sub {
                consumer,
                queue: queue.clone(),
                ack: req.ack,
                topic,
            },
        );
        let mut fx = Effects::new();
        queue.add_consumer(
            ConsumerSpec {
                id: consumer,
                subscription: Arc::from(req.id.as_str()),
                destination: Arc::from(req.destination.as_str()),
                ack: req.ack,
                prefetch,
                outbox: self.outbox.clone(),
            },
            &mut fx,
        );
        drop(self.broker.apply(fx));
        Ok(())
    }

    pub fn unsubscribe(&mut self, id: &str) -> Result<(), BrokerError> {
        let sub = self
            .subs
            .remove(id)
            .ok_or_else(|| BrokerError::UnknownSubscription(id.to_owned()))?;
        let mut fx = Effects::new();
        detach(sub, &mut fx);
        drop(self.broker.apply(fx));
        Ok(())
    }

    /// The consumer behind subscription `id`, if it exists.
    pub fn consumer_of(&self, id: &str) -> Option<crate::ConsumerId> {
        self.subs.get(id).map(|s| s.consumer)
    }

    /// The ack mode of subscription `id`, if it exists.
    pub fn ack_mode(&self, id: &str) -> Option<AckMode> {
        self.subs.get(id).map(|s| s.ack)
    }
}

#[cfg(test)]
mod tests {
    use crate::cmd::test_support::*;
    use stampede_proto::AckMode;

    #[tokio::test]
    async fn unsubscribe_returns_unacked_messages_for_the_next_consumer() {
        let (broker, _) = broker();
        let (mut a, mut ra) = session(&broker);
        for b in ["1", "2"] {
            a.send(send_frame("/queue/q", b)).unwrap().await.unwrap();
        }
        a.subscribe(sub_frame("/queue/q", "s", AckMode::ClientIndividual))
            .unwrap();
        assert_eq!(deliveries(&mut ra).len(), 2);
        a.unsubscribe("s").unwrap();
        let (mut b, mut rb) = session(&broker);
        b.subscribe(sub_frame("/queue/q", "s", AckMode::ClientIndividual))
            .unwrap();
        let got = deliveries(&mut rb);
        assert_eq!(got.len(), 2);
        assert!(got.iter().all(|d| d.redelivered()));
    }

    #[test]
    fn duplicate_and_unknown_ids_are_errors() {
        let (broker, _) = broker();
        let (mut s, _rx) = session(&broker);
        s.subscribe(sub_frame("/queue/q", "1", AckMode::Auto))
            .unwrap();
        assert!(s
            .subscribe(sub_frame("/queue/r", "1", AckMode::Auto))
            .is_err());
        assert!(s.unsubscribe("2").is_err());
    }

    #[tokio::test]
    async fn closing_a_session_requeues_and_detaches_topic_subscribers() {
        let (broker, _) = broker();
        let (mut a, _ra) = session(&broker);
        a.subscribe(sub_frame("/topic/t", "1", AckMode::Auto))
            .unwrap();
        a.subscribe(sub_frame("/queue/q", "2", AckMode::Client))
            .unwrap();
        a.send(send_frame("/queue/q", "m")).unwrap().await.unwrap();
        assert_eq!(broker.topic("t").subscriber_count(), 1);
        a.close();
        assert_eq!(broker.topic("t").subscriber_count(), 0);
        assert_eq!(broker.queue("q").depth(), (1, 0, 0));
    }

    #[tokio::test]
    async fn client_ack_deliveries_of_durable_queues_wait_for_their_counts() {
        let (broker, _) = broker();
        let (mut s, mut rx) = session(&broker);
        s.send(send_frame("/queue/q", "m")).unwrap().await.unwrap();
        s.subscribe(sub_frame("/topic/t", "t", AckMode::Client))
            .unwrap();
        s.subscribe(sub_frame("/queue/q", "q", AckMode::Client))
            .unwrap();
        let d = deliveries(&mut rx).pop().unwrap();
        let gate = d.durable.expect("a durable client-ack delivery is gated");
        tokio::time::timeout(std::time::Duration::from_secs(5), gate.wait())
            .await
            .expect("the gate opens once the counts are committed");
        s.send(send_frame("/topic/t", "x")).unwrap().await.unwrap();
        let topic = deliveries(&mut rx).pop().unwrap();
        assert!(
            topic.durable.is_none(),
            "nothing to wait for on a transient queue"
        );
    }
}
