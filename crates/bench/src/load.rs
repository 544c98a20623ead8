//! A load run from start to verdict: consumers subscribe first (or, with `--drain`, after the
//! producers), producers start together at one instant, and when everyone is done the per-task
//! histograms, counters and trackers are merged into one [`LoadReport`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use stampede_proto::AckMode;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::accounting::{verify, Delivery};
use crate::config::{Config, Stop};
use crate::conn::{Conn, ConnectOptions};
use crate::consumer::{consume, ConsumerReport};
use crate::pacer::Pacer;
use crate::producer::{produce, ProducerReport};
use crate::progress::{spawn_progress, Shared};
use crate::report::{LoadReport, Scenario};
use crate::stats::{histogram, ns_since, Percentiles, Rate};
use crate::BenchError;

/// Tick of the `--rate` pacer: finer than tokio's 1 ms timer, coarse enough to cost little CPU.
const PACER_PERIOD: Duration = Duration::from_micros(100);

/// Everything a producer or consumer task needs, fixed before the first connection opens.
#[derive(Debug)]
pub struct Plan {
    pub connect: ConnectOptions,
    pub destination: String,
    pub delivery: Delivery,
    pub size: usize,
    pub persistent: Option<&'static str>,
    pub receipt_every: u64,
    pub window: u64,
    pub tx: u64,
    pub rate_per_producer: Option<f64>,
    /// Started for `--rate` runs only.
    pub pacer: Option<Pacer>,
    pub stop: Stop,
    /// Zero of every timestamp in this process; `Instant`s never go backwards, wall clocks can.
    pub epoch: Instant,
    pub warmup: Duration,
    pub run_tag: u16,
    pub ack: AckMode,
    pub prefetch: Option<u32>,
    pub ack_every: u64,
    pub drain_timeout: Duration,
    /// `--consumer-destination`, `{i}` not yet replaced.
    pub consumer_destination: Option<String>,
    /// `--consumer-header`, split; `{i}` not yet replaced.
    pub consumer_headers: Vec<(String, String)>,
}

impl Plan {
    /// Where consumer `i` subscribes, and the extra headers of its SUBSCRIBE.
    pub fn subscription(&self, i: u16) -> (String, Vec<(String, String)>) {
        let n = |t: &str| t.replace("{i}", &i.to_string());
        let destination = self
            .consumer_destination
            .as_deref()
            .map_or_else(|| self.destination.clone(), n);
        let headers = self
            .consumer_headers
            .iter()
            .map(|(k, v)| (n(k), n(v)))
            .collect();
        (destination, headers)
    }
}

impl Plan {
    pub fn new(config: &Config, connect: ConnectOptions) -> Plan {
        let seed = crate::random_u64();
        let destination = config
            .destination
            .clone()
            .unwrap_or_else(|| format!("/queue/bench-{:08x}", seed as u32));
        Plan {
            connect,
            delivery: if config.is_topic() {
                Delivery::EveryConsumer
            } else {
                Delivery::ExactlyOnce
            },
            destination,
            size: config.size,
            persistent: config.persistent_header(),
            receipt_every: config.receipt_every,
            window: config.window(),
            tx: config.tx,
            rate_per_producer: config.rate.map(|r| r / f64::from(config.producers)),
            pacer: config.rate.map(|_| Pacer::start(PACER_PERIOD)),
            stop: config.stop(),
            epoch: Instant::now(),
            warmup: Config::secs(config.warmup),
            run_tag: (seed >> 32) as u16,
            ack: config.ack.into(),
            prefetch: config.prefetch,
            ack_every: config.ack_every(),
            consumer_destination: config.consumer_destination.clone(),
            consumer_headers: config
                .consumer_headers
                .iter()
                .filter_map(|h| h.split_once(':'))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            drain_timeout: Config::secs(config.drain_timeout),
        }
    }
}

