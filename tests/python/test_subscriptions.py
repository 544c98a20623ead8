"""Guide: subscribe / unsubscribe by id; docs/behaviour.md Destinations."""

from helpers import (collect_until, new_receipt, send_and_confirm, subscribe_and_confirm,
                     unique, unique_queue)


def test_unsubscribe_stops_delivery(clients):
    """>>> c.subscribe('/queue/test', 123); c.unsubscribe(123)
    After UNSUBSCRIBE (confirmed by a receipt) a message sent to the queue is not
    delivered to subscription 123: it stays in the queue and a new subscription gets it."""
    consumer, crec = clients.connect("1.1")
    producer, prec = clients.connect("1.1")
    dest = unique_queue("unsub")

    subscribe_and_confirm(consumer, crec, dest, 123)
    send_and_confirm(producer, prec, dest, "while subscribed")
    first = crec.next_message()
    assert first.body == "while subscribed"
    assert first.headers["subscription"] == "123"

    rid = new_receipt("unsub")
    consumer.unsubscribe(123, receipt=rid)
    crec.wait_receipt(rid)

    send_and_confirm(producer, prec, dest, "after unsubscribe")
    subscribe_and_confirm(consumer, crec, dest, "after")
    frame = crec.next_message()
    assert frame.body == "after unsubscribe"
    assert frame.headers["subscription"] == "after"
    # Nothing was ever delivered on 123 after the first message.
    subs = [h["subscription"] for kind, (h, _b) in
            ((k, p) for k, p in crec.events if k == "message")]
    assert subs == ["123", "after"]


def test_spellings_name_the_same_queue(clients):
    """docs/behaviour.md Destinations: bare NAME, /queue/NAME and /amq/queue/NAME are one queue.
    (The bare spelling is sent first: RabbitMQ's /amq/queue/ only addresses queues that exist.)"""
    conn, rec = clients.connect("1.2")
    name = unique("alias")
    spellings = [name, "/queue/" + name, "/amq/queue/" + name]
    for i, dest in enumerate(spellings):
        send_and_confirm(conn, rec, dest, "via %d" % i)
    subscribe_and_confirm(conn, rec, name, "alias-sub")
    got = [rec.next_message() for _ in spellings]
    assert [f.body for f in got] == ["via 0", "via 1", "via 2"]
    for f in got:
        assert f.headers["destination"] in spellings, f.headers
        assert f.headers["subscription"] == "alias-sub"
    # and nothing else is queued there
    send_and_confirm(conn, rec, "/queue/" + name, "marker")
    assert [f.body for f in collect_until(rec, "marker")] == ["marker"]


def test_topic_fans_out_to_every_subscriber(clients):
    """docs/behaviour.md Destinations: /topic/NAME gives every current subscriber a copy."""
    a, arec = clients.connect("1.2")
    b, brec = clients.connect("1.2")
    topic = "/topic/" + unique("topic")
    subscribe_and_confirm(a, arec, topic, "ta")
    subscribe_and_confirm(b, brec, topic, "tb")
    send_and_confirm(a, arec, topic, "to everyone")
    fa, fb = arec.next_message(), brec.next_message()
    assert (fa.body, fa.headers["subscription"]) == ("to everyone", "ta")
    assert (fb.body, fb.headers["subscription"]) == ("to everyone", "tb")
