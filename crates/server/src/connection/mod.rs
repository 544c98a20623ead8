//! One client connection: the CONNECT handshake, then a reader loop that turns frames into
//! [`Session`] calls while a separate [`Writer`] task owns the socket's write half. Any protocol or
//! broker error is answered with an `ERROR` frame, after which the connection closes; the session
//! is closed either way, so its unsettled messages return to their queues.

mod handshake;
mod writer;

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use stampede_broker::{Broker, Outgoing, Session};
use stampede_proto::{
    ClientCommand, Command, Decoder, Frame, Limits, ProtoError, Request, Version,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::metrics::{ErrorKind, Metrics};
use crate::ConnectionSettings;
use writer::{Cancelled, Control, Replies, Writer};

/// Why the reader stopped.
enum End {
    /// The peer sent DISCONNECT or closed the socket.
    Peer,
    /// We sent an ERROR; the text is for the log.
    Error(String),
    Shutdown,
}

/// Serves one accepted socket until it closes.
pub async fn serve<S>(
    socket: S,
    peer: String,
    broker: Arc<Broker>,
    settings: Arc<ConnectionSettings>,
    shutdown: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let _open = OpenConnection::new(settings.metrics.clone(), "stomp");
    let (mut rd, wr) = tokio::io::split(socket);
    let mut decoder = Decoder::new(Limits {
        max_frame_size: settings.max_connect_frame,
        ..settings.limits
    });
    let mut buf = BytesMut::new();
    let (out_tx, out_rx) = mpsc::unbounded_channel();
    let (ctl_tx, ctl_rx) = mpsc::unbounded_channel();
    let cancelled = Cancelled::default();
    let replies = Arc::new(Replies::default());

    let first = tokio::select! {
        r = tokio::time::timeout(settings.connect_timeout, read_frame(&mut rd, &mut decoder, &mut buf, None)) => r,
        _ = shutdown.cancelled() => return,
    };
    let hello = match first {
        Err(_) => Err((
            ErrorKind::Timeout,
            "no CONNECT frame within the connect timeout".to_owned(),
        )),
        Ok(Ok(Some(frame))) => {
            settings.metrics.frames_in.inc(frame.command);
            handshake::accept(frame, &settings).map_err(|r| (ErrorKind::Protocol, r))
        }
        Ok(Ok(None)) => return,
        Ok(Err(e)) => Err((e.kind(), e.to_string())),
    };
    let (connected, version, heartbeat) = match hello {
        Ok(h) => h,
        Err((kind, reason)) => {
            // Refused before any broker state exists for this socket.
            warn!(%peer, %reason, "connection refused");
            settings.metrics.error(kind);
            let _ = out_tx.send(Outgoing::Frame(Box::new(error_frame(&reason, None))));
            replies.queued();
            let _ = ctl_tx.send(Control::Close);
            let writer = Writer {
                socket: wr,
                broker: broker.clone(),
                outbox: out_rx,
                control: ctl_rx,
                cancelled: cancelled.clone(),
                replies: replies.clone(),
                metrics: settings.metrics.clone(),
                version: Version::V1_0,
                heartbeat: None,
            };
            let _ = tokio::time::timeout(settings.close_timeout, writer.run()).await;
            return;
        }
    };
    let session = broker.session(out_tx.clone());
    decoder.set_version(version);
    decoder.set_limits(settings.limits);
    let session_id = session.id();
    tracing::Span::current().record("session", session_id);
    info!(%peer, session = session_id, version = %version, "connected");
    let _ = out_tx.send(Outgoing::Frame(Box::new(
        connected.header("session", session_id.to_string()),
    )));
    replies.queued();
    let writer = tokio::spawn(
        Writer {
            socket: wr,
            broker: broker.clone(),
            outbox: out_rx,
            control: ctl_rx,
            cancelled: cancelled.clone(),
            replies: replies.clone(),
            metrics: settings.metrics.clone(),
            version,
            heartbeat: heartbeat.send,
        }
        .run(),
    );
    let mut conn = Conn {
        broker: broker.clone(),
        session,
        out: out_tx,
        replies,
        cancelled,
        version,
        metrics: settings.metrics.clone(),
    };
    let end = tokio::select! {
        end = conn.read_loop(&mut rd, &mut decoder, &mut buf, heartbeat.receive) => end,
        _ = shutdown.cancelled() => {
            conn.reply(error_frame("broker shutting down", None));
            End::Shutdown
        }
    };
    let _ = ctl_tx.send(Control::Close);
    // The writer finishes (settling what it wrote) before the session returns the rest to the
    // queues; a peer that stopped reading does not hold us forever.
    let mut writer = writer;
    if tokio::time::timeout(settings.close_timeout, &mut writer)
        .await
        .is_err()
    {
        debug!(%peer, "writer did not finish in time");
        writer.abort();
    }
    conn.session.close();
    drop(conn);
    match end {
        End::Peer => info!(%peer, session = session_id, "disconnected"),
        End::Error(reason) => warn!(%peer, session = session_id, %reason, "closed after ERROR"),
        End::Shutdown => info!(%peer, session = session_id, "closed for shutdown"),
    }
}

/// Agreed heart-beat intervals; `None` = not used in that direction.
#[derive(Debug, Clone, Copy, Default)]
pub struct Heartbeat {
    /// We write at least this often.
    pub send: Option<Duration>,
    /// The client must be heard from at least this often (we allow 1.5x).
    pub receive: Option<Duration>,
}

struct Conn {
    broker: Arc<Broker>,
    session: Session,
    out: mpsc::UnboundedSender<Outgoing>,
    replies: Arc<Replies>,
    cancelled: Cancelled,
    version: Version,
    metrics: Arc<Metrics>,
}

/// Counts a connection as open for as long as it lives.
struct OpenConnection {
    metrics: Arc<Metrics>,
    listener: &'static str,
}

impl OpenConnection {
    fn new(metrics: Arc<Metrics>, listener: &'static str) -> Self {
        metrics
            .connections_open
            .with_label_values(&[listener])
            .inc();
        OpenConnection { metrics, listener }
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.metrics
            .connections_open
            .with_label_values(&[self.listener])
            .dec();
    }
}

/// Why a frame was answered with an ERROR.
struct Rejection {
    kind: ErrorKind,
    reason: String,
}

impl From<ProtoError> for Rejection {
    fn from(e: ProtoError) -> Self {
        Rejection {
            kind: e.kind(),
            reason: e.to_string(),
        }
    }
}

impl From<stampede_broker::BrokerError> for Rejection {
    fn from(e: stampede_broker::BrokerError) -> Self {
        use stampede_broker::BrokerError as B;
        let kind = match e {
            B::Store(_) | B::StorageFull(_) => ErrorKind::Storage,
            _ => ErrorKind::Routing,
        };
        Rejection {
            kind,
            reason: e.to_string(),
        }
    }
}

trait Kind {
    fn kind(&self) -> ErrorKind;
}

impl Kind for ReadError {
    fn kind(&self) -> ErrorKind {
        match self {
            ReadError::Proto(p) => p.kind(),
            ReadError::Silent => ErrorKind::Timeout,
        }
    }
}

impl Kind for ProtoError {
    fn kind(&self) -> ErrorKind {
        match self {
            ProtoError::FrameTooLarge { .. }
            | ProtoError::TooManyHeaders { .. }
            | ProtoError::HeaderLineTooLong { .. } => ErrorKind::Limit,
            _ => ErrorKind::Protocol,
        }
    }
}

impl Conn {
    fn reply(&self, frame: Frame) {
        if self.out.send(Outgoing::Frame(Box::new(frame))).is_ok() {
            self.replies.queued();
        }
    }

    /// Before subscription `id` is cancelled: its deliveries not yet written are skipped (the
    /// queue takes them back), and whatever was written is settled. Without this an auto-ack
    /// message the client already read could be requeued and delivered twice.
    async fn stop_writing(&self, id: &str) {
        let Some(consumer) = self.session.consumer_of(id) else {
            return;
        };
        self.cancelled.lock().insert(consumer);
        let (done, written) = tokio::sync::oneshot::channel();
        if self.out.send(Outgoing::Barrier(done)).is_ok() {
            let _ = written.await;
        }
    }

    async fn read_loop<R: AsyncRead + Unpin>(
        &mut self,
        rd: &mut R,
        decoder: &mut Decoder,
        buf: &mut BytesMut,
        receive: Option<Duration>,
    ) -> End {
        let silence = receive.map(|d| d.mul_f64(1.5));
        loop {
            self.replies.room().await;
            let frame = match read_frame(rd, decoder, buf, silence).await {
                Ok(Some(frame)) => frame,
                Ok(None) => return End::Peer,
                Err(ReadError::Silent) => {
                    let reason =
                        "no data or heart-beat from the client within 1.5x the agreed interval";
                    self.metrics.error(ErrorKind::Timeout);
                    self.reply(error_frame(reason, None));
                    return End::Error(reason.to_owned());
                }
                Err(ReadError::Proto(e)) => {
                    self.metrics.error(e.kind());
                    self.reply(error_frame(&e.to_string(), None));
                    return End::Error(e.to_string());
                }
            };
            let command = frame.command;
            self.metrics.frames_in.inc(command);
            tracing::trace!(%command, headers = ?frame.headers, body_len = frame.body.len(), "frame");
            let receipt = frame.headers.get("receipt").map(str::to_owned);
            let result = match Request::from_frame(frame, self.version) {
                Ok(req) => self.handle(req).await,
                Err(e) => Err(e.into()),
            };
            match result {
                Ok(Flow::Continue) => {}
                Ok(Flow::Disconnect) => return End::Peer,
                Err(Rejection { kind, reason }) => {
                    debug!(%command, %reason, "frame rejected");
                    self.metrics.error(kind);
                    self.reply(error_frame(&reason, receipt.as_deref()));
                    return End::Error(reason);
                }
            }
        }
    }

    /// Producer flow control before a message is taken in (a SEND outside a transaction, or a
    /// COMMIT, which publishes what its SENDs held).
    async fn flow_control(&self, destination: Option<&str>) {
        let waited = self
            .broker
            .flow_control(destination.unwrap_or_default())
            .await;
        if waited.consumers {
            self.metrics.flow_waits_consumers.inc();
        }
        if waited.store {
            self.metrics.flow_waits_store.inc();
        }
    }

    async fn handle(&mut self, req: Request) -> Result<Flow, Rejection> {
        let started = std::time::Instant::now();
        let is_send = matches!(req.command, ClientCommand::Send(_));
        match &req.command {
            ClientCommand::Send(send) if send.transaction.is_none() => {
                self.flow_control(Some(&send.destination)).await
            }
            ClientCommand::Commit { .. } => self.flow_control(None).await,
            _ => {}
        }
        let s = &mut self.session;
        let ticket = match req.command {
            ClientCommand::Connect(_) => {
                return Err(Rejection {
                    kind: ErrorKind::Protocol,
                    reason: "already connected".to_owned(),
                })
            }
            ClientCommand::Send(send) => Some(s.send(send)),
            ClientCommand::Subscribe(sub) => s.subscribe(sub).map(|_| None).transpose(),
            ClientCommand::Unsubscribe { id } => {
                self.stop_writing(&id).await;
                self.session.unsubscribe(&id).map(|_| None).transpose()
            }
            ClientCommand::Ack(a) => Some(s.ack(a)),
            ClientCommand::Nack(a) => Some(s.nack(a)),
            ClientCommand::Begin { transaction } => s.begin(&transaction).map(|_| None).transpose(),
            ClientCommand::Commit { transaction } => Some(s.commit(&transaction)),
            ClientCommand::Abort { transaction } => s.abort(&transaction).map(|_| None).transpose(),
            ClientCommand::Disconnect => {
                if let Some(r) = &req.receipt {
                    self.reply(receipt_frame(r));
                }
                return Ok(Flow::Disconnect);
            }
        };
        if let Some(ticket) = ticket.transpose()? {
            if req.receipt.is_some() {
                // A RECEIPT promises durability: wait for the store before sending it.
                ticket.await.map_err(|e| Rejection {
                    kind: ErrorKind::Storage,
                    reason: format!("message could not be stored: {e}"),
                })?;
            }
        }
        if let Some(r) = &req.receipt {
            self.reply(receipt_frame(r));
            if is_send {
                self.metrics
                    .receipt_seconds
                    .observe(started.elapsed().as_secs_f64());
            }
        }
        Ok(Flow::Continue)
    }
}

enum Flow {
    Continue,
    Disconnect,
}

enum ReadError {
    Proto(ProtoError),
    Silent,
}

impl From<ProtoError> for ReadError {
    fn from(e: ProtoError) -> Self {
        ReadError::Proto(e)
    }
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Proto(p) => p.fmt(f),
            ReadError::Silent => f.write_str("client went silent"),
        }
    }
}

