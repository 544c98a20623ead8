//! STOMP over TLS (docs/security.md "TLS"): a development certificate made at start, PEM files
//! reloaded on SIGHUP, mutual TLS with logins from certificates, and every kind of bad client —
//! untrusted, plain text on the TLS port, TLS on the plain port, a stalled handshake — failing alone
//! while a live connection goes on.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use stampede_proto::{Command, Frame, Version};
use stampede_tests::client::encode;
use stampede_tests::http::Scrape;
use stampede_tests::tls::{client_config, connect, Identity, TestCa};
use stampede_tests::{Client, Server, ServerBuilder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CONNECT: [(&str, &str); 2] = [("accept-version", "1.2"), ("host", "localhost")];

fn write_config(dir: &Path, text: &str) -> PathBuf {
    let file = dir.join("broker.toml");
    std::fs::write(&file, text).unwrap();
    file
}

fn write_identity(dir: &Path, name: &str, id: &Identity) -> (PathBuf, PathBuf) {
    let (cert, key) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    );
    std::fs::write(&cert, &id.cert_pem).unwrap();
    std::fs::write(&key, &id.key_pem).unwrap();
    (cert, key)
}

/// A STOMP client over TLS trusting `trusted_pem`.
async fn tls_client(addr: SocketAddr, trusted_pem: &str, id: Option<&Identity>) -> Client {
    let stream = connect(addr, client_config(trusted_pem, id))
        .await
        .expect("TLS handshake");
    Client::connect_over(stream, &CONNECT)
        .await
        .expect("CONNECTED over TLS")
}

/// Whether a STOMP CONNECT over a TLS session to `addr` gets CONNECTED: false if the handshake
/// fails or the broker ends the session instead of answering.
async fn tls_connects(addr: SocketAddr, trusted_pem: &str, id: Option<&Identity>) -> bool {
    let Ok(mut stream) = connect(addr, client_config(trusted_pem, id)).await else {
        return false;
    };
    let connect = CONNECT
        .iter()
        .fold(Frame::new(Command::Connect), |f, (k, v)| f.header(k, *v));
    if stream
        .write_all(&encode(&connect, Version::V1_2))
        .await
        .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 9];
    stream.read_exact(&mut buf).await.is_ok() && &buf == b"CONNECTED"
}

async fn round_trip(a: &mut Client, b: &mut Client, queue: &str, body: &str) {
    b.subscribe(queue, &format!("rt-{body}"), "auto").await;
    a.send(queue, body.to_owned()).await;
    assert_eq!(b.bodies(1).await, [body]);
}

fn failures(m: &Scrape, reason: &str) -> f64 {
    let want = [("listener", "stomp_tls"), ("reason", reason)];
    m.value("stampede_handshake_failures_total", &want)
}

#[tokio::test]
async fn a_self_signed_listener_serves_stomp_and_keeps_its_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "[listeners.stomp_tls]\nbind = \"127.0.0.1:0\"\nself_signed = true\n",
    );
    let data = dir.path().join("data");
    let mut server = Server::builder().data_dir(&data).config(&config).start();
    let pem = std::fs::read_to_string(data.join("tls/self-signed.pem")).unwrap();
    let der = CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
    let digest = ring::digest::digest(&ring::digest::SHA256, &der);
    let hex: Vec<String> = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
    // The log names the file and its fingerprint, so a client can be told what to trust.
    let made = server.wait_for_log(&["self-signed development certificate", &hex.join(":")]);
    assert!(made.contains("self-signed.pem"), "{made}");

    let tls_addr = server.listener("stomp_tls");
    let mut secure = tls_client(tls_addr, &pem, None).await;
    let mut plain = Client::connect(server.addr).await;
    round_trip(&mut secure, &mut plain, "/queue/tls.a", "tls to plain").await;
    round_trip(&mut plain, &mut secure, "/queue/tls.b", "plain to tls").await;
    drop((secure, plain));

    server.stop();
    let server = Server::builder().data_dir(&data).config(&config).start();
    assert_eq!(
        std::fs::read_to_string(data.join("tls/self-signed.pem")).unwrap(),
        pem,
        "a restart keeps the certificate clients trust"
    );
    let mut again = tls_client(server.listener("stomp_tls"), &pem, None).await;
    again.send("/queue/tls.c", "x").await;
}

