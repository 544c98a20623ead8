//! The queue state machine against a clock the tests move: visibility timeouts, max deliveries,
//! expiry and retention, FIFO across redeliveries, and the pull front end.

use super::*;
use crate::clock::ManualClock;
use bytes::Bytes;
use stampede_store::Op;
use tokio::sync::mpsc;

const T0: u64 = 1_000_000;

struct Fixture {
    q: Arc<Queue>,
    clock: Arc<ManualClock>,
}

fn fixture(tune: impl FnOnce(&mut QueueSettings)) -> Fixture {
    let mut settings = QueueSettings {
        visibility_timeout: Some(Duration::from_secs(10)),
        max_deliveries: Some(3),
        ..QueueSettings::default()
    };
    tune(&mut settings);
    let clock = Arc::new(ManualClock::new(T0));
    let q = Queue::new(
        "work",
        7,
        QueueKind::Durable,
        settings,
        Window::default(),
        clock.clone(),
    );
    Fixture { q, clock }
}

fn rec(body: &str, expires_at_ms: Option<u64>) -> Arc<MessageRecord> {
    Arc::new(MessageRecord {
        headers: vec![],
        body: Bytes::copy_from_slice(body.as_bytes()),
        enqueued_at_ms: T0,
        expires_at_ms,
    })
}

impl Fixture {
    fn send(&self, body: &str) -> u64 {
        self.send_expiring(body, None)
    }

    fn send_expiring(&self, body: &str, expires: Option<u64>) -> u64 {
        let seq = self.q.next_seq();
        self.q
            .publish(seq, rec(body, expires), true, &mut Effects::new());
        seq
    }

    fn consumer(&self, id: u64, prefetch: u32) -> mpsc::UnboundedReceiver<Outgoing> {
        let (tx, rx) = mpsc::unbounded_channel();
        let spec = ConsumerSpec {
            id: ConsumerId(id),
            subscription: Arc::from("s"),
            destination: Arc::from("/queue/work"),
            ack: AckMode::ClientIndividual,
            prefetch,
            outbox: tx,
        };
        self.q.add_consumer(spec, &mut Effects::new());
        rx
    }

    fn tick_after(&self, ms: u64) -> Effects {
        self.clock.advance(ms);
        let mut fx = Effects::new();
        self.q.tick(&mut fx);
        fx
    }
}

fn got(rx: &mut mpsc::UnboundedReceiver<Outgoing>) -> Vec<(String, u32)> {
    let mut out = Vec::new();
    while let Ok(Outgoing::Message(d)) = rx.try_recv() {
        out.push((
            String::from_utf8(d.record.body.to_vec()).unwrap(),
            d.delivery_count,
        ));
    }
    out
}

fn pairs(v: &[(&str, u32)]) -> Vec<(String, u32)> {
    v.iter().map(|(b, n)| (b.to_string(), *n)).collect()
}

#[test]
fn visibility_timeout_redelivers_while_the_consumer_is_connected() {
    let f = fixture(|_| {});
    let mut rx = f.consumer(1, 10);
    f.send("a");
    assert_eq!(got(&mut rx), pairs(&[("a", 1)]));
    f.tick_after(9_999);
    assert!(got(&mut rx).is_empty(), "not before the deadline");
    f.tick_after(1);
    assert_eq!(got(&mut rx), pairs(&[("a", 2)]));
    assert_eq!(f.q.stats.timed_out.load(Ordering::Relaxed), 1);
    assert!(f.q.timed_out_from(ConsumerId(1), 1));
}

#[test]
fn no_visibility_timeout_means_only_disconnect_returns_messages() {
    let f = fixture(|s| s.visibility_timeout = None);
    let mut rx = f.consumer(1, 10);
    f.send("a");
    got(&mut rx);
    f.tick_after(6 * 86_400_000);
    assert!(got(&mut rx).is_empty());
    f.q.remove_consumer(ConsumerId(1), &mut Effects::new());
    let mut rx2 = f.consumer(2, 10);
    assert_eq!(got(&mut rx2), pairs(&[("a", 2)]));
}

#[test]
fn max_deliveries_moves_the_message_to_the_dead_letter_queue() {
    let f = fixture(|_| {});
    let mut rx = f.consumer(1, 10);
    f.send("poison");
    for n in 1..=3 {
        assert_eq!(got(&mut rx), pairs(&[("poison", n)]));
        let fx = f.tick_after(10_000);
        if n < 3 {
            assert!(fx.dead.is_empty());
        } else {
            assert_eq!(fx.dead.len(), 1);
            assert_eq!(fx.dead[0].reason, DeathReason::MaxDeliveries);
            assert_eq!(fx.dead[0].dead_letter_queue, "DLQ.work");
            assert!(fx
                .ops
                .iter()
                .any(|o| matches!(o, Op::Delete { seq: 1, .. })));
        }
    }
    assert!(got(&mut rx).is_empty());
    assert_eq!(f.q.depth(), (0, 0, 1));
}

#[test]
fn nack_counts_a_delivery_towards_max_deliveries() {
    let f = fixture(|s| s.max_deliveries = Some(2));
    let mut rx = f.consumer(1, 10);
    let seq = f.send("m");
    got(&mut rx);
    let mut fx = Effects::new();
    f.q.nack(ConsumerId(1), seq, false, true, &mut fx).unwrap();
    assert!(fx.dead.is_empty());
    assert_eq!(got(&mut rx), pairs(&[("m", 2)]));
    let mut fx = Effects::new();
    f.q.nack(ConsumerId(1), seq, false, true, &mut fx).unwrap();
    assert_eq!(fx.dead.len(), 1, "second NACK used up both deliveries");
}