/// Bytes read per syscall while frames are arriving.
const READ_CHUNK: usize = 8 * 1024;

/// What an idle connection waits with: a small array inside its task instead of a heap buffer.
/// Idle connections are most of them, and a read buffer each would be most of their memory.
const IDLE_READ: usize = 256;

/// Reads until a whole frame is decoded. Any bytes received (heart-beat EOLs included) reset the
/// silence timer. `Ok(None)` is a clean end of stream.
///
/// With nothing buffered the connection is between frames: the read buffer is given up and the
/// next bytes are read into a small array first, so an idle connection holds no read buffer. A
/// read that fills the array means traffic, and the next ones go straight into the buffer.
async fn read_frame<R: AsyncRead + Unpin>(
    rd: &mut R,
    decoder: &mut Decoder,
    buf: &mut BytesMut,
    silence: Option<Duration>,
) -> Result<Option<Frame>, ReadError> {
    loop {
        if let Some(frame) = decoder.decode(buf)? {
            return Ok(Some(frame));
        }
        let n = if buf.is_empty() {
            // Between frames (the decoder also consumes EOLs after a frame and heart-beats):
            // frames keep their slices of the allocation, and ours is not needed until bytes come.
            if buf.capacity() > 0 {
                *buf = BytesMut::new();
            }
            let mut first = [0u8; IDLE_READ];
            let n = with_silence(silence, rd.read(&mut first)).await?;
            buf.reserve(if n == IDLE_READ { READ_CHUNK } else { n });
            buf.extend_from_slice(&first[..n]);
            n
        } else {
            buf.reserve(READ_CHUNK);
            with_silence(silence, rd.read_buf(buf)).await?
        };
        if n == 0 {
            return Ok(None);
        }
    }
}

/// A read that fails as [`ReadError::Silent`] when nothing arrives within `silence`.
async fn with_silence(
    silence: Option<Duration>,
    read: impl std::future::Future<Output = std::io::Result<usize>>,
) -> Result<usize, ReadError> {
    match silence {
        Some(limit) => tokio::time::timeout(limit, read)
            .await
            .map_err(|_| ReadError::Silent)?,
        None => read.await,
    }
    .map_err(|e| ReadError::Proto(ProtoError::Io(e)))
}

pub fn error_frame(message: &str, receipt: Option<&str>) -> Frame {
    let mut f = Frame::new(Command::Error)
        .header("message", message)
        .header("content-type", "text/plain");
    if let Some(r) = receipt {
        f = f.header("receipt-id", r);
    }
    f.body(format!(
        "{message}\n\nStampede closes the connection after an ERROR frame.\n"
    ))
}

fn receipt_frame(id: &str) -> Frame {
    Frame::new(Command::Receipt).header("receipt-id", id)
}
