//! One STOMP client connection, over any byte stream: the CONNECT handshake, then a reader loop
//! that turns frames into [`Session`] calls while a separate [`Writer`] task owns the stream's write
//! half. Any protocol or broker error is answered with an `ERROR` frame (see `errors`), after which
//! the connection closes; the session is closed either way, so its unsettled messages return to
//! their queues.
//!
//! The files: `handshake` (CONNECT), `read` (frames off the stream), `session` (STOMP commands onto
//! the broker's operations), `writer` and `sink` (frames onto the stream), `errors` (what an ERROR
//! says).

mod errors;
mod handshake;
mod oci;
mod read;
mod session;
pub(crate) mod sink;
#[cfg(test)]
mod tests;
mod writer;

pub use errors::ConnError;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use stampede_broker::{BrokerError, ConsumerId, Outcome, Ticket};
use stampede_proto::{
    ClientCommand, Command, Decoder, Frame, Limits, Request, UnsubscribeCommand, Version,
};
use tokio::io::AsyncRead;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::hub::{ConnectionHub, ConnectionInfo, Profile};
use crate::metrics::Metrics;
use handshake::Accepted;
pub use read::TooLarge;
use read::{read_frame, ReadError};
use session::{Publishing, Sent, Session};
pub use sink::{FrameSink, StreamSink};
use writer::{Writer, WriterTx};

/// Why the reader stopped.
enum End {
    /// The peer sent DISCONNECT or closed the stream.
    Peer,
    /// We sent an ERROR; the text is for the log.
    Error(String),
    /// The stream failed under us.
    Gone,
    Shutdown,
    /// Closed through the admin API.
    Operator,
}

/// Serves one client until it leaves: its bytes arrive on `rd` (a TCP or TLS stream's read half,
/// a WebSocket's messages read as one stream) and its frames go to `sink`. CONNECT must arrive by
/// `deadline`.
pub async fn serve_parts<R, K>(
    mut rd: R,
    sink: K,
    peer: SocketAddr,
    listener: Profile,
    cert_login: Option<String>,
    hub: &ConnectionHub,
    deadline: Instant,
) where
    R: AsyncRead + Unpin + Send,
    K: FrameSink + 'static,
{
    let settings = hub.settings().clone();
    let _open = OpenConnection::new(settings.metrics.clone(), listener.name);
    let mut decoder = Decoder::new(Limits {
        max_frame_size: settings.max_connect_frame,
        ..settings.limits
    });
    let mut buf = BytesMut::new();
    let (out, rx) = writer::channel();
    let writer = |version, heartbeat| Writer {
        sink,
        broker: hub.broker().clone(),
        rx,
        metrics: settings.metrics.clone(),
        version,
        heartbeat,
    };
    let first = tokio::select! {
        r = tokio::time::timeout_at(deadline, read_frame(&mut rd, &mut decoder, &mut buf, None)) => r,
        _ = hub.shutdown().cancelled() => return,
    };
    let hello = match first {
        Err(_) => Err(ConnError::ConnectTimeout),
        Ok(Ok(Some(frame))) => {
            settings.metrics.frames_in.inc(frame.command);
            // A login may wait for the address's limiter; shutdown does not wait for it.
            tokio::select! {
                r = handshake::accept(frame, &settings, (peer, listener, cert_login.as_deref()), deadline) => r,
                _ = hub.shutdown().cancelled() => Err(ConnError::ShuttingDown),
            }
        }
        Ok(Ok(None)) | Ok(Err(ReadError::Io(_))) => return,
        Ok(Err(ReadError::Conn(e))) => Err(e),
    };
    let accepted = match hello {
        Ok(accepted) => accepted,
        Err(e) => {
            // Refused before any broker state exists for this stream.
            let (kind, frame) = e.to_error_frame(None);
            warn!(%peer, reason = %frame.headers.get("message").unwrap_or_default(), "connection refused");
            settings.metrics.error(kind);
            out.reply(frame);
            out.close();
            let refusal = writer(Version::V1_0, None).run();
            let _ = tokio::time::timeout(settings.close_timeout, refusal).await;
            discard_input(&mut rd, &mut buf).await;
            return;
        }
    };
    decoder.set_version(accepted.version);
    decoder.set_limits(settings.limits);
    let writer = writer(accepted.version, accepted.heartbeat.send);
    let read = Reading {
        rd: &mut rd,
        decoder: &mut decoder,
        buf: &mut buf,
    };
    established(accepted, read, out, writer, (peer, listener), hub).await;
}

/// The reading half's state, carried from the handshake into the session.
struct Reading<'a, R> {
    rd: &'a mut R,
    decoder: &'a mut Decoder,
    buf: &'a mut BytesMut,
}

