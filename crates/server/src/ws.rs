//! STOMP over WebSocket at `/ws` on the HTTP listener, for browser clients (`@stomp/stompjs`):
//! subprotocols `v12.stomp`, `v11.stomp`, `v10.stomp` (the first the client offers in that
//! order; none offered is accepted too, the STOMP version comes from CONNECT either way). The
//! session is the one TCP clients get — same limits, auth, metrics (listener `ws`), heart-beats
//! and graceful shutdown — and a WebSocket counts against the plain STOMP listener's
//! `max_connections`.
//!
//! Incoming messages, text or binary, are read as one byte stream: a frame may span messages and
//! a message may hold several frames (and heart-beat EOLs). Outgoing, every frame is a message of
//! its own — text when it is valid UTF-8 (what browser clients and RabbitMQ's Web-STOMP send),
//! binary otherwise, so a binary body arrives intact — and a heart-beat is a message holding one
//! EOL.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures::stream::SplitStream;
use futures::{ready, Sink, SinkExt, StreamExt};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::Semaphore;

use crate::connection::{FrameSink, TooLarge};
use crate::hub::{ConnectionHub, Profile, Transport};

/// The subprotocols served, most preferred first.
const PROTOCOLS: [&str; 3] = ["v12.stomp", "v11.stomp", "v10.stomp"];

/// Bytes tungstenite reads from the socket at a time, and buffers before it writes: small, as
/// most connections are idle most of the time (its default, 128 KiB each, would be resident for
/// every idle WebSocket).
const IO_BUFFER: usize = 8 * 1024;

/// What `/ws` needs; set once the broker has recovered and the STOMP listeners run.
#[derive(Default)]
pub struct WsState {
    ready: OnceLock<Ready>,
}

struct Ready {
    hub: ConnectionHub,
    /// The plain STOMP listener's, labelled `ws`: its auth and OCI strictness apply.
    profile: Profile,
    /// The plain STOMP listener's room for connections, shared with it.
    permits: Arc<Semaphore>,
    /// Largest WebSocket message: a frame of `protocol.max_frame_size` and some.
    max_message: usize,
}

impl WsState {
    /// Called with the plain STOMP listener's profile and room for connections.
    pub fn set_ready(
        &self,
        hub: ConnectionHub,
        stomp: Profile,
        permits: Arc<Semaphore>,
        max_frame: usize,
    ) {
        let profile = Profile {
            name: "ws",
            transport: "ws",
            ..stomp
        };
        let _ = self.ready.set(Ready {
            hub,
            profile,
            permits,
            max_message: max_frame + 64 * 1024,
        });
    }
}

pub fn router(state: Arc<WsState>) -> Router {
    Router::new().route("/ws", get(upgrade)).with_state(state)
}

async fn upgrade(
    State(s): State<Arc<WsState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ws: WebSocketUpgrade,
) -> Response {
    let Some(ready) = s.ready.get() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "the broker is still recovering its store",
        )
            .into_response();
    };
    let (hub, profile, limit) = (ready.hub.clone(), ready.profile, ready.max_message);
    let permits = ready.permits.clone();
    ws.protocols(PROTOCOLS)
        .max_message_size(limit)
        .max_frame_size(limit)
        .read_buffer_size(IO_BUFFER)
        .write_buffer_size(IO_BUFFER)
        .on_upgrade(move |socket| async move {
            let permit = permits.try_acquire_owned().ok();
            let (tx, rx) = socket.split();
            let transport = Transport {
                rd: WsReader {
                    rx,
                    chunk: Bytes::new(),
                    limit,
                    closed: false,
                },
                sink: WsSink::new(tx),
                cert_login: None,
            };
            hub.spawn_transport(std::future::ready(Ok(transport)), peer, profile, permit);
        })
}

/// A WebSocket's incoming messages as one byte stream. A message is let go of as soon as it has
/// been read (the decoder copies what it needs), so an idle connection holds none.
pub struct WsReader {
    rx: SplitStream<WebSocket>,
    chunk: Bytes,
    limit: usize,
    closed: bool,
}

impl AsyncRead for WsReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        loop {
            if !self.chunk.is_empty() {
                let n = self.chunk.len().min(buf.remaining());
                buf.put_slice(&self.chunk[..n]);
                self.chunk.advance(n);
                if self.chunk.is_empty() {
                    self.chunk = Bytes::new();
                }
                return Poll::Ready(Ok(()));
            }
            if self.closed {
                return Poll::Ready(Ok(()));
            }
            match ready!(self.rx.poll_next_unpin(cx)) {
                None | Some(Ok(Message::Close(_))) => self.closed = true,
                Some(Ok(Message::Text(t))) => self.chunk = Bytes::from(t),
                Some(Ok(Message::Binary(b))) => self.chunk = b,
                Some(Ok(_)) => {}
                Some(Err(e)) => return Poll::Ready(Err(read_error(e, self.limit))),
            }
        }
    }
}

/// A message over the limit becomes [`TooLarge`], which the connection answers with the ERROR an
/// oversized frame gets; anything else is a broken transport.
fn read_error(e: axum::Error, limit: usize) -> std::io::Error {
    match e.into_inner().downcast::<tungstenite::Error>() {
        Ok(inner) if matches!(*inner, tungstenite::Error::Capacity(_)) => {
            std::io::Error::new(std::io::ErrorKind::InvalidData, TooLarge { limit })
        }
        Ok(inner) => std::io::Error::other(inner),
        Err(other) => std::io::Error::other(other),
    }
}

/// A [`FrameSink`] that sends each frame as one WebSocket message.
pub struct WsSink<S> {
    tx: S,
    /// The frame being encoded.
    head: BytesMut,
    /// Whole frames (and heart-beats) not sent yet.
    ready: Vec<Message>,
    buffered: usize,
}

impl<S> WsSink<S> {
    pub fn new(tx: S) -> WsSink<S> {
        WsSink {
            tx,
            head: BytesMut::new(),
            ready: Vec::new(),
            buffered: 0,
        }
    }

    fn push(&mut self, frame: Bytes) {
        self.buffered += frame.len();
        // A clone of `Bytes` shares the buffer; the text check then costs one pass.
        let message = match Utf8Bytes::try_from(frame.clone()) {
            Ok(text) => Message::Text(text),
            Err(_) => Message::Binary(frame),
        };
        self.ready.push(message);
    }
}

impl<S> FrameSink for WsSink<S>
where
    S: Sink<Message, Error = axum::Error> + Unpin + Send,
{
    fn head(&mut self) -> &mut BytesMut {
        &mut self.head
    }

    fn end_frame(&mut self, body: &Bytes) {
        self.head.reserve(body.len() + 1);
        self.head.extend_from_slice(body);
        self.head.put_u8(0);
        let frame = self.head.split().freeze();
        self.push(frame);
    }

    fn heartbeat(&mut self) {
        self.push(Bytes::from_static(b"\n"));
    }

    fn buffered(&self) -> usize {
        self.buffered + self.head.len()
    }

    async fn flush(&mut self, idle: bool) -> std::io::Result<()> {
        let result = async {
            for message in self.ready.drain(..) {
                self.tx.feed(message).await?;
            }
            self.tx.flush().await
        }
        .await;
        self.ready.clear();
        self.buffered = 0;
        if idle {
            self.head = BytesMut::new();
        }
        if idle {
            self.ready = Vec::new();
        }
        result.map_err(std::io::Error::other)
    }

    async fn shutdown(&mut self) -> std::io::Result<()> {
        self.tx.close().await.map_err(std::io::Error::other)
    }
}
