//! The connection's halves in process: the writer over a recording stream and over
//! `tokio::io::duplex`, the reader over a stream that hands out what each read asks for, and a
//! whole connection served by the hub with tokio's clock paused for heart-beats.

use std::io::IoSlice;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use stampede_broker::{
    AckMode, Broker, BrokerConfig, Destination, ManualClock, NewMessage, Principal, QueuePolicy,
    SubscribeSpec, Ticket,
};
use stampede_proto::{encode, Command, Decoder, Frame, Limits, Version};
use stampede_store::MemoryStore;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

use super::read::{read_frame, ReadError};
use super::sink::{FrameSink, StreamSink};
use super::writer::{channel, Writer, WriterEnd, WriterRx, WriterTx};
use super::ConnError;
use crate::metrics::Metrics;

fn broker() -> Arc<Broker> {
    Broker::new(
        BrokerConfig::default(),
        QueuePolicy::default(),
        Arc::new(MemoryStore::new()),
        Arc::new(ManualClock::new(1_000_000)),
    )
}

fn metrics() -> Arc<Metrics> {
    Arc::new(Metrics::new(10, None))
}

fn open_auth() -> Arc<crate::auth::Authenticator> {
    Arc::new(crate::auth::Authenticator::new(crate::auth::AuthSettings {
        mode: crate::auth::Mode::Open,
        users: Default::default(),
        anonymous_user: None,
        passcode_encoding: crate::auth::PasscodeEncoding::Plain,
        failed_login_burst: 1,
        failed_login_interval: Duration::from_secs(1),
    }))
}

/// A stream that records every write call and the number of slices it was given.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Recorded>>);

#[derive(Default)]
struct Recorded {
    bytes: Vec<u8>,
    writes: usize,
    vectored_slices: Vec<usize>,
}

