//! A minimal STOMP client over the project's codec, for driving the broker frame by frame.

use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use stampede_proto::{Command, Frame, Limits, StompCodec, Version};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_util::codec::Framed;

use crate::WAIT;

/// Any byte stream a client can speak STOMP over (TCP, TLS).
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

type Wire = Framed<Box<dyn Io>, StompCodec>;

pub struct Client {
    framed: Wire,
    /// The CONNECTED frame the broker answered with.
    pub connected: Frame,
    /// Frames that arrived while a RECEIPT was awaited. The broker may legally dispatch
    /// a message (to a SUBSCRIBE's backlog, after an ACK frees credit) before it answers the frame
    /// that caused it; they are handed out by the next `recv` instead of failing the test.
    pending: std::collections::VecDeque<Frame>,
}

fn codec() -> StompCodec {
    StompCodec::new(Limits {
        max_frame_size: 64 * 1024 * 1024,
        ..Limits::default()
    })
}

impl Client {
    /// Connects with STOMP 1.2 and no heart-beats.
    pub async fn connect(addr: SocketAddr) -> Client {
        Client::connect_with(addr, &[("accept-version", "1.2"), ("host", "localhost")])
            .await
            .expect("CONNECTED")
    }

    /// Sends a CONNECT with exactly `headers`; `Err` carries the ERROR frame if refused.
    pub async fn connect_with(addr: SocketAddr, headers: &[(&str, &str)]) -> Result<Client, Frame> {
        let stream = TcpStream::connect(addr).await.expect("tcp connect");
        Client::connect_over(stream, headers).await
    }

    /// Like [`Client::connect_with`], from the local address `from` (any 127.x.y.z on Linux), so a
    /// test can be a second client address.
    pub async fn connect_from(
        from: std::net::IpAddr,
        addr: SocketAddr,
        headers: &[(&str, &str)],
    ) -> Result<Client, Frame> {
        let socket = TcpSocket::new_v4().expect("socket");
        socket.bind(SocketAddr::new(from, 0)).expect("bind source");
        let stream = socket.connect(addr).await.expect("tcp connect");
        Client::connect_over(stream, headers).await
    }

    /// Sends a CONNECT with exactly `headers` over an open stream.
    pub async fn connect_over(
        stream: impl Io + 'static,
        headers: &[(&str, &str)],
    ) -> Result<Client, Frame> {
        let (mut framed, reply) = hello(stream, headers).await;
        if reply.command != Command::Connected {
            return Err(reply);
        }
        let version = reply
            .headers
            .get("version")
            .and_then(Version::parse)
            .unwrap_or(Version::V1_0);
        framed.codec_mut().set_version(version);
        Ok(Client {
            framed,
            connected: reply,
            pending: Default::default(),
        })
    }

    /// Sends a CONNECT the broker must refuse: returns its ERROR frame after asserting that the
    /// broker then closes the connection.
    pub async fn connect_refused(addr: SocketAddr, headers: &[(&str, &str)]) -> Frame {
        let stream = TcpStream::connect(addr).await.expect("tcp connect");
        Client::refused_over(stream, headers).await
    }

    /// [`Client::connect_refused`] over an open stream.
    pub async fn refused_over(stream: impl Io + 'static, headers: &[(&str, &str)]) -> Frame {
        let (mut framed, reply) = hello(stream, headers).await;
        assert_eq!(reply.command, Command::Error, "{reply:?}");
        assert!(
            next(&mut framed).await.is_none(),
            "the broker keeps a refused connection open"
        );
        reply
    }

    /// Opens a raw TCP connection (for malformed-input tests).
    pub async fn raw(addr: SocketAddr) -> TcpStream {
        TcpStream::connect(addr).await.expect("tcp connect")
    }

    pub async fn send_frame(&mut self, frame: Frame) {
        self.framed.send(&frame).await.expect("send frame");
    }

    pub async fn write_raw(&mut self, bytes: &[u8]) {
        self.framed.get_mut().write_all(bytes).await.expect("write");
    }

    /// The next frame; panics if none arrives in time or the connection closes.
    pub async fn recv(&mut self) -> Frame {
        self.recv_or_closed()
            .await
            .expect("connection closed while a frame was expected")
    }

    /// The next frame, or `None` if the broker closed the connection.
    pub async fn recv_or_closed(&mut self) -> Option<Frame> {
        match self.pending.pop_front() {
            Some(f) => Some(f),
            None => next(&mut self.framed).await,
        }
    }

