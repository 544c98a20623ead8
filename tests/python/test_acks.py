"""Guide section 'Acks and Nacks'; docs/behaviour.md Queue semantics (ack modes, NACK, redelivery)."""

import pytest

from helpers import (collect_until, disconnect_and_wait, new_receipt, not_redelivered,
                     send_and_confirm, subscribe_and_confirm, unique, unique_queue)


def ack(conn, version, frame, **kw):
    """stomp.py's ack differs per version: 1.2 ack(id) takes the MESSAGE's `ack`
    header, 1.1 ack(message_id, subscription), 1.0 ack(message_id)."""
    if version == "1.2":
        conn.ack(frame.headers["ack"], **kw)
    elif version == "1.1":
        conn.ack(frame.headers["message-id"], frame.headers["subscription"], **kw)
    else:
        conn.ack(frame.headers["message-id"], **kw)


def nack(conn, version, frame, **kw):
    if version == "1.2":
        conn.nack(frame.headers["ack"], **kw)
    else:
        conn.nack(frame.headers["message-id"], frame.headers["subscription"], **kw)


def ack_confirmed(conn, rec, version, frame):
    rid = new_receipt("ack")
    ack(conn, version, frame, receipt=rid)
    rec.wait_receipt(rid)


def assert_queue_holds(clients, dest, expected_bodies, version="1.2"):
    """A fresh consumer on dest gets exactly expected_bodies (any order, each once)
    plus a marker sent afterwards. Because the broker may release a closed
    consumer's unacked messages just after its DISCONNECT receipt, we wait for
    every expected body and the marker rather than relying on their order."""
    conn, rec = clients.connect(version)
    subscribe_and_confirm(conn, rec, dest, "verify", ack="client-individual")
    marker = "marker-" + unique("m")
    send_and_confirm(conn, rec, dest, marker)
    wanted = sorted(list(expected_bodies) + [marker])
    got = []
    while sorted(f.body for f in got) != wanted:
        frame = rec.next_message(what="%r (got %r)" % (wanted, [f.body for f in got]))
        got.append(frame)
        assert len(got) <= len(wanted), "unexpected extra message(s): %r" % [f.body for f in got]
        ack_confirmed(conn, rec, version, frame)
    return got


@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_client_ack_and_nack(clients, version):
    """>>> conn.subscribe('/queue/test', id=4, ack='client')
    >>> conn.ack(<message-id>, 4)   ... >>> conn.nack(<message-id>, 4)
    The acked message is gone; the nacked one comes back with redelivered: true."""
    consumer, crec = clients.connect(version)
    producer, prec = clients.connect(version)
    dest = unique_queue("acknack")
    subscribe_and_confirm(consumer, crec, dest, 4, ack="client")
    send_and_confirm(producer, prec, dest, "test message 1")
    send_and_confirm(producer, prec, dest, "test message 2")

    m1 = crec.next_message()
    assert m1.body == "test message 1" and not_redelivered(m1)
    assert m1.headers["subscription"] == "4"
    ack_confirmed(consumer, crec, version, m1)

    m2 = crec.next_message()
    assert m2.body == "test message 2" and not_redelivered(m2)
    rid = new_receipt("nack")
    nack(consumer, version, m2, receipt=rid)
    crec.wait_receipt(rid)

    again = crec.next_message(what="the NACKed message to come back")
    assert again.body == "test message 2"
    assert again.headers.get("redelivered") == "true", again.headers
    assert again.headers["subscription"] == "4"
    ack_confirmed(consumer, crec, version, again)

    disconnect_and_wait(consumer, crec)
    # both messages are acknowledged: nothing is left
    assert_queue_holds(clients, dest, [])


def test_client_ack_is_cumulative(clients):
    """docs/behaviour.md: ack mode `client` acknowledges everything up to the named message."""
    consumer, crec = clients.connect("1.2")
    dest = unique_queue("cumulative")
    subscribe_and_confirm(consumer, crec, dest, "cum", ack="client")
    for i in range(3):
        send_and_confirm(consumer, crec, dest, "m%d" % i)
    frames = [crec.next_message() for _ in range(3)]
    assert [f.body for f in frames] == ["m0", "m1", "m2"]
    ack_confirmed(consumer, crec, "1.2", frames[-1])
    disconnect_and_wait(consumer, crec)
    assert_queue_holds(clients, dest, [])


def test_client_individual_ack(clients):
    """ack='client-individual': each ACK covers only its own message; the one left
    unacknowledged is redelivered (redelivered: true) after the consumer goes away."""
    consumer, crec = clients.connect("1.2")
    dest = unique_queue("individual")
    subscribe_and_confirm(consumer, crec, dest, "ind", ack="client-individual")
    for i in range(3):
        send_and_confirm(consumer, crec, dest, "m%d" % i)
    frames = [crec.next_message() for _ in range(3)]
    assert [f.body for f in frames] == ["m0", "m1", "m2"]
    assert len({f.headers["message-id"] for f in frames}) == 3
    ack_confirmed(consumer, crec, "1.2", frames[2])
    ack_confirmed(consumer, crec, "1.2", frames[0])
    disconnect_and_wait(consumer, crec)

    got = assert_queue_holds(clients, dest, ["m1"])
    m1 = next(f for f in got if f.body == "m1")
    assert m1.headers.get("redelivered") == "true", m1.headers


