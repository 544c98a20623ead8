//! Prometheus metrics (docs/metrics.md lists them all). Hot paths touch only pre-resolved counters;
//! per-queue series are read from each queue's own atomic counters when `/metrics` is scraped, so
//! a queue costs nothing between scrapes. Per-queue series are capped: queues beyond
//! `metrics.max_queue_series` (in name order) are summed into `queue="_other"`.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;

use parking_lot::Mutex;
use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};
use stampede_broker::{Broker, Queue};
use stampede_proto::Command;
use stampede_store::StoreObserver;

const COMMANDS: [Command; 15] = Command::ALL;

/// Why a connection got an ERROR or was refused; the `kind` label of `stampede_errors_total`.
#[derive(Debug, Clone, Copy)]
pub enum ErrorKind {
    /// Malformed frame, unknown command, missing or invalid header.
    Protocol,
    /// A size limit (frame, headers, header line).
    Limit,
    /// A routing mistake: unknown subscription, message or transaction, bad destination, full queue.
    Routing,
    /// The store could not write (or the low-disk alarm refused).
    Storage,
    /// No CONNECT in time, or a client silent past its heart-beat.
    Timeout,
    /// The connection limit was reached.
    Refused,
}

impl ErrorKind {
    fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Protocol => "protocol",
            ErrorKind::Limit => "limit",
            ErrorKind::Routing => "routing",
            ErrorKind::Storage => "storage",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Refused => "refused",
        }
    }
}

/// Per-command counters, resolved once.
pub struct FrameCounters([IntCounter; 15]);

impl FrameCounters {
    fn new(vec: &IntCounterVec) -> FrameCounters {
        FrameCounters(COMMANDS.map(|c| vec.with_label_values(&[c.as_str()])))
    }

    pub fn inc(&self, command: Command) {
        self.0[command as usize].inc();
    }
}

/// A per-queue counter family and how to read it from a queue.
type QueueCounter = (IntCounterVec, fn(&Queue) -> u64);
/// A per-queue gauge family and how to read it (some need the broker, e.g. the DLQ's depth).
type QueueGauge = (IntGaugeVec, fn(&Queue, &Broker) -> u64);

/// Per-queue series, filled at scrape time.
struct QueueFamilies {
    counters: Vec<QueueCounter>,
    gauges: Vec<QueueGauge>,
}

/// All of Stampede's metrics and the registry they are exposed from.
pub struct Metrics {
    registry: Registry,
    pub connections_open: IntGaugeVec,
    pub connections_total: IntCounterVec,
    pub frames_in: FrameCounters,
    pub frames_out: FrameCounters,
    errors: IntCounterVec,
    /// SEND with a receipt, from the frame read to its RECEIPT queued (includes the fsync).
    pub receipt_seconds: Histogram,
    commit_batch: Histogram,
    commit_ops: Histogram,
    fsync_seconds: Histogram,
    pub recovery_seconds: Gauge,
    store_bytes: IntGauge,
    pending_writes: IntGauge,
    /// SENDs held back by producer flow control, by what they waited for.
    pub flow_waits_consumers: IntCounter,
    pub flow_waits_store: IntCounter,
    queues: QueueFamilies,
    max_queue_series: usize,
    data_dir: PathBuf,
    /// Scrapes reset and refill the per-queue families; one at a time.
    scrape: Mutex<()>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let v = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(v.clone())).expect("unique metric");
    v
}

fn gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let v = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(v.clone())).expect("unique metric");
    v
}

fn histogram(r: &Registry, name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets)).expect("valid");
    r.register(Box::new(h.clone())).expect("unique metric");
    h
}

/// Latency buckets from 50 µs to 5 s.
fn latency_buckets() -> Vec<f64> {
    prometheus::exponential_buckets(0.000_05, 2.0, 17).expect("valid buckets")
}