impl AsyncWrite for Recorder {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let mut r = self.0.lock();
        r.writes += 1;
        r.bytes.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let mut r = self.0.lock();
        r.writes += 1;
        r.vectored_slices.push(bufs.len());
        let mut n = 0;
        for b in bufs {
            r.bytes.extend_from_slice(b);
            n += b.len();
        }
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl Recorder {
    fn frames(&self) -> Vec<Frame> {
        let mut d = Decoder::new(Limits {
            max_frame_size: 64 * 1024 * 1024,
            ..Limits::default()
        });
        d.set_version(Version::V1_2);
        let mut buf = BytesMut::from(&self.0.lock().bytes[..]);
        let mut out = Vec::new();
        while let Some(f) = d.decode(&mut buf).unwrap() {
            out.push(f);
        }
        out
    }
}

fn writer<W: AsyncWrite + Unpin + Send>(
    io: W,
    broker: &Arc<Broker>,
    rx: WriterRx,
) -> Writer<StreamSink<W>> {
    Writer {
        sink: StreamSink::new(io),
        broker: broker.clone(),
        rx,
        metrics: metrics(),
        version: Version::V1_2,
        heartbeat: None,
    }
}

fn receipt(id: &str) -> Frame {
    Frame::new(Command::Receipt).header("receipt-id", id)
}

/// Subscribes `out` to queue `q` with `ack`, holding the subscription.
fn subscribe(
    broker: &Arc<Broker>,
    out: &WriterTx,
    q: &str,
    ack: AckMode,
) -> stampede_broker::Subscription {
    broker
        .subscribe(
            &Principal::new("t"),
            SubscribeSpec::new(Destination::Queue(q.to_owned()), q, "s", ack),
            Arc::new(out.clone()),
        )
        .unwrap()
}

async fn send(broker: &Broker, q: &str, body: impl Into<Bytes>) {
    broker
        .publish(&Destination::Queue(q.to_owned()), NewMessage::new(body))
        .await
        .unwrap()
        .await
        .unwrap();
}

#[tokio::test]
async fn queued_frames_go_out_in_one_write_and_large_bodies_are_not_copied() {
    let broker = broker();
    let big = Bytes::from(vec![b'x'; 64 * 1024]);
    send(&broker, "q", "small").await;
    send(&broker, "q", big.clone()).await;
    let (out, rx) = channel();
    let _sub = subscribe(&broker, &out, "q", AckMode::Auto);
    for n in 0..10 {
        out.reply(receipt(&n.to_string()));
    }
    out.close();
    let io = Recorder::default();
    assert_eq!(
        writer(io.clone(), &broker, rx).run().await,
        WriterEnd::Closed
    );
    let frames = io.frames();
    assert_eq!(frames.len(), 12);
    assert_eq!(frames[1].body, big);
    let r = io.0.lock();
    assert_eq!(r.writes, 1, "twelve frames, one write");
    assert_eq!(
        r.vectored_slices,
        [3],
        "the frames before the large body, the body itself, the rest"
    );
}

#[tokio::test]
async fn a_client_ack_delivery_and_what_follows_wait_for_its_delivery_count() {
    let broker = broker();
    let (ticket, done) = Ticket::pending();
    let (out, rx) = channel();
    let (mut client, server) = tokio::io::duplex(1 << 16);
    let task = tokio::spawn(writer(server, &broker, rx).run());
    let mut delivery = test_delivery("held");
    delivery.durable = Some(ticket);
    use stampede_broker::Outbox;
    assert!(out.deliver(Box::new(delivery)));
    out.reply(receipt("after"));
    let mut byte = [0u8; 1];
    let early = tokio::time::timeout(Duration::from_millis(50), client.read(&mut byte)).await;
    assert!(
        early.is_err(),
        "nothing is written before the count is durable"
    );
    done.complete(Ok(()));
    let frames = read_frames(&mut client, 2).await;
    assert_eq!(frames[0].command, Command::Message);
    assert_eq!(frames[1].headers.get("receipt-id"), Some("after"));
    out.close();
    assert_eq!(task.await.unwrap(), WriterEnd::Closed);
}

fn test_delivery(body: &'static str) -> stampede_broker::Delivery {
    stampede_broker::Delivery {
        consumer: stampede_broker::ConsumerId(99),
        subscription: Arc::from("s"),
        destination: Arc::from("/queue/q"),
        queue_number: 1,
        seq: 1,
        delivery_count: 1,
        client_ack: true,
        record: Arc::new(stampede_broker::MessageRecord {
            headers: vec![("destination".into(), "/queue/forged".into())],
            body: Bytes::from_static(body.as_bytes()),
            enqueued_at_ms: 0,
            expires_at_ms: None,
        }),
        auto_ack: None,
        durable: None,
    }
}

async fn read_frames(client: &mut tokio::io::DuplexStream, n: usize) -> Vec<Frame> {
    let mut d = Decoder::new(Limits::default());
    d.set_version(Version::V1_2);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    while out.len() < n {
        while let Some(f) = d.decode(&mut buf).unwrap() {
            out.push(f);
        }
        if out.len() < n {
            let got = tokio::time::timeout(Duration::from_secs(5), client.read_buf(&mut buf))
                .await
                .expect("frames in time")
                .unwrap();
            assert!(got > 0, "stream closed after {out:?}");
        }
    }
    out
}

#[tokio::test]
async fn a_cancelled_consumer_is_skipped_until_forgotten_and_written_auto_acks_settle() {
    use stampede_broker::{ConsumerId, Outbox};
    let broker = broker();
    for b in ["1", "2"] {
        send(&broker, "q", b).await;
    }
    let (out, rx) = channel();
    let io = Recorder::default();
    let task = tokio::spawn(writer(io.clone(), &broker, rx).run());
    let sub = subscribe(&broker, &out, "q", AckMode::Auto);
    let consumer = sub.consumer();
    let unrelated = ConsumerId(7);
    // A cancel waits until everything queued before it is written (and reported).
    out.cancel(unrelated).await;
    assert_eq!(io.frames().len(), 2);
    assert_eq!(
        broker.queue_view("q").unwrap().in_flight,
        0,
        "written and reported: the broker settled both"
    );
    out.cancel(consumer).await;
    let mut skipped = test_delivery("skipped");
    skipped.consumer = consumer;
    out.deliver(Box::new(skipped));
    drop(sub);
    out.forget(consumer);
    let mut late = test_delivery("late");
    late.consumer = consumer;
    out.deliver(Box::new(late));
    let mut other = test_delivery("other");
    other.consumer = unrelated;
    out.deliver(Box::new(other));
    out.close();
    task.await.unwrap();
    let frames = io.frames();
    let bodies: Vec<_> = frames.iter().map(|f| f.body.clone()).collect();
    assert_eq!(
        bodies,
        ["1", "2", "late"],
        "a cancelled consumer is skipped; once forgotten it is written again"
    );
    assert_eq!(
        frames[2].headers.get("destination"),
        Some("/queue/q"),
        "the producer's copy of a reserved header is not forwarded"
    );
}

#[tokio::test]
async fn an_idle_writer_gives_its_buffer_back() {
    let (client, server) = tokio::io::duplex(1 << 16);
    let mut sink = StreamSink::new(server);
    encode(&receipt("1"), Version::V1_2, sink.head());
    sink.flush(false).await.unwrap();
    assert!(
        sink.capacity() > 0,
        "busy: the buffer is kept for the next write"
    );
    encode(&receipt("2"), Version::V1_2, sink.head());
    sink.flush(true).await.unwrap();
    assert_eq!(sink.capacity(), 0, "idle: no buffer held");
    drop(client);
}

#[tokio::test(start_paused = true)]
async fn a_quiet_writer_sends_heart_beats_at_the_agreed_interval() {
    let broker = broker();
    let (out, rx) = channel();
    let (mut client, server) = tokio::io::duplex(1 << 16);
    let mut w = writer(server, &broker, rx);
    w.heartbeat = Some(Duration::from_secs(10));
    let task = tokio::spawn(w.run());
    let started = tokio::time::Instant::now();
    let mut eol = [0u8; 2];
    client.read_exact(&mut eol[..1]).await.unwrap();
    assert_eq!(eol[0], b'\n');
    assert_eq!(started.elapsed(), Duration::from_secs(10));
    client.read_exact(&mut eol[1..]).await.unwrap();
    assert_eq!(started.elapsed(), Duration::from_secs(20));
    out.close();
    task.await.unwrap();
}

/// A stream that holds `data` and hands out as much as each read has room for.
struct Source {
    data: Bytes,
}

impl AsyncRead for Source {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let n = buf.remaining().min(self.data.len());
        let chunk = self.data.split_to(n);
        buf.put_slice(&chunk);
        Poll::Ready(Ok(()))
    }
}

