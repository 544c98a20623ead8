//! The accept loop of one STOMP listener: takes the listener's room for one more connection, hands
//! the socket to the connection hub (with the TLS handshake to run first on a TLS listener), backs
//! off on accept errors (typically EMFILE) instead of spinning, and on shutdown stops accepting
//! first. Other transports (WebSocket) are other accept loops over the same hub.

use std::time::Duration;

use tracing::{error, info};

use crate::hub::ConnectionHub;
use crate::tls::certificate_login;
use crate::StompListener;

/// Accepts on `l` until the hub's shutdown token is cancelled.
pub async fn run(l: StompListener, hub: ConnectionHub) {
    let mut backoff = Duration::from_millis(10);
    let name = l.profile.name;
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
                error!(listener = name, error = %e, "accept failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let _ = socket.set_nodelay(true);
        let permit = l.permits.clone().try_acquire_owned().ok();
        match &l.tls {
            None => hub.spawn(
                std::future::ready(Ok((socket, None))),
                peer,
                l.profile,
                permit,
            ),
            Some(tls) => {
                let (acceptor, cert_login) = (tls.acceptor(), tls.cert_login());
                let handshake = async move {
                    let stream = acceptor.accept(socket).await?;
                    let login = cert_login
                        .then(|| certificate_login(stream.get_ref().1))
                        .flatten();
                    Ok((stream, login))
                };
                hub.spawn(handshake, peer, l.profile, permit);
            }
        }
    }
    info!(listener = name, "stopped accepting connections");
}
