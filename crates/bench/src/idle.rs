//! `--idle-connections N`: open N STOMP sessions without heart-beats, hold them, and count how many
//! the broker accepted and kept. The broker's memory per connection is measured from outside (by
//! the peer-comparison script); this side only has to keep N sessions open cheaply, so each is
//! kept as a bare socket without the 64 KiB buffers of a working connection.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::conn::{Conn, ConnectOptions, Stream};
use crate::report::IdleReport;
use crate::stats::{histogram, Percentiles};

/// Connects in flight at once: enough to open 10k sessions in seconds, few enough to stay under
/// the listen backlog so the count measures the broker, not SYN drops.
const CONCURRENT_CONNECTS: usize = 128;

pub async fn run_idle(opts: ConnectOptions, url: &str, n: u32, hold: Duration) -> IdleReport {
    raise_fd_limit(u64::from(n) + 256);
    let gate = Arc::new(Semaphore::new(CONCURRENT_CONNECTS));
    let opts = Arc::new(opts);
    let mut tasks = JoinSet::new();
    for _ in 0..n {
        let (gate, opts) = (gate.clone(), opts.clone());
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await;
            let start = Instant::now();
            let conn = Conn::connect(&opts).await?;
            Ok::<_, crate::BenchError>((start.elapsed(), conn.server.clone(), conn.into_stream()))
        });
    }
    let mut streams: Vec<Stream> = Vec::with_capacity(n as usize);
    let mut latency = histogram();
    let mut failures: BTreeMap<String, u32> = BTreeMap::new();
    let mut broker = None;
    while let Some(joined) = tasks.join_next().await {
        match joined
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()))
        {
            Ok((took, server, stream)) => {
                latency.saturating_record((took.as_nanos() as u64).max(1));
                broker = broker.or(server);
                streams.push(stream);
            }
            Err(reason) => *failures.entry(reason).or_default() += 1,
        }
    }
    let held = Instant::now();
    tokio::time::sleep(hold).await;
    let still_open = streams.iter().filter(|s| is_quiet(s.tcp())).count() as u32;
    for s in &streams {
        // Best effort: a broker that reads it logs a clean goodbye rather than a reset.
        if let Stream::Plain(tcp) = s {
            let _ = tcp.try_write(b"DISCONNECT\n\n\0");
        }
    }
    IdleReport {
        broker,
        url: url.to_owned(),
        requested: n,
        connected: streams.len() as u32,
        failed: failures.values().sum(),
        still_open,
        held_seconds: held.elapsed().as_secs_f64(),
        connect_latency_us: Percentiles::of(&latency),
        errors: failures
            .into_iter()
            .map(|(reason, count)| format!("{count} × {reason}"))
            .collect(),
    }
}

/// Neither closed nor sent anything (a broker that drops a session says ERROR or closes).
fn is_quiet(s: &TcpStream) -> bool {
    let mut probe = [0u8; 64];
    matches!(s.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

/// Lifts the soft open-files limit toward `want` (never above the hard limit): the common default
/// of 1024 would cap the test long before the broker does.
pub(crate) fn raise_fd_limit(want: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass, which outlives the calls.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < want {
            lim.rlim_cur = want.min(lim.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}
