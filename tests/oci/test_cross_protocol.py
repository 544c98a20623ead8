"""One queue, two protocols: what the OCI SDK puts over REST a stomp.py consumer (as in the OCI
Queue STOMP lab: bare queue OCID as destination, ack=client-individual) receives, and the other
way round; both share the in-flight / visibility / receipt state; a put that got 200 survives
kill -9."""

import pytest
import stomp

from conftest import (WAIT, admin_client, counts, create_queue, get, get_n, new_queue_id, put,
                      queue_client, service_error, stats)
from helpers import Recorder, disconnect_and_wait, new_receipt, wait_event


@pytest.fixture
def stomp_connect(broker):
    """stomp_connect(broker=None) -> (conn, recorder), a STOMP 1.1 connection like the lab's."""
    opened = []

    def connect(b=None):
        host, port = (b or broker).stomp
        conn = stomp.Connection(host_and_ports=[(host, port)])
        rec = Recorder()
        conn.set_listener("rec", rec)
        opened.append((conn, rec))
        conn.connect("guest", "guest", wait=True)
        wait_event(rec.connected, "CONNECTED")
        return conn, rec

    try:
        yield connect
    finally:
        for conn, rec in opened:
            try:
                if conn.is_connected():
                    disconnect_and_wait(conn, rec)
            except Exception:
                pass
            try:
                conn.transport.running = False
                conn.transport.disconnect_socket()
            except Exception:
                pass


def subscribe(conn, rec, destination, sub_id="1"):
    rid = new_receipt("sub")
    conn.subscribe(destination=destination, id=sub_id, ack="client-individual", receipt=rid)
    rec.wait_receipt(rid)


def ack(conn, rec, frame):
    rid = new_receipt("ack")
    conn.ack(id=frame.headers["message-id"], subscription=frame.headers["subscription"],
             receipt=rid)
    rec.wait_receipt(rid)


def send(conn, rec, destination, body):
    rid = new_receipt("send")
    conn.send(destination=destination, body=body, receipt=rid)
    rec.wait_receipt(rid)


def test_rest_put_consumed_over_stomp_with_client_individual_ack(qc, stomp_connect):
    queue_id = new_queue_id()
    put(qc, queue_id, "rest 1", "rest 2")
    conn, rec = stomp_connect()
    subscribe(conn, rec, queue_id)
    frames = [rec.next_message(), rec.next_message()]
    assert [f.body for f in frames] == ["rest 1", "rest 2"]
    for f in frames:
        assert f.headers["destination"] == queue_id, f.headers
        assert f.headers["delivery-count"] == "1", f.headers
        assert f.headers.get("redelivered", "false") != "true", f.headers
    # Delivered over STOMP and not acked yet: in flight for REST too.
    assert counts(stats(qc, queue_id)) == ((0, 2), (0, 0))
    assert get(qc, queue_id, timeout_in_seconds=0) == []
    for f in frames:
        ack(conn, rec, f)
    assert counts(stats(qc, queue_id)) == ((0, 0), (0, 0))
    assert get(qc, queue_id, timeout_in_seconds=0) == []


def test_rest_put_on_a_channel_reaches_the_channel_subscriber(qc, stomp_connect):
    queue_id = new_queue_id()
    put(qc, queue_id, "eu only", channel="eu")
    put(qc, queue_id, "us only", channel="us")
    conn, rec = stomp_connect()
    subscribe(conn, rec, queue_id + "/eu")
    f = rec.next_message()
    assert f.body == "eu only"
    assert f.headers["destination"] == queue_id + "/eu", f.headers
    ack(conn, rec, f)
    assert counts(stats(qc, queue_id, channel_id="eu")) == ((0, 0), (0, 0))
    assert counts(stats(qc, queue_id, channel_id="us")) == ((1, 0), (0, 0))