    /// Asserts the broker closes the connection (after any frames, which are returned).
    pub async fn expect_closed(&mut self) -> Vec<Frame> {
        let mut seen: Vec<Frame> = self.pending.drain(..).collect();
        while let Some(f) = next(&mut self.framed).await {
            seen.push(f);
        }
        seen
    }

    /// SEND with a receipt; waits for the RECEIPT.
    pub async fn send(&mut self, destination: &str, body: impl Into<Bytes>) {
        self.send_with(destination, body, &[]).await;
    }

    pub async fn send_with(
        &mut self,
        destination: &str,
        body: impl Into<Bytes>,
        headers: &[(&str, &str)],
    ) {
        let mut f = Frame::new(Command::Send)
            .header("destination", destination)
            .body(body);
        for (k, v) in headers {
            f = f.header(k, *v);
        }
        self.request(f).await;
    }

    /// Sends `frame` with a fresh receipt id and waits for its RECEIPT.
    pub async fn request(&mut self, frame: Frame) {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let id = format!("rcpt-{}", N.fetch_add(1, Ordering::Relaxed));
        self.request_id(frame, &id).await;
    }

    /// Sends `frame` with receipt `id` and waits for that RECEIPT; an ERROR fails the test, other
    /// frames arriving first are kept for the next `recv`.
    pub async fn request_id(&mut self, frame: Frame, id: &str) {
        self.send_frame(frame.header("receipt", id)).await;
        loop {
            let f = next(&mut self.framed)
                .await
                .expect("connection closed while a RECEIPT was expected");
            match f.command {
                Command::Receipt => {
                    assert_eq!(f.headers.get("receipt-id"), Some(id), "{f:?}");
                    return;
                }
                Command::Error => panic!("ERROR instead of RECEIPT {id}: {f:?}"),
                _ => self.pending.push_back(f),
            }
        }
    }

    /// SUBSCRIBE with a receipt, so deliveries can be expected right after.
    pub async fn subscribe(&mut self, destination: &str, id: &str, ack: &str) {
        self.subscribe_with(destination, id, ack, &[]).await;
    }

    pub async fn subscribe_with(
        &mut self,
        destination: &str,
        id: &str,
        ack: &str,
        headers: &[(&str, &str)],
    ) {
        let mut f = Frame::new(Command::Subscribe)
            .header("destination", destination)
            .header("id", id)
            .header("ack", ack);
        for (k, v) in headers {
            f = f.header(k, *v);
        }
        self.request(f).await;
    }

    /// The next frame, which must be a MESSAGE.
    pub async fn message(&mut self) -> Frame {
        let f = self.recv().await;
        assert_eq!(f.command, Command::Message, "expected MESSAGE, got {f:?}");
        f
    }

    /// Bodies of the next `n` MESSAGE frames.
    pub async fn bodies(&mut self, n: usize) -> Vec<String> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(String::from_utf8_lossy(&self.message().await.body).into_owned());
        }
        out
    }

    /// Closes the socket without DISCONNECT.
    pub fn drop_connection(self) {}
}

/// Sends CONNECT with `headers` and reads the broker's answer.
async fn hello(stream: impl Io + 'static, headers: &[(&str, &str)]) -> (Wire, Frame) {
    let mut framed: Wire = Framed::new(Box::new(stream), codec());
    framed
        .send(&connect_frame(headers))
        .await
        .expect("send CONNECT");
    let reply = next(&mut framed).await.expect("reply to CONNECT");
    (framed, reply)
}

fn connect_frame(headers: &[(&str, &str)]) -> Frame {
    headers
        .iter()
        .fold(Frame::new(Command::Connect), |f, (k, v)| f.header(k, *v))
}

async fn next(framed: &mut Wire) -> Option<Frame> {
    match tokio::time::timeout(WAIT, framed.next()).await {
        Err(_) => panic!("no frame within {WAIT:?}"),
        Ok(None) | Ok(Some(Err(_))) => None,
        Ok(Some(Ok(frame))) => Some(frame),
    }
}

/// Encodes a frame for raw writes.
pub fn encode(frame: &Frame, version: Version) -> BytesMut {
    let mut buf = BytesMut::new();
    stampede_proto::encode(frame, version, &mut buf);
    buf
}