#[tokio::test]
async fn frames_are_read_whole_however_the_bytes_arrive() {
    let body = Bytes::from(vec![7u8; 1024 * 1024]);
    let big = Frame::new(Command::Send)
        .header("destination", "q")
        .body(body.clone());
    let mut wire = BytesMut::new();
    encode(&big, Version::V1_2, &mut wire);
    wire.extend_from_slice(b"\n\n");
    encode(&receipt("r"), Version::V1_2, &mut wire);
    let mut src = Source {
        data: wire.freeze(),
    };
    let mut decoder = Decoder::new(Limits::default());
    let mut buf = BytesMut::new();
    let first = read_frame(&mut src, &mut decoder, &mut buf, None).await;
    assert_eq!(first.unwrap().unwrap().body, body);
    let second = read_frame(&mut src, &mut decoder, &mut buf, None).await;
    assert_eq!(second.unwrap().unwrap().command, Command::Receipt);
    assert!(read_frame(&mut src, &mut decoder, &mut buf, None)
        .await
        .unwrap()
        .is_none());
    assert_eq!(buf.capacity(), 0, "between frames no read buffer is held");
}

#[tokio::test(start_paused = true)]
async fn a_silent_client_is_noticed_after_its_allowance() {
    let (_client, mut server) = tokio::io::duplex(1024);
    let mut decoder = Decoder::new(Limits::default());
    let mut buf = BytesMut::new();
    let started = tokio::time::Instant::now();
    let got = read_frame(
        &mut server,
        &mut decoder,
        &mut buf,
        Some(Duration::from_millis(1500)),
    )
    .await;
    assert!(
        matches!(got, Err(ReadError::Conn(ConnError::Silent))),
        "{got:?}"
    );
    assert_eq!(started.elapsed(), Duration::from_millis(1500));
}

#[tokio::test(start_paused = true)]
async fn a_connection_served_by_the_hub_agrees_heart_beats_and_closes_a_silent_client() {
    let hub = crate::hub::ConnectionHub::new(
        broker(),
        crate::ConnectionSettings {
            limits: Limits::default(),
            max_connect_frame: 64 * 1024,
            connect_timeout: Duration::from_secs(10),
            heartbeat: Duration::from_secs(1),
            close_timeout: Duration::from_secs(1),
            metrics: metrics(),
            auth: open_auth(),
        },
        tokio_util::sync::CancellationToken::new(),
    );
    let (mut client, server) = tokio::io::duplex(1 << 16);
    let profile = crate::hub::Profile {
        name: "duplex",
        transport: "tcp",
        auth: Default::default(),
        oci_strict: false,
    };
    hub.spawn(
        std::future::ready(Ok((server, None))),
        ([127, 0, 0, 1], 1).into(),
        profile,
        Some(
            Arc::new(tokio::sync::Semaphore::new(1))
                .try_acquire_owned()
                .unwrap(),
        ),
    );
    let connect = Frame::new(Command::Connect)
        .header("accept-version", "1.2")
        .header("heart-beat", "2000,2000");
    let mut wire = BytesMut::new();
    encode(&connect, Version::V1_0, &mut wire);
    client.write_all(&wire).await.unwrap();
    let started = tokio::time::Instant::now();
    let connected = read_frames(&mut client, 1).await.remove(0);
    assert_eq!(connected.headers.get("heart-beat"), Some("2000,2000"));
    let mut eol = [0u8; 1];
    client.read_exact(&mut eol).await.unwrap();
    assert_eq!((eol[0], started.elapsed()), (b'\n', Duration::from_secs(2)));
    let error = read_frames(&mut client, 1).await.remove(0);
    assert_eq!(error.command, Command::Error);
    assert!(error.headers.get("message").unwrap().contains("heart-beat"));
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(3),
        "1.5 x the client's 2 s"
    );
    hub.drain(Duration::from_secs(1)).await;
}
