//! Prometheus metrics (docs/metrics.md lists them all). Hot paths touch only pre-resolved counters;
//! per-queue series are read from the broker's queue views when `/metrics` is scraped, so a queue
//! costs nothing between scrapes. Per-queue series are capped: queues beyond
//! `metrics.max_queue_series` (in name order) are summed into `queue="_other"`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use parking_lot::Mutex;
use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};
use stampede_broker::{Broker, QueueView};
use stampede_proto::Command;
use stampede_store::StoreObserver;

/// Why a connection got an ERROR or was refused; the `kind` label of `stampede_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    /// A login was refused.
    Auth,
    /// A user lacked the permission a frame needed.
    Denied,
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
            ErrorKind::Auth => "auth",
            ErrorKind::Denied => "denied",
        }
    }
}

/// Per-command counters, resolved once.
pub struct FrameCounters([IntCounter; 15]);

impl FrameCounters {
    fn new(vec: &IntCounterVec) -> FrameCounters {
        FrameCounters(Command::ALL.map(|c| vec.with_label_values(&[c.as_str()])))
    }

    pub fn inc(&self, command: Command) {
        self.0[command as usize].inc();
    }
}

/// How a per-queue series reads its value; the DLQ gauge needs the other queues' views.
type Read = fn(&QueueView, &HashMap<&str, &QueueView>) -> u64;

/// The per-queue counters: name, help, reader.
const QUEUE_COUNTERS: [(&str, &str, Read); 8] = [
    (
        "stampede_queue_enqueued_total",
        "Messages accepted into the queue.",
        |q, _| q.counters.enqueued,
    ),
    (
        "stampede_queue_delivered_total",
        "Deliveries to consumers, redeliveries included.",
        |q, _| q.counters.delivered,
    ),
    (
        "stampede_queue_redelivered_total",
        "Deliveries of messages delivered before.",
        |q, _| q.counters.redelivered,
    ),
    (
        "stampede_queue_acked_total",
        "Messages acknowledged.",
        |q, _| q.counters.acked,
    ),
    ("stampede_queue_nacked_total", "Messages NACKed.", |q, _| {
        q.counters.nacked
    }),
    (
        "stampede_queue_visibility_timeouts_total",
        "Deliveries whose visibility timeout passed.",
        |q, _| q.counters.timed_out,
    ),
    (
        "stampede_queue_dead_lettered_total",
        "Messages moved from this queue to its dead-letter queue.",
        |q, _| q.counters.dead_lettered,
    ),
    (
        "stampede_queue_expired_total",
        "Messages removed by retention or their expires time.",
        |q, _| q.counters.expired,
    ),
];

/// The per-queue gauges: name, help, reader.
const QUEUE_GAUGES: [(&str, &str, Read); 7] = [
    (
        "stampede_queue_messages_visible",
        "Messages waiting for delivery.",
        |q, _| q.visible,
    ),
    (
        "stampede_queue_messages_in_flight",
        "Messages delivered and not yet settled.",
        |q, _| q.in_flight,
    ),
    (
        "stampede_queue_messages_delayed",
        "Messages given back and waiting out their redelivery delay.",
        |q, _| q.delayed,
    ),
    (
        "stampede_queue_bytes",
        "Bytes of the messages in the queue.",
        |q, _| q.bytes,
    ),
    (
        "stampede_queue_consumers",
        "Subscriptions consuming the queue.",
        |q, _| q.consumers.len() as u64,
    ),
    (
        "stampede_queue_long_polls",
        "OCI GetMessages requests waiting for a message in this queue.",
        |q, _| q.long_polls,
    ),
    (
        "stampede_queue_dead_letter_messages",
        "Messages in this queue's dead-letter queue.",
        |q, all| {
            // The queue's own dead-letter queue: the one a subscriber named, or its settings'.
            q.dead_letter_queue
                .as_deref()
                .and_then(|d| all.get(d))
                .map_or(0, |d| d.visible)
        },
    ),
];

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
    /// SENDs held back by producer flow control, by what they waited for (read from the broker).
    flow_waits: IntCounterVec,
    dropped: IntCounterVec,
    /// Refused logins, by listener and why (credentials, throttled).
    pub auth_failures: IntCounterVec,
    /// Transport (TLS) handshakes that failed or did not finish in time, by listener.
    pub handshake_failures: IntCounterVec,
    queue_counters: Vec<(IntCounterVec, Read)>,
    queue_gauges: Vec<(IntGaugeVec, Read)>,
    max_queue_series: usize,
    /// The data directory whose size is reported; `None` for an ephemeral broker.
    data_dir: Option<PathBuf>,
    /// Scrapes reset and refill the per-queue families; one at a time.
    scrape: Mutex<()>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

fn register<M: prometheus::core::Collector + Clone + 'static>(r: &Registry, m: M) -> M {
    r.register(Box::new(m.clone())).expect("unique metric");
    m
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(
        r,
        IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"),
    )
}

fn gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    register(
        r,
        IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric"),
    )
}

fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    register(
        r,
        IntGauge::with_opts(Opts::new(name, help)).expect("valid metric"),
    )
}

fn histogram(r: &Registry, name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    let opts = HistogramOpts::new(name, help).buckets(buckets);
    register(r, Histogram::with_opts(opts).expect("valid metric"))
}