pub async fn run_load(config: &Config, connect: ConnectOptions) -> Result<LoadReport, BenchError> {
    let plan = Arc::new(Plan::new(config, connect));
    let expected = match plan.stop {
        Stop::Count(n) => Some(n * u64::from(config.producers)),
        Stop::After(_) => None,
    };
    let shared = Shared::new(expected);
    let progress_done = CancellationToken::new();
    let progress = spawn_progress(shared.clone(), progress_done.clone(), !config.quiet);
    // Stops the progress line on every way out, including errors.
    let _stop_progress = progress_done.clone().drop_guard();

    // Held to the end of the run: subscriptions that match nothing sent, for the broker to pass.
    let _idle = match (
        config.idle_subscriptions,
        &config.idle_subscription_destination,
    ) {
        (Some(n), Some(template)) => Some(hold_subscriptions(&plan, n, template).await?),
        _ => None,
    };
    let mut consumers = Vec::new();
    let mut errors = Vec::new();
    if !config.drain {
        // Producers wait for every subscription: a topic drops what is sent before one exists.
        let (handles, ready) = spawn_consumers(config, &plan, &shared);
        consumers = handles;
        for r in ready {
            if r.await.is_err() {
                errors.push("a consumer failed before subscribing; no message was sent".into());
                shared.stop.cancel();
                break;
            }
        }
    }
    let go = Instant::now();
    shared.set_measure_from(ns_since(plan.epoch, go + plan.warmup));
    let mut producers = Vec::new();
    if errors.is_empty() {
        for id in 0..config.producers {
            producers.push(tokio::spawn(produce(id, plan.clone(), shared.clone(), go)));
        }
    }
    let producers = join("producer", producers).await?;
    let sent: Vec<u64> = producers.iter().map(|p| p.sent).collect();
    shared.producers_finished(sent.iter().sum());
    let drain_go = Instant::now();
    if config.drain {
        consumers = spawn_consumers(config, &plan, &shared).0;
    }
    let consumers = join("consumer", consumers).await?;
    progress_done.cancel();
    if let Some(p) = progress {
        let _ = p.await;
    }
    let consumer_start = if config.drain {
        drain_go
    } else {
        go + plan.warmup
    };
    Ok(merge(
        config,
        &plan,
        &sent,
        producers,
        consumers,
        consumer_start,
        errors,
    ))
}

fn spawn_consumers(
    config: &Config,
    plan: &Arc<Plan>,
    shared: &Arc<Shared>,
) -> (Vec<JoinHandle<ConsumerReport>>, Vec<oneshot::Receiver<()>>) {
    (0..config.consumers)
        .map(|i| {
            let (tx, rx) = oneshot::channel();
            let task = consume(i, plan.clone(), shared.clone(), tx);
            (tokio::spawn(task), rx)
        })
        .unzip()
}

/// One connection with `n` subscriptions to `template` (`{i}` replaced), all confirmed.
async fn hold_subscriptions(plan: &Plan, n: u32, template: &str) -> Result<Conn, BenchError> {
    let mut conn = Conn::connect(&plan.connect).await?;
    for i in 0..n {
        let destination = template.replace("{i}", &i.to_string());
        conn.subscribe_as(
            &destination,
            &format!("idle-{i}"),
            "auto",
            None,
            &[],
            i + 1 == n,
        )
        .await?;
    }
    Ok(conn)
}

async fn join<T>(role: &'static str, tasks: Vec<JoinHandle<T>>) -> Result<Vec<T>, BenchError> {
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await.map_err(|e| BenchError::Task {
            role,
            reason: e.to_string(),
        })?);
    }
    Ok(out)
}

fn merge(
    config: &Config,
    plan: &Plan,
    sent: &[u64],
    producers: Vec<ProducerReport>,
    consumers: Vec<ConsumerReport>,
    consumer_start: Instant,
    mut errors: Vec<String>,
) -> LoadReport {
    let mut receipts = histogram();
    let mut latency = histogram();
    let broker = producers
        .iter()
        .find_map(|p| p.server.clone())
        .or_else(|| consumers.iter().find_map(|c| c.server.clone()));
    for (i, p) in producers.iter().enumerate() {
        let _ = receipts.add(&p.receipts);
        if let Some(e) = &p.error {
            errors.push(format!("producer {i}: {e}"));
        }
    }
    for (i, c) in consumers.iter().enumerate() {
        let _ = latency.add(&c.latency);
        if let Some(e) = &c.error {
            errors.push(format!("consumer {i}: {e}"));
        }
    }
    let started = producers.iter().map(|p| p.started).min();
    let finished = producers.iter().map(|p| p.finished).max();
    let producer = Rate::new(
        producers.iter().map(|p| p.measured).sum(),
        producers.iter().map(|p| p.measured_bytes).sum(),
        match (started, finished) {
            (Some(s), Some(f)) => f.saturating_duration_since(s),
            _ => Duration::ZERO,
        },
    );
    let last = consumers.iter().filter_map(|c| c.last_measured).max();
    let consumer = (!consumers.is_empty()).then(|| {
        Rate::new(
            consumers.iter().map(|c| c.measured).sum(),
            consumers.iter().map(|c| c.measured_bytes).sum(),
            last.map_or(Duration::ZERO, |l| {
                l.saturating_duration_since(consumer_start)
            }),
        )
    });
    let trackers: Vec<_> = consumers.iter().map(|c| c.tracker.clone()).collect();
    LoadReport {
        broker,
        url: config.shown_url(),
        destination: plan.destination.clone(),
        scenario: Scenario::of(config),
        producer,
        consumer,
        latency_us: Percentiles::of(&latency),
        receipt_latency_us: Percentiles::of(&receipts),
        accounting: (!consumers.is_empty()).then(|| verify(sent, &trackers, plan.delivery)),
        foreign: consumers.iter().map(|c| c.foreign).sum(),
        malformed: consumers.iter().map(|c| c.malformed).sum(),
        errors,
    }
}
