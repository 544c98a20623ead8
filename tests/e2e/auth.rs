//! `auth.mode = "users"` (docs/security.md): configured users with argon2id hashes made by
//! `stampede passwd`, OCI's base64 passcodes, the anonymous user, one refusal message for every
//! wrong login, and a brute force from one address slowed without slowing anyone else.

use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use stampede_tests::http::Scrape;
use stampede_tests::{binary, Client, Server, ServerBuilder};

/// `printf PASSWORD | stampede passwd`, as docs/security.md tells an operator.
pub(crate) fn passwd(password: &str) -> String {
    let mut child = Command::new(binary())
        .arg("passwd")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn stampede passwd");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(password.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A config file with guest/guest, an OCI-style user whose passcode is base64(token), and `extra`
/// lines in `[auth]`.
fn users_config(dir: &tempfile::TempDir, extra: &str) -> PathBuf {
    let file = dir.path().join("broker.toml");
    let text = format!(
        "[auth]\nmode = \"users\"\n{extra}\n\
         [auth.users.guest]\npassword_hash = \"{}\"\n\
         [auth.users.\"tenancy/oracleidentitycloudservice/jane.doe\"]\n\
         password_hash = \"{}\"\npasscode_encoding = \"base64\"\n",
        passwd("guest"),
        passwd("oci-auth-token"),
    );
    std::fs::write(&file, text).unwrap();
    file
}

fn login<'a>(user: &'a str, passcode: &'a str) -> [(&'a str, &'a str); 4] {
    [
        ("accept-version", "1.2"),
        ("host", "localhost"),
        ("login", user),
        ("passcode", passcode),
    ]
}

const NO_LOGIN: [(&str, &str); 2] = [("accept-version", "1.2"), ("host", "localhost")];
/// base64("oci-auth-token"), as the OCI lab sends it.
const OCI_PASSCODE: &str = "b2NpLWF1dGgtdG9rZW4=";
const OCI_USER: &str = "tenancy/oracleidentitycloudservice/jane.doe";

#[tokio::test]
async fn users_mode_admits_configured_users_only_and_refuses_alike() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::builder().config(&users_config(&dir, "")).start();
    let mut bystander = Client::connect_with(server.addr, &login("guest", "guest"))
        .await
        .expect("guest/guest is let in");
    bystander.subscribe("/queue/auth.q", "s", "auto").await;

    let mut refusals = Vec::new();
    for headers in [
        login("guest", "wrong").to_vec(),
        login("nobody", "guest").to_vec(),
        login(OCI_USER, "oci-auth-token").to_vec(), // raw token for a base64 user
        login(OCI_USER, "not base64!").to_vec(),
        NO_LOGIN.to_vec(),
    ] {
        refusals.push(Client::connect_refused(server.addr, &headers).await);
    }
    for e in &refusals {
        assert_eq!(e.headers.get("message"), Some("authentication failed"));
    }
    // Nothing in a refusal tells an unknown user from a wrong password.
    let strip = |f: &stampede_proto::Frame| (f.headers.clone(), f.body.clone());
    assert_eq!(strip(&refusals[0]), strip(&refusals[1]));

    let mut oci = Client::connect_with(server.addr, &login(OCI_USER, OCI_PASSCODE))
        .await
        .expect("the base64 passcode of the OCI user");
    oci.send("/queue/auth.q", "from jane").await;
    assert_eq!(bystander.bodies(1).await, ["from jane"]);

    let m = Scrape::take(&server).await;
    let failures = [("listener", "stomp"), ("reason", "credentials")];
    // The login-less CONNECT is refused without a password check, but counted all the same.
    assert_eq!(m.value("stampede_auth_failures_total", &failures), 5.0);
    assert_eq!(m.value("stampede_errors_total", &[("kind", "auth")]), 5.0);
}