/// Latency buckets from 50 µs to 5 s.
fn latency_buckets() -> Vec<f64> {
    prometheus::exponential_buckets(0.000_05, 2.0, 17).expect("valid buckets")
}

fn doubling(count: usize) -> Vec<f64> {
    prometheus::exponential_buckets(1.0, 2.0, count).expect("valid buckets")
}

impl Metrics {
    pub fn new(max_queue_series: usize, data_dir: Option<PathBuf>) -> Metrics {
        let r = Registry::new();
        let build = gauge_vec(
            &r,
            "stampede_build_info",
            "Always 1; the labels name the build.",
            &["version"],
        );
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        let q = ["queue"];
        Metrics {
            connections_open: gauge_vec(&r, "stampede_connections_open", "Open client connections, by listener.", &["listener"]),
            connections_total: counter_vec(&r, "stampede_connections_total", "Client connections accepted, by listener.", &["listener"]),
            frames_in: FrameCounters::new(&counter_vec(&r, "stampede_frames_received_total", "STOMP frames received, by command.", &["command"])),
            frames_out: FrameCounters::new(&counter_vec(&r, "stampede_frames_sent_total", "STOMP frames sent, by command.", &["command"])),
            errors: counter_vec(&r, "stampede_errors_total", "ERROR frames sent and connections refused, by kind.", &["kind"]),
            receipt_seconds: histogram(&r, "stampede_send_receipt_seconds", "SEND with a receipt: frame read to RECEIPT queued.", latency_buckets()),
            commit_batch: histogram(&r, "stampede_store_commit_batch_commits", "Commits folded into one group-commit round.", doubling(13)),
            commit_ops: histogram(&r, "stampede_store_commit_batch_ops", "Store operations in one group-commit round.", doubling(15)),
            fsync_seconds: histogram(&r, "stampede_store_fsync_seconds", "Time to make one round durable (segment sync, batch, fsync).", latency_buckets()),
            recovery_seconds: register(&r, Gauge::with_opts(Opts::new("stampede_recovery_seconds", "How long start-up recovery took.")).expect("valid metric")),
            store_bytes: gauge(&r, "stampede_store_disk_bytes", "Bytes the data directory occupies."),
            pending_writes: gauge(&r, "stampede_store_pending_write_bytes", "Message bytes accepted and not yet durable (bounded by storage.max_pending_writes)."),
            flow_waits: counter_vec(&r, "stampede_flow_control_waits_total", "SENDs held back by producer flow control, by what they waited for: a crowded queue's consumers, or the store's write backlog.", &["reason"]),
            dropped: counter_vec(&r, "stampede_dropped_messages_total", "Messages accepted and dropped, by why: sent to a temporary queue that is gone (temp_queue_gone).", &["reason"]),
            auth_failures: counter_vec(&r, "stampede_auth_failures_total", "Refused logins, by listener and reason: credentials (unknown user, wrong or undecodable passcode) or throttled (too many failures from the address).", &["listener", "reason"]),
            handshake_failures: counter_vec(&r, "stampede_handshake_failures_total", "TLS handshakes that failed (reason=error: not TLS, untrusted or missing client certificate, no shared version) or did not finish within protocol.connect_timeout (reason=timeout), by listener.", &["listener", "reason"]),
            queue_counters: QUEUE_COUNTERS
                .iter()
                .map(|(name, help, read)| (counter_vec(&r, name, help, &q), *read))
                .collect(),
            queue_gauges: QUEUE_GAUGES
                .iter()
                .map(|(name, help, read)| (gauge_vec(&r, name, help, &q), *read))
                .collect(),
            max_queue_series,
            data_dir,
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
        if let Some(dir) = &self.data_dir {
            self.store_bytes.set(crate::disk::dir_size(dir) as i64);
        }
        if let Some(b) = broker {
            self.pending_writes.set(b.pending_writes() as i64);
            let stats = b.stats();
            for (reason, n) in [
                ("consumers", stats.waits_for_consumers()),
                ("store", stats.waits_for_store()),
            ] {
                let c = self.flow_waits.with_label_values(&[reason]);
                c.inc_by(n.saturating_sub(c.get()));
            }
            let c = self.dropped.with_label_values(&["temp_queue_gone"]);
            c.inc_by(stats.dropped_for_gone_temp_queues().saturating_sub(c.get()));
            self.fill_queues(b);
        }
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    fn fill_queues(&self, broker: &Broker) {
        let mut views = broker.queues();
        views.sort_by(|a, b| a.name.cmp(&b.name));
        let by_name: HashMap<&str, &QueueView> = views.iter().map(|v| (&*v.name, v)).collect();
        let (own, rest) = views.split_at(views.len().min(self.max_queue_series));
        let series = |read: Read| {
            own.iter()
                .map(|q| (&*q.name, read(q, &by_name)))
                .chain(
                    (!rest.is_empty())
                        .then(|| ("_other", rest.iter().map(|q| read(q, &by_name)).sum())),
                )
                .collect::<Vec<_>>()
        };
        for (vec, read) in &self.queue_counters {
            vec.reset();
            for (label, v) in series(*read) {
                vec.with_label_values(&[label]).inc_by(v);
            }
        }
        for (vec, read) in &self.queue_gauges {
            vec.reset();
            for (label, v) in series(*read) {
                vec.with_label_values(&[label]).set(v as i64);
            }
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
