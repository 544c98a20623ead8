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
            q.stage(seq, record, true, &mut fx);
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

    fn non_persistent(destination: &str, body: &str) -> stampede_proto::SendFrame {
        let mut f = send_frame(destination, body);
        f.headers.push("persistent", "false");
        f
    }

    #[tokio::test]
    async fn a_non_persistent_message_within_the_window_never_touches_the_store() {
        let (broker, store) = broker();
        let (mut s, mut rx) = session(&broker);
        s.send(non_persistent("q", "fast")).unwrap().await.unwrap();
        s.send(send_frame("q", "safe")).unwrap().await.unwrap();
        assert_eq!(stored(&store), 1, "only the persistent one is stored");
        s.subscribe(sub_frame("q", "1", AckMode::ClientIndividual))
            .unwrap();
        let got = deliveries(&mut rx);
        assert_eq!(got.len(), 2);
        assert!(got[0].durable.is_none(), "no delivery count to wait for");
        assert!(got[1].durable.is_some());
        for d in &got {
            s.ack(ack_req(d.ack_id.as_deref().unwrap()))
                .unwrap()
                .await
                .unwrap();
        }
        assert_eq!(stored(&store), 0);
        assert_eq!(broker.queue("q").depth(), (0, 0, 1), "empty, one consumer");
    }

    #[tokio::test]
    async fn a_non_persistent_message_beyond_the_window_is_stored_and_drains_in_order() {
        let (broker, store) = broker_with_window(2);
        let (mut s, mut rx) = session(&broker);
        for b in ["a", "b", "c", "d"] {
            s.send(non_persistent("q", b)).unwrap().await.unwrap();
        }
        assert_eq!(stored(&store), 2, "c and d arrived beyond the window");
        s.subscribe(sub_frame("q", "1", AckMode::Auto)).unwrap();
        let mut got = Vec::new();
        while got.len() < 4 {
            let b = bodies(&mut rx);
            assert!(!b.is_empty(), "stalled after {got:?}");
            got.extend(b);
        }
        assert_eq!(got, ["a", "b", "c", "d"]);
    }

    #[tokio::test]
    async fn a_non_persistent_message_behind_paged_ones_waits_on_disk_behind_them() {
        // Staged together (a transaction), published one by one: B is paged out when the window
        // fills, and C, not stored when it was staged, must not jump ahead of B into memory.
        let (broker, store) = broker_with_window(2);
        let (mut s, mut rx) = session(&broker);
        s.send(send_frame("q", "first")).unwrap().await.unwrap();
        s.begin("t").unwrap();
        for mut f in [
            send_frame("q", "A"),
            send_frame("q", "B"),
            non_persistent("q", "C"),
        ] {
            f.transaction = Some("t".into());
            s.send(f).unwrap().await.unwrap();
        }
        s.commit("t").unwrap().await.unwrap();
        assert_eq!(stored(&store), 4, "C went to disk behind B");
        s.subscribe(sub_frame("q", "1", AckMode::Auto)).unwrap();
        let mut got = Vec::new();
        while got.len() < 4 {
            let b = bodies(&mut rx);
            assert!(!b.is_empty(), "stalled after {got:?}: a message was lost");
            got.extend(b);
        }
        assert_eq!(got, ["first", "A", "B", "C"]);
    }

    /// A queue with a window of 4 (producers wait from 3 waiting messages until fewer than 2, and
    /// not at 8 or more) and one client-individual consumer holding one message, with `waiting`
    /// more messages behind it (beyond 4 they go to the store).
    fn crowded_queue(
        waiting: usize,
    ) -> (
        std::sync::Arc<crate::Broker>,
        crate::Session,
        tokio::sync::mpsc::UnboundedReceiver<crate::Outgoing>,
        Vec<String>,
    ) {
        let (broker, _) = broker_with_window(4);
        let (mut s, mut rx) = session(&broker);
        let mut sub = sub_frame("q", "1", AckMode::ClientIndividual);
        sub.prefetch = Some(1);
        s.subscribe(sub).unwrap();
        for n in 0..=waiting {
            drop(s.send(non_persistent("/queue/q", &n.to_string())).unwrap());
        }
        let held: Vec<String> = deliveries(&mut rx)
            .into_iter()
            .map(|d| d.ack_id.unwrap())
            .collect();
        assert_eq!(held.len(), 1);
        (broker, s, rx, held)
    }

    async fn ack_next(
        s: &mut crate::Session,
        rx: &mut tokio::sync::mpsc::UnboundedReceiver<crate::Outgoing>,
        pending: &mut Vec<String>,
    ) {
        pending.extend(deliveries(rx).into_iter().map(|d| d.ack_id.unwrap()));
        let id = pending.remove(0);
        s.ack(ack_req(&id)).unwrap().await.unwrap();
    }

    #[tokio::test]
    async fn a_producer_waits_while_a_crowded_queue_drains_to_its_low_water_mark() {
        use futures::FutureExt;
        let (broker, mut s, mut rx, mut pending) = crowded_queue(3);
        let mut wait = Box::pin(broker.flow_control("/queue/q"));
        assert!(
            (&mut wait).now_or_never().is_none(),
            "3 waiting: three quarters of the window"
        );
        ack_next(&mut s, &mut rx, &mut pending).await;
        assert!(
            (&mut wait).now_or_never().is_none(),
            "2 waiting: not below half the window"
        );
        ack_next(&mut s, &mut rx, &mut pending).await;
        let waited = wait.now_or_never().expect("1 waiting: room");
        assert!(waited.consumers && !waited.store);
        let again = broker.flow_control("/queue/q").now_or_never();
        assert_eq!(
            again,
            Some(crate::FlowWait::default()),
            "no wait below the window"
        );
        let other = broker.flow_control("/queue/elsewhere").now_or_never();
        assert_eq!(other, Some(crate::FlowWait::default()));
    }

    #[tokio::test]
    async fn pacing_counts_the_backlog_on_disk_and_leaves_bulk_backlogs_alone() {
        use futures::FutureExt;
        let (broker, mut s, mut rx, mut pending) = crowded_queue(7);
        // 4 in memory, 3 paged out: 7 waiting, within twice the window.
        assert!(
            broker.flow_control("/queue/q").now_or_never().is_none(),
            "a backlog paged to disk still holds producers"
        );
        drop(s.send(non_persistent("/queue/q", "8")).unwrap());
        assert_eq!(
            broker.flow_control("/queue/q").now_or_never(),
            Some(crate::FlowWait::default()),
            "8 waiting is a bulk backlog: producers go on"
        );
        let mut wait = Box::pin(async {
            // Back within the window's reach once the consumer has taken two.
            ack_next(&mut s, &mut rx, &mut pending).await;
            ack_next(&mut s, &mut rx, &mut pending).await;
            broker.flow_control("/queue/q").await
        });
        assert!(
            (&mut wait).now_or_never().is_none(),
            "6 waiting: paced again"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn stalled_consumers_stop_pacing_until_they_catch_up() {
        use futures::FutureExt;
        let (broker, mut s, mut rx, mut pending) = crowded_queue(4);
        // Nobody acks: the wait ends after the stall time (the paused clock jumps to it).
        assert!(broker.flow_control("/queue/q").await.consumers);
        for n in 0..20 {
            let next = broker.flow_control("/queue/q").now_or_never();
            assert_eq!(next, Some(crate::FlowWait::default()), "stalled: no wait");
            drop(
                s.send(non_persistent("/queue/q", &format!("more {n}")))
                    .unwrap(),
            );
        }
        // The consumer catches up below the low-water mark: pacing resumes.
        while broker.queue("q").depth().0 >= 2 {
            ack_next(&mut s, &mut rx, &mut pending).await;
        }
        for n in 0..2 {
            drop(
                s.send(non_persistent("/queue/q", &format!("last {n}")))
                    .unwrap(),
            );
        }
        assert!(
            broker.flow_control("/queue/q").now_or_never().is_none(),
            "paced again"
        );
    }
}