#[tokio::test]
async fn a_connect_without_login_acts_as_the_anonymous_user() {
    let dir = tempfile::tempdir().unwrap();
    let config = users_config(&dir, "anonymous_user = \"guest\"");
    let server = Server::builder().config(&config).start();
    let mut anon = Client::connect_with(server.addr, &NO_LOGIN)
        .await
        .expect("no login = guest");
    anon.send("/queue/anon", "x").await;
    // A login that is given is still checked.
    let e = Client::connect_refused(server.addr, &login("guest", "nope")).await;
    assert_eq!(e.headers.get("message"), Some("authentication failed"));
    server.wait_for_log(&["connected", "\"login\":\"guest\""]);
}

#[tokio::test]
async fn a_brute_force_from_one_address_is_slowed_and_others_still_log_in() {
    let dir = tempfile::tempdir().unwrap();
    let config = users_config(
        &dir,
        "failed_login_burst = 5\nfailed_login_interval = \"1s\"",
    );
    let server = Server::builder()
        .config(&config)
        .env("PROTOCOL__CONNECT_TIMEOUT", "2s")
        .start();
    let addr = server.addr;
    let started = Instant::now();
    let attacks: Vec<_> = (0..1000)
        .map(|i| {
            tokio::spawn(async move {
                let guess = format!("guess-{i}");
                Client::connect_refused(addr, &login("guest", &guess)).await
            })
        })
        .collect();
    // Another address logs in while the flood is on.
    let other: IpAddr = [127, 0, 0, 2].into();
    let t = Instant::now();
    let legit = Client::connect_from(other, addr, &login("guest", "guest")).await;
    let legit_ms = t.elapsed().as_millis();
    assert!(legit.is_ok(), "{:?}", legit.err());
    for a in attacks {
        let e = a.await.unwrap();
        assert_eq!(e.headers.get("message"), Some("authentication failed"));
    }
    let elapsed = started.elapsed().as_secs_f64();
    let m = Scrape::take(&server).await;
    let checked = m.value("stampede_auth_failures_total", &[("reason", "credentials")]);
    let throttled = m.value("stampede_auth_failures_total", &[("reason", "throttled")]);
    assert_eq!(checked + throttled, 1000.0);
    // The burst, then one check per second of the flood: the rest never reached a check.
    assert!(
        checked <= 5.0 + elapsed.ceil() + 1.0,
        "{checked} password checks in {elapsed:.1} s"
    );
    eprintln!(
        "1000 guesses: {checked} checked, {throttled} throttled in {elapsed:.1} s; \
         a login from another address took {legit_ms} ms meanwhile"
    );
    // The right password from the attacked address still gets in, once a token is back.
    Client::connect_with(addr, &login("guest", "guest"))
        .await
        .expect("the attacked address logs in with the right password");
}

#[test]
fn users_mode_configuration_mistakes_stop_the_start_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("[auth]\nmode = \"users\"\n", "auth.users"),
        (
            "[auth]\nmode = \"users\"\n[auth.users.guest]\npassword_hash = \"guest\"\n",
            "auth.users.guest.password_hash",
        ),
        (
            "[auth]\nanonymous_user = \"ghost\"\n",
            "auth.anonymous_user",
        ),
        ("[auth]\nmode = \"ldap\"\n", "ldap"),
    ];
    let bad_pattern = format!(
        "[auth.users.guest]\npassword_hash = \"{}\"\n\
         [auth.users.guest.permissions]\nread = [\"/nowhere/x\"]\n",
        passwd("guest")
    );
    let cases = cases
        .into_iter()
        .map(|(t, k)| (t.to_owned(), k))
        .chain([(bad_pattern, "auth.users.guest.permissions.read")]);
    for (text, key) in cases {
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, &text).unwrap();
        let out = ServerBuilder::default().config(&file).run_to_exit();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{text}");
        assert!(stderr.contains(key), "{key} not named in: {stderr}");
    }
}

