//! The Stampede server: wires configuration, the store, the broker core and the listeners
//! together, and owns the process lifecycle — recovery before serving, graceful shutdown.
//!
//! The shape is mini-redis's: the caller binds the listeners ([`bind`] does it from the
//! configuration) and hands them to [`run`] with a shutdown future, so tests start a server in
//! process on sockets they bound themselves. Every STOMP listener, whatever its transport, hands
//! its connections to one [`hub::ConnectionHub`], which holds what connections share (the broker,
//! the connection cap, the task tracker, the shutdown token). `main.rs` only parses the command
//! line and calls these.

mod admin;
pub mod auth;
pub mod backup;
pub mod client;
pub mod config;
mod connection;
mod console;
mod disk;
mod http;
mod hub;
mod listener;
mod metrics;
mod oci_rest;
mod rabbitmq;
mod store;
mod tls;
mod ws;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use stampede_broker::{Broker, BrokerConfig, SystemClock};
use stampede_proto::Limits;
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::{Backend, Loaded, Settings};
pub use hub::{ConnectionSettings, Profile};

#[derive(Debug, Error)]
pub enum ServerError {
    #[error("cannot bind {key} on {addr}: {source}")]
    Bind {
        key: std::borrow::Cow<'static, str>,
        addr: SocketAddr,
        source: std::io::Error,
    },
    // Names the key, as every start-up configuration error does.
    #[error("data directory {path} (configuration key `storage.data_dir`, or --data-dir) is not usable: {source}")]
    DataDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("recovery failed: {0}")]
    Recovery(#[from] stampede_broker::BrokerError),
    #[error("listeners.{listener}: {source}")]
    Tls {
        listener: &'static str,
        source: tls::TlsError,
    },
    #[error("cannot open the store in {path}: {source}")]
    Store {
        path: std::path::PathBuf,
        source: stampede_store::StoreError,
    },
}

/// A STOMP listener: its socket, what its connections know of it (the name they carry in metrics
/// and logs, its auth settings), its TLS certificates if it is TLS, and its connection cap.
pub struct StompListener {
    pub profile: hub::Profile,
    pub listener: TcpListener,
    tls: Option<Arc<tls::Tls>>,
    permits: Arc<Semaphore>,
}

/// Open connections a listener allows unless configured otherwise.
const MAX_CONNECTIONS: usize = 50_000;

impl StompListener {
    /// A plain-TCP listener with the `[auth]` section's settings.
    pub fn plain(name: &'static str, listener: TcpListener) -> StompListener {
        let auth = auth::ListenerAuth::default();
        StompListener {
            profile: hub::Profile {
                name,
                transport: "tcp",
                auth,
                oci_strict: false,
            },
            listener,
            tls: None,
            permits: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
        }
    }
}

/// Every socket the server serves.
pub struct Listeners {
    pub stomp: Vec<StompListener>,
    pub http: TcpListener,
    /// RabbitMQ's management API, when configured.
    pub rabbitmq_management: Option<TcpListener>,
}

/// Binds the listeners the configuration names and loads their certificates.
pub async fn bind(loaded: &Loaded) -> Result<Listeners, ServerError> {
    let tcp = |key: String, addr| async move {
        TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Bind {
                key: key.into(),
                addr,
                source,
            })
    };
    let mut stomp = Vec::new();
    for spec in &loaded.stomp {
        // Listener names label metrics for the process' life; a handful, leaked once.
        let name: &'static str = Box::leak(spec.name.clone().into_boxed_str());
        let tls = match &spec.tls {
            None => None,
            Some(t) => {
                let dir = &loaded.settings.storage.data_dir;
                let loaded = tls::Tls::load(name, t.clone(), dir).await;
                Some(loaded.map_err(|source| ServerError::Tls {
                    listener: name,
                    source,
                })?)
            }
        };
        stomp.push(StompListener {
            profile: hub::Profile {
                name,
                transport: if tls.is_some() { "tls" } else { "tcp" },
                auth: spec.auth,
                oci_strict: spec.oci_strict,
            },
            listener: tcp(format!("listeners.{name}.bind"), spec.addr).await?,
            tls,
            permits: Arc::new(Semaphore::new(spec.max_connections)),
        });
    }
    let rabbitmq_management = match loaded.rabbitmq_management_addr {
        Some(addr) => Some(tcp("listeners.rabbitmq_management.bind".into(), addr).await?),
        None => None,
    };
    Ok(Listeners {
        stomp,
        http: tcp("listeners.http.bind".into(), loaded.http_addr).await?,
        rabbitmq_management,
    })
}