#[test]
fn fifo_holds_across_redeliveries() {
    let f = fixture(|_| {});
    let mut rx = f.consumer(1, 2);
    for b in ["a", "b", "c", "d"] {
        f.send(b);
    }
    assert_eq!(got(&mut rx), pairs(&[("a", 1), ("b", 1)]));
    f.tick_after(10_000);
    assert_eq!(
        got(&mut rx),
        pairs(&[("a", 2), ("b", 2)]),
        "timed-out messages go ahead of c and d"
    );
}

#[test]
fn competing_consumers_take_over_a_timed_out_message() {
    let f = fixture(|_| {});
    let mut slow = f.consumer(1, 1);
    let mut other = f.consumer(2, 1);
    f.send("a");
    f.send("b");
    assert_eq!(got(&mut slow), pairs(&[("a", 1)]));
    assert_eq!(got(&mut other), pairs(&[("b", 1)]));
    f.q.ack(ConsumerId(2), 2, false, &mut Effects::new())
        .unwrap();
    f.tick_after(10_000);
    let both: Vec<_> = got(&mut slow).into_iter().chain(got(&mut other)).collect();
    assert_eq!(both, pairs(&[("a", 2)]));
}

#[test]
fn expires_header_dead_letters_waiting_messages() {
    let f = fixture(|_| {});
    f.send_expiring("soon", Some(T0 + 500));
    f.send("later");
    let fx = f.tick_after(500);
    assert_eq!(fx.dead.len(), 1);
    assert_eq!(fx.dead[0].reason, DeathReason::Expired);
    let mut rx = f.consumer(1, 10);
    assert_eq!(got(&mut rx), pairs(&[("later", 1)]));
}

#[test]
fn an_expired_message_is_never_delivered_even_between_ticks() {
    let f = fixture(|_| {});
    f.send_expiring("stale", Some(T0 + 100));
    f.clock.advance(100);
    let mut rx = f.consumer(1, 10);
    assert!(got(&mut rx).is_empty());
    assert_eq!(f.q.stats.expired.load(Ordering::Relaxed), 1);
}

#[test]
fn retention_deletes_old_messages_without_dead_lettering() {
    let f = fixture(|s| s.retention = Duration::from_secs(60));
    f.send("old");
    let fx = f.tick_after(59_999);
    assert!(fx.ops.is_empty());
    let fx = f.tick_after(1);
    assert!(fx.dead.is_empty());
    assert_eq!(fx.ops.len(), 1, "deleted from the store");
    assert_eq!(f.q.depth(), (0, 0, 0));
}

#[test]
fn delivery_counts_are_persisted_for_client_acks() {
    let f = fixture(|_| {});
    let (tx, _rx) = mpsc::unbounded_channel();
    f.send("m");
    let mut fx = Effects::new();
    f.q.add_consumer(
        ConsumerSpec {
            id: ConsumerId(1),
            subscription: Arc::from("s"),
            destination: Arc::from("/queue/work"),
            ack: AckMode::Client,
            prefetch: 1,
            outbox: tx,
        },
        &mut fx,
    );
    assert!(matches!(
        fx.ops[..],
        [Op::SetDeliveries {
            seq: 1,
            count: 1,
            ..
        }]
    ));
}

#[test]
fn full_queue_refuses_by_count_and_bytes() {
    let f = fixture(|s| {
        s.max_messages = Some(2);
        s.max_bytes = Some(10);
    });
    f.send("12345");
    assert!(f.q.check_capacity(5).is_ok());
    assert_eq!(f.q.check_capacity(6).unwrap_err().limit, "max_bytes");
    f.send("1");
    assert_eq!(f.q.check_capacity(0).unwrap_err().limit, "max_messages");
}

#[test]
fn pull_hides_messages_and_receipts_delete_or_extend() {
    let f = fixture(|_| {});
    for b in ["a", "b", "c"] {
        f.send(b);
    }
    let mut fx = Effects::new();
    let first = f.q.pull(2, Some(Duration::from_secs(5)), &mut fx);
    assert_eq!(
        first.iter().map(|p| &p.record.body[..]).collect::<Vec<_>>(),
        [b"a", b"b"]
    );
    assert_eq!(f.q.depth(), (1, 2, 0));
    f.q.delete(&first[0].receipt, &mut fx).unwrap();
    assert!(
        f.q.delete(&first[0].receipt, &mut fx).is_err(),
        "receipt used up"
    );
    f.q.extend(&first[1].receipt, Duration::from_secs(60))
        .unwrap();
    f.tick_after(5_000);
    let again = f.q.pull(10, None, &mut fx);
    assert_eq!(
        again.len(),
        1,
        "b is still hidden by its extension, c is visible"
    );
    assert_eq!(&again[0].record.body[..], b"c");
    f.tick_after(55_000);
    let b = f.q.pull(10, None, &mut fx);
    assert_eq!((&b[0].record.body[..], b[0].delivery_count), (&b"b"[..], 2));
    assert!(
        f.q.delete(&first[1].receipt, &mut fx).is_err(),
        "the old receipt is stale"
    );
}
