//! The Stampede server: wires configuration, the broker core and the listeners together, and owns
//! process lifecycle (recovery before accepting, graceful shutdown). `main.rs` only parses the CLI
//! and calls [`run`].

pub mod config;
mod connection;
mod listener;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use stampede_broker::{Broker, BrokerConfig, SystemClock};
use stampede_proto::Limits;
use stampede_store::MemoryStore;
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
}

#[derive(Debug, Error)]
pub enum ServerError {
    #[error("cannot bind STOMP listener on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    // Names the key, as every start-up configuration error does (BEHAVIOUR.md "Ports and process").
    #[error("configuration key `storage.data_dir` (or --data-dir): {path} must be a writable directory: {source}")]
    DataDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("recovery failed: {0}")]
    Recovery(#[from] stampede_broker::BrokerError),
}

/// Runs the broker until `shutdown` completes, then closes connections within the grace period.
pub async fn run(loaded: Loaded, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
    let s = &loaded.settings;
    let started = Instant::now();
    prepare_data_dir(&s.storage.data_dir)?;
    warn!(
        data_dir = %s.storage.data_dir.display(),
        "storage is in memory in this version: messages do not survive a restart"
    );
    let store = Arc::new(MemoryStore::new());
    let broker = Broker::new(
        BrokerConfig {
            default_prefetch: s.broker.default_prefetch,
            topic_subscriber_buffer: s.broker.topic_subscriber_buffer,
        },
        store,
        Arc::new(SystemClock),
    );
    let recovery = broker.recover()?;
    info!(
        queues = recovery.queues,
        messages = recovery.messages,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "recovery finished"
    );
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
    });
    let token = CancellationToken::new();
    let tracker = TaskTracker::new();
    let acceptor = listener::Listener {
        listener,
        broker: broker.clone(),
        settings,
        limit: Arc::new(Semaphore::new(s.listeners.stomp.max_connections)),
        tracker: tracker.clone(),
    };
    let accept_task = tokio::spawn(acceptor.run(token.clone()));
    info!(stomp = %bound, startup_ms = started.elapsed().as_millis() as u64, "ready");

    shutdown.await;
    info!("shutting down");
    token.cancel();
    let _ = accept_task.await;
    tracker.close();
    if tokio::time::timeout(s.shutdown.grace, tracker.wait())
        .await
        .is_err()
    {
        warn!(grace = ?s.shutdown.grace, "connections still open after the grace period");
    }
    broker
        .flush()
        .await
        .map_err(stampede_broker::BrokerError::from)?;
    info!("stopped");
    Ok(())
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