/// Runs the broker on `listeners` until `shutdown` completes, then closes connections within the
/// grace period. HTTP answers from the start (`/readyz` says "not yet" during recovery); STOMP
/// connections are accepted once recovery is done.
pub async fn run(
    loaded: Loaded,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    let s = &loaded.settings;
    let started = Instant::now();
    let token = CancellationToken::new();
    // Watched from the start: SIGHUP's default action ends the process, and a long recovery is
    // when log rotation or an operator's reload could send one.
    let hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup());
    let data_dir = (s.storage.backend == Backend::Sled).then(|| s.storage.data_dir.clone());
    let metrics = Arc::new(metrics::Metrics::new(
        s.metrics.max_queue_series,
        data_dir.clone(),
    ));
    let http_state = Arc::new(http::HttpState::new(metrics.clone()));
    let authenticator = Arc::new(auth::Authenticator::new(loaded.auth.clone()));
    let oci = Arc::new(oci_rest::OciState::new(
        http_state.clone(),
        loaded.oci.clone(),
        loaded.auth.mode,
        authenticator.clone(),
        token.clone(),
    ));
    let http_addr = local_addr(&listeners.http, "listeners.http.bind")?;
    // The HTTP API sees and changes every queue: if any STOMP listener asks for logins, so does
    // it (a broker made "users" per listener should not serve peeks and purges to anyone).
    let api_mode = if listeners
        .stomp
        .iter()
        .any(|l| l.profile.auth.mode == Some(auth::Mode::Users))
    {
        auth::Mode::Users
    } else {
        loaded.auth.mode
    };
    let spool = data_dir.clone().unwrap_or_else(std::env::temp_dir);
    let backup = Arc::new(backup::BackupState::new(
        http_state.clone(),
        api_mode,
        authenticator.clone(),
        spool,
        s.storage.min_free_space as u64,
    ));
    let admin = Arc::new(admin::AdminState::new(
        http_state.clone(),
        api_mode,
        authenticator.clone(),
    ));
    let rates = admin.rates().clone();
    let rabbitmq_task = match listeners.rabbitmq_management {
        Some(l) => {
            let addr = local_addr(&l, "listeners.rabbitmq_management.bind")?;
            info!(listener = "rabbitmq_management", addr = %addr, "listening");
            Some(tokio::spawn(rabbitmq::serve(
                l,
                admin.clone(),
                token.clone(),
            )))
        }
        None => None,
    };
    let ws = Arc::new(ws::WsState::default());
    let http_task = tokio::spawn(http::serve(
        listeners.http,
        http_state.clone(),
        http::Routes {
            oci,
            backup,
            admin,
            ws: ws.clone(),
        },
        token.clone(),
    ));
    info!(http = %http_addr, backend = ?s.storage.backend, "HTTP listening; recovering the store");
    let broker = open_broker(s, loaded.policy.clone(), metrics.clone()).await?;
    metrics
        .recovery_seconds
        .set(started.elapsed().as_secs_f64());
    http_state.set_broker(broker.clone());
    let hub = hub::ConnectionHub::new(
        broker.clone(),
        connection_settings(s, authenticator, metrics.clone()),
        token.clone(),
    );
    http_state.set_hub(hub.clone());
    let sampler = tokio::spawn(rates.run(broker.clone(), token.clone()));
    let mut accepting = Vec::new();
    let mut addrs = Vec::new();
    let mut tls = Vec::new();
    for l in listeners.stomp {
        let addr = local_addr(&l.listener, "listeners.stomp.bind")?;
        let name = l.profile.name;
        if name == "stomp" {
            let (profile, permits) = (l.profile, l.permits.clone());
            ws.set_ready(hub.clone(), profile, permits, s.protocol.max_frame_size);
        }
        info!(listener = name, addr = %addr, tls = l.tls.is_some(), "listening");
        addrs.push((name, addr));
        tls.extend(l.tls.clone());
        accepting.push(tokio::spawn(listener::run(l, hub.clone())));
    }
    let reloads = tokio::spawn(reload_on_hangup(tls, hangups, token.clone()));
    let timer = tokio::spawn(run_timer(
        broker.clone(),
        data_dir,
        s.storage.min_free_space as u64,
        token.clone(),
    ));
    http_state.set_stomp_ready();
    let stomp = addrs
        .first()
        .map(|(_, a)| a.to_string())
        .unwrap_or_default();
    info!(
        stomp = %stomp,
        http = %http_addr,
        listeners = ?addrs,
        startup_ms = started.elapsed().as_millis() as u64,
        "ready"
    );

    shutdown.await;
    info!("shutting down");
    token.cancel();
    for task in accepting {
        let _ = task.await;
    }
    let _ = timer.await;
    let _ = sampler.await;
    let _ = reloads.await;
    let _ = http_task.await;
    if let Some(task) = rabbitmq_task {
        let _ = task.await;
    }
    hub.drain(s.shutdown.grace).await;
    // A store that failed earlier may never finish a flush; do not let it hold the exit.
    match tokio::time::timeout(s.shutdown.grace, broker.flush()).await {
        Ok(result) => result.map_err(stampede_broker::BrokerError::from)?,
        Err(_) => warn!("store did not finish flushing within the grace period"),
    }
    info!("stopped");
    Ok(())
}