impl Metrics {
    pub fn new(max_queue_series: usize, data_dir: &Path) -> Metrics {
        let r = Registry::new();
        let frames_in = counter_vec(
            &r,
            "stampede_frames_received_total",
            "STOMP frames received, by command.",
            &["command"],
        );
        let frames_out = counter_vec(
            &r,
            "stampede_frames_sent_total",
            "STOMP frames sent, by command.",
            &["command"],
        );
        let build = gauge_vec(
            &r,
            "stampede_build_info",
            "Always 1; the labels name the build.",
            &["version"],
        );
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        let q = ["queue"];
        let c = |name: &str, help: &str| counter_vec(&r, name, help, &q);
        let g = |name: &str, help: &str| gauge_vec(&r, name, help, &q);
        let counters: Vec<QueueCounter> = vec![
            (
                c(
                    "stampede_queue_enqueued_total",
                    "Messages accepted into the queue.",
                ),
                |q| q.stats.enqueued.load(Ordering::Relaxed),
            ),
            (
                c(
                    "stampede_queue_delivered_total",
                    "Deliveries to consumers, redeliveries included.",
                ),
                |q| q.stats.delivered.load(Ordering::Relaxed),
            ),
            (
                c(
                    "stampede_queue_redelivered_total",
                    "Deliveries of messages delivered before.",
                ),
                |q| q.stats.redelivered.load(Ordering::Relaxed),
            ),
            (
                c("stampede_queue_acked_total", "Messages acknowledged."),
                |q| q.stats.acked.load(Ordering::Relaxed),
            ),
            (c("stampede_queue_nacked_total", "Messages NACKed."), |q| {
                q.stats.nacked.load(Ordering::Relaxed)
            }),
            (
                c(
                    "stampede_queue_visibility_timeouts_total",
                    "Deliveries whose visibility timeout passed.",
                ),
                |q| q.stats.timed_out.load(Ordering::Relaxed),
            ),
            (
                c(
                    "stampede_queue_dead_lettered_total",
                    "Messages moved from this queue to its dead-letter queue.",
                ),
                |q| q.stats.dead_lettered.load(Ordering::Relaxed),
            ),
            (
                c(
                    "stampede_queue_expired_total",
                    "Messages removed by retention or their expires time.",
                ),
                |q| q.stats.expired.load(Ordering::Relaxed),
            ),
        ];
        let gauges: Vec<QueueGauge> = vec![
            (
                g(
                    "stampede_queue_messages_visible",
                    "Messages waiting for delivery.",
                ),
                |q, _| q.snapshot().visible,
            ),
            (
                g(
                    "stampede_queue_messages_in_flight",
                    "Messages delivered and not yet settled.",
                ),
                |q, _| q.snapshot().in_flight,
            ),
            (
                g(
                    "stampede_queue_bytes",
                    "Bytes of the messages in the queue.",
                ),
                |q, _| q.snapshot().bytes,
            ),
            (
                g(
                    "stampede_queue_consumers",
                    "Subscriptions consuming the queue.",
                ),
                |q, _| q.snapshot().consumers,
            ),
            (
                g(
                    "stampede_queue_dead_letter_messages",
                    "Messages in this queue's dead-letter queue.",
                ),
                |q, b| {
                    q.settings()
                        .dead_letter_queue_of(q.name())
                        .and_then(|d| b.find_queue(&d))
                        .map_or(0, |d| d.snapshot().visible)
                },
            ),
        ];
        let flow_waits = counter_vec(
            &r,
            "stampede_flow_control_waits_total",
            "SENDs held back by producer flow control, by what they waited for: a crowded queue's consumers, or the store's write backlog.",
            &["reason"],
        );
        Metrics {
            connections_open: gauge_vec(
                &r,
                "stampede_connections_open",
                "Open client connections, by listener.",
                &["listener"],
            ),
            connections_total: counter_vec(
                &r,
                "stampede_connections_total",
                "Client connections accepted, by listener.",
                &["listener"],
            ),
            frames_in: FrameCounters::new(&frames_in),
            frames_out: FrameCounters::new(&frames_out),
            errors: counter_vec(
                &r,
                "stampede_errors_total",
                "ERROR frames sent and connections refused, by kind.",
                &["kind"],
            ),
            receipt_seconds: histogram(
                &r,
                "stampede_send_receipt_seconds",
                "SEND with a receipt: frame read to RECEIPT queued.",
                latency_buckets(),
            ),
            commit_batch: histogram(
                &r,
                "stampede_store_commit_batch_commits",
                "Commits folded into one group-commit round.",
                prometheus::exponential_buckets(1.0, 2.0, 13).expect("valid buckets"),
            ),
            commit_ops: histogram(
                &r,
                "stampede_store_commit_batch_ops",
                "Store operations in one group-commit round.",
                prometheus::exponential_buckets(1.0, 2.0, 15).expect("valid buckets"),
            ),
            fsync_seconds: histogram(
                &r,
                "stampede_store_fsync_seconds",
                "Time to make one round durable (segment sync, batch, fsync).",
                latency_buckets(),
            ),
            recovery_seconds: {
                let g = Gauge::with_opts(Opts::new(
                    "stampede_recovery_seconds",
                    "How long start-up recovery took.",
                ))
                .expect("valid");
                r.register(Box::new(g.clone())).expect("unique metric");
                g
            },
            store_bytes: {
                let g = IntGauge::with_opts(Opts::new(
                    "stampede_store_disk_bytes",
                    "Bytes the data directory occupies.",
                ))
                .expect("valid");
                r.register(Box::new(g.clone())).expect("unique metric");
                g
            },
            pending_writes: {
                let g = IntGauge::with_opts(Opts::new(
                    "stampede_store_pending_write_bytes",
                    "Message bytes accepted and not yet durable (bounded by storage.max_pending_writes).",
                ))
                .expect("valid");
                r.register(Box::new(g.clone())).expect("unique metric");
                g
            },
            flow_waits_consumers: flow_waits.with_label_values(&["consumers"]),
            flow_waits_store: flow_waits.with_label_values(&["store"]),
            queues: QueueFamilies { counters, gauges },
            max_queue_series,
            data_dir: data_dir.to_owned(),
            registry: r,
            scrape: Mutex::new(()),
        }
    }

