//! [`ConnectionHub`]: what every client connection shares, whatever listener and transport it came
//! in by — the broker, the per-connection settings, the task tracker that graceful shutdown
//! drains, and the shutdown token each connection watches. A listener only accepts (and holds its
//! own cap on open connections); it hands the hub a future that yields the connection's stream (a
//! TCP socket as it is, a TLS session once its handshake is done, with the login its client
//! certificate names), and the handshake runs inside the connection's own task, under the connect
//! timeout, so one slow client cannot stall the accept loop.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use stampede_broker::Broker;
use stampede_proto::Limits;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn, Instrument};

use crate::auth::{Authenticator, ListenerAuth};
use crate::connection::{self, ConnError, FrameSink, StreamSink};
use crate::metrics::Metrics;

/// What a connection knows of the listener it came in by.
#[derive(Debug, Clone, Copy)]
pub struct Profile {
    /// Its label in metrics and logs.
    pub name: &'static str,
    /// `tcp`, `tls` or `ws`, as the admin API lists connections.
    pub transport: &'static str,
    pub auth: ListenerAuth,
    /// Refuse what OCI Queue refuses (transactions, custom headers, non-OCID destinations).
    pub oci_strict: bool,
}

/// Per-connection settings derived from the configuration once.
#[derive(Debug, Clone)]
pub struct ConnectionSettings {
    /// Frame limits once a connection is established.
    pub limits: Limits,
    /// The largest frame accepted before CONNECT is done (the CONNECT frame itself).
    pub max_connect_frame: usize,
    /// How long a new connection may take to complete its transport handshake and send CONNECT.
    pub connect_timeout: Duration,
    /// Offered heart-beat interval (0 = none).
    pub heartbeat: Duration,
    /// How long a closing connection may take to flush its last frames.
    pub close_timeout: Duration,
    pub metrics: Arc<Metrics>,
    pub auth: Arc<Authenticator>,
}

/// Shared by every listener; cheap to clone.
#[derive(Clone)]
pub struct ConnectionHub {
    inner: Arc<Inner>,
}

struct Inner {
    broker: Arc<Broker>,
    settings: Arc<ConnectionSettings>,
    /// Every connection task, so shutdown can wait for them to say goodbye.
    tracker: TaskTracker,
    /// Cancelled at shutdown: connections send "broker shutting down" and close.
    shutdown: CancellationToken,
    /// Every established connection by session id, for the admin API.
    open: DashMap<u64, Arc<Registered>>,
}

/// An established connection as the admin API lists it.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    /// The CONNECTED `session` number.
    pub id: u64,
    pub peer: SocketAddr,
    pub listener: &'static str,
    pub transport: &'static str,
    pub principal: String,
    pub version: String,
    pub client_id: Option<String>,
    pub connected_at_ms: u64,
    /// What the broker sends and expects, in ms (0: none).
    pub heartbeat_ms: (u64, u64),
}

/// One of a connection's subscriptions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionInfo {
    pub id: String,
    pub destination: String,
    pub ack: &'static str,
}

/// The subscriptions a session keeps up to date for the listing (changed on SUBSCRIBE and
/// UNSUBSCRIBE only, never per message).
pub type SubscriptionList = Arc<parking_lot::Mutex<Vec<SubscriptionInfo>>>;

struct Registered {
    info: ConnectionInfo,
    subscriptions: SubscriptionList,
    /// Cancelled by an operator closing this connection.
    close: CancellationToken,
}

/// A connection's place in the hub's listing, removed when dropped.
pub(crate) struct Registration {
    hub: ConnectionHub,
    id: u64,
    close: CancellationToken,
}

impl Registration {
    /// Resolves when an operator closes the connection.
    pub(crate) async fn closed(&self) {
        self.close.cancelled().await
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.hub.inner.open.remove(&self.id);
    }
}

impl ConnectionHub {
    pub fn new(
        broker: Arc<Broker>,
        settings: ConnectionSettings,
        shutdown: CancellationToken,
    ) -> ConnectionHub {
        ConnectionHub {
            inner: Arc::new(Inner {
                broker,
                settings: Arc::new(settings),
                tracker: TaskTracker::new(),
                shutdown,
                open: DashMap::new(),
            }),
        }
    }

    pub fn shutdown(&self) -> &CancellationToken {
        &self.inner.shutdown
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.settings.metrics
    }

