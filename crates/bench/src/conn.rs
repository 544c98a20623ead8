//! One STOMP client connection over the project's codec, built for throughput: frames are encoded
//! into one write buffer that goes out in a single `write_all` (over WebSocket: one message per
//! frame, flushed together, see [`crate::ws`]), and reads pull whatever the socket has into one
//! buffer that the decoder walks frame by frame. Producers and consumers drive it; it knows
//! nothing of benchmarks.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BufMut, BytesMut};
use futures::FutureExt;
use rustls::pki_types::ServerName;
use stampede_proto::{encode, encode_head, Command, Decoder, Frame, Limits, Version};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::scan::{scan, MessageAt, Scan};
use crate::ws::{self, WsStream};
use crate::BenchError;

/// Read chunk: large enough that a busy consumer takes hundreds of small frames per syscall.
const READ_CHUNK: usize = 64 * 1024;

/// Where and as whom to connect.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    pub addr: SocketAddr,
    pub login: String,
    pub passcode: String,
    pub host: String,
    /// Longest wait for CONNECTED, a RECEIPT or a write.
    pub timeout: Duration,
    /// Speak TLS, with this client configuration and server name.
    pub tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
    /// Speak STOMP over WebSocket, upgrading at this `ws://` URL.
    pub ws: Option<String>,
}

/// The connection's byte stream.
pub enum Stream {
    Plain(TcpStream),
    /// Boxed: a TLS session is several KiB of state.
    Tls(Box<TlsStream<TcpStream>>),
    /// Boxed for the same reason: tungstenite's state and buffers.
    Ws(Box<WsStream>),
}

impl Stream {
    /// The TCP socket underneath.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => s.get_ref().0,
            Stream::Ws(s) => s.get_ref(),
        }
    }

    async fn read_buf(&mut self, buf: &mut BytesMut) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read_buf(buf).await,
            Stream::Tls(s) => s.read_buf(buf).await,
            Stream::Ws(s) => ws::read_buf(s, buf).await,
        }
    }

    /// Reads what is there without waiting (`WouldBlock` when nothing is).
    fn try_read_buf(&mut self, buf: &mut BytesMut) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.try_read_buf(buf),
            // One poll of the read: TLS has no readiness-based try_read of its own.
            Stream::Tls(s) => s
                .read_buf(buf)
                .now_or_never()
                .unwrap_or_else(|| Err(std::io::ErrorKind::WouldBlock.into())),
            Stream::Ws(s) => ws::try_read_buf(s, buf),
        }
    }

    /// Writes out the whole frames in `buf` and empties it.
    async fn write_frames(&mut self, buf: &mut BytesMut) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.write_all(buf).await?,
            Stream::Tls(s) => {
                s.write_all(buf).await?;
                // rustls buffers records; they must reach the socket now.
                s.flush().await?
            }
            Stream::Ws(s) => return ws::send_frames(s, buf).await,
        }
        buf.clear();
        Ok(())
    }
}

pub struct Conn {
    stream: Stream,
    /// Bytes read and not yet decoded. The consumer's fast path reads MESSAGEs straight out of
    /// it (see [`Conn::next_inbound`]) and then calls [`Conn::consume`].
    pub rbuf: BytesMut,
    /// Frames waiting to be written; callers append and call [`Conn::flush`] when they must.
    pub wbuf: BytesMut,
    decoder: Decoder,
    /// The full decoder holds a partly decoded frame: it must see the next bytes, not the scanner.
    decoder_mid_frame: bool,
    version: Version,
    timeout: Duration,
    /// The CONNECTED `server` header, for the report.
    pub server: Option<String>,
}

