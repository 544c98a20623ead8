//! The TCP accept loop of one STOMP listener: hands each accepted socket to the connection hub,
//! backs off on accept errors (typically EMFILE) instead of spinning, and on shutdown stops
//! accepting first. Other transports (TLS, WebSocket) are other accept loops over the same hub.

use std::time::Duration;

use tracing::{error, info};

use crate::hub::ConnectionHub;
use crate::StompListener;

/// Accepts on `l` until the hub's shutdown token is cancelled.
pub async fn run(l: StompListener, hub: ConnectionHub) {
    let mut backoff = Duration::from_millis(10);
    loop {
        let accepted = tokio::select! {
            r = l.listener.accept() => r,
            _ = hub.shutdown().cancelled() => break,
        };
        let (socket, peer) = match accepted {
            Ok(a) => {
                backoff = Duration::from_millis(10);
                a
            }
            Err(e) => {
                // Wait for connections to end rather than spin.
                error!(listener = l.profile.name, error = %e, "accept failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let _ = socket.set_nodelay(true);
        hub.spawn(std::future::ready(Ok(socket)), peer, l.profile);
    }
    info!(listener = l.profile.name, "stopped accepting connections");
}