    /// Serves one client on its own task: `connect` yields its stream and the login its
    /// certificate carries (it runs in that task, under the connect timeout). `permit` is the
    /// listener's room for one more connection: without it the client gets an ERROR and is closed.
    pub fn spawn<F, S>(
        &self,
        connect: F,
        peer: SocketAddr,
        listener: Profile,
        permit: Option<OwnedSemaphorePermit>,
    ) where
        F: Future<Output = std::io::Result<(S, Option<String>)>> + Send + 'static,
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let transport = async move {
            let (stream, cert_login) = connect.await?;
            let (rd, wr) = tokio::io::split(stream);
            Ok(Transport {
                rd,
                sink: StreamSink::new(wr),
                cert_login,
            })
        };
        self.spawn_transport(transport, peer, listener, permit);
    }

    /// [`ConnectionHub::spawn`] for a transport that is not one byte stream both ways (a
    /// WebSocket: bytes in, one message per frame out).
    pub fn spawn_transport<F, R, K>(
        &self,
        connect: F,
        peer: SocketAddr,
        listener: Profile,
        permit: Option<OwnedSemaphorePermit>,
    ) where
        F: Future<Output = std::io::Result<Transport<R, K>>> + Send + 'static,
        R: AsyncRead + Unpin + Send + 'static,
        K: FrameSink + 'static,
    {
        let inner = &self.inner;
        inner
            .settings
            .metrics
            .connections_total
            .with_label_values(&[listener.name])
            .inc();
        let hub = self.clone();
        // One span per connection: every event inside carries the peer, and the session once
        // CONNECT has made one.
        let span = tracing::info_span!(
            "connection",
            %peer,
            listener = listener.name,
            session = tracing::field::Empty
        );
        inner.tracker.spawn(
            async move {
                // The transport handshake and the CONNECT frame share one deadline.
                let deadline = tokio::time::Instant::now() + hub.inner.settings.connect_timeout;
                let failed = |reason| {
                    let failures = &hub.metrics().handshake_failures;
                    failures.with_label_values(&[listener.name, reason]).inc();
                };
                let t = match tokio::time::timeout_at(deadline, connect).await {
                    Ok(Ok(connected)) => connected,
                    Ok(Err(e)) => {
                        failed("error");
                        return warn!(error = %e, "transport handshake failed");
                    }
                    Err(_) => {
                        failed("timeout");
                        return warn!("transport handshake not done within the connect timeout");
                    }
                };
                let Some(permit) = permit else {
                    warn!("connection limit reached");
                    return refuse(t.sink, hub.metrics()).await;
                };
                connection::serve_parts(t.rd, t.sink, peer, listener, t.cert_login, &hub, deadline)
                    .await;
                drop(permit);
            }
            .instrument(span),
        );
    }

    pub(crate) fn broker(&self) -> &Arc<Broker> {
        &self.inner.broker
    }

    pub(crate) fn settings(&self) -> &Arc<ConnectionSettings> {
        &self.inner.settings
    }

    /// Lists `info`'s connection until the returned registration is dropped.
    pub(crate) fn register(
        &self,
        info: ConnectionInfo,
        subscriptions: SubscriptionList,
    ) -> Registration {
        let close = CancellationToken::new();
        let id = info.id;
        self.inner.open.insert(
            id,
            Arc::new(Registered {
                info,
                subscriptions,
                close: close.clone(),
            }),
        );
        Registration {
            hub: self.clone(),
            id,
            close,
        }
    }

    /// Every established connection with its subscriptions, by id.
    pub fn connections(&self) -> Vec<(ConnectionInfo, Vec<SubscriptionInfo>)> {
        let mut out: Vec<_> = self
            .inner
            .open
            .iter()
            .map(|e| (e.info.clone(), e.subscriptions.lock().clone()))
            .collect();
        out.sort_by_key(|(i, _)| i.id);
        out
    }

    /// Closes connection `id` (its client gets an ERROR saying an operator closed it); false
    /// when there is no such connection.
    pub fn close(&self, id: u64) -> bool {
        let Some(r) = self.inner.open.get(&id).map(|e| e.value().clone()) else {
            return false;
        };
        info!(session = id, peer = %r.info.peer, "connection closed by an operator");
        r.close.cancel();
        true
    }

    /// Waits up to `grace` for every connection to close after shutdown was signalled.
    pub async fn drain(&self, grace: Duration) {
        let tracker = &self.inner.tracker;
        tracker.close();
        if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
            warn!(?grace, "connections still open after the grace period");
        }
    }
}

/// Tells a client over the connection cap why it is closed.
async fn refuse<K: FrameSink>(mut sink: K, metrics: &Metrics) {
    let refused = ConnError::Refused;
    let (kind, frame) = refused.to_error_frame(None);
    metrics.error(kind);
    let version = stampede_proto::Version::V1_0;
    let body = &frame.body;
    stampede_proto::encode_head(
        frame.command,
        frame.headers.iter(),
        body.len(),
        version,
        sink.head(),
    );
    sink.end_frame(body);
    let said = async {
        sink.flush(true).await?;
        sink.shutdown().await
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), said).await;
}

/// A client's transport once its handshake is done: what its bytes are read from, where its
/// frames go, and the login its client certificate names.
pub struct Transport<R, K> {
    pub rd: R,
    pub sink: K,
    pub cert_login: Option<String>,
}
