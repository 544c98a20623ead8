//! `--handshakes`: how fast a broker sets connections up and tears them down. Each connector loops
//! for the run's duration: TCP connect, TLS handshake (with `--tls-ca`), CONNECT → CONNECTED,
//! DISCONNECT → RECEIPT, close. The count of completed loops per second is the figure; the
//! connect latency includes the handshake.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use crate::conn::{Conn, ConnectOptions};
use crate::report::HandshakeReport;
use crate::stats::{histogram, Percentiles};

/// What one connector saw.
struct Tally {
    completed: u64,
    failures: BTreeMap<String, u64>,
    latency: hdrhistogram::Histogram<u64>,
    broker: Option<String>,
}

pub async fn run(
    opts: ConnectOptions,
    url: &str,
    connectors: u16,
    hold: Duration,
) -> HandshakeReport {
    let tls = opts.tls.is_some();
    let opts = Arc::new(opts);
    let started = Instant::now();
    let deadline = started + hold;
    let mut tasks = JoinSet::new();
    for _ in 0..connectors.max(1) {
        let opts = opts.clone();
        tasks.spawn(async move {
            let mut t = Tally {
                completed: 0,
                failures: BTreeMap::new(),
                latency: histogram(),
                broker: None,
            };
            while Instant::now() < deadline {
                let start = Instant::now();
                let result = async {
                    let conn = Conn::connect(&opts).await?;
                    let took = start.elapsed();
                    let server = conn.server.clone();
                    conn.disconnect(opts.timeout, |_| {}).await?;
                    Ok::<_, crate::BenchError>((took, server))
                }
                .await;
                match result {
                    Ok((took, server)) => {
                        t.completed += 1;
                        t.latency.saturating_record((took.as_nanos() as u64).max(1));
                        t.broker = t.broker.take().or(server);
                    }
                    Err(e) => *t.failures.entry(e.to_string()).or_default() += 1,
                }
            }
            t
        });
    }
    let mut total = Tally {
        completed: 0,
        failures: BTreeMap::new(),
        latency: histogram(),
        broker: None,
    };
    while let Some(joined) = tasks.join_next().await {
        let Ok(t) = joined else { continue };
        total.completed += t.completed;
        let _ = total.latency.add(&t.latency);
        for (reason, n) in t.failures {
            *total.failures.entry(reason).or_default() += n;
        }
        total.broker = total.broker.or(t.broker);
    }
    let seconds = started.elapsed().as_secs_f64();
    HandshakeReport {
        broker: total.broker,
        url: url.to_owned(),
        tls,
        connectors,
        completed: total.completed,
        failed: total.failures.values().sum(),
        seconds,
        per_second: total.completed as f64 / seconds.max(f64::EPSILON),
        connect_latency_us: Percentiles::of(&total.latency),
        errors: total
            .failures
            .into_iter()
            .map(|(reason, count)| format!("{count} × {reason}"))
            .collect(),
    }
}
