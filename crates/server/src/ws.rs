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
use bytes::{BufMut, Bytes, BytesMut};
use futures::{Sink, SinkExt, StreamExt};
use tokio::sync::Semaphore;
use tokio_util::io::StreamReader;

use crate::auth::ListenerAuth;
use crate::connection::FrameSink;
use crate::hub::{ConnectionHub, Profile, Transport};

/// The subprotocols served, most preferred first.
const PROTOCOLS: [&str; 3] = ["v12.stomp", "v11.stomp", "v10.stomp"];

/// How WebSocket clients show in metrics and logs.
const PROFILE: Profile = Profile {
    name: "ws",
    auth: ListenerAuth {
        mode: None,
        passcode_encoding: None,
    },
    oci_strict: false,
};

/// What `/ws` needs; set once the broker has recovered and the STOMP listeners run.
#[derive(Default)]
pub struct WsState {
    ready: OnceLock<Ready>,
}

struct Ready {
    hub: ConnectionHub,
    /// The plain STOMP listener's room for connections, shared with it.
    permits: Arc<Semaphore>,
    /// Largest WebSocket message: a frame of `protocol.max_frame_size` and some.
    max_message: usize,
}

impl WsState {
    pub fn set_ready(&self, hub: ConnectionHub, permits: Arc<Semaphore>, max_frame: usize) {
        let _ = self.ready.set(Ready {
            hub,
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
    let hub = ready.hub.clone();
    let permits = ready.permits.clone();
    ws.protocols(PROTOCOLS)
        .max_message_size(ready.max_message)
        .max_frame_size(ready.max_message)
        .on_upgrade(move |socket| async move {
            let permit = permits.try_acquire_owned().ok();
            let transport = std::future::ready(Ok(transport(socket)));
            hub.spawn_transport(transport, peer, PROFILE, permit);
        })
}

type Reader = StreamReader<futures::stream::BoxStream<'static, std::io::Result<Bytes>>, Bytes>;

fn transport(
    socket: WebSocket,
) -> Transport<Reader, WsSink<futures::stream::SplitSink<WebSocket, Message>>> {
    let (tx, rx) = socket.split();
    let bytes = rx
        .take_while(|m| std::future::ready(!matches!(m, Ok(Message::Close(_)))))
        .filter_map(|m| {
            std::future::ready(match m {
                Ok(Message::Text(t)) => Some(Ok(Bytes::from(t))),
                Ok(Message::Binary(b)) => Some(Ok(b)),
                Ok(_) => None,
                Err(e) => Some(Err(std::io::Error::other(e))),
            })
        })
        .boxed();
    Transport {
        rd: StreamReader::new(bytes),
        sink: WsSink::new(tx),
        cert_login: None,
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
        result.map_err(std::io::Error::other)
    }

    async fn shutdown(&mut self) -> std::io::Result<()> {
        self.tx.close().await.map_err(std::io::Error::other)
    }
}