def test_stomp_send_got_over_rest(qc, stomp_connect):
    queue_id = new_queue_id()
    conn, rec = stomp_connect()
    send(conn, rec, queue_id, "from stomp")
    send(conn, rec, queue_id + "/ch9", "from stomp on ch9")
    assert counts(stats(qc, queue_id)) == ((2, 0), (0, 0))
    got = get_n(qc, queue_id, 2)
    assert [m.content for m in got] == ["from stomp", "from stomp on ch9"]
    assert [m.delivery_count for m in got] == [1, 1]
    assert got[0].metadata is None or not got[0].metadata.channel_id, got[0].metadata
    assert got[1].metadata.channel_id == "ch9"
    assert "ch9" in qc.list_channels(queue_id).data.items
    for m in got:
        assert qc.delete_message(queue_id, m.receipt).status == 200
    assert counts(stats(qc, queue_id)) == ((0, 0), (0, 0))


def test_rest_pulled_not_deleted_is_redelivered_to_stomp(qc, stomp_connect):
    queue_id = new_queue_id()
    put(qc, queue_id, "pulled, not deleted")
    [m] = get(qc, queue_id, visibility_in_seconds=1, timeout_in_seconds=10)
    assert m.delivery_count == 1
    conn, rec = stomp_connect()
    subscribe(conn, rec, queue_id)
    f = rec.next_message(timeout=WAIT, what="the redelivery after the 1 s visibility")
    assert f.body == "pulled, not deleted"
    assert f.headers["delivery-count"] == "2", f.headers
    assert f.headers.get("redelivered") == "true", f.headers
    # The REST receipt of the first delivery is stale now.
    e = service_error(qc.delete_message, queue_id, m.receipt)
    assert e.status == 404, e
    ack(conn, rec, f)
    assert counts(stats(qc, queue_id)) == ((0, 0), (0, 0))


def test_stomp_delivered_not_acked_comes_back_to_rest(config, broker, stomp_connect):
    admin = admin_client(config, broker.base_url)
    qc = queue_client(config, broker.base_url)
    queue_id, _ = create_queue(admin, visibility_in_seconds=2)
    put(qc, queue_id, "unacked over stomp")
    conn, rec = stomp_connect()
    subscribe(conn, rec, queue_id)
    f = rec.next_message()
    assert f.body == "unacked over stomp"
    assert get(qc, queue_id, timeout_in_seconds=0) == []
    disconnect_and_wait(conn, rec)
    # Back after the disconnect or at the latest when the queue's 2 s visibility runs out.
    [m] = get(qc, queue_id, visibility_in_seconds=30, timeout_in_seconds=10)
    assert (m.content, m.delivery_count) == ("unacked over stomp", 2)
    qc.delete_message(queue_id, m.receipt)
    assert counts(stats(qc, queue_id)) == ((0, 0), (0, 0))


def test_put_that_got_200_survives_kill_9(broker_factory, config):
    first = broker_factory()
    qc = queue_client(config, first.base_url)
    queue_id = new_queue_id()
    put(qc, queue_id, "one", "two", "three")
    put(qc, queue_id, "four", channel="c4")
    first.process.proc.kill()  # SIGKILL right after the 200s: no shutdown, no flush
    first.process.proc.wait(timeout=WAIT)

    second = broker_factory(data_dir=first.data_dir)
    qc = queue_client(config, second.base_url)
    assert counts(stats(qc, queue_id)) == ((4, 0), (0, 0))
    got = get_n(qc, queue_id, 4)
    assert [m.content for m in got] == ["one", "two", "three", "four"]
    assert got[3].metadata.channel_id == "c4"
    for m in got:
        qc.delete_message(queue_id, m.receipt)


def test_delete_that_got_200_survives_kill_9(broker_factory, config):
    first = broker_factory()
    qc = queue_client(config, first.base_url)
    queue_id = new_queue_id()
    put(qc, queue_id, "deleted", "kept")
    deleted, kept = get_n(qc, queue_id, 2, visibility=1)
    assert qc.delete_message(queue_id, deleted.receipt).status == 200
    first.process.proc.kill()
    first.process.proc.wait(timeout=WAIT)

    second = broker_factory(data_dir=first.data_dir)
    qc = queue_client(config, second.base_url)
    (visible, in_flight), dlq = counts(stats(qc, queue_id))
    assert (visible + in_flight, dlq) == (1, (0, 0))
    [m] = get(qc, queue_id, visibility_in_seconds=30, timeout_in_seconds=10)
    assert m.content == "kept"
    qc.delete_message(queue_id, m.receipt)
    assert counts(stats(qc, queue_id)) == ((0, 0), (0, 0))
