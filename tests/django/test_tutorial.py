"""Every flow of the django-stomp tutorial and README, with django-stomp itself (pinned in
requirements.txt) against Stampede, unchanged: the application code below is the tutorial's.
Consumers run as `manage.py pubsub` processes, as the tutorial starts them."""

import json

from django.test.utils import override_settings

from support import Peek, make_broker, unique

MESSAGE = {"key": "value"}


def publish(destination, body=MESSAGE, headers=None):
    import uuid

    from django_stomp.builder import build_publisher

    publisher = build_publisher(f"publisher-{uuid.uuid4()}")
    with publisher.auto_open_close_connection():
        publisher.send(body, destination, headers=headers)


def test_publishing_the_first_message(broker, peek):
    queue = unique("/queue/xpto")
    publish(queue)
    [m] = peek.messages(queue, 1)
    assert json.loads(m.body) == MESSAGE
    assert m.headers["tshoot-destination"] == queue
    assert m.headers["correlation-id"]
    assert m.headers["content-type"].startswith("application/json")
    assert m.headers["persistent"] == "true"


def test_publishing_under_transaction(broker, peek):
    import uuid

    from django_stomp.builder import build_publisher
    from django_stomp.services.producer import auto_open_close_connection, do_inside_transaction

    publisher = build_publisher(f"publisher-{uuid.uuid4()}")
    message_count = 5
    destination_name = unique("/queue/calopsita")
    with auto_open_close_connection(publisher), do_inside_transaction(publisher):
        for _ in range(message_count):
            publisher.send(MESSAGE, destination_name)
    assert [json.loads(m.body) for m in peek.messages(destination_name, 5)] == [MESSAGE] * 5

    # All or nothing: an exception inside the transaction sends none of it.
    aborted = unique("/queue/calopsita-aborted")
    publisher = build_publisher(f"publisher-{uuid.uuid4()}")
    try:
        with auto_open_close_connection(publisher), do_inside_transaction(publisher):
            publisher.send(MESSAGE, aborted)
            raise RuntimeError("changed my mind")
    except RuntimeError:
        pass
    assert peek.messages(aborted, 0) == []


def test_listening_with_pubsub_and_an_ack_callback(broker, consumers, peek):
    name = unique("xpto")
    consumer = consumers("pubsub", "/queue/" + name, "djapp.callbacks.ack_callback")
    consumer.wait_subscribed("/queue/" + name)
    publish("/queue/" + name)
    [record] = consumer.records(1)
    assert (record["kind"], record["body"]) == ("ack", MESSAGE)
    consumer.wait_settled(1)
    consumer.kill()
    assert peek.messages("/queue/" + name, 0) == [], "acknowledged: gone from the queue"


def test_two_virtual_topic_consumers_each_get_one_copy(broker, consumers):
    topic = unique("xpto")
    a = "Consumer.app-A.VirtualTopic." + topic
    b = "Consumer.app-B.VirtualTopic." + topic
    ca = consumers("pubsub", a, "djapp.callbacks.ack_callback")
    cb = consumers("pubsub", b, "djapp.callbacks.ack_callback")
    ca.wait_subscribed(a)
    cb.wait_subscribed(b)
    publish("/topic/VirtualTopic." + topic)
    publish("/topic/VirtualTopic." + topic, {"key": "second"})
    for c in (ca, cb):
        got = [r["body"] for r in c.records(2)]
        assert got == [MESSAGE, {"key": "second"}]
    # Each copy once: both are settled and nothing more came.
    ca.wait_settled(2)
    cb.wait_settled(2)
    assert (ca.count(), cb.count()) == (2, 2)


def test_a_nack_callback_lands_the_message_in_the_dlq(broker, consumers, peek):
    name = unique("nack-queue")
    c = consumers("pubsub", "/queue/" + name, "djapp.callbacks.nack_callback")
    c.wait_subscribed("/queue/" + name)
    publish("/queue/" + name, headers={"header-key": "header-value"})
    [m] = peek.messages("/queue/DLQ." + name, 1)
    assert json.loads(m.body) == MESSAGE
    assert m.headers["header-key"] == "header-value"


