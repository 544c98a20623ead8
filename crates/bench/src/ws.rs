//! STOMP over WebSocket (`--ws PATH`): an HTTP/1.1 upgrade with subprotocol `v12.stomp`, then
//! one STOMP frame per WebSocket message each way, which is what Stampede's `/ws` and RabbitMQ's
//! Web-STOMP both expect of a client.
//!
//! Outgoing frames are binary messages. The tool's bodies start with a binary stamp, so most of
//! its frames could not be text messages anyway; choosing per frame (text when valid UTF-8, as
//! browser clients do) would cost a validation pass per frame on both sides and mix the two kinds
//! in one run for no difference the broker is measured on. Incoming messages, text or binary, are
//! appended to the connection's read buffer and go through the same scanner and decoder as TCP
//! bytes, so a frame split over messages or several frames in one are read alike.
//!
//! The connection's write buffer holds whole frames back to back; [`send_frames`] cuts it at frame
//! ends into `Bytes` that share its allocation (no copy, no allocation per frame), feeds them to
//! tungstenite, which masks each into its own write buffer, and flushes once, so a batch of small
//! frames still leaves in few writes.

use std::future::poll_fn;
use std::io;
use std::task::{Context, Poll};

use bytes::BytesMut;
use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use crate::BenchError;

pub type WsStream = WebSocketStream<TcpStream>;

/// The one subprotocol offered: the tool speaks STOMP 1.2 (CONNECT still negotiates the version).
const SUBPROTOCOL: &str = "v12.stomp";

/// Largest message either way: the same bound as the decoder's frame limit, so a run with a
/// large `--size` fails on the broker's limit, not on tungstenite's 64 MiB default.
const MAX_MESSAGE: usize = 256 * 1024 * 1024;

/// Upgrades `tcp` to a WebSocket at `url` (`ws://host:port/path`).
pub async fn handshake(tcp: TcpStream, url: &str) -> Result<WsStream, BenchError> {
    let mut request = url
        .into_client_request()
        .map_err(|e| BenchError::Config(format!("--ws: {url}: {e}")))?;
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static(SUBPROTOCOL),
    );
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE));
    let (ws, _response) = tokio_tungstenite::client_async_with_config(request, tcp, Some(config))
        .await
        .map_err(|e| BenchError::Io(io_error(e)))?;
    Ok(ws)
}

/// Appends the next message's payload to `buf`: `Ready(Ok(0))` once the broker closed the
/// WebSocket. Control messages are skipped (tungstenite answers pings itself). Polling leaves
/// nothing half done, so [`read_buf`] stays cancel-safe.
fn poll_read(
    ws: &mut WsStream,
    cx: &mut Context<'_>,
    buf: &mut BytesMut,
) -> Poll<io::Result<usize>> {
    loop {
        let payload = match ws.poll_next_unpin(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(None | Some(Ok(Message::Close(_)))) => return Poll::Ready(Ok(0)),
            Poll::Ready(Some(Err(e))) => return Poll::Ready(closed_or(e)),
            Poll::Ready(Some(Ok(Message::Binary(b)))) => b,
            Poll::Ready(Some(Ok(Message::Text(t)))) => t.into(),
            Poll::Ready(Some(Ok(_))) => continue,
        };
        // An empty message carries nothing, and returning 0 for it would read as a close.
        if !payload.is_empty() {
            buf.extend_from_slice(&payload);
            return Poll::Ready(Ok(payload.len()));
        }
    }
}

fn closed_or(e: WsError) -> io::Result<usize> {
    match e {
        WsError::ConnectionClosed | WsError::AlreadyClosed => Ok(0),
        e => Err(io_error(e)),
    }
}

/// Waits for the next message and appends its payload to `buf`.
pub async fn read_buf(ws: &mut WsStream, buf: &mut BytesMut) -> io::Result<usize> {
    poll_fn(|cx| poll_read(ws, cx, buf)).await
}

/// Appends a message that has already arrived, without waiting (`WouldBlock` when none has).
pub fn try_read_buf(ws: &mut WsStream, buf: &mut BytesMut) -> io::Result<usize> {
    let waker = futures::task::noop_waker_ref();
    match poll_read(ws, &mut Context::from_waker(waker), buf) {
        Poll::Ready(r) => r,
        Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
    }
}

