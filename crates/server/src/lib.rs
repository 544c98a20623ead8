//! The Stampede server: wires configuration, the broker core and the listeners together, and owns
//! process lifecycle (recovery before accepting, graceful shutdown). `main.rs` only parses the CLI
//! and calls [`run`].

pub mod config;
mod connection;
mod disk;
mod http;
mod listener;
mod metrics;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use stampede_broker::{Broker, BrokerConfig, SystemClock};
use stampede_proto::Limits;
use stampede_store::{SledOptions, SledStore};
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::config::Loaded;

/// Per-connection settings derived from the configuration once.
#[derive(Debug, Clone)]
pub struct ConnectionSettings {
    pub limits: Limits,
    pub max_connect_frame: usize,
    pub connect_timeout: Duration,
    /// Offered heart-beat interval (0 = none).
    pub heartbeat: Duration,
    /// How long a closing connection may take to flush its last frames.
    pub close_timeout: Duration,
    pub metrics: Arc<metrics::Metrics>,
}

#[derive(Debug, Error)]
pub enum ServerError {
    #[error("cannot bind the HTTP listener on {addr} (listeners.http.bind): {source}")]
    BindHttp {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot bind STOMP listener on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    // Names the key, as every start-up configuration error does (BEHAVIOUR.md "Ports and process").
    #[error("data directory {path} (configuration key `storage.data_dir`, or --data-dir) is not usable: {source}")]
    DataDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("recovery failed: {0}")]
    Recovery(#[from] stampede_broker::BrokerError),
    #[error("cannot open the store in {path}: {source}")]
    Store {
        path: std::path::PathBuf,
        source: stampede_store::StoreError,
    },
}

/// Runs the broker until `shutdown` completes, then closes connections within the grace period.
pub async fn run(loaded: Loaded, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
    let s = &loaded.settings;
    let started = Instant::now();
    prepare_data_dir(&s.storage.data_dir)?;
    let token = CancellationToken::new();
    let metrics = Arc::new(metrics::Metrics::new(
        s.metrics.max_queue_series,
        &s.storage.data_dir,
    ));
    let http_state = Arc::new(http::HttpState {
        metrics: metrics.clone(),
        broker: std::sync::OnceLock::new(),
        stomp_ready: std::sync::atomic::AtomicBool::new(false),
    });
    let http_listener = TcpListener::bind(loaded.http_addr)
        .await
        .map_err(|source| ServerError::BindHttp {
            addr: loaded.http_addr,
            source,
        })?;
    let http_bound = http_listener
        .local_addr()
        .map_err(|source| ServerError::BindHttp {
            addr: loaded.http_addr,
            source,
        })?;
    let http_task = {
        let token = token.clone();
        let app = http::router(http_state.clone());
        tokio::spawn(async move {
            let served = axum::serve(http_listener, app)
                .with_graceful_shutdown(async move { token.cancelled().await })
                .await;
            if let Err(e) = served {
                warn!(error = %e, "HTTP listener failed");
            }
        })
    };
    info!(http = %http_bound, "HTTP listening; recovering the store");
    let (broker, recovery) = open_broker(&loaded, metrics.clone()).await?;
    metrics
        .recovery_seconds
        .set(started.elapsed().as_secs_f64());
    info!(
        queues = recovery.queues,
        messages = recovery.messages,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "recovery finished"
    );
    let _ = http_state.broker.set(broker.clone());
    let listener = TcpListener::bind(loaded.stomp_addr)
        .await
        .map_err(|source| ServerError::Bind {
            addr: loaded.stomp_addr,
            source,
        })?;
    let bound = listener.local_addr().map_err(|source| ServerError::Bind {
        addr: loaded.stomp_addr,
        source,
    })?;
    let p = &s.protocol;
    let settings = Arc::new(ConnectionSettings {
        limits: Limits {
            max_frame_size: p.max_frame_size,
            max_headers: p.max_headers,
            max_header_line: p.max_header_line,
        },
        max_connect_frame: p.max_connect_frame,
        connect_timeout: p.connect_timeout,
        heartbeat: p.heartbeat,
        close_timeout: s.shutdown.grace.min(Duration::from_secs(5)),
        metrics: metrics.clone(),
    });
    let tracker = TaskTracker::new();
    let acceptor = listener::Listener {
        listener,
        broker: broker.clone(),
        settings,
        limit: Arc::new(Semaphore::new(s.listeners.stomp.max_connections)),
        tracker: tracker.clone(),
    };
    let accept_task = tokio::spawn(acceptor.run(token.clone()));
    let timer = tokio::spawn(run_timer(
        broker.clone(),
        s.storage.data_dir.clone(),
        s.storage.min_free_space as u64,
        token.clone(),
    ));
    http_state
        .stomp_ready
        .store(true, std::sync::atomic::Ordering::Release);
    info!(
        stomp = %bound,
        http = %http_bound,
        startup_ms = started.elapsed().as_millis() as u64,
        "ready"
    );

    shutdown.await;
    info!("shutting down");
    token.cancel();
    let _ = accept_task.await;
    let _ = timer.await;
    let _ = http_task.await;
    tracker.close();
    if tokio::time::timeout(s.shutdown.grace, tracker.wait())
        .await
        .is_err()
    {
        warn!(grace = ?s.shutdown.grace, "connections still open after the grace period");
    }
    // A store that failed earlier may never finish a flush; do not let it hold the exit.
    match tokio::time::timeout(s.shutdown.grace, broker.flush()).await {
        Ok(result) => result.map_err(stampede_broker::BrokerError::from)?,
        Err(_) => warn!("store did not finish flushing within the grace period"),
    }
    info!("stopped");
    Ok(())
}

/// How often visibility deadlines, `expires` times and retention are checked: the precision of
/// every queue timeout.
const TICK: Duration = Duration::from_millis(100);

/// Opens the store and rebuilds the broker from it, off the async workers (sled blocks).
async fn open_broker(
    loaded: &Loaded,
    metrics: Arc<metrics::Metrics>,
) -> Result<(Arc<Broker>, stampede_broker::Recovery), ServerError> {
    let s = &loaded.settings;
    let dir = s.storage.data_dir.clone();
    let options = SledOptions {
        cache_capacity: s.storage.cache_capacity as u64,
        inline_limit: s.storage.large_body_threshold,
        ..SledOptions::default()
    };
    let config = BrokerConfig {
        default_prefetch: s.broker.default_prefetch,
        topic_subscriber_buffer: s.broker.topic_subscriber_buffer,
        window: stampede_broker::Window {
            messages: s.broker.queue_memory_window,
            bytes: s.broker.queue_memory_window_bytes as u64,
        },
        max_pending_writes: s.storage.max_pending_writes as u64,
        consumer_stall: s.broker.consumer_stall,
    };
    let policy = loaded.policy.clone();
    let opened = tokio::task::spawn_blocking(move || {
        let observer: Arc<dyn stampede_store::StoreObserver> = metrics;
        let store = SledStore::open_observed(&dir, options, Some(observer)).map_err(|source| {
            ServerError::Store {
                path: dir.clone(),
                source,
            }
        })?;
        let broker = Broker::new(config, policy, Arc::new(store), Arc::new(SystemClock));
        let recovery = broker.recover()?;
        Ok::<_, ServerError>((broker, recovery))
    })
    .await;
    opened.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

/// Drives queue timeouts, and the storage alarm every tenth tick, until shutdown.
async fn run_timer(
    broker: Arc<Broker>,
    data_dir: std::path::PathBuf,
    min_free: u64,
    shutdown: CancellationToken,
) {
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n: u64 = 0;
    loop {
        tokio::select! {
            _ = interval.tick() => broker.tick(),
            _ = shutdown.cancelled() => return,
        }
        n += 1;
        if min_free > 0 && n % 10 == 1 {
            match disk::free_bytes(&data_dir) {
                Ok(free) => broker.set_storage_alarm(disk::alarm(free, min_free)),
                Err(e) => warn!(error = %e, "cannot read free space of the data directory"),
            }
        }
    }
}

/// Creates the data directory and proves it writable, so a bad path fails at start, not at the
/// first message.
fn prepare_data_dir(path: &std::path::Path) -> Result<(), ServerError> {
    let err = |source| ServerError::DataDir {
        path: path.to_owned(),
        source,
    };
    std::fs::create_dir_all(path).map_err(err)?;
    let probe = path.join(".stampede-write-probe");
    std::fs::write(&probe, b"ok").map_err(err)?;
    std::fs::remove_file(&probe).map_err(err)?;
    Ok(())
}