impl Conn {
    /// TCP connect (TLS or WebSocket handshake when asked for), CONNECT (STOMP 1.1/1.2, no heart-beats) and wait for CONNECTED.
    pub async fn connect(opts: &ConnectOptions) -> Result<Conn, BenchError> {
        let tcp = within(opts.timeout, "TCP connect", TcpStream::connect(opts.addr)).await??;
        // We coalesce writes ourselves; Nagle would only add latency to the last frame of a batch.
        tcp.set_nodelay(true)?;
        let stream = match (&opts.tls, &opts.ws) {
            (_, Some(url)) => Stream::Ws(Box::new(
                within(opts.timeout, "WebSocket handshake", ws::handshake(tcp, url)).await??,
            )),
            (None, None) => Stream::Plain(tcp),
            (Some((config, name)), None) => {
                let connector = tokio_rustls::TlsConnector::from(config.clone());
                let handshake = connector.connect(name.clone(), tcp);
                Stream::Tls(Box::new(
                    within(opts.timeout, "TLS handshake", handshake).await??,
                ))
            }
        };
        let mut conn = Conn {
            stream,
            rbuf: BytesMut::with_capacity(READ_CHUNK),
            wbuf: BytesMut::with_capacity(READ_CHUNK),
            decoder: Decoder::new(Limits {
                max_frame_size: 256 * 1024 * 1024,
                ..Limits::default()
            }),
            decoder_mid_frame: false,
            version: Version::V1_0,
            timeout: opts.timeout,
            server: None,
        };
        let connect = Frame::new(Command::Connect)
            .header("accept-version", "1.1,1.2")
            .header("host", opts.host.as_str())
            .header("login", opts.login.as_str())
            .header("passcode", opts.passcode.as_str())
            .header("heart-beat", "0,0");
        conn.send(&connect);
        conn.flush().await?;
        let reply = conn.next_frame("CONNECTED").await?;
        match reply.command {
            Command::Connected => {}
            Command::Error => return Err(broker_error(&reply)),
            other => {
                return Err(BenchError::Unexpected {
                    got: other.to_string(),
                    wanted: "CONNECTED",
                })
            }
        }
        conn.version = reply
            .headers
            .get("version")
            .and_then(Version::parse)
            .unwrap_or(Version::V1_0);
        conn.decoder.set_version(conn.version);
        conn.server = reply.headers.get("server").map(str::to_owned);
        Ok(conn)
    }

    pub fn version(&self) -> Version {
        self.version
    }

    /// Appends a whole frame to the write buffer.
    pub fn send(&mut self, frame: &Frame) {
        encode(frame, self.version, &mut self.wbuf);
    }

