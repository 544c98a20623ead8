"""Routing the peers' way with stomp.py (docs/protocol.md "Topics, bindings and durable
subscriptions"): ActiveMQ virtual topics, RabbitMQ x-queue-name bindings, durable topic
subscriptions in the three header dialects, custom headers passing through.

Each test is written against the convention of one peer; docs/compatibility.md says which
peer passes which (RabbitMQ has no virtual topics, ActiveMQ ignores x-queue-name)."""

import pytest

from helpers import new_receipt, send_and_confirm, subscribe_and_confirm, unique, wait_event


def test_two_virtual_topic_consumers_each_get_one_copy(clients):
    """The tutorial's 'Virtual Topics?' section: consumers of Consumer.app-A.VirtualTopic.X and
    Consumer.app-B.VirtualTopic.X each get every message sent to /topic/VirtualTopic.X,
    also what was sent while one of them was away."""
    x = unique("xpto")
    qa, qb = "Consumer.app-A.VirtualTopic." + x, "Consumer.app-B.VirtualTopic." + x
    a, arec = clients.connect("1.1")
    b, brec = clients.connect("1.1")
    subscribe_and_confirm(a, arec, "/queue/" + qa, "a", ack="client")
    subscribe_and_confirm(b, brec, "/queue/" + qb, "b", ack="client")
    producer, prec = clients.connect("1.1")
    send_and_confirm(producer, prec, "/topic/VirtualTopic." + x, '{"key": "value"}',
                     **{"correlation-id": "c-1", "tshoot-destination": "/topic/VirtualTopic." + x})
    for conn, rec in ((a, arec), (b, brec)):
        m = rec.next_message()
        assert m.body == '{"key": "value"}'
        assert m.headers["correlation-id"] == "c-1"
        assert m.headers["tshoot-destination"] == "/topic/VirtualTopic." + x
        conn.ack(m.headers["message-id"], m.headers["subscription"])

    rid = new_receipt("unsub")
    b.unsubscribe("b", receipt=rid)
    brec.wait_receipt(rid)
    send_and_confirm(producer, prec, "/topic/VirtualTopic." + x, "while B is away")
    assert arec.next_message().body == "while B is away"
    subscribe_and_confirm(b, brec, "/queue/" + qb, "b2")
    assert brec.next_message().body == "while B is away"


def test_x_queue_name_binds_a_durable_queue_to_the_topic(clients):
    """django-stomp on RabbitMQ: SUBSCRIBE /topic/VirtualTopic.X with x-queue-name,
    durable and auto-delete headers. The queue keeps receiving while its consumer is away,
    and it is the very queue an ActiveMQ-style consumer reads."""
    x = unique("bind")
    topic, queue = "/topic/VirtualTopic." + x, "Consumer.app.VirtualTopic." + x
    c, crec = clients.connect("1.2")
    flags = {"x-queue-name": queue, "durable": "true", "auto-delete": "false",
             "exclusive": "False", "x-dead-letter-routing-key": "DLQ." + queue,
             "x-dead-letter-exchange": ""}
    subscribe_and_confirm(c, crec, topic, "listener", ack="client", **flags)
    rid = new_receipt("unsub")
    c.unsubscribe("listener", receipt=rid)
    crec.wait_receipt(rid)
    p, prec = clients.connect("1.2")
    send_and_confirm(p, prec, topic, "kept")
    subscribe_and_confirm(c, crec, "/queue/" + queue, "direct")
    assert crec.next_message().body == "kept"


def test_exchange_amq_topic_is_the_topic_namespace(clients):
    key = unique("key")
    c, crec = clients.connect("1.2")
    subscribe_and_confirm(c, crec, "/exchange/amq.topic/" + key, "e")
    send_and_confirm(c, crec, "/topic/" + key, "one")
    assert crec.next_message().body == "one"


DIALECTS = {
    # connect headers, subscribe headers
    "activemq": ({"client-id": None}, {"activemq.subscriptionName": "audit"}),
    "django-stomp": ({"client-id": None}, {"activemq.subscriptionName": "audit",
                                           "activemq.subcriptionName": "audit"}),
    "artemis": ({"client-id": None}, {"durable-subscription-name": "audit"}),
    "rabbitmq": ({}, {"durable": "true", "auto-delete": "false"}),
}


@pytest.mark.parametrize("dialect", sorted(DIALECTS))
def test_durable_subscription_keeps_what_was_sent_while_away(clients, dialect):
    connect_headers, sub_headers = DIALECTS[dialect]
    client_id = unique("client")
    connect_headers = {k: client_id for k in connect_headers}
    topic = "/topic/" + unique("durable")
    sub_id = unique("sub")

    c, crec = clients.connect("1.2", connect_headers=connect_headers)
    subscribe_and_confirm(c, crec, topic, sub_id, **sub_headers)
    c.disconnect(receipt=new_receipt("bye"))
    wait_event(crec.disconnected, "disconnect")

    p, prec = clients.connect("1.2")
    send_and_confirm(p, prec, topic, "while away")

    c, crec = clients.connect("1.2", connect_headers=connect_headers)
    subscribe_and_confirm(c, crec, topic, sub_id, **sub_headers)
    assert crec.next_message().body == "while away"


@pytest.mark.stampede_only
def test_a_durable_subscription_without_a_client_id_is_refused(clients):
    c, crec = clients.connect("1.2")
    c.subscribe("/topic/" + unique("nocid"), "s", headers={"activemq.subscriptionName": "s"})
    err = crec.next_error()
    assert "client-id" in err.headers["message"]


def test_custom_headers_pass_through_repeats_included(clients):
    q = "/queue/" + unique("headers")
    c, crec = clients.connect("1.2")
    subscribe_and_confirm(c, crec, q, "h")
    send_and_confirm(c, crec, q, "body", **{"x-custom": "1", "correlation-id": "abc",
                                           "content-type": "application/json"})
    m = crec.next_message()
    assert m.headers["x-custom"] == "1"
    assert m.headers["correlation-id"] == "abc"
    assert m.headers["content-type"] == "application/json"


def test_request_reply_between_two_clients_through_a_temporary_queue(clients):
    """RabbitMQ's convention: the requester names /temp-queue/NAME in reply-to and subscribes
    to nothing; the responder sees a routable reply-to and sends there; the answer arrives on
    the subscription the broker made, whose id is the reply-to."""
    requests = "/queue/" + unique("requests")
    responder, rrec = clients.connect("1.2")
    subscribe_and_confirm(responder, rrec, requests, "serve")
    requester, qrec = clients.connect("1.2")
    send_and_confirm(requester, qrec, requests, "ping", **{"reply-to": "/temp-queue/answers"})
    request = rrec.next_message()
    assert request.headers["reply-to"] != "/temp-queue/answers", "rewritten to a routable name"
    send_and_confirm(responder, rrec, request.headers["reply-to"], "pong",
                     **{"correlation-id": "c-9"})
    answer = qrec.next_message()
    assert (answer.body, answer.headers["correlation-id"]) == ("pong", "c-9")
    assert answer.headers["subscription"] == "/temp-queue/answers"
