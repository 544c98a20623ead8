//! The TCP acceptor: hands each accepted socket to its own connection task, caps open connections
//! with a semaphore whose permit lives as long as the task, backs off on accept errors, and on
//! shutdown stops accepting first, then gives connections the grace period to close.

use std::sync::Arc;
use std::time::Duration;

use stampede_broker::Broker;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn, Instrument};

use crate::connection::{self, error_frame};
use crate::ConnectionSettings;

pub struct Listener {
    pub listener: TcpListener,
    pub broker: Arc<Broker>,
    pub settings: Arc<ConnectionSettings>,
    /// Permits = connections still allowed; each connection task holds one until it ends.
    pub limit: Arc<Semaphore>,
    pub tracker: TaskTracker,
}

impl Listener {
    /// Accepts until `shutdown` is cancelled.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut backoff = Duration::from_millis(10);
        loop {
            let accepted = tokio::select! {
                r = self.listener.accept() => r,
                _ = shutdown.cancelled() => break,
            };
            let (socket, peer) = match accepted {
                Ok(a) => {
                    backoff = Duration::from_millis(10);
                    a
                }
                Err(e) => {
                    // Typically EMFILE: wait for connections to end rather than spin.
                    error!(error = %e, "accept failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            };
            let _ = socket.set_nodelay(true);
            self.settings
                .metrics
                .connections_total
                .with_label_values(&["stomp"])
                .inc();
            let Ok(permit) = self.limit.clone().try_acquire_owned() else {
                warn!(%peer, "connection limit reached");
                self.settings
                    .metrics
                    .error(crate::metrics::ErrorKind::Refused);
                self.tracker.spawn(refuse(socket));
                continue;
            };
            let broker = self.broker.clone();
            let settings = self.settings.clone();
            let token = shutdown.clone();
            // One span per connection: every event inside carries the peer, and the session
            // once CONNECT has made one.
            let span = tracing::info_span!(
                "connection",
                %peer,
                session = tracing::field::Empty
            );
            self.tracker.spawn(
                async move {
                    connection::serve(socket, peer.to_string(), broker, settings, token).await;
                    drop(permit);
                }
                .instrument(span),
            );
        }
        info!("stopped accepting connections");
    }
}

async fn refuse(mut socket: tokio::net::TcpStream) {
    let mut buf = bytes::BytesMut::new();
    let frame = error_frame("too many connections", None);
    stampede_proto::encode(&frame, stampede_proto::Version::V1_0, &mut buf);
    let _ = tokio::time::timeout(Duration::from_secs(1), socket.write_all(&buf)).await;
}
