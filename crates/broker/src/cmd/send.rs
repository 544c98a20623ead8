//! SEND: route a message to a queue (stored, then dispatched) or a topic (copied to subscribers),
//! or hold it in an open transaction until COMMIT.

use stampede_proto::SendFrame;
use stampede_store::Ticket;

use crate::effects::Effects;
use crate::session::TxOp;
use crate::{BrokerError, Destination, Session};

impl Session {
    pub fn send(&mut self, send: SendFrame) -> Result<Ticket, BrokerError> {
        let destination = Destination::parse(&send.destination)?;
        if let Some(tx) = &send.transaction {
            let ops = self
                .transactions
                .get_mut(tx)
                .ok_or_else(|| BrokerError::UnknownTransaction(tx.clone()))?;
            ops.push(TxOp::Send(send));
            return Ok(Ticket::ready(Ok(())));
        }
        let record = self.record(send);
        let mut fx = Effects::new();
        self.broker.route(&destination, record, &mut fx)?;
        Ok(self.broker.apply(fx))
    }
}

#[cfg(test)]
mod tests {
    use crate::cmd::test_support::*;
    use stampede_proto::AckMode;

    #[tokio::test]
    async fn send_to_queue_is_stored_and_delivered() {
        let (broker, store) = broker();
        let (mut s, mut rx) = session(&broker);
        s.send(send_frame("/queue/a", "hello"))
            .unwrap()
            .await
            .unwrap();
        assert_eq!(stored(&store), 1);
        s.subscribe(sub_frame("/queue/a", "1", AckMode::Auto))
            .unwrap();
        assert_eq!(bodies(&mut rx), ["hello"]);
    }

    #[tokio::test]
    async fn topic_copies_go_to_current_subscribers_only_and_are_not_stored() {
        let (broker, store) = broker();
        let (mut a, mut ra) = session(&broker);
        let (mut b, mut rb) = session(&broker);
        a.send(send_frame("/topic/t", "before"))
            .unwrap()
            .await
            .unwrap();
        a.subscribe(sub_frame("/topic/t", "1", AckMode::Auto))
            .unwrap();
        b.subscribe(sub_frame("/topic/t", "x", AckMode::Auto))
            .unwrap();
        a.send(send_frame("/topic/t", "after"))
            .unwrap()
            .await
            .unwrap();
        assert_eq!(bodies(&mut ra), ["after"]);
        assert_eq!(bodies(&mut rb), ["after"]);
        assert_eq!(stored(&store), 0);
    }

    #[test]
    fn bad_destination_is_rejected() {
        let (broker, _) = broker();
        let (mut s, _rx) = session(&broker);
        assert!(s.send(send_frame("/exchange/x", "b")).is_err());
    }

    #[tokio::test]
    async fn a_full_queue_refuses_with_an_error_naming_the_limit() {
        let (broker, store) = broker_with(|p| {
            p.defaults.max_messages = Some(2);
        });
        let (mut s, _rx) = session(&broker);
        s.send(send_frame("q", "1")).unwrap().await.unwrap();
        s.send(send_frame("q", "2")).unwrap().await.unwrap();
        let err = s.send(send_frame("q", "3")).err().expect("full");
        assert!(err.to_string().contains("max_messages"), "{err}");
        assert_eq!(stored(&store), 2);
    }

    #[tokio::test]
    async fn a_backlog_beyond_the_window_stays_in_the_store_and_drains_in_order() {
        let (broker, store) = broker_with_window(10);
        let (mut s, mut rx) = session(&broker);
        for n in 0..25 {
            s.send(send_frame("q", &n.to_string()))
                .unwrap()
                .await
                .unwrap();
        }
        assert_eq!(broker.queue("q").depth(), (25, 0, 0));
        assert_eq!(stored(&store), 25);
        let mut sub = sub_frame("q", "1", AckMode::ClientIndividual);
        sub.prefetch = Some(4);
        s.subscribe(sub).unwrap();
        let mut seen = Vec::new();
        while seen.len() < 25 {
            let batch = deliveries(&mut rx);
            assert!(!batch.is_empty(), "stalled after {seen:?}");
            for d in batch {
                seen.push(String::from_utf8(d.record.body.to_vec()).unwrap());
                s.ack(ack_req(d.ack_id.as_deref().unwrap()))
                    .unwrap()
                    .await
                    .unwrap();
            }
        }
        let want: Vec<String> = (0..25).map(|n| n.to_string()).collect();
        assert_eq!(seen, want);
        assert_eq!(stored(&store), 0);
    }