#[tokio::test]
async fn each_listener_applies_its_own_auth_settings() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broker.toml");
    let text = format!(
        "[auth]\nmode = \"open\"\n[auth.users.app]\npassword_hash = \"{}\"\n\
         [listeners.oci]\nbind = \"127.0.0.1:0\"\nauth = \"users\"\npasscode_encoding = \"base64\"\n",
        passwd("token"),
    );
    std::fs::write(&file, text).unwrap();
    let server = Server::builder().config(&file).start();
    // The plain listener stays open: anyone, any passcode.
    Client::connect_with(server.addr, &login("whoever", "whatever"))
        .await
        .expect("open listener");
    let oci = server.listener("oci");
    // base64("token") = "dG9rZW4=": the listener decodes passcodes for users without their own.
    Client::connect_with(oci, &login("app", "dG9rZW4="))
        .await
        .expect("the base64 passcode on the oci listener");
    for (user, passcode) in [("app", "token"), ("whoever", "whatever")] {
        let e = Client::connect_refused(oci, &login(user, passcode)).await;
        assert_eq!(e.headers.get("message"), Some("authentication failed"));
    }
    let m = Scrape::take(&server).await;
    let want = [("listener", "oci"), ("reason", "credentials")];
    assert_eq!(m.value("stampede_auth_failures_total", &want), 2.0);
}

/// Sends `frame` and returns the ERROR the broker answers with, asserting it then closes.
async fn denied(client: &mut Client, frame: stampede_proto::Frame) -> String {
    client.send_frame(frame.header("receipt", "r-denied")).await;
    let frames = client.expect_closed().await;
    let error = frames
        .iter()
        .find(|f| f.command == stampede_proto::Command::Error)
        .unwrap_or_else(|| panic!("no ERROR in {frames:?}"));
    assert_eq!(error.headers.get("receipt-id"), Some("r-denied"));
    error.headers.get("message").unwrap().to_owned()
}

fn send_frame(destination: &str) -> stampede_proto::Frame {
    stampede_proto::Frame::new(stampede_proto::Command::Send)
        .header("destination", destination)
        .body("x")
}

fn subscribe_frame(destination: &str, extra: &[(&str, &str)]) -> stampede_proto::Frame {
    let mut f = stampede_proto::Frame::new(stampede_proto::Command::Subscribe)
        .header("destination", destination);
    if !extra.iter().any(|(k, _)| *k == "id") {
        f = f.header("id", "s");
    }
    extra.iter().fold(f, |f, (k, v)| f.header(k, *v))
}