def test_an_exception_in_the_callback_lands_the_message_in_the_dlq(broker, consumers, peek):
    name = unique("exception-queue")
    consumer = consumers("pubsub", "/queue/" + name, "djapp.callbacks.exception_callback")
    consumer.wait_subscribed("/queue/" + name)
    publish("/queue/" + name, headers={"header-key": "header-value"})
    assert consumer.records(1)[0]["kind"] == "exception"
    [m] = peek.messages("/queue/DLQ." + name, 1)
    assert json.loads(m.body) == MESSAGE
    assert m.headers["header-key"] == "header-value"


def test_processing_in_the_foreground(broker, consumers):
    """STOMP_PROCESS_MSG_ON_BACKGROUND=False: the callback runs on stomp.py's receiver thread."""
    name = unique("foreground")
    c = consumers("pubsub", "/queue/" + name, "djapp.callbacks.ack_callback",
                  env={"STOMP_PROCESS_MSG_ON_BACKGROUND": "False"})
    c.wait_subscribed("/queue/" + name)
    publish("/queue/" + name)
    assert c.records(1)[0]["body"] == MESSAGE
    c.wait_settled(1)


def test_a_durable_topic_subscription_outlives_its_consumer_and_the_broker(
        tmp_path, consumers):
    """STOMP_DURABLE_TOPIC_SUBSCRIPTION with a fixed STOMP_LISTENER_CLIENT_ID: what is sent while
    the consumer is down, and before the broker restarts, reaches it when it comes back."""
    own = make_broker(tmp_path / "data")
    try:
        topic = "/topic/" + unique("durable")
        client = unique("app")
        env = {"STOMP_DURABLE_TOPIC_SUBSCRIPTION": "True", "STOMP_LISTENER_CLIENT_ID": client}
        queue = "durable.%s-listener.%s-listener" % (client, client)
        c = consumers("pubsub", topic, "djapp.callbacks.ack_callback", env=env, on=own)
        c.wait_subscribed(topic)
        c.kill()
        own.wait_consumers_gone(queue)
        with override_settings(STOMP_SERVER_PORT=str(own.port)):
            publish(topic, {"n": 1})
        c = consumers("pubsub", topic, "djapp.callbacks.ack_callback", env=env, on=own)
        assert c.records(1)[0]["body"] == {"n": 1}, "sent while the consumer was down"
        c.wait_settled(1)
        c.kill()
        own.wait_consumers_gone(queue)
        with override_settings(STOMP_SERVER_PORT=str(own.port)):
            publish(topic, {"n": 2})
        own.restart()
        c = consumers("pubsub", topic, "djapp.callbacks.ack_callback", env=env, on=own)
        assert c.records(1)[0]["body"] == {"n": 2}, "sent before the broker restarted"
    finally:
        own.stop()


def test_move_messages_and_ack_all_messages_commands(broker, consumers, peek):
    source, target = unique("/queue/from"), unique("/queue/to")
    for n in range(3):
        publish(source, {"n": n})
    mover = consumers("move_messages", source, target)
    moved = peek.messages(target, 3)
    assert sorted(json.loads(m.body)["n"] for m in moved) == [0, 1, 2]
    mover.wait_settled(3)
    mover.kill()
    assert peek.messages(source, 0) == [], "moved, not copied"

    junk = unique("/queue/junk")
    for n in range(2):
        publish(junk, {"n": n})
    cleaner = consumers("ack_all_messages", junk)
    cleaner.wait_settled(2)
    cleaner.kill()
    assert peek.messages(junk, 0) == []


def test_the_peek_helper_sees_what_is_there(broker):
    """The suite's own check: Peek finds a message it did not expect (so `messages(q, 0) == []`
    above proves emptiness)."""
    queue = unique("/queue/peek")
    publish(queue)
    p = Peek(broker)
    try:
        try:
            p.messages(queue, 0)
        except AssertionError:
            return
        raise AssertionError("Peek missed a waiting message")
    finally:
        p.close()
