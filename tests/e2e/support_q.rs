//! Helpers for the queue, topic, ack, transaction and receipt suites.
//!
//! [`Conn`] wraps the harness [`Client`] and tolerates frames arriving in any order the broker may
//! legally choose: a MESSAGE dispatched by a SUBSCRIBE, an ACK or a SEND to one's own subscription
//! may precede that frame's RECEIPT, so frames seen while waiting for a RECEIPT are kept for the
//! next [`Conn::recv`] instead of failing the test.
//!
//! Proving that something did *not* arrive never sleeps: [`Conn::quiet`] sends a marker message
//! (with a receipt) to a private queue this connection subscribes to and returns every frame that
//! arrived before the marker. Anything the broker had dispatched to this connection before it
//! handled the marker is ahead of the marker in the connection's single ordered outbox.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use stampede_proto::{Command, Frame};
use stampede_tests::{unique, Client, Server};

/// A STOMP connection for these suites.
pub struct Conn {
    client: Client,
    version: String,
    marker_queue: Option<String>,
}

/// Connects with STOMP 1.2.
pub async fn connect(addr: SocketAddr) -> Conn {
    connect_version(addr, "1.2").await
}

/// Connects asking for exactly `version` ("1.0", "1.1" or "1.2").
pub async fn connect_version(addr: SocketAddr, version: &str) -> Conn {
    connect_as(addr, version, &[]).await
}

/// Connects with STOMP 1.2 and `client-id: id`.
pub async fn connect_client(addr: SocketAddr, id: &str) -> Conn {
    connect_as(addr, "1.2", &[("client-id", id)]).await
}

async fn connect_as(addr: SocketAddr, version: &str, extra: &[(&str, &str)]) -> Conn {
    let mut headers = vec![("accept-version", version), ("host", "localhost")];
    headers.extend_from_slice(extra);
    let client = Client::connect_with(addr, &headers)
        .await
        .expect("CONNECTED");
    let got = client
        .connected
        .headers
        .get("version")
        .unwrap_or("1.0")
        .to_owned();
    assert_eq!(got, version, "negotiated version");
    Conn {
        client,
        version: got,
        marker_queue: None,
    }
}

fn next_receipt_id() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!("q-rcpt-{}", N.fetch_add(1, Ordering::Relaxed))
}

/// The value of header `name`, which must be present.
pub fn h<'a>(f: &'a Frame, name: &str) -> &'a str {
    f.headers
        .get(name)
        .unwrap_or_else(|| panic!("no {name:?} header in {f:?}"))
}

pub fn body(f: &Frame) -> String {
    String::from_utf8_lossy(&f.body).into_owned()
}

pub fn bodies(frames: &[Frame]) -> Vec<String> {
    frames.iter().map(body).collect()
}

/// Waits until the broker has fully closed session `session` (its subscriptions detached and its
/// unsettled messages returned), as reported by its `disconnected` log event.
pub fn wait_closed(server: &Server, session: &str) {
    server.wait_for_log(&["\"disconnected\"", &format!("\"session\":{session}}}")]);
}

impl Conn {
    pub fn session(&self) -> String {
        h(&self.client.connected, "session").to_owned()
    }

    /// Writes `frame` as is.
    pub async fn send_frame(&mut self, frame: Frame) {
        self.client.send_frame(frame).await;
    }

    /// Sends `frame` with receipt `id` and waits for that RECEIPT; frames before it are kept.
    pub async fn request_id(&mut self, frame: Frame, id: &str) {
        self.client.request_id(frame, id).await;
    }

    /// Sends `frame` with a fresh receipt and waits for the RECEIPT.
    pub async fn request(&mut self, frame: Frame) {
        self.request_id(frame, &next_receipt_id()).await;
    }

    /// The next frame (kept ones first).
    pub async fn recv(&mut self) -> Frame {
        self.client.recv().await
    }

    /// The next frame, which must be a MESSAGE.
    pub async fn message(&mut self) -> Frame {
        let f = self.recv().await;
        assert_eq!(f.command, Command::Message, "expected MESSAGE, got {f:?}");
        f
    }