/// Sends the frames in `buf`, each as one binary message, and empties it.
pub async fn send_frames(ws: &mut WsStream, buf: &mut BytesMut) -> io::Result<()> {
    while !buf.is_empty() {
        let n = frame_len(buf).unwrap_or(buf.len());
        let frame = buf.split_to(n).freeze();
        ws.feed(Message::Binary(frame)).await.map_err(io_error)?;
    }
    ws.flush().await.map_err(io_error)
}

/// The length of the frame at the front of `buf`, NUL included, for frames this tool encodes:
/// every body comes with a `content-length` header (the codec adds one; the producer's head is
/// the codec's), headers end at the first blank line (values never hold a raw EOL) and the
/// body-less control frames end at the NUL after it. `None` for an incomplete frame.
fn frame_len(buf: &[u8]) -> Option<usize> {
    let blank = memchr::memmem::find(buf, b"\n\n")?;
    let head = &buf[..blank + 1];
    let body = blank + 2;
    let end = match memchr::memmem::find(head, b"\ncontent-length:") {
        Some(at) => {
            let value = &head[at + b"\ncontent-length:".len()..];
            let digits = value.iter().take_while(|b| b.is_ascii_digit()).count();
            let len: usize = std::str::from_utf8(&value[..digits]).ok()?.parse().ok()?;
            body.checked_add(len)?
        }
        None => body + memchr::memchr(0, &buf[body..])?,
    };
    (end < buf.len()).then_some(end + 1)
}

fn io_error(e: WsError) -> io::Error {
    match e {
        WsError::Io(e) => e,
        e => io::Error::other(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Buf;
    use stampede_proto::{encode, Command, Decoder, Frame, Limits, Version};

    use crate::conn::put_bare;

    /// `buf` cut into frames by [`frame_len`], which must use it all up.
    fn split_all(mut buf: BytesMut) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(n) = frame_len(&buf) {
            out.push(buf[..n].to_vec());
            buf.advance(n);
        }
        assert!(
            buf.is_empty(),
            "left over: {:?}",
            String::from_utf8_lossy(&buf)
        );
        out
    }

    /// Every piece [`frame_len`] cuts must decode to exactly one frame, the one written.
    #[test]
    fn frames_are_cut_where_the_decoder_ends_them() {
        let v = Version::V1_2;
        let frames = [
            Frame::new(Command::Send)
                .header("destination", "/queue/a")
                .body(b"binary\0\n\nbody with content-length:9 inside".to_vec()),
            Frame::new(Command::Connect)
                .header("accept-version", "1.1,1.2")
                .header("host", "/"),
            Frame::new(Command::Send)
                .header("destination", "/queue/a\nb")
                .body(Vec::new()),
        ];
        let mut buf = BytesMut::new();
        for f in &frames {
            encode(f, v, &mut buf);
        }
        put_bare(&mut buf, v, Command::Ack, &[("id", "m-1")]);
        put_bare(&mut buf, v, Command::Disconnect, &[("receipt", "bye")]);
        let pieces = split_all(buf);
        assert_eq!(pieces.len(), frames.len() + 2);
        let mut decoder = Decoder::new(Limits::default());
        decoder.set_version(v);
        for (i, piece) in pieces.iter().enumerate() {
            let mut b = BytesMut::from(&piece[..]);
            let f = decoder.decode(&mut b).unwrap().expect("a whole frame");
            assert!(b.is_empty(), "piece {i} holds more than one frame");
            if let Some(want) = frames.get(i) {
                assert_eq!(f.command, want.command);
                assert_eq!(f.body, want.body);
            }
        }
    }

    #[test]
    fn an_incomplete_frame_is_not_cut() {
        let mut buf = BytesMut::new();
        encode(
            &Frame::new(Command::Send)
                .header("destination", "/queue/a")
                .body(b"0123456789".to_vec()),
            Version::V1_2,
            &mut buf,
        );
        for cut in 0..buf.len() {
            assert_eq!(frame_len(&buf[..cut]), None, "cut at {cut}");
        }
        assert_eq!(frame_len(&buf), Some(buf.len()));
    }
}