#[tokio::test]
async fn permissions_refuse_by_destination_and_name_what_was_missing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broker.toml");
    let hash = passwd("pw");
    let text = format!(
        "[auth]\nmode = \"users\"\n\
         [auth.users.producer]\npassword_hash = \"{hash}\"\n\
         [auth.users.producer.permissions]\nwrite = [\"/queue/orders.*\", \"/topic/VirtualTopic.*\"]\n\
         [auth.users.reader]\npassword_hash = \"{hash}\"\n\
         [auth.users.reader.permissions]\nread = [\"orders.*\", \"/queue/Consumer.billing.*\", \"/topic/prices.*\"]\n\
         admin = [\"/topic/prices.*\"]\n\
         [auth.users.reader2]\npassword_hash = \"{hash}\"\n\
         [auth.users.reader2.permissions]\nread = [\"/topic/prices.*\"]\n\
         [auth.users.ops]\npassword_hash = \"{hash}\"\n"
    );
    std::fs::write(&file, text).unwrap();
    let server = Server::builder().config(&file).start();
    let as_user = |u: &'static str| {
        let addr = server.addr;
        async move { Client::connect_with(addr, &login(u, "pw")).await.expect(u) }
    };
    // Allowed: the producer writes to a queue and a virtual topic; the reader reads the queue and
    // the virtual topic's consumer queue; ops (no permissions table) may do anything.
    let mut reader = as_user("reader").await;
    reader.subscribe("/queue/orders.eu", "orders", "auto").await;
    reader
        .subscribe("/queue/Consumer.billing.VirtualTopic.sales", "vt", "auto")
        .await;
    let mut producer = as_user("producer").await;
    producer.send("/queue/orders.eu", "order 1").await;
    producer.send("/topic/VirtualTopic.sales", "sale 1").await;
    let mut got = reader.bodies(2).await;
    got.sort();
    assert_eq!(got, ["order 1", "sale 1"]);

    // ops (no permissions table) makes a durable subscription that a case below tries to take.
    let mut ops = as_user("ops").await;
    let durable = [("durable", "true"), ("auto-delete", "false")];
    ops.subscribe_with("/topic/secret", "audit", "auto", &durable)
        .await;
    ops.request(
        stampede_proto::Frame::new(stampede_proto::Command::Unsubscribe).header("id", "audit"),
    )
    .await;
    ops.send("/topic/secret", "kept for ops").await;
    let cases = [
        (
            "producer",
            send_frame("/queue/payments"),
            "\"producer\" may not write /queue/payments",
        ),
        (
            "producer",
            subscribe_frame("/queue/orders.eu", &[]),
            "may not read /queue/orders.eu",
        ),
        (
            "reader",
            send_frame("orders.eu"),
            "\"reader\" may not write /queue/orders.eu",
        ),
        (
            "reader",
            subscribe_frame("/queue/DLQ.orders.eu", &[]),
            "may not read /queue/DLQ.orders.eu",
        ),
        (
            "reader2",
            subscribe_frame(
                "/topic/prices.gbp",
                &[("activemq.subscriptionName", "p"), ("client-id", "c")],
            ),
            "may not admin /topic/prices.gbp",
        ),
        (
            // Changing a queue's dead-letter queue is a setting of the queue.
            "reader",
            subscribe_frame(
                "/queue/orders.us",
                &[("x-dead-letter-routing-key", "/queue/mine")],
            ),
            "may not admin /queue/orders.us",
        ),
        (
            // A binding reads (and feeds) the queue it names.
            "reader",
            subscribe_frame("/topic/prices.gbp", &[("x-queue-name", "payments")]),
            "may not read /queue/payments",
        ),
        (
            // `#` also matches prices itself, which /topic/prices.* does not cover.
            "reader",
            subscribe_frame("/topic/prices.#", &[]),
            "may not read /topic/prices.#",
        ),
        (
            // ops's durable subscription `audit` on /topic/secret, moved to prices.gbp.
            "reader",
            subscribe_frame(
                "/topic/prices.gbp",
                &[
                    ("durable", "true"),
                    ("auto-delete", "false"),
                    ("id", "audit"),
                ],
            ),
            "may not read /topic/secret",
        ),
    ];
    for (user, frame, message) in cases {
        let mut c = as_user(user).await;
        let m = denied(&mut c, frame).await;
        assert!(
            m.starts_with("permission denied") && m.contains(message),
            "{m}"
        );
    }
    // A plain topic subscription needs read only; the refusals above touched no one else.
    let mut prices = as_user("reader").await;
    prices.subscribe("/topic/prices.gbp", "p", "auto").await;
    producer.send("/queue/orders.eu", "order 2").await;
    assert_eq!(reader.bodies(1).await, ["order 2"]);
    // Nor may the reader remove it (and its messages) with a durable UNSUBSCRIBE.
    let mut c = as_user("reader").await;
    let unsubscribe = stampede_proto::Frame::new(stampede_proto::Command::Unsubscribe)
        .header("id", "audit")
        .header("durable", "true")
        .header("auto-delete", "false");
    let m = denied(&mut c, unsubscribe).await;
    assert!(m.contains("may not admin /topic/secret"), "{m}");
    ops.subscribe_with("/topic/secret", "audit", "auto", &durable)
        .await;
    assert_eq!(ops.bodies(1).await, ["kept for ops"]);
    ops.send("/queue/payments", "anything").await;
    let m = Scrape::take(&server).await;
    assert_eq!(
        m.value("stampede_errors_total", &[("kind", "denied")]),
        10.0
    );
}

