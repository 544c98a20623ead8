"""RabbitMQ's management API (docs/rabbitmq-management.md) read the way django-stomp's own
integration tests read it from RabbitMQ: the same routes, the same fields, the same parsing
(`messages`, `consumers`, `message_stats.publish`/`deliver_get`, channels' consumers and their
prefetch, a queue's bindings to `amq.topic`, `get` with `ack_requeue_false`), after real
django-stomp traffic: publishers through `build_publisher`, consumers as `manage.py pubsub`
processes. Runs against RabbitMQ too (`DJANGO_STOMP_TEST_PEER=rabbitmq`, tests/django/README.md)."""

import json
import time
import urllib.parse
import uuid

import pytest

from support import unique
from test_tutorial import MESSAGE, publish


@pytest.fixture
def api(broker):
    if broker.management is None:
        pytest.skip("%s serves no RabbitMQ management API" % broker.name)
    return broker.management


def queue_status(api, name):
    """What django-stomp's `current_queue_configuration` takes from a queue: None for an error,
    else (pending, consumers, enqueued, dequeued, exclusive). RabbitMQ leaves `messages` and
    `consumers` out until its first statistics of the queue, hence `get`."""
    result = api.get("/api/queues/%2F/" + name)
    if result.get("error"):
        return None
    stats = result.get("message_stats") or {}
    return (result.get("messages"), result.get("consumers"), stats.get("publish"),
            stats.get("deliver_get", 0), result.get("exclusive", False))


def settled(read, want, timeout=15):
    """`read()` once it answers `want`. Stampede's figures are current when asked, so the first
    answer must be it there; RabbitMQ publishes its statistics every 5 s (django-stomp's helpers
    sleep before each request for that) and a consumer's departure reaches it late."""
    deadline = time.monotonic() + timeout
    while True:
        got = read()
        if got == want or time.monotonic() > deadline:
            assert got == want
            return got
        time.sleep(0.2)


def test_a_consumed_queue_shows_its_counts_and_stats(broker, consumers, api):
    name = unique("mgmt-ack")
    publish("/queue/" + name)
    c = consumers("pubsub", "/queue/" + name, "djapp.callbacks.ack_callback")
    assert c.records(1)[0]["body"] == MESSAGE
    c.wait_settled(1)
    c.kill()
    broker.wait_consumers_gone(name)
    settled(lambda: queue_status(api, name), (0, 0, 1, 1, False))
    assert api.get("/api/overview")["rabbitmq_version"]
    assert queue_status(api, "no-such-" + name) is None


def test_a_consumer_channel_shows_its_prefetch(broker, consumers, api):
    """django-stomp's `consumers_details`: every channel, then each one by its connection's name
    and " (1)", and in it the consumer tagged `T_<subscription id>`."""
    name = unique("mgmt-prefetch")
    sid = uuid.uuid4().hex
    c = consumers("pubsub", "/queue/" + name, "djapp.callbacks.ack_callback",
                  env={"STOMP_SUBSCRIPTION_ID": sid})
    c.wait_subscribed("/queue/" + name)

    def consumers_details():
        found = []
        for channel in api.get("/api/channels"):
            channel_name = channel["connection_details"]["name"]
            details = api.get("/api/channels/" + urllib.parse.quote(f"{channel_name} ") + "(1)")
            for consumer in details.get("consumer_details") or []:
                if consumer["consumer_tag"] == f"T_{sid}-listener":
                    found.append((consumer["queue"]["name"], consumer["prefetch_count"],
                                  details["messages_unacknowledged"], consumer["exclusive"]))
        return found

    settled(consumers_details, [(name, 1, 0, False)])


def test_a_nacked_message_shows_in_the_dead_letter_queue(broker, consumers, api):
    name = unique("mgmt-nack")
    c = consumers("pubsub", "/queue/" + name, "djapp.callbacks.nack_callback")
    c.wait_subscribed("/queue/" + name)
    publish("/queue/" + name)
    c.records(1)
    c.wait_settled(1)
    c.kill()
    broker.wait_consumers_gone(name)
    settled(lambda: (queue_status(api, "DLQ." + name) or ())[:2], (1, 0))
    assert queue_status(api, "DLQ." + name)[3] == 0, "nothing delivered from the DLQ"
    arguments = api.get("/api/queues/%2F/" + name)["arguments"]
    assert arguments["x-dead-letter-routing-key"] == "DLQ." + name


def test_a_published_message_is_taken_with_its_properties(broker, api):
    """django-stomp's `retrieve_message_published`: one message, removed from the queue, its
    JSON payload and its headers merged with its properties."""
    name = unique("tshoot-header")
    publish(name)
    body = json.dumps({"vhost": "/", "name": name, "truncate": "50000",
                       "ackmode": "ack_requeue_false", "encoding": "auto", "count": "1"})
    got = api.post("/api/queues/%2F/" + name + "/get", body)
    assert len(got) == 1
    properties = got[0]["properties"]
    assert json.loads(got[0]["payload"]) == MESSAGE
    assert properties["correlation_id"]
    headers = properties.pop("headers")
    merged = {**headers, **properties}
    assert merged["tshoot-destination"] == name
    settled(lambda: queue_status(api, name)[0], 0)


def test_a_durable_topic_subscription_is_found_by_its_binding(broker, consumers, api):
    """django-stomp's `current_topic_configuration`: the queue bound to `amq.topic` with the
    topic's name as its routing key, and its counts."""
    topic = unique("mgmt-durable")
    client = unique("app")
    env = {"STOMP_DURABLE_TOPIC_SUBSCRIPTION": "True", "STOMP_LISTENER_CLIENT_ID": client}
    c = consumers("pubsub", "/topic/" + topic, "djapp.callbacks.ack_callback", env=env)
    c.wait_subscribed("/topic/" + topic)
    for n in range(3):
        publish("/topic/" + topic, {"n": n})
    assert [r["body"]["n"] for r in c.records(3)] == [0, 1, 2]
    c.wait_settled(3)
    c.kill()
    bound = []
    for queue in api.get("/api/queues?name=&use_regex=false"):
        path = "/api/queues/%2F/" + urllib.parse.quote(queue["name"], safe="") + "/bindings"
        for binding in api.get(path):
            if binding["source"] == "amq.topic" and binding["routing_key"] == topic:
                bound.append(queue["name"])
    assert len(bound) == 1, bound
    broker.wait_consumers_gone(bound[0])
    settled(lambda: queue_status(api, bound[0])[:4], (0, 0, 3, 3))
