//! The queue state machine against a clock the tests move: visibility timeouts, max deliveries,
//! expiry and retention, FIFO across redeliveries, the pull front end, and the deadlines the queue
//! asks its timer for.

use super::tests::{consumer, depth, fx, publish, queue_with, rec, Fx};
use super::*;
use crate::clock::ManualClock;
use crate::delivery::{AckMode, Delivery};
use crate::effects::DeathReason;
use crate::settle::Outcome;
use stampede_store::Op;
use std::time::Duration;
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
    let q = queue_with("work", QueueKind::Durable, settings, clock.clone());
    Fixture { q, clock }
}

impl Fixture {
    fn send(&self, body: &str) -> u64 {
        self.send_expiring(body, None)
    }

    fn send_expiring(&self, body: &str, expires: Option<u64>) -> u64 {
        publish(&self.q, rec(body, expires, self.clock.now_ms()), &mut fx())
    }

    fn consumer(&self, id: u64, prefetch: u32) -> mpsc::UnboundedReceiver<Box<Delivery>> {
        let (spec, rx) = consumer(id, AckMode::ClientIndividual, prefetch);
        self.q.add_consumer(spec, &mut fx()).unwrap();
        rx
    }

    fn tick_after(&self, ms: u64) -> Fx {
        self.clock.advance(ms);
        let mut out = fx();
        self.q.tick(None, &mut out);
        out
    }
}

fn got(rx: &mut mpsc::UnboundedReceiver<Box<Delivery>>) -> Vec<(String, u32)> {
    let mut out = Vec::new();
    while let Ok(d) = rx.try_recv() {
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
    assert_eq!(f.q.view().counters.timed_out, 1);
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
    f.q.remove_consumer(ConsumerId(1), &mut fx());
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
            assert_eq!(&*fx.dead[0].dead_letter_queue, "DLQ.work");
            assert!(fx
                .ops
                .iter()
                .any(|o| matches!(o, Op::Delete { seq: 1, .. })));
        }
    }
    assert!(got(&mut rx).is_empty());
    assert_eq!(depth(&f.q), (0, 0, 1));
}

#[test]
fn nack_counts_a_delivery_towards_max_deliveries() {
    let f = fixture(|s| s.max_deliveries = Some(2));
    let mut rx = f.consumer(1, 10);
    let seq = f.send("m");
    got(&mut rx);
    let nack = Outcome::Nack { requeue: true };
    let mut out = fx();
    f.q.settle(ConsumerId(1), seq, None, false, nack, &mut out)
        .unwrap();
    assert!(out.dead.is_empty());
    assert_eq!(got(&mut rx), pairs(&[("m", 2)]));
    let mut out = fx();
    f.q.settle(ConsumerId(1), seq, None, false, nack, &mut out)
        .unwrap();
    assert_eq!(out.dead.len(), 1, "second NACK used up both deliveries");
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
    f.q.settle(ConsumerId(2), 2, None, false, Outcome::Ack, &mut fx())
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
    let out = f.tick_after(500);
    assert_eq!(out.dead.len(), 1);
    assert_eq!(out.dead[0].reason, DeathReason::Expired);
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
    assert_eq!(f.q.view().counters.expired, 1);
}

#[test]
fn retention_deletes_old_messages_without_dead_lettering() {
    let f = fixture(|s| s.retention = Duration::from_secs(60));
    f.send("old");
    let out = f.tick_after(59_999);
    assert!(out.ops.is_empty());
    let out = f.tick_after(1);
    assert!(out.dead.is_empty());
    assert_eq!(out.ops.len(), 1, "deleted from the store");
    assert_eq!(depth(&f.q), (0, 0, 0));
}

#[test]
fn delivery_counts_are_persisted_for_client_acks() {
    let f = fixture(|_| {});
    f.send("m");
    let (spec, _rx) = consumer(1, AckMode::Client, 1);
    let mut out = fx();
    f.q.add_consumer(spec, &mut out).unwrap();
    assert!(matches!(
        out.ops[..],
        [Op::SetDeliveries {
            queue: 70,
            seq: 1,
            count: 1,
        }]
    ));
    assert!(
        out.gate.is_some(),
        "the delivery waits for the commit of its count"
    );
}

#[test]
fn the_queue_arms_its_timer_for_its_earliest_deadline_only() {
    let f = fixture(|s| s.retention = Duration::from_secs(3600));
    let timer = f.q.env.timer.clone();
    assert_eq!(timer.len(), 0, "an empty queue asks for nothing");
    f.send("a");
    f.send("b");
    assert_eq!(
        timer.len(),
        1,
        "one wake-up for the oldest message's retention"
    );
    let mut rx = f.consumer(1, 10);
    got(&mut rx);
    assert_eq!(timer.len(), 2, "the visibility deadline is earlier");
    f.clock.advance(10_000);
    let due = timer.due(f.clock.now_ms());
    assert_eq!(due.len(), 1);
    let (deadline, q) = &due[0];
    assert_eq!(*deadline, T0 + 10_000);
    q.tick(Some(*deadline), &mut fx());
    assert_eq!(got(&mut rx).len(), 2, "both redelivered by the one wake-up");
    assert!(timer.due(f.clock.now_ms()).is_empty());
}