    pub fn error(&self, kind: ErrorKind) {
        self.errors.with_label_values(&[kind.as_str()]).inc();
    }

    /// The text exposition, per-queue series read now. Walks the data directory: call it off the
    /// async workers.
    pub fn render(&self, broker: Option<&Broker>) -> String {
        let _one = self.scrape.lock();
        self.store_bytes.set(dir_size(&self.data_dir) as i64);
        if let Some(b) = broker {
            self.pending_writes.set(b.pending_writes() as i64);
            self.fill_queues(b);
        }
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    fn fill_queues(&self, broker: &Broker) {
        let mut queues = broker.queues();
        queues.sort_by(|a, b| a.name().cmp(b.name()));
        for (vec, read) in &self.queues.counters {
            vec.reset();
            self.per_queue(&queues, read, |label, v| {
                vec.with_label_values(&[label]).inc_by(v)
            });
        }
        for (vec, read) in &self.queues.gauges {
            vec.reset();
            self.per_queue(
                &queues,
                |q| read(q, broker),
                |label, v| vec.with_label_values(&[label]).set(v as i64),
            );
        }
    }

    /// Writes one value per queue, the first `max_queue_series` under their own names and the
    /// rest summed under `_other`.
    fn per_queue(
        &self,
        queues: &[std::sync::Arc<Queue>],
        read: impl Fn(&Queue) -> u64,
        write: impl Fn(&str, u64),
    ) {
        let (own, rest) = queues.split_at(queues.len().min(self.max_queue_series));
        for q in own {
            write(q.name(), read(q));
        }
        if !rest.is_empty() {
            write("_other", rest.iter().map(|q| read(q)).sum());
        }
    }
}

impl StoreObserver for Metrics {
    fn round(&self, commits: usize, ops: usize, flush: Duration) {
        self.commit_batch.observe(commits as f64);
        self.commit_ops.observe(ops as f64);
        self.fsync_seconds.observe(flush.as_secs_f64());
    }
}

fn dir_size(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}
