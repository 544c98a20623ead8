//! State the tasks of one run share: live counters for the progress line and the consumers' stop
//! condition, and the signals that end the run. Counters are bumped once per batch, not per
//! message, and live on separate cache lines so producers and consumers do not contend.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Default)]
#[repr(align(64))]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn add(&self, n: u64) {
        if n > 0 {
            self.0.fetch_add(n, Ordering::Relaxed);
        }
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Debug)]
pub struct Shared {
    /// Messages producers have written.
    pub sent: Counter,
    /// Deliveries of this run's messages, over all consumers.
    pub received: Counter,
    /// Deliveries a consumer (topic) or all consumers together (queue) must see before they may
    /// stop; `u64::MAX` while producers run with no fixed count.
    expected: AtomicU64,
    producers_done: AtomicBool,
    /// Send stamps at or after this (ns since the plan's epoch) count for latency and rates: the
    /// producers' start plus the warm-up. Set once, before the first producer starts.
    measure_from_ns: AtomicU64,
    /// Cancelled when consumers should stop reading: a queue's total arrived, or the run failed.
    pub stop: CancellationToken,
}

impl Shared {
    pub fn new(expected: Option<u64>) -> Arc<Shared> {
        Arc::new(Shared {
            sent: Counter::default(),
            received: Counter::default(),
            expected: AtomicU64::new(expected.unwrap_or(u64::MAX)),
            producers_done: AtomicBool::new(false),
            measure_from_ns: AtomicU64::new(0),
            stop: CancellationToken::new(),
        })
    }

    pub fn expected(&self) -> u64 {
        self.expected.load(Ordering::Acquire)
    }

    /// Producers are finished; `expected` is now exact (what they really sent).
    pub fn producers_finished(&self, expected: u64) {
        self.expected.store(expected, Ordering::Release);
        self.producers_done.store(true, Ordering::Release);
    }

    pub fn set_measure_from(&self, ns: u64) {
        self.measure_from_ns.store(ns, Ordering::Release);
    }

    pub fn measure_from(&self) -> u64 {
        self.measure_from_ns.load(Ordering::Acquire)
    }

    pub fn producers_done(&self) -> bool {
        self.producers_done.load(Ordering::Acquire)
    }
}

/// Prints a one-line status to stderr every half second until `done` is cancelled. Only on a
/// terminal: in a pipe or a log, a carriage-return line is noise.
/// Await the returned task after cancelling, so its last erase lands before the report.
pub fn spawn_progress(
    shared: Arc<Shared>,
    done: CancellationToken,
    enabled: bool,
) -> Option<JoinHandle<()>> {
    if !enabled || !std::io::stderr().is_terminal() {
        return None;
    }
    Some(tokio::spawn(async move {
        let start = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        let (mut last_sent, mut last_recv, mut last_at) = (0, 0, start);
        loop {
            tokio::select! {
                _ = done.cancelled() => break,
                _ = tick.tick() => {}
            }
            let (sent, recv, now) = (shared.sent.get(), shared.received.get(), Instant::now());
            let dt = now.duration_since(last_at).as_secs_f64().max(1e-9);
            eprint!(
                "\r{:6.1}s  sent {sent:>11} ({:>9.0}/s)  received {recv:>11} ({:>9.0}/s)  ",
                now.duration_since(start).as_secs_f64(),
                (sent - last_sent) as f64 / dt,
                (recv - last_recv) as f64 / dt,
            );
            let _ = std::io::stderr().flush();
            (last_sent, last_recv, last_at) = (sent, recv, now);
        }
        eprint!("\r{:100}\r", "");
    }))
}