#[tokio::test]
async fn bad_clients_fail_alone_and_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("test CA");
    let (cert, key) = write_identity(dir.path(), "server", &ca.issue("localhost"));
    let config = write_config(
        dir.path(),
        &format!("[listeners.stomp_tls]\nbind = \"127.0.0.1:0\"\ncert = {cert:?}\nkey = {key:?}\n"),
    );
    let server = Server::builder()
        .config(&config)
        .env("PROTOCOL__CONNECT_TIMEOUT", "1s")
        .start();
    let tls_addr = server.listener("stomp_tls");
    let mut live = tls_client(tls_addr, &ca.cert_pem(), None).await;
    let mut peer = Client::connect(server.addr).await;

    // A client that does not trust the certificate.
    let other = TestCa::new("someone else");
    assert!(!tls_connects(tls_addr, &other.cert_pem(), None).await);
    // Plain-text STOMP on the TLS port: no CONNECTED, the connection ends.
    let mut raw = tokio::net::TcpStream::connect(tls_addr).await.unwrap();
    let connect = CONNECT
        .iter()
        .fold(Frame::new(Command::Connect), |f, (k, v)| f.header(k, *v));
    raw.write_all(&encode(&connect, Version::V1_2))
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = raw.read_to_end(&mut answer).await;
    assert!(!answer.starts_with(b"CONNECTED"), "{answer:?}");
    // TLS on the plain port: the handshake fails (the broker answers in plain STOMP).
    assert!(!tls_connects(server.addr, &ca.cert_pem(), None).await);
    // A client that opens the TLS port and says nothing is closed at the connect timeout.
    let mut stalled = tokio::net::TcpStream::connect(tls_addr).await.unwrap();
    let mut end = Vec::new();
    let n = stalled.read_to_end(&mut end).await.unwrap_or(0);
    assert_eq!(n, 0, "a stalled handshake is closed without a word");

    round_trip(&mut live, &mut peer, "/queue/tls.live", "still here").await;
    let m = Scrape::take(&server).await;
    assert!(failures(&m, "error") >= 2.0, "untrusted and plain text");
    assert_eq!(failures(&m, "timeout"), 1.0);
    server.wait_for_log(&["transport handshake failed", "\"peer\":\"127.0.0.1:"]);
}

#[tokio::test]
async fn sighup_reloads_certificates_and_open_connections_stay() {
    let dir = tempfile::tempdir().unwrap();
    let (old_ca, new_ca) = (TestCa::new("old CA"), TestCa::new("new CA"));
    let (cert, key) = write_identity(dir.path(), "server", &old_ca.issue("localhost"));
    let config = write_config(
        dir.path(),
        &format!("[listeners.stomp_tls]\nbind = \"127.0.0.1:0\"\ncert = {cert:?}\nkey = {key:?}\n"),
    );
    let server = Server::builder().config(&config).start();
    let tls_addr = server.listener("stomp_tls");
    let mut live = tls_client(tls_addr, &old_ca.cert_pem(), None).await;

    write_identity(dir.path(), "server", &new_ca.issue("localhost"));
    server.hangup();
    server.wait_for_log(&["TLS certificates reloaded"]);
    assert!(tls_connects(tls_addr, &new_ca.cert_pem(), None).await);
    assert!(!tls_connects(tls_addr, &old_ca.cert_pem(), None).await);
    let mut fresh = tls_client(tls_addr, &new_ca.cert_pem(), None).await;
    round_trip(
        &mut live,
        &mut fresh,
        "/queue/tls.reload",
        "across a reload",
    )
    .await;

    // A broken file on reload: the error is logged and the certificates in use stay.
    std::fs::write(&cert, "garbage").unwrap();
    server.hangup();
    server.wait_for_log(&["TLS reload failed", "server.pem holds no PEM"]);
    assert!(tls_connects(tls_addr, &new_ca.cert_pem(), None).await);
    round_trip(
        &mut fresh,
        &mut live,
        "/queue/tls.reload2",
        "after a bad reload",
    )
    .await;
}

#[tokio::test]
async fn mutual_tls_requires_a_trusted_client_certificate_and_logs_in_by_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("broker CA");
    let clients = TestCa::new("clients CA");
    let (cert, key) = write_identity(dir.path(), "server", &ca.issue("localhost"));
    let client_ca = dir.path().join("clients-ca.pem");
    std::fs::write(&client_ca, clients.cert_pem()).unwrap();
    let hash = crate::auth::passwd("unused");
    let config = write_config(
        dir.path(),
        &format!(
            "[auth]\nmode = \"users\"\n[auth.users.svc-orders]\npassword_hash = \"{hash}\"\n\
             [listeners.stomp_tls]\nbind = \"127.0.0.1:0\"\ncert = {cert:?}\nkey = {key:?}\n\
             client_ca = {client_ca:?}\ncert_login = true\n"
        ),
    );
    let server = Server::builder().config(&config).start();
    let addr = server.listener("stomp_tls");
    let trusted = ca.cert_pem();

    assert!(
        !tls_connects(addr, &trusted, None).await,
        "no client certificate"
    );
    let stranger = TestCa::new("stranger").issue("svc-orders");
    assert!(
        !tls_connects(addr, &trusted, Some(&stranger)).await,
        "untrusted issuer"
    );
    let svc = clients.issue("svc-orders");
    let mut c = tls_client(addr, &trusted, Some(&svc)).await;
    c.send("/queue/mtls", "by certificate").await;
    server.wait_for_log(&["connected", "\"login\":\"svc-orders\""]);
    // A trusted certificate for a name that is not a user is refused like a wrong password.
    let mallory = clients.issue("mallory");
    let stream = connect(addr, client_config(&trusted, Some(&mallory)))
        .await
        .unwrap();
    let e = Client::refused_over(stream, &CONNECT).await;
    assert_eq!(e.headers.get("message"), Some("authentication failed"));
}

#[test]
fn a_missing_certificate_stops_the_start_naming_listener_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "[listeners.secure]\nbind = \"127.0.0.1:0\"\ncert = \"/nonexistent/s.pem\"\nkey = \"/nonexistent/s.key\"\n",
    );
    let out = ServerBuilder::default().config(&config).run_to_exit();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("listeners.secure") && stderr.contains("/nonexistent/s.pem"),
        "{stderr}"
    );
}