#[test]
fn pull_hides_messages_and_receipts_delete_or_extend() {
    let f = fixture(|_| {});
    for b in ["a", "b", "c"] {
        f.send(b);
    }
    let mut out = fx();
    let first = f.q.pull(2, Some(Duration::from_secs(5)), None, &mut out);
    assert_eq!(
        first.iter().map(|p| &p.record.body[..]).collect::<Vec<_>>(),
        [b"a", b"b"]
    );
    assert_eq!(first[0].visible_after_ms, Some(T0 + 5_000));
    assert_eq!(depth(&f.q), (1, 2, 0));
    f.q.delete(&first[0].receipt, &mut out).unwrap();
    assert!(
        f.q.delete(&first[0].receipt, &mut out).is_err(),
        "receipt used up"
    );
    f.q.extend(&first[1].receipt, Duration::from_secs(60))
        .unwrap();
    f.tick_after(5_000);
    let again = f.q.pull(10, None, None, &mut out);
    assert_eq!(
        again.len(),
        1,
        "b is still hidden by its extension, c is visible"
    );
    assert_eq!(&again[0].record.body[..], b"c");
    f.tick_after(55_000);
    let b = f.q.pull(10, None, None, &mut out);
    assert_eq!((&b[0].record.body[..], b[0].delivery_count), (&b"b"[..], 2));
    assert!(
        f.q.delete(&first[1].receipt, &mut out).is_err(),
        "the old receipt is stale"
    );
}

#[test]
fn a_message_given_back_waits_out_a_growing_redelivery_delay() {
    let f = fixture(|s| {
        s.max_deliveries = Some(10);
        s.redelivery_delay = Duration::from_secs(1);
        s.redelivery_multiplier = 2.0;
        s.redelivery_delay_max = Some(Duration::from_secs(3));
    });
    let mut rx = f.consumer(1, 10);
    let seq = f.send("m");
    f.send("other");
    assert_eq!(got(&mut rx), pairs(&[("m", 1), ("other", 1)]));
    let nack = |f: &Fixture| {
        let n = Outcome::Nack { requeue: true };
        f.q.settle(ConsumerId(1), seq, None, false, n, &mut fx())
            .unwrap();
    };
    // 1 s, then 2 s, then the 3 s cap (not 4).
    for (wait, count) in [(1000, 2), (2000, 3), (3000, 4)] {
        nack(&f);
        assert_eq!(f.q.view().delayed, 1);
        assert_eq!(depth(&f.q), (0, 1, 1), "not visible while it waits");
        assert_eq!(f.q.lock().next_deadline(), Some(f.clock.now_ms() + wait));
        f.tick_after(wait - 1);
        assert!(got(&mut rx).is_empty(), "not before {wait} ms");
        f.tick_after(1);
        assert_eq!(got(&mut rx), pairs(&[("m", count)]));
    }
    // A visibility timeout backs off too (the delay of the 4th delivery: capped at 3 s).
    f.tick_after(10_000);
    assert!(got(&mut rx).is_empty(), "{:?}", f.q.view());
    f.tick_after(3_000);
    assert_eq!(got(&mut rx).len(), 2, "both timed out, both back");
}

#[test]
fn a_nack_delay_overrides_the_queue_and_a_disconnect_gives_back_at_once() {
    let f = fixture(|s| s.redelivery_delay = Duration::from_secs(60));
    let mut rx = f.consumer(1, 10);
    let a = f.send("a");
    let b = f.send("b");
    got(&mut rx);
    let later = Outcome::RetryAfter(Duration::from_millis(250));
    f.q.settle(ConsumerId(1), a, None, false, later, &mut fx())
        .unwrap();
    f.tick_after(249);
    assert!(got(&mut rx).is_empty());
    f.tick_after(1);
    assert_eq!(got(&mut rx), pairs(&[("a", 2)]));
    // Its consumer going away is not the message's failure: no delay.
    f.q.remove_consumer(ConsumerId(1), &mut fx());
    let mut rx2 = f.consumer(2, 10);
    assert_eq!(got(&mut rx2), pairs(&[("a", 3), ("b", 2)]));
    // A purge removes delayed messages with the waiting ones.
    let n = Outcome::Nack { requeue: true };
    f.q.settle(ConsumerId(2), b, None, false, n, &mut fx())
        .unwrap();
    assert_eq!(f.q.view().delayed, 1);
    let purged = f.q.purge(99, Op::DropQueue { id: 0 }, &mut fx());
    assert_eq!(purged, 1);
    assert_eq!(f.q.view().delayed, 0);
    f.tick_after(60_000);
    assert!(got(&mut rx2).is_empty(), "purged, not redelivered");
}
