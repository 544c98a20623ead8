//! The whole server started in process, as mini-redis's tests do: the test binds the listeners
//! (two STOMP listeners here, each with its own name), runs an ephemeral broker on them, speaks
//! STOMP over TCP, and shuts it down through the future it handed to `run`.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use stampede_proto::{encode, Command, Decoder, Frame, Limits, Version};
use stampede_server::{config, run, Listeners, StompListener};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

struct Client {
    stream: TcpStream,
    decoder: Decoder,
    buf: BytesMut,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Client {
        let mut c = Client {
            stream: TcpStream::connect(addr).await.unwrap(),
            decoder: Decoder::new(Limits::default()),
            buf: BytesMut::new(),
        };
        c.send(Frame::new(Command::Connect).header("accept-version", "1.2"))
            .await;
        assert_eq!(c.next().await.command, Command::Connected);
        c.decoder.set_version(Version::V1_2);
        c
    }

    async fn send(&mut self, frame: Frame) {
        let mut wire = BytesMut::new();
        encode(&frame, Version::V1_2, &mut wire);
        self.stream.write_all(&wire).await.unwrap();
    }

    async fn next(&mut self) -> Frame {
        loop {
            if let Some(f) = self.decoder.decode(&mut self.buf).unwrap() {
                return f;
            }
            let n =
                tokio::time::timeout(Duration::from_secs(10), self.stream.read_buf(&mut self.buf))
                    .await
                    .expect("a frame in time")
                    .unwrap();
            assert!(n > 0, "closed without a frame");
        }
    }
}

async fn loopback() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.unwrap()
}

#[tokio::test]
async fn an_in_process_broker_serves_every_listener_and_shuts_down_gracefully() {
    let loaded = config::load(
        None,
        [("STAMPEDE__STORAGE__BACKEND".to_owned(), "memory".to_owned())],
    )
    .unwrap();
    let (a, b) = (loopback().await, loopback().await);
    let (addr_a, addr_b) = (a.local_addr().unwrap(), b.local_addr().unwrap());
    let listeners = Listeners {
        stomp: vec![
            StompListener::plain("stomp", a),
            StompListener::plain("stomp-b", b),
        ],
        http: loopback().await,
        rabbitmq_management: None,
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(run(loaded, listeners, async {
        let _ = stopped.await;
    }));

    let mut producer = Client::connect(addr_a).await;
    producer
        .send(
            Frame::new(Command::Send)
                .header("destination", "/queue/in-process")
                .header("receipt", "r1")
                .body("across listeners"),
        )
        .await;
    assert_eq!(producer.next().await.headers.get("receipt-id"), Some("r1"));
    let mut consumer = Client::connect(addr_b).await;
    consumer
        .send(
            Frame::new(Command::Subscribe)
                .header("destination", "/queue/in-process")
                .header("id", "1"),
        )
        .await;
    let m = consumer.next().await;
    assert_eq!(
        (m.command, &m.body[..]),
        (Command::Message, &b"across listeners"[..])
    );

    stop.send(()).unwrap();
    for c in [&mut producer, &mut consumer] {
        let bye = c.next().await;
        assert_eq!(bye.command, Command::Error);
        assert_eq!(bye.headers.get("message"), Some("broker shutting down"));
    }
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("run returns after shutdown")
        .unwrap()
        .unwrap();
    assert!(
        TcpStream::connect(addr_a).await.is_err(),
        "the listener is closed"
    );
}
