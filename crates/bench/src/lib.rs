//! `stampede-bench`: a load tool that speaks plain STOMP 1.1/1.2 to any broker (Stampede,
//! RabbitMQ, ActiveMQ), so the numbers of all three come from one client.
//!
//! A run opens one tokio task per connection: consumers subscribe, producers send stamped
//! messages ([`payload`]), consumers record end-to-end latency in HDR histograms ([`stats`]) and
//! every delivery in a tracker ([`accounting`]) that proves nothing was lost or duplicated. The
//! binary is a thin CLI over [`run`], which the smoke test calls directly.

pub mod accounting;
pub mod config;
mod conn;
mod consumer;
mod error;
mod handshake;
mod idle;
mod load;
pub mod oci;
mod pacer;
pub mod payload;
mod producer;
mod progress;
pub mod report;
pub mod reqrep;
mod scan;
pub mod stats;
mod ws;

use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;
use std::time::Duration;

use rustls::pki_types::ServerName;

pub use config::{AckArg, Config, Stop};
pub use conn::ConnectOptions;
pub use error::BenchError;
pub(crate) use load::Plan;
pub use report::{HandshakeReport, IdleReport, LoadReport, Report};
pub use reqrep::RequestReplyReport;

/// How long `--idle-connections` holds its sessions when no `--duration` is given.
const DEFAULT_IDLE_HOLD: Duration = Duration::from_secs(10);

/// Runs one benchmark as configured and returns its report. Errors are for runs that could not
/// start (bad flags, unresolvable address); failures during a run are listed in the report, next
/// to whatever was measured until then.
pub async fn run(config: Config) -> Result<Report, BenchError> {
    config.validate()?;
    let connect = ConnectOptions {
        addr: resolve(&config.url).await?,
        login: config.login.clone(),
        passcode: config.passcode.clone(),
        host: config.vhost.clone(),
        timeout: Config::secs(config.timeout),
        tls: match &config.tls_ca {
            None => None,
            Some(ca) => Some(tls_client(ca, config.tls_name.as_deref(), &config.url)?),
        },
        ws: config.ws.is_some().then(|| config.shown_url()),
    };
    if config.handshakes {
        let hold = config.duration.map_or(DEFAULT_IDLE_HOLD, Config::secs);
        let report = handshake::run(connect, &config.shown_url(), config.producers, hold).await;
        return Ok(Report::Handshakes(report));
    }
    if let Some(n) = config.idle_connections {
        let hold = config.duration.map_or(DEFAULT_IDLE_HOLD, Config::secs);
        return Ok(Report::Idle(
            idle::run_idle(connect, &config.shown_url(), n, hold).await,
        ));
    }
    if config.request_reply {
        return Ok(Report::RequestReply(Box::new(
            reqrep::run_request_reply(&config, connect).await?,
        )));
    }
    Ok(Report::Load(Box::new(
        load::run_load(&config, connect).await?,
    )))
}

/// A TLS client trusting the certificates in `ca`, checking the server's name `name` (default: the
/// host of `url`).
fn tls_client(
    ca: &std::path::Path,
    name: Option<&str>,
    url: &str,
) -> Result<(std::sync::Arc<rustls::ClientConfig>, ServerName<'static>), BenchError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let bad = |m: String| BenchError::Config(m);
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(ca)
        .map_err(|e| bad(format!("--tls-ca {}: {e}", ca.display())))?;
    for c in certs {
        let c = c.map_err(|e| bad(format!("--tls-ca {}: {e}", ca.display())))?;
        roots
            .add(c)
            .map_err(|e| bad(format!("--tls-ca {}: {e}", ca.display())))?;
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let host = name.unwrap_or_else(|| url.rsplit_once(':').map_or(url, |(h, _)| h));
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let server = ServerName::try_from(host.to_owned())
        .map_err(|_| bad(format!("{host:?} is not a TLS server name")))?;
    Ok((std::sync::Arc::new(config), server))
}

async fn resolve(url: &str) -> Result<SocketAddr, BenchError> {
    let fail = |reason: String| BenchError::Resolve {
        url: url.to_owned(),
        reason,
    };
    tokio::net::lookup_host(url)
        .await
        .map_err(|e| fail(e.to_string()))?
        .next()
        .ok_or_else(|| fail("no address".into()))
}

/// A random number without a dependency: std seeds `RandomState` from the OS per process.
pub(crate) fn random_u64() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.finish()
}