    /// The next `n` MESSAGE frames.
    pub async fn messages(&mut self, n: usize) -> Vec<Frame> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(self.message().await);
        }
        out
    }

    /// Bodies of the next `n` MESSAGE frames.
    pub async fn bodies(&mut self, n: usize) -> Vec<String> {
        bodies(&self.messages(n).await)
    }

    pub async fn send(&mut self, destination: &str, body: impl Into<Bytes>) {
        self.send_with(destination, body, &[]).await;
    }

    pub async fn send_with(
        &mut self,
        destination: &str,
        body: impl Into<Bytes>,
        headers: &[(&str, &str)],
    ) {
        self.client.send_with(destination, body, headers).await;
    }

    pub async fn subscribe(&mut self, destination: &str, id: &str, ack: &str) {
        self.client.subscribe(destination, id, ack).await;
    }

    pub async fn subscribe_with(
        &mut self,
        destination: &str,
        id: &str,
        ack: &str,
        headers: &[(&str, &str)],
    ) {
        self.client
            .subscribe_with(destination, id, ack, headers)
            .await;
    }

    pub async fn unsubscribe(&mut self, id: &str) {
        self.request(Frame::new(Command::Unsubscribe).header("id", id))
            .await;
    }

    /// An ACK (or NACK) of `msg` the way a client of this connection's version names it: the
    /// `ack` header as `id` in 1.2, `message-id` + `subscription` in 1.1, `message-id` in 1.0.
    pub fn settle_frame(&self, command: Command, msg: &Frame) -> Frame {
        let f = Frame::new(command);
        match self.version.as_str() {
            "1.2" => f.header("id", h(msg, "ack")),
            "1.1" => f
                .header("message-id", h(msg, "message-id"))
                .header("subscription", h(msg, "subscription")),
            _ => f.header("message-id", h(msg, "message-id")),
        }
    }

    pub async fn ack(&mut self, msg: &Frame) {
        let f = self.settle_frame(Command::Ack, msg);
        self.request(f).await;
    }

    pub async fn nack(&mut self, msg: &Frame) {
        let f = self.settle_frame(Command::Nack, msg);
        self.request(f).await;
    }

    /// Sends a marker through a private queue and returns every frame that arrived before it.
    pub async fn quiet(&mut self) -> Vec<Frame> {
        let queue = match &self.marker_queue {
            Some(q) => q.clone(),
            None => {
                let q = format!("/queue/{}", unique("marker"));
                self.subscribe(&q, "__marker", "auto").await;
                self.marker_queue = Some(q.clone());
                q
            }
        };
        let token = unique("mark");
        self.send(&queue, token.clone()).await;
        let mut before = Vec::new();
        loop {
            let f = self.recv().await;
            if f.command == Command::Message && f.headers.get("subscription") == Some("__marker") {
                assert_eq!(body(&f), token, "marker out of order");
                return before;
            }
            before.push(f);
        }
    }

    /// Asserts nothing is waiting for this connection.
    pub async fn assert_quiet(&mut self) {
        let extra = self.quiet().await;
        assert!(extra.is_empty(), "unexpected frames: {extra:?}");
    }

    /// Sends `frame`, expects an ERROR (MESSAGEs before it are ignored) and then the close.
    pub async fn expect_error(mut self, frame: Frame) -> Frame {
        self.client.send_frame(frame).await;
        let err = loop {
            let f = self.recv().await;
            match f.command {
                Command::Error => break f,
                Command::Message => continue,
                _ => panic!("expected ERROR, got {f:?}"),
            }
        };
        let after = self.client.expect_closed().await;
        assert!(after.is_empty(), "frames after ERROR: {after:?}");
        err
    }

    /// Sends DISCONNECT with a receipt, waits for the RECEIPT and the close.
    pub async fn disconnect(mut self) {
        self.request(Frame::new(Command::Disconnect)).await;
        let after = self.client.expect_closed().await;
        assert!(after.is_empty(), "frames after DISCONNECT: {after:?}");
    }

    /// Asserts the broker closes the connection with nothing more to read.
    pub async fn assert_closed(&mut self) {
        let after = self.client.expect_closed().await;
        assert!(after.is_empty(), "frames before the close: {after:?}");
    }

    /// Closes the socket without DISCONNECT; returns the session id for [`wait_closed`].
    pub fn drop_connection(self) -> String {
        let session = self.session();
        drop(self);
        session
    }
}