    /// Appends a body-less frame built from borrowed headers (ACKs: no `Frame` to allocate).
    pub fn send_bare<'a>(&mut self, command: Command, headers: &[(&'a str, &'a str)]) {
        put_bare(&mut self.wbuf, self.version, command, headers);
    }

    /// Writes out the buffer. A write that fails because the broker closed the socket is reported
    /// with the broker's ERROR text when one was sent first: that is the useful half.
    pub async fn flush(&mut self) -> Result<(), BenchError> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        let write = self.stream.write_frames(&mut self.wbuf);
        match within(self.timeout, "a write", write).await? {
            Ok(()) => Ok(()),
            Err(e) => Err(self.error_after(e)),
        }
    }

    fn error_after(&mut self, e: std::io::Error) -> BenchError {
        let _ = self.stream.try_read_buf(&mut self.rbuf);
        while let Ok(Some(f)) = self.decoder.decode(&mut self.rbuf) {
            if f.command == Command::Error {
                return broker_error(&f);
            }
        }
        BenchError::Io(e)
    }

    /// The next complete frame already buffered, without reading the socket.
    pub fn buffered_frame(&mut self) -> Result<Option<Frame>, BenchError> {
        let frame = self.decoder.decode(&mut self.rbuf)?;
        self.decoder_mid_frame = frame.is_none();
        Ok(frame)
    }

    /// Like [`Conn::buffered_frame`], but a plain MESSAGE comes back as ranges into
    /// [`Conn::rbuf`] without being decoded; the caller reads it there, then calls
    /// [`Conn::consume`] with its `len`.
    pub fn next_inbound(&mut self) -> Result<Option<Inbound>, BenchError> {
        if !self.decoder_mid_frame {
            match scan(&self.rbuf) {
                Scan::NeedMore => return Ok(None),
                Scan::Message(m) => return Ok(Some(Inbound::Message(m))),
                Scan::Other => {}
            }
        }
        Ok(self.buffered_frame()?.map(Inbound::Frame))
    }

    /// Drops a scanned MESSAGE from the read buffer.
    pub fn consume(&mut self, len: usize) {
        self.rbuf.advance(len);
    }

    /// Reads whatever the socket has (waiting for at least one byte). Cancel-safe, so it can sit
    /// in a `select!`.
    pub async fn fill(&mut self) -> Result<(), BenchError> {
        self.rbuf.reserve(READ_CHUNK);
        match self.stream.read_buf(&mut self.rbuf).await? {
            0 => Err(BenchError::Closed),
            _ => Ok(()),
        }
    }

    /// Reads what the socket has without waiting; false when it had nothing.
    pub fn try_fill(&mut self) -> Result<bool, BenchError> {
        self.rbuf.reserve(READ_CHUNK);
        match self.stream.try_read_buf(&mut self.rbuf) {
            Ok(0) => Err(BenchError::Closed),
            Ok(_) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// The next frame, waiting at most the configured timeout for it.
    pub async fn next_frame(&mut self, what: &'static str) -> Result<Frame, BenchError> {
        loop {
            if let Some(f) = self.buffered_frame()? {
                return Ok(f);
            }
            within(self.timeout, what, self.fill()).await??;
        }
    }

    /// SUBSCRIBE (id 0) with a receipt and wait for it; returns the MESSAGEs that arrived first.
    /// A prefetch is sent under both names: Stampede and RabbitMQ read `prefetch-count`,
    /// ActiveMQ `activemq.prefetchSize`.
    pub async fn subscribe(
        &mut self,
        destination: &str,
        ack: &str,
        prefetch: Option<u32>,
    ) -> Result<Vec<Frame>, BenchError> {
        self.subscribe_as(destination, "0", ack, prefetch, &[], true)
            .await
    }

    /// SUBSCRIBE as `id` with `extra` headers; with `confirm`, waits for its receipt (and, since
    /// frames are handled in order, for every SUBSCRIBE before it) and returns the MESSAGEs that
    /// came first.
    pub async fn subscribe_as(
        &mut self,
        destination: &str,
        id: &str,
        ack: &str,
        prefetch: Option<u32>,
        extra: &[(&str, &str)],
        confirm: bool,
    ) -> Result<Vec<Frame>, BenchError> {
        let prefetch = prefetch.map(|p| p.to_string());
        let mut headers = vec![("destination", destination), ("id", id), ("ack", ack)];
        if confirm {
            headers.push(("receipt", "subscribed"));
        }
        if let Some(p) = &prefetch {
            headers.push(("prefetch-count", p));
            headers.push(("activemq.prefetchSize", p));
        }
        headers.extend_from_slice(extra);
        self.send_bare(Command::Subscribe, &headers);
        if !confirm {
            return Ok(Vec::new());
        }
        self.flush().await?;
        let mut early = Vec::new();
        loop {
            let f = self.next_frame("the SUBSCRIBE receipt").await?;
            match f.command {
                Command::Receipt => return Ok(early),
                Command::Error => return Err(broker_error(&f)),
                Command::Message => early.push(f),
                _ => {}
            }
        }
    }

    /// DISCONNECT with a receipt and wait for it, so everything sent before is known to be
    /// processed. Frames arriving meanwhile go to `on_frame`. Gives up quietly after `wait`: the
    /// run's numbers are already in.
    pub async fn disconnect(
        mut self,
        wait: Duration,
        mut on_frame: impl FnMut(Frame),
    ) -> Result<(), BenchError> {
        self.send_bare(Command::Disconnect, &[("receipt", "disconnect")]);
        self.flush().await?;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            while let Some(f) = self.buffered_frame()? {
                match f.command {
                    Command::Receipt if f.headers.get("receipt-id") == Some("disconnect") => {
                        return Ok(())
                    }
                    Command::Error => return Err(broker_error(&f)),
                    _ => on_frame(f),
                }
            }
            match tokio::time::timeout_at(deadline, self.fill()).await {
                Ok(Ok(())) => {}
                // A broker may close right after (or instead of) the receipt; that is a goodbye.
                Ok(Err(BenchError::Closed)) | Err(_) => return Ok(()),
                Ok(Err(e)) => return Err(e),
            }
        }
    }

    /// The bare stream, for idle connections that must not keep 64 KiB buffers each.
    pub fn into_stream(self) -> Stream {
        self.stream
    }
}

/// A frame from [`Conn::next_inbound`].
pub enum Inbound {
    Message(MessageAt),
    Frame(Frame),
}

/// Appends a body-less frame to `dst`; a free function so a caller can write ACKs while it holds
/// a borrow of the read buffer.
pub fn put_bare(dst: &mut BytesMut, version: Version, command: Command, headers: &[(&str, &str)]) {
    encode_head(command, headers.iter().copied(), 0, version, dst);
    dst.put_u8(0);
}

/// An ERROR frame as an error, with its `message` header (and body, which often says more).
pub fn broker_error(f: &Frame) -> BenchError {
    let mut text = f
        .headers
        .get("message")
        .unwrap_or("(no message)")
        .to_owned();
    let body = String::from_utf8_lossy(&f.body);
    let body = body.trim();
    if !body.is_empty() {
        text.push_str(": ");
        text.extend(body.chars().take(300));
    }
    BenchError::Broker(text)
}

/// `fut` with a deadline that names what was awaited.
pub async fn within<T>(
    limit: Duration,
    what: &'static str,
    fut: impl std::future::Future<Output = T>,
) -> Result<T, BenchError> {
    tokio::time::timeout(limit, fut)
        .await
        .map_err(|_| BenchError::Timeout {
            what,
            secs: limit.as_secs_f64(),
        })
}