def test_client_ack_stomp_1_0(clients):
    """STOMP 1.0 (ack modes auto/client): ACK by message-id; with `client` acking the
    first message covers only it, and the unacked second one survives the disconnect."""
    consumer, crec = clients.connect("1.0")
    dest = unique_queue("ack10")
    subscribe_and_confirm(consumer, crec, dest, "s10", ack="client")
    send_and_confirm(consumer, crec, dest, "first")
    send_and_confirm(consumer, crec, dest, "second")
    f1, f2 = crec.next_message(), crec.next_message()
    assert (f1.body, f2.body) == ("first", "second")
    ack_confirmed(consumer, crec, "1.0", f1)
    disconnect_and_wait(consumer, crec)
    got = assert_queue_holds(clients, dest, ["second"])
    assert next(f for f in got if f.body == "second").headers.get("redelivered") == "true"


def test_ack_in_transaction_takes_effect_at_commit_only(clients):
    """docs/behaviour.md Transactions: ACK in a transaction takes effect at COMMIT;
    ABORT leaves the message unacknowledged."""
    consumer, crec = clients.connect("1.2")
    dest = unique_queue("txack")
    subscribe_and_confirm(consumer, crec, dest, "tx", ack="client-individual")
    send_and_confirm(consumer, crec, dest, "aborted-ack")
    send_and_confirm(consumer, crec, dest, "committed-ack")
    f_abort, f_commit = crec.next_message(), crec.next_message()
    assert (f_abort.body, f_commit.body) == ("aborted-ack", "committed-ack")

    tx1 = consumer.begin()
    consumer.ack(f_abort.headers["ack"], transaction=tx1)
    rid = new_receipt("abort")
    consumer.abort(tx1, receipt=rid)
    crec.wait_receipt(rid)

    tx2 = consumer.begin()
    consumer.ack(f_commit.headers["ack"], transaction=tx2)
    rid = new_receipt("commit")
    consumer.commit(tx2, receipt=rid)
    crec.wait_receipt(rid)

    disconnect_and_wait(consumer, crec)
    got = assert_queue_holds(clients, dest, ["aborted-ack"])
    redelivered = next(f for f in got if f.body == "aborted-ack")
    assert redelivered.headers.get("redelivered") == "true", redelivered.headers


@pytest.mark.stampede_only
def test_redelivery_carries_delivery_count(clients):
    """docs/behaviour.md: redeliveries carry redelivered: true and delivery-count (first delivery = 1)."""
    conn, rec = clients.connect("1.2")
    dest = unique_queue("dcount")
    subscribe_and_confirm(conn, rec, dest, "dc", ack="client-individual")
    send_and_confirm(conn, rec, dest, "counted")
    first = rec.next_message()
    assert first.headers.get("delivery-count") == "1", first.headers
    conn.nack(first.headers["ack"])
    second = rec.next_message()
    assert second.body == "counted"
    assert second.headers.get("redelivered") == "true"
    assert second.headers.get("delivery-count") == "2", second.headers
    ack_confirmed(conn, rec, "1.2", second)


@pytest.mark.stampede_only
def test_nack_requeue_false_dead_letters(clients):
    """docs/behaviour.md: NACK with requeue: false sends the message to DLQ.<queue>, keeping
    headers and body and adding x-original-destination and x-death-reason: nack."""
    conn, rec = clients.connect("1.2")
    name = unique("dlq")
    dest = "/queue/" + name
    subscribe_and_confirm(conn, rec, dest, "orig", ack="client-individual")
    send_and_confirm(conn, rec, dest, "poison", **{"x-trace": "t-1"})
    frame = rec.next_message()
    rid = new_receipt("nack")
    conn.nack(frame.headers["ack"], receipt=rid, requeue="false")
    rec.wait_receipt(rid)

    subscribe_and_confirm(conn, rec, "/queue/DLQ." + name, "dead", ack="client-individual")
    dead = rec.next_message(what="the dead-lettered message")
    assert dead.body == "poison"
    assert dead.headers["subscription"] == "dead"
    assert dead.headers.get("x-trace") == "t-1"
    assert dead.headers.get("x-death-reason") == "nack"
    assert name in dead.headers.get("x-original-destination", ""), dead.headers
    ack_confirmed(conn, rec, "1.2", dead)
    # and it is not back on the original queue
    send_and_confirm(conn, rec, dest, "marker")
    assert [f.body for f in collect_until(rec, "marker")] == ["marker"]
