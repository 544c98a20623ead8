//! OCI Queue channels over STOMP (docs/oci.md "Channels"): `<OCID>/<channel>` addresses a channel
//! of the OCID's queue; a channel's subscriber gets only that channel, in order; the OCID's
//! subscriber gets every channel, each delivery naming its channel; channels survive a restart.

use stampede_tests::{unique, Server};

use crate::durability::start_on;
use crate::support_q::{bodies, connect, h};

fn ocid() -> String {
    format!("ocid1.queue.oc1.phx.{}", unique("chan").replace('-', ""))
}

#[tokio::test]
async fn channel_subscribers_get_their_channel_and_the_queue_subscriber_all() {
    let server = Server::start();
    let q = ocid();
    let mut producer = connect(server.addr).await;
    for (to, body) in [
        (format!("{q}/eu"), "eu-1"),
        (format!("{q}/us"), "us-1"),
        (q.clone(), "no channel"),
        (format!("{q}/eu"), "eu-2"),
        (format!("{q}/us"), "us-2"),
    ] {
        producer.send(&to, body).await;
    }
    let mut us = connect(server.addr).await;
    us.subscribe(&format!("{q}/us"), "1", "client-individual")
        .await;
    let got = us.messages(2).await;
    assert_eq!(bodies(&got), ["us-1", "us-2"]);
    assert!(got.iter().all(|m| h(m, "destination") == format!("{q}/us")));

    let mut all = connect(server.addr).await;
    all.subscribe(&q, "1", "client-individual").await;
    let got = all.messages(3).await;
    assert_eq!(bodies(&got), ["eu-1", "no channel", "eu-2"]);
    let destinations: Vec<&str> = got.iter().map(|m| h(m, "destination")).collect();
    let eu = format!("{q}/eu");
    assert_eq!(destinations, [eu.as_str(), q.as_str(), eu.as_str()]);
}

#[tokio::test]
async fn a_channel_survives_a_restart_and_bad_channel_names_are_refused() {
    let data = tempfile::tempdir().unwrap();
    let q = ocid();
    let mut server = start_on(data.path(), &[]);
    let mut producer = connect(server.addr).await;
    producer.send(&format!("{q}/a"), "kept in a").await;
    producer.send(&format!("{q}/b"), "kept in b").await;
    drop(producer);
    server.stop();

    let server = start_on(data.path(), &[]);
    let mut b = connect(server.addr).await;
    b.subscribe(&format!("{q}/b"), "1", "auto").await;
    assert_eq!(b.bodies(1).await, ["kept in b"]);
    let mut a = connect(server.addr).await;
    a.subscribe(&format!("{q}/a"), "1", "auto").await;
    assert_eq!(a.bodies(1).await, ["kept in a"]);

    for bad in [format!("{q}/"), format!("{q}/a/b")] {
        let mut c = connect(server.addr).await;
        let frame = stampede_proto::Frame::new(stampede_proto::Command::Send)
            .header("destination", &bad)
            .body("x");
        c.send_frame(frame).await;
        let e = c.recv().await;
        assert_eq!(e.command, stampede_proto::Command::Error);
        assert!(
            h(&e, "message").contains("a channel is <queue OCID>/<channel>"),
            "{e:?}"
        );
    }
}

#[tokio::test]
async fn a_channel_far_behind_another_channels_backlog_on_disk_is_delivered() {
    let data = tempfile::tempdir().unwrap();
    let server = start_on(data.path(), &[("BROKER__QUEUE_MEMORY_WINDOW", "4")]);
    let q = ocid();
    let mut producer = connect(server.addr).await;
    for n in 0..40 {
        producer.send(&format!("{q}/eu"), format!("eu {n}")).await;
    }
    producer.send(&format!("{q}/us"), "us 0").await;
    producer.send(&format!("{q}/us"), "us 1").await;
    let mut us = connect(server.addr).await;
    us.subscribe(&format!("{q}/us"), "1", "client-individual")
        .await;
    assert_eq!(us.bodies(2).await, ["us 0", "us 1"]);
    let mut eu = connect(server.addr).await;
    eu.subscribe(&q, "1", "auto").await;
    let want: Vec<String> = (0..40).map(|n| format!("eu {n}")).collect();
    assert_eq!(eu.bodies(40).await, want);
}