fn local_addr(l: &TcpListener, key: &'static str) -> Result<SocketAddr, ServerError> {
    l.local_addr().map_err(|source| ServerError::Bind {
        key: key.into(),
        addr: SocketAddr::from(([0, 0, 0, 0], 0)),
        source,
    })
}

/// Per-connection settings, derived from the configuration once.
fn connection_settings(
    s: &Settings,
    auth: Arc<auth::Authenticator>,
    metrics: Arc<metrics::Metrics>,
) -> ConnectionSettings {
    let p = &s.protocol;
    ConnectionSettings {
        limits: Limits {
            max_frame_size: p.max_frame_size,
            max_headers: p.max_headers,
            max_header_line: p.max_header_line,
        },
        max_connect_frame: p.max_connect_frame,
        connect_timeout: p.connect_timeout,
        heartbeat: p.heartbeat,
        close_timeout: s.shutdown.grace.min(Duration::from_secs(5)),
        metrics,
        auth,
    }
}

/// Opens the store and rebuilds the broker from it, off the async workers (recovery blocks).
async fn open_broker(
    s: &Settings,
    policy: stampede_broker::QueuePolicy,
    metrics: Arc<metrics::Metrics>,
) -> Result<Arc<Broker>, ServerError> {
    let started = Instant::now();
    let store = store::open(s, metrics).await?;
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
    let broker = Broker::new(config, policy, store, Arc::new(SystemClock));
    let recovering = broker.clone();
    let recovery = tokio::task::spawn_blocking(move || recovering.recover())
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))?;
    info!(
        queues = recovery.queues,
        messages = recovery.messages,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "recovery finished"
    );
    Ok(broker)
}

/// SIGHUP reloads every TLS listener's certificates (new handshakes use them; open connections
/// keep theirs).
async fn reload_on_hangup(
    tls: Vec<Arc<tls::Tls>>,
    hangups: std::io::Result<tokio::signal::unix::Signal>,
    shutdown: CancellationToken,
) {
    let mut hangups = match hangups {
        Ok(s) => s,
        Err(e) => return warn!(error = %e, "cannot watch SIGHUP; certificates will not reload"),
    };
    loop {
        tokio::select! {
            Some(()) = hangups.recv() => {}
            _ = shutdown.cancelled() => return,
        }
        info!(listeners = tls.len(), "SIGHUP: reloading TLS certificates");
        for t in &tls {
            t.reload().await;
        }
    }
}

/// How often visibility deadlines, `expires` times and retention are checked: the precision of
/// every queue timeout. Each tick visits only the queues with something due.
const TICK: Duration = Duration::from_millis(100);

/// Drives queue timeouts, and the storage alarm every tenth tick, until shutdown.
async fn run_timer(
    broker: Arc<Broker>,
    data_dir: Option<std::path::PathBuf>,
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
        let Some(dir) = data_dir.as_ref().filter(|_| min_free > 0 && n % 10 == 1) else {
            continue;
        };
        match disk::free_bytes(dir) {
            Ok(free) => broker.set_storage_alarm(disk::alarm(free, min_free)),
            Err(e) => warn!(error = %e, "cannot read free space of the data directory"),
        }
    }
}