/// Runs a connected client's session until it ends, then lets the writer finish and closes the
/// session (its unsettled messages go back to their queues).
async fn established<R, S>(
    accepted: Accepted,
    read: Reading<'_, R>,
    out: WriterTx,
    writer: Writer<S>,
    (peer, listener): (SocketAddr, Profile),
    hub: &ConnectionHub,
) where
    R: AsyncRead + Unpin,
    S: sink::FrameSink + 'static,
{
    let settings = hub.settings();
    let (version, heartbeat) = (accepted.version, accepted.heartbeat);
    // One allocation serves as the broker's outbox and the reader's handle on the writer.
    let out = Arc::new(out);
    let (session, registration) = {
        // Scoped: what only the log and the listing need is not kept for the connection's life.
        let Accepted {
            connected,
            identity,
            client_id,
            ..
        } = accepted;
        let principal = identity.principal.clone();
        let session = Session::new(
            hub.broker().clone(),
            identity,
            client_id.clone(),
            out.clone(),
        );
        let listing = session.listing();
        let session_id = session.id();
        tracing::Span::current().record("session", session_id);
        info!(%peer, session = session_id, version = %version, login = principal.name(), client_id = client_id.as_deref(), "connected");
        out.reply(connected.header("session", session_id.to_string()));
        let ms = |d: Option<Duration>| d.map_or(0, |d| d.as_millis() as u64);
        let listed = ConnectionInfo {
            id: session_id,
            peer,
            listener: listener.name,
            transport: listener.transport,
            principal: principal.name().to_owned(),
            version: version.to_string(),
            client_id,
            connected_at_ms: now_ms(),
            heartbeat_ms: (ms(heartbeat.send), ms(heartbeat.receive)),
        };
        (session, hub.register(listed, listing))
    };
    let session_id = session.id();
    let mut writer = tokio::spawn(writer.run());
    let mut conn = Conn {
        session,
        out: out.clone(),
        version,
        metrics: settings.metrics.clone(),
        oci_strict: accepted.oci_strict,
    };
    let silence = heartbeat.receive.map(|d| d.mul_f64(1.5));
    let end = tokio::select! {
        end = conn.read_loop(read.rd, read.decoder, read.buf, silence) => end,
        _ = hub.shutdown().cancelled() => End::Shutdown,
        _ = registration.closed() => End::Operator,
    };
    drop(registration);
    match end {
        End::Shutdown => drop(conn.reject(ConnError::ShuttingDown, None)),
        End::Operator => drop(conn.reject(ConnError::ClosedByOperator, None)),
        _ => {}
    }
    out.close();
    // The writer finishes (reporting what it wrote) before the session returns the rest to the
    // queues; a peer that stopped reading does not hold us forever.
    if tokio::time::timeout(settings.close_timeout, &mut writer)
        .await
        .is_err()
    {
        debug!(%peer, "writer did not finish in time");
        writer.abort();
    }
    conn.session.close();
    if let End::Error(_) = &end {
        discard_input(read.rd, read.buf).await;
    }
    match end {
        End::Peer => info!(%peer, session = session_id, "disconnected"),
        End::Gone => info!(%peer, session = session_id, "connection lost"),
        End::Error(reason) => warn!(%peer, session = session_id, %reason, "closed after ERROR"),
        End::Shutdown => info!(%peer, session = session_id, "closed for shutdown"),
        End::Operator => info!(%peer, session = session_id, "closed by an operator"),
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// How long, and how much, a connection closing after an ERROR still reads (see
/// [`discard_input`]).
const LINGER: Duration = Duration::from_millis(300);
const LINGER_BYTES: usize = 64 * 1024 * 1024;

/// After an ERROR the broker closes. Closing with the client's next frames unread would make the
/// kernel answer them with a reset, which can destroy the ERROR before the client has read it
/// (seen in about 3 % of closes under a mutation fuzzer). The writer has already shut its side
/// (the client sees the ERROR, then end of stream); read and drop what the client still sends
/// until it closes too, for at most `LINGER` and `LINGER_BYTES`, as web servers do.
async fn discard_input<R: AsyncRead + Unpin>(rd: &mut R, buf: &mut BytesMut) {
    use tokio::io::AsyncReadExt;
    let deadline = Instant::now() + LINGER;
    let mut left = LINGER_BYTES;
    while left > 0 {
        buf.clear();
        buf.reserve(16 * 1024);
        match tokio::time::timeout_at(deadline, rd.read_buf(buf)).await {
            Ok(Ok(n)) if n > 0 => left = left.saturating_sub(n),
            _ => return,
        }
    }
}

/// The reader's side of an established connection.
struct Conn {
    session: Session,
    out: Arc<WriterTx>,
    version: Version,
    metrics: Arc<Metrics>,
    /// Refuse what OCI Queue refuses (the listener's `oci_strict`).
    oci_strict: bool,
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

enum Flow {
    Continue,
    Disconnect,
}

impl Conn {
    async fn read_loop<R: AsyncRead + Unpin>(
        &mut self,
        rd: &mut R,
        decoder: &mut Decoder,
        buf: &mut BytesMut,
        silence: Option<Duration>,
    ) -> End {
        loop {
            self.out.room().await;
            let frame = match read_frame(rd, decoder, buf, silence).await {
                Ok(Some(frame)) => frame,
                Ok(None) => return End::Peer,
                Err(ReadError::Io(e)) => {
                    debug!(error = %e, "read failed");
                    return End::Gone;
                }
                Err(ReadError::Conn(e)) => return self.reject(e, None),
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
                Err(e) => {
                    debug!(%command, error = ?e, "frame rejected");
                    return self.reject(e, receipt.as_deref());
                }
            }
        }
    }

    /// Answers `e` with its ERROR frame; the connection closes after it.
    fn reject(&self, e: ConnError, receipt: Option<&str>) -> End {
        let (kind, frame) = e.to_error_frame(receipt);
        if e.counts_as_error() {
            self.metrics.error(kind);
        }
        let reason = frame.headers.get("message").unwrap_or_default().to_owned();
        self.out.reply(frame);
        End::Error(reason)
    }

    /// Carries out one command. The command itself is dispatched synchronously; only what it
    /// leaves to wait for is awaited, so the future a connection's task holds stays small — it
    /// holds the largest one it may await for as long as it lives, idle or not.
    async fn handle(&mut self, req: Request) -> Result<Flow, ConnError> {
        let started = std::time::Instant::now();
        let is_send = matches!(req.command, ClientCommand::Send(_));
        let Request { receipt, command } = req;
        let ticket = match self.dispatch(command)? {
            Wait::Nothing => None,
            Wait::Durable(ticket) => Some(ticket),
            Wait::Publishing(publishing) => Some(publishing.await?),
            Wait::Unsubscribe(cmd, consumer) => self.unsubscribe(&cmd, consumer).await?,
            Wait::Disconnect => {
                if let Some(r) = &receipt {
                    self.out.reply(receipt_frame(r));
                }
                return Ok(Flow::Disconnect);
            }
        };
        let Some(receipt) = receipt else {
            return Ok(Flow::Continue);
        };
        if let Some(ticket) = ticket {
            // A RECEIPT promises durability: wait for the store before sending it.
            ticket.await.map_err(BrokerError::Store)?;
        }
        self.out.reply(receipt_frame(&receipt));
        if is_send {
            self.metrics
                .receipt_seconds
                .observe(started.elapsed().as_secs_f64());
        }
        Ok(Flow::Continue)
    }

    fn dispatch(&mut self, command: ClientCommand) -> Result<Wait, ConnError> {
        if self.oci_strict {
            oci::check(&command)?;
        }
        let s = &mut self.session;
        Ok(match command {
            ClientCommand::Connect(_) => return Err(ConnError::AlreadyConnected),
            ClientCommand::Send(cmd) => match s.send(cmd)? {
                Sent::Held => Wait::Nothing,
                Sent::Published(ticket) => Wait::Durable(ticket),
                Sent::Paced(publishing) => Wait::Publishing(publishing),
            },
            ClientCommand::Subscribe(cmd) => match s.subscribe(cmd)? {
                Some(ticket) => Wait::Durable(ticket),
                None => Wait::Nothing,
            },
            ClientCommand::Unsubscribe(cmd) => {
                let consumer = s.consumer_of(&cmd.id);
                Wait::Unsubscribe(Box::new(cmd), consumer)
            }
            ClientCommand::Ack(cmd) => Wait::Durable(s.settle(cmd, Outcome::Ack)?),
            ClientCommand::Nack(cmd) => {
                let outcome = match (cmd.requeue, cmd.delay_ms) {
                    (true, Some(ms)) => Outcome::RetryAfter(Duration::from_millis(ms)),
                    (requeue, _) => Outcome::Nack { requeue },
                };
                Wait::Durable(s.settle(cmd, outcome)?)
            }
            ClientCommand::Begin { transaction } => {
                s.begin(&transaction)?;
                Wait::Nothing
            }
            ClientCommand::Commit { transaction } => Wait::Publishing(s.commit(&transaction)?),
            ClientCommand::Abort { transaction } => {
                s.abort(&transaction)?;
                Wait::Nothing
            }
            ClientCommand::Disconnect => Wait::Disconnect,
        })
    }

    /// UNSUBSCRIBE: deliveries not yet written are skipped (the queue takes them back) and what
    /// was written is reported first; without this an auto-ack message the client already read
    /// could be requeued and delivered twice.
    async fn unsubscribe(
        &mut self,
        cmd: &UnsubscribeCommand,
        consumer: Option<ConsumerId>,
    ) -> Result<Option<Ticket>, ConnError> {
        if let Some(c) = consumer {
            self.out.cancel(c).await;
        }
        let removed = self.session.unsubscribe(cmd)?;
        if let Some(c) = consumer {
            self.out.forget(c);
        }
        Ok(removed)
    }
}

/// What a dispatched command leaves to wait for before its RECEIPT.
enum Wait {
    Nothing,
    /// A commit's ticket.
    Durable(Ticket),
    /// A publish or commit held back by flow control.
    Publishing(Publishing),
    /// Boxed: rare, and the largest variant otherwise.
    Unsubscribe(Box<UnsubscribeCommand>, Option<ConsumerId>),
    Disconnect,
}

fn receipt_frame(id: &str) -> Frame {
    Frame::new(Command::Receipt).header("receipt-id", id)
}