#[tokio::test]
async fn a_temporary_queue_is_its_owners_and_replies_need_write_on_temp_queues() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broker.toml");
    let hash = passwd("pw");
    let text = format!(
        "[auth]\nmode = \"users\"\n\
         [auth.users.client]\npassword_hash = \"{hash}\"\n\
         [auth.users.client.permissions]\nwrite = [\"/queue/requests\"]\n\
         [auth.users.service]\npassword_hash = \"{hash}\"\n\
         [auth.users.service.permissions]\nread = [\"/queue/requests\"]\nwrite = [\"/temp-queue/*\"]\n\
         [auth.users.stranger]\npassword_hash = \"{hash}\"\n\
         [auth.users.stranger.permissions]\nread = [\"/queue/requests\"]\n"
    );
    std::fs::write(&file, text).unwrap();
    let server = Server::builder().config(&file).start();
    let mut client = Client::connect_with(server.addr, &login("client", "pw"))
        .await
        .unwrap();
    let mut service = Client::connect_with(server.addr, &login("service", "pw"))
        .await
        .unwrap();
    service.subscribe("/queue/requests", "req", "auto").await;
    // The client may use its own temporary queue without any pattern for it.
    client
        .send_with(
            "/queue/requests",
            "ping",
            &[("reply-to", "/temp-queue/answers")],
        )
        .await;
    let request = service.message().await;
    let reply_to = request.headers.get("reply-to").unwrap().to_owned();
    assert!(reply_to.starts_with("/queue/"), "{reply_to}");
    service.send(&reply_to, "pong").await;
    assert_eq!(client.bodies(1).await, ["pong"]);
    // Without write on /temp-queue/*, a reply is refused.
    let mut stranger = Client::connect_with(server.addr, &login("stranger", "pw"))
        .await
        .unwrap();
    let m = denied(&mut stranger, send_frame(&reply_to)).await;
    assert!(m.contains("may not write /temp-queue/"), "{m}");
}

#[tokio::test]
async fn an_oci_strict_listener_refuses_what_oci_queue_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broker.toml");
    std::fs::write(
        &file,
        "[listeners.oci]\nbind = \"127.0.0.1:0\"\noci_strict = true\n",
    )
    .unwrap();
    let server = Server::builder().config(&file).start();
    let oci = server.listener("oci");
    let queue = "ocid1.queue.oc1.phx.amaaaaaastrict";
    let connect = || async {
        Client::connect_with(oci, &login("tenancy/user", "dG9rZW4="))
            .await
            .unwrap()
    };
    // What the OCI lab does passes.
    let mut c = connect().await;
    c.subscribe(queue, "1", "client-individual").await;
    c.send_with(queue, "hello", &[("content-type", "text/plain")])
        .await;
    assert_eq!(c.bodies(1).await, ["hello"]);

    let frame = |command, headers: &[(&str, &str)]| {
        headers
            .iter()
            .fold(stampede_proto::Frame::new(command), |f, (k, v)| {
                f.header(k, *v)
            })
    };
    use stampede_proto::Command::{Begin, Send, Subscribe};
    let cases = [
        (
            frame(Begin, &[("transaction", "t1")]),
            "transactions are not supported (BEGIN)",
        ),
        (
            frame(Send, &[("destination", queue), ("transaction", "t1")]),
            "transactions are not supported",
        ),
        (
            frame(Send, &[("destination", queue), ("x-trace-id", "42")]),
            "custom headers are not supported (\"x-trace-id\" on SEND)",
        ),
        (
            frame(Send, &[("destination", "/queue/orders")]),
            "\"/queue/orders\" is not a queue OCID",
        ),
        (
            frame(Subscribe, &[("destination", "orders"), ("id", "1")]),
            "\"orders\" is not a queue OCID",
        ),
    ];
    for (f, text) in cases {
        let mut c = connect().await;
        let m = denied(&mut c, f).await;
        assert!(
            m.starts_with("OCI Queue refuses this: ") && m.contains(text),
            "{m}"
        );
    }
    // The same frames are fine on an ordinary listener of the same broker.
    let mut plain = Client::connect(server.addr).await;
    plain.request(frame(Begin, &[("transaction", "t1")])).await;
    plain
        .send_with("/queue/orders", "x", &[("x-trace-id", "42")])
        .await;
}
