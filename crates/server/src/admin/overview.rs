//! `GET /api/overview`, and the rates the admin API reports: every few seconds a sampler reads
//! each queue's counters (atomics, no queue lock) and keeps the per-second rates of the last
//! interval, so a listing of 10,000 queues costs no more for having rates.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use parking_lot::Mutex;
use serde::Serialize;
use stampede_broker::{Broker, QueueCounters};
use tokio_util::sync::CancellationToken;

use super::{Admin, NoParams, Params, Peer};

/// How often rates are sampled: the interval they are averaged over.
pub const SAMPLE: Duration = Duration::from_secs(5);

/// Messages per second over the last sampling interval.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Rate {
    pub enqueued_per_s: f64,
    pub delivered_per_s: f64,
    pub acked_per_s: f64,
}

impl Rate {
    fn add(&mut self, o: &Rate) {
        self.enqueued_per_s += o.enqueued_per_s;
        self.delivered_per_s += o.delivered_per_s;
        self.acked_per_s += o.acked_per_s;
    }
}

#[derive(Default)]
struct Sampled {
    at: Option<Instant>,
    last: HashMap<Arc<str>, QueueCounters>,
    rates: HashMap<Arc<str>, Rate>,
    total: Rate,
}

/// Per-queue rates, refreshed by [`Rates::run`].
#[derive(Default)]
pub struct Rates {
    sampled: Mutex<Sampled>,
}

impl Rates {
    /// Reads every queue's counters now and turns the change since the last sample into rates.
    pub fn sample(&self, broker: &Broker) {
        self.sample_at(broker, Instant::now());
    }

    fn sample_at(&self, broker: &Broker, now: Instant) {
        let counters = broker.queue_counters();
        let mut s = self.sampled.lock();
        let elapsed = s.at.map(|at| now.duration_since(at).as_secs_f64());
        let mut rates = HashMap::with_capacity(counters.len());
        let mut total = Rate::default();
        if let Some(secs) = elapsed.filter(|s| *s > 0.0) {
            for (name, c) in &counters {
                // A queue new since the last sample counts from zero.
                let before = s.last.get(name).copied().unwrap_or_default();
                let per_s = |now: u64, then: u64| now.saturating_sub(then) as f64 / secs;
                let r = Rate {
                    enqueued_per_s: per_s(c.enqueued, before.enqueued),
                    delivered_per_s: per_s(c.delivered, before.delivered),
                    acked_per_s: per_s(c.acked, before.acked),
                };
                total.add(&r);
                rates.insert(name.clone(), r);
            }
        }
        s.at = Some(now);
        s.last = counters.into_iter().collect();
        s.rates = rates;
        s.total = total;
    }

    /// Queue `name`'s rates (zero before two samples, or for a queue new since the last one).
    pub fn of(&self, name: &str) -> Rate {
        self.sampled
            .lock()
            .rates
            .get(name)
            .copied()
            .unwrap_or_default()
    }

    pub fn total(&self) -> Rate {
        self.sampled.lock().total
    }

    /// Samples every [`SAMPLE`] until `shutdown`.
    pub async fn run(self: Arc<Self>, broker: Arc<Broker>, shutdown: CancellationToken) {
        let mut interval = tokio::time::interval(SAMPLE);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                _ = shutdown.cancelled() => return,
            }
            let (rates, broker) = (self.clone(), broker.clone());
            // 10,000 queues take a few milliseconds: off the async workers.
            let _ = tokio::task::spawn_blocking(move || rates.sample(&broker)).await;
        }
    }
}

#[derive(Serialize)]
struct Totals {
    visible: u64,
    in_flight: u64,
    bytes: u64,
}

pub(super) async fn overview(
    State(s): Admin,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
    query: Params<NoParams>,
) -> Response {
    let (broker, NoParams {}) =
        or_answer!(s.admit_query(&headers, peer, "the overview", query).await);
    let mut messages = Totals {
        visible: 0,
        in_flight: 0,
        bytes: 0,
    };
    let queues = broker.queues();
    for q in &queues {
        messages.visible += q.visible;
        messages.in_flight += q.in_flight;
        messages.bytes += q.bytes;
    }
    let connections = s.http.hub().map_or(0, |h| h.connection_count());
    let now = super::now_ms();
    Json(serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "started_at_ms": s.started_at_ms,
        "uptime_s": now.saturating_sub(s.started_at_ms) / 1000,
        "queues": queues.len(),
        "topics": broker.topics().len(),
        "connections": connections,
        "messages": messages,
        "rates": s.rates.total(),
        "store": { "failure": broker.store_failure() },
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use stampede_broker::{BrokerConfig, Destination, ManualClock, NewMessage, QueuePolicy};
    use stampede_store::MemoryStore;

    #[tokio::test]
    async fn rates_are_the_change_between_two_samples_per_second() {
        let broker = Broker::new(
            BrokerConfig::default(),
            QueuePolicy::default(),
            Arc::new(MemoryStore::new()),
            Arc::new(ManualClock::new(1_000_000)),
        );
        let q = Destination::Queue("q".into());
        drop(broker.publish(&q, NewMessage::new("old")).await.unwrap());
        let rates = Rates::default();
        let t0 = Instant::now();
        rates.sample_at(&broker, t0);
        assert_eq!(rates.of("q"), Rate::default(), "nothing before two samples");
        for _ in 0..10 {
            drop(broker.publish(&q, NewMessage::new("m")).await.unwrap());
        }
        let r = Destination::Queue("r".into());
        drop(broker.publish(&r, NewMessage::new("new")).await.unwrap());
        rates.sample_at(&broker, t0 + Duration::from_secs(2));
        assert_eq!(rates.of("q").enqueued_per_s, 5.0);
        assert_eq!(
            rates.of("r").enqueued_per_s,
            0.5,
            "a new queue counts from zero"
        );
        assert_eq!(rates.total().enqueued_per_s, 5.5);
        rates.sample_at(&broker, t0 + Duration::from_secs(3));
        assert_eq!(rates.of("q"), Rate::default(), "nothing happened since");
    }
}
