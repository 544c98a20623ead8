//! The HTTP listener (`listeners.http`, default 0.0.0.0:8161): `/metrics`, `/healthz`, `/readyz`,
//! the OCI Queue REST API under `/20210201` (`oci_rest`), the admin API under `/api` (`admin`,
//! `backup`), STOMP over WebSocket at `/ws` (`ws`) and the web console at `/` (`console`). It is
//! one axum router, each part merging its own routes. It starts before recovery, so `/readyz` can
//! say "not yet" while the store is being read.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use stampede_broker::Broker;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::metrics::Metrics;

/// What the HTTP handlers read.
pub struct HttpState {
    metrics: Arc<Metrics>,
    /// Set once recovery has finished.
    broker: OnceLock<Arc<Broker>>,
    /// Set once the STOMP listeners accept connections.
    stomp_ready: AtomicBool,
    /// Set once recovery has finished, with the broker.
    hub: OnceLock<crate::hub::ConnectionHub>,
}

impl HttpState {
    pub fn new(metrics: Arc<Metrics>) -> HttpState {
        HttpState {
            metrics,
            broker: OnceLock::new(),
            stomp_ready: AtomicBool::new(false),
            hub: OnceLock::new(),
        }
    }

    pub fn set_broker(&self, broker: Arc<Broker>) {
        let _ = self.broker.set(broker);
    }

    /// The broker, once recovery has finished.
    pub fn broker(&self) -> Option<&Arc<Broker>> {
        self.broker.get()
    }

    pub fn set_hub(&self, hub: crate::hub::ConnectionHub) {
        let _ = self.hub.set(hub);
    }

    /// Every client connection, once recovery has finished.
    pub fn hub(&self) -> Option<&crate::hub::ConnectionHub> {
        self.hub.get()
    }

    pub fn set_stomp_ready(&self) {
        self.stomp_ready.store(true, Ordering::Release);
    }
}

/// The state of the routes beside the listener's own.
pub struct Routes {
    pub oci: Arc<crate::oci_rest::OciState>,
    pub backup: Arc<crate::backup::BackupState>,
    pub admin: Arc<crate::admin::AdminState>,
    pub ws: Arc<crate::ws::WsState>,
}

/// Serves HTTP on `listener` until `shutdown` is cancelled.
pub async fn serve(
    listener: TcpListener,
    state: Arc<HttpState>,
    routes: Routes,
    shutdown: CancellationToken,
) {
    let app = router(state)
        .merge(crate::oci_rest::router(routes.oci))
        .merge(crate::backup::router(routes.backup))
        .merge(crate::admin::router(routes.admin))
        .merge(crate::ws::router(routes.ws))
        .merge(crate::console::router());
    serve_app(listener, app, shutdown, "HTTP").await;
}

/// Serves `app` on `listener` until `shutdown` is cancelled; `what` names the listener in the
/// log line of a failure.
pub(crate) async fn serve_app(
    listener: TcpListener,
    app: Router,
    shutdown: CancellationToken,
    what: &'static str,
) {
    // The peer address is what failed logins are slowed by.
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await;
    if let Err(e) = served {
        warn!(error = %e, "{what} listener failed");
    }
}

fn router(state: Arc<HttpState>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
}

async fn metrics(State(s): State<Arc<HttpState>>) -> impl IntoResponse {
    let body = tokio::task::spawn_blocking(move || s.metrics.render(s.broker.get().map(|b| &**b)))
        .await
        .unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}

/// The process is alive and serving HTTP.
async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready to take traffic: recovery finished, listeners accepting, store writable.
async fn readyz(State(s): State<Arc<HttpState>>) -> (StatusCode, String) {
    let Some(broker) = s.broker.get() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "recovering the store\n".into(),
        );
    };
    if !s.stomp_ready.load(Ordering::Acquire) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "STOMP listener not bound yet\n".into(),
        );
    }
    if let Some(reason) = broker.store_failure() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("store not writable: {reason}\n"),
        );
    }
    (StatusCode::OK, "ready\n".into())
}