    #[tokio::test]
    async fn recovery_loads_only_the_head_and_counts_the_rest() {
        let (broker, store) = broker_with_window(10);
        let (mut s, _rx) = session(&broker);
        for n in 0..25 {
            s.send(send_frame("q", &n.to_string()))
                .unwrap()
                .await
                .unwrap();
        }
        drop(s);
        let config = crate::BrokerConfig {
            window: crate::Window {
                messages: 10,
                bytes: u64::MAX,
            },
            ..crate::BrokerConfig::default()
        };
        let again = crate::Broker::new(
            config,
            crate::QueuePolicy::default(),
            store.clone(),
            std::sync::Arc::new(crate::ManualClock::new(1_000_000)),
        );
        let found = again.recover().unwrap();
        assert_eq!((found.queues, found.messages), (1, 25));
        assert_eq!(again.queue("q").depth(), (25, 0, 0));
        let (mut s2, mut rx2) = session(&again);
        s2.subscribe(sub_frame("q", "1", AckMode::Auto)).unwrap();
        let mut got = Vec::new();
        while got.len() < 25 {
            let b = bodies(&mut rx2);
            assert!(!b.is_empty(), "stalled after {got:?}");
            got.extend(b);
        }
        assert_eq!(got, (0..25).map(|n| n.to_string()).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn an_expired_message_is_kept_in_the_dead_letter_queue() {
        let (broker, clock, store) = broker_with_clock(|_| {});
        let (mut s, mut rx) = session(&broker);
        let mut f = send_frame("q", "m");
        f.headers.push("expires", "1000500");
        s.send(f).unwrap().await.unwrap();
        clock.advance(500);
        broker.tick();
        clock.advance(60_000);
        broker.tick();
        assert_eq!(broker.queue("q").depth(), (0, 0, 0));
        assert_eq!(broker.queue("DLQ.q").depth(), (1, 0, 0));
        assert_eq!(stored(&store), 1);
        s.subscribe(sub_frame("DLQ.q", "1", AckMode::Auto)).unwrap();
        let d = deliveries(&mut rx).pop().expect("dead letter delivered");
        assert_eq!(d.record.header("x-death-reason"), Some("expired"));
    }

    #[tokio::test]
    async fn publishes_out_of_sequence_order_at_the_window_edge_are_not_lost() {
        // Producers allocate sequence numbers before they publish, so the queue can see 3 before
        // 1. Message 1, arriving when the window is full, is older than what memory holds: it
        // must not be counted as paged (page-in only reads above the newest message in memory).
        let (broker, store) = broker_with_window(2);
        let q = broker.queue("q");
        let (a, b, c) = (q.next_seq(), q.next_seq(), q.next_seq());
        let rec = |body: &str| {
            std::sync::Arc::new(stampede_store::MessageRecord {
                headers: vec![],
                body: bytes::Bytes::copy_from_slice(body.as_bytes()),
                enqueued_at_ms: 1_000_000,
                expires_at_ms: None,
            })
        };
        for (seq, body) in [(b, "b"), (c, "c"), (a, "a")] {
            let record = rec(body);
            let mut fx = crate::Effects::new();
            fx.ops.extend(q.put_op(seq, &record));
            fx.publish.push((q.clone(), seq, record));
            broker.apply(fx).await.unwrap();
        }
        assert_eq!(stored(&store), 3);
        let (mut s, mut rx) = session(&broker);
        s.subscribe(sub_frame("q", "1", AckMode::Auto)).unwrap();
        let mut got = Vec::new();
        while got.len() < 3 {
            let b = bodies(&mut rx);
            assert!(!b.is_empty(), "stalled with {got:?}: a message was lost");
            got.extend(b);
        }
        got.sort();
        assert_eq!(got, ["a", "b", "c"]);
    }
}
