"""The OCI Python SDK (oci 2.189.0, QueueClient and QueueAdminClient) against Stampede's REST API:
admin lifecycle, the messages flow, long polls, receipts, dead-lettering, purge, channels, and
the producer/consumer pattern of the OCI Queue Python SDK blog with only the endpoint changed."""

import datetime
import os
import subprocess
import sys
import time
import uuid

import oci

from conftest import (COMPARTMENT, Background, admin_client, counts, create_queue, get,
                      get_n, new_queue_id, put, queue_client, service_error, stats,
                      wait_until, wait_work_request)

M = oci.queue.models


def now_utc():
    return datetime.datetime.now(datetime.timezone.utc)


# --- admin API -----------------------------------------------------------------------------

def test_create_queue_work_request_and_get_queue(admin, broker):
    name = "orders-" + uuid.uuid4().hex[:8]
    queue_id, wr = create_queue(admin, display_name=name, visibility_in_seconds=7,
                                dead_letter_queue_delivery_count=3, retention_in_seconds=3600,
                                timeout_in_seconds=9)
    assert wr.status == "SUCCEEDED"
    assert wr.compartment_id == COMPARTMENT
    assert wr.resources[0].entity_type.lower() == "queue", wr.resources[0]
    assert wr.resources[0].action_type == "CREATED", wr.resources[0]

    q = admin.get_queue(queue_id).data
    assert q.id == queue_id
    assert q.display_name == name
    assert q.compartment_id == COMPARTMENT
    assert q.lifecycle_state == "ACTIVE"
    assert q.messages_endpoint.rstrip("/") == broker.base_url
    assert (q.visibility_in_seconds, q.dead_letter_queue_delivery_count,
            q.retention_in_seconds, q.timeout_in_seconds) == (7, 3, 3600, 9)
    assert q.time_created is not None


def test_list_queues_filters_by_compartment(admin):
    compartment = "ocid1.compartment.oc1..aaaa" + uuid.uuid4().hex
    mine, _ = create_queue(admin, compartment_id=compartment)
    other, _ = create_queue(admin)
    listed = admin.list_queues(compartment_id=compartment).data.items
    ids = [s.id for s in listed]
    assert mine in ids
    assert other not in ids
    summary = next(s for s in listed if s.id == mine)
    assert summary.compartment_id == compartment
    assert summary.lifecycle_state == "ACTIVE"
    assert summary.messages_endpoint


def test_update_queue_changes_its_attributes(admin):
    queue_id, _ = create_queue(admin, visibility_in_seconds=10, dead_letter_queue_delivery_count=5)
    wr = wait_work_request(admin, admin.update_queue(queue_id, M.UpdateQueueDetails(
        display_name="renamed", visibility_in_seconds=20, dead_letter_queue_delivery_count=2)))
    assert wr.operation_type == "UPDATE_QUEUE", wr
    q = admin.get_queue(queue_id).data
    assert (q.display_name, q.visibility_in_seconds, q.dead_letter_queue_delivery_count) == \
        ("renamed", 20, 2)
    assert q.lifecycle_state == "ACTIVE"


def test_delete_queue(admin, qc):
    queue_id, _ = create_queue(admin)
    put(qc, queue_id, "doomed")
    wr = wait_work_request(admin, admin.delete_queue(queue_id))
    assert wr.operation_type == "DELETE_QUEUE", wr
    try:
        q = admin.get_queue(queue_id).data
    except oci.exceptions.ServiceError as e:
        assert e.status == 404 and e.code == "NotAuthorizedOrNotFound", e
    else:
        assert q.lifecycle_state == "DELETED", q
    compartment_ids = [s.id for s in admin.list_queues(compartment_id=COMPARTMENT,
                                                       lifecycle_state="ACTIVE").data.items]
    assert queue_id not in compartment_ids


def test_get_queue_of_unknown_id_is_404(admin):
    e = service_error(admin.get_queue, new_queue_id())
    assert (e.status, e.code) == (404, "NotAuthorizedOrNotFound")


def test_configured_messages_endpoint_is_reported(broker_factory, config):
    b = broker_factory({"STAMPEDE__OCI__MESSAGES_ENDPOINT": "http://queue.example.test:1234"})
    a = admin_client(config, b.base_url)
    queue_id, _ = create_queue(a)
    assert a.get_queue(queue_id).data.messages_endpoint.rstrip("/") == \
        "http://queue.example.test:1234"


def test_queue_attributes_survive_a_restart(broker_factory, config):
    first = broker_factory()
    a = admin_client(config, first.base_url)
    queue_id, _ = create_queue(a, display_name="durable-attrs", visibility_in_seconds=11,
                               dead_letter_queue_delivery_count=4, retention_in_seconds=7200,
                               timeout_in_seconds=6)
    put(queue_client(config, first.base_url), queue_id, "kept")
    first.process.stop()

    second = broker_factory(data_dir=first.data_dir)
    a = admin_client(config, second.base_url)
    q = a.get_queue(queue_id).data
    assert (q.display_name, q.visibility_in_seconds, q.dead_letter_queue_delivery_count,
            q.retention_in_seconds, q.timeout_in_seconds, q.lifecycle_state) == \
        ("durable-attrs", 11, 4, 7200, 6, "ACTIVE")
    assert q.messages_endpoint.rstrip("/") == second.base_url
    assert queue_id in [s.id for s in a.list_queues(compartment_id=COMPARTMENT).data.items]
    got = get(queue_client(config, second.base_url), queue_id, timeout_in_seconds=5)
    assert [m.content for m in got] == ["kept"]


# --- messages flow ------------------------------------------------------------------------

def test_put_get_update_stats_delete(admin, qc):
    queue_id, _ = create_queue(admin, visibility_in_seconds=2, dead_letter_queue_delivery_count=2)
    contents = ["message %02d" % i for i in range(20)]
    put_result = put(qc, queue_id, *contents)
    put_ids = [p.id for p in put_result.messages]
    assert all(isinstance(i, int) for i in put_ids), put_ids
    assert len(set(put_ids)) == 20
    assert all(p.expire_after is not None for p in put_result.messages)

    s = stats(qc, queue_id)
    assert counts(s) == ((20, 0), (0, 0))
    assert s.queue.size_in_bytes >= sum(len(c) for c in contents)

    before = now_utc()
    got = get_n(qc, queue_id, 20, visibility=60)
    assert [m.content for m in got] == contents  # FIFO
    assert [m.id for m in got] == put_ids
    assert all(m.delivery_count == 1 for m in got)
    assert len({m.receipt for m in got}) == 20
    for m in got:
        assert m.visible_after > before + datetime.timedelta(seconds=50), m
        assert m.expire_after > m.visible_after
    assert counts(stats(qc, queue_id)) == ((0, 20), (0, 0))

    target = got[5]
    updated = qc.update_message(queue_id, target.receipt,
                                M.UpdateMessageDetails(visibility_in_seconds=300)).data
    assert updated.id == target.id
    assert updated.visible_after > target.visible_after + datetime.timedelta(seconds=200)

    batch = qc.update_messages(queue_id, M.UpdateMessagesDetails(entries=[
        M.UpdateMessagesDetailsEntry(receipt=got[6].receipt, visibility_in_seconds=120),
        M.UpdateMessagesDetailsEntry(receipt=got[7].receipt, visibility_in_seconds=120)])).data
    assert (batch.server_failures, batch.client_failures) == (0, 0)
    assert [e.id for e in batch.entries] == [got[6].id, got[7].id]
    assert all(e.error_code is None and e.visible_after is not None for e in batch.entries)

    assert qc.delete_message(queue_id, got[0].receipt).status == 200
    assert counts(stats(qc, queue_id)) == ((0, 19), (0, 0))
    result = qc.delete_messages(queue_id, M.DeleteMessagesDetails(entries=[
        M.DeleteMessagesDetailsEntry(receipt=m.receipt) for m in got[1:]])).data
    assert (result.server_failures, result.client_failures) == (0, 0)
    assert len(result.entries) == 19
    assert all(e.error_code is None for e in result.entries)

    s = stats(qc, queue_id)
    assert counts(s) == ((0, 0), (0, 0))
    assert s.queue.size_in_bytes == 0
    assert get(qc, queue_id, timeout_in_seconds=0) == []


def test_message_metadata_round_trips(qc):
    queue_id = new_queue_id()
    put(qc, queue_id, "h\u00e9llo \u2603 {\"json\": true}\n", channel="ch-a",
        properties={"k": "v", "trace": "abc"})
    [m] = get_n(qc, queue_id, 1)
    assert m.content == "h\u00e9llo \u2603 {\"json\": true}\n"
    assert m.metadata.channel_id == "ch-a"
    assert m.metadata.custom_properties == {"k": "v", "trace": "abc"}
    assert m.created_at is not None
    qc.delete_message(queue_id, m.receipt)


def test_redelivery_after_visibility_expires_then_dead_letter_queue_and_purge(admin, qc):
    queue_id, _ = create_queue(admin, visibility_in_seconds=2, dead_letter_queue_delivery_count=2)
    put(qc, queue_id, "poison")

    first = get(qc, queue_id, visibility_in_seconds=1, timeout_in_seconds=10)
    assert [(m.content, m.delivery_count) for m in first] == [("poison", 1)]
    # Not deleted: the long poll below wakes when the 1 s visibility runs out.
    again = get(qc, queue_id, visibility_in_seconds=1, timeout_in_seconds=10)
    assert [(m.content, m.delivery_count) for m in again] == [("poison", 2)]
    assert again[0].id == first[0].id
    assert again[0].receipt != first[0].receipt

    # Delivered deadLetterQueueDeliveryCount (2) times without a delete: when this visibility
    # runs out it goes to the DLQ instead of coming back.
    wait_until(lambda: stats(qc, queue_id).dlq.visible_messages == 1, "the message in the DLQ")
    assert get(qc, queue_id, visibility_in_seconds=1, timeout_in_seconds=0) == []
    s = stats(qc, queue_id)
    assert counts(s) == ((0, 0), (1, 0)), s
    assert s.dlq.size_in_bytes >= len("poison")

    put(qc, queue_id, "normal 1", "normal 2")
    assert counts(stats(qc, queue_id)) == ((2, 0), (1, 0))

    wr = wait_work_request(admin, admin.purge_queue(queue_id, M.PurgeQueueDetails(purge_type="DLQ")))
    assert wr.operation_type == "PURGE_QUEUE", wr
    assert counts(stats(qc, queue_id)) == ((2, 0), (0, 0))

    wait_work_request(admin, admin.purge_queue(queue_id, M.PurgeQueueDetails(purge_type="NORMAL")))
    assert counts(stats(qc, queue_id)) == ((0, 0), (0, 0))

    # BOTH: a fresh dead letter and a waiting message, both gone after one purge.
    put(qc, queue_id, "dead again")
    for expected in (1, 2):
        [m] = get(qc, queue_id, visibility_in_seconds=1, timeout_in_seconds=10)
        assert (m.content, m.delivery_count) == ("dead again", expected)
    wait_until(lambda: stats(qc, queue_id).dlq.visible_messages == 1, "the message in the DLQ")
    put(qc, queue_id, "waiting")
    assert counts(stats(qc, queue_id)) == ((1, 0), (1, 0))
    wait_work_request(admin, admin.purge_queue(queue_id, M.PurgeQueueDetails(purge_type="BOTH")))
    s = stats(qc, queue_id)
    assert counts(s) == ((0, 0), (0, 0))
    assert (s.queue.size_in_bytes, s.dlq.size_in_bytes) == (0, 0)
    assert get(qc, queue_id, timeout_in_seconds=0) == []


# --- long polls -----------------------------------------------------------------------------

def test_long_poll_on_an_empty_queue_returns_nothing_after_its_timeout(qc):
    queue_id = new_queue_id()
    start = time.monotonic()
    got = get(qc, queue_id, timeout_in_seconds=2)
    took = time.monotonic() - start
    assert got == []
    assert 1.5 <= took < 10, took


def test_long_poll_returns_when_a_message_is_put_meanwhile(config, broker, qc):
    queue_id = new_queue_id()
    get(qc, queue_id, timeout_in_seconds=0)  # the queue exists before the poll starts
    poller = Background(lambda: get(queue_client(config, broker.base_url), queue_id,
                                    timeout_in_seconds=20, visibility_in_seconds=30))
    start = time.monotonic()
    poller.start()
    # The put lands while the poll waits: the broker's metrics say when it does.
    broker.wait_long_polls(queue_id, 1)
    put(qc, queue_id, "wake up")
    put_done = time.monotonic()
    got = poller.value()
    assert [m.content for m in got] == ["wake up"]
    assert poller.finished_at - start < 10, poller.finished_at - start
    assert poller.finished_at - put_done < 9, poller.finished_at - put_done
    qc.delete_message(queue_id, got[0].receipt)


def test_short_poll_returns_at_once(qc):
    queue_id = new_queue_id()
    start = time.monotonic()
    assert get(qc, queue_id, timeout_in_seconds=0) == []
    assert time.monotonic() - start < 10


def test_limit_bounds_the_batch(qc):
    queue_id = new_queue_id()
    put(qc, queue_id, "a", "b", "c", "d", "e")
    first = get(qc, queue_id, limit=2, timeout_in_seconds=5, visibility_in_seconds=30)
    assert [m.content for m in first] == ["a", "b"]
    rest = get_n(qc, queue_id, 3)
    assert [m.content for m in rest] == ["c", "d", "e"]


# --- receipts ------------------------------------------------------------------------------

def test_unknown_receipt_is_404(qc):
    queue_id = new_queue_id()
    put(qc, queue_id, "x")
    e = service_error(qc.delete_message, queue_id, "AAAAnotareceiptAAAA")
    assert e.status == 404, e
    assert e.code == "NotAuthorizedOrNotFound", e
    e = service_error(qc.update_message, queue_id, "AAAAnotareceiptAAAA",
                      M.UpdateMessageDetails(visibility_in_seconds=5))
    assert e.status == 404, e
    assert counts(stats(qc, queue_id)) == ((1, 0), (0, 0))


def test_stale_receipt_after_redelivery_is_404(qc):
    queue_id = new_queue_id()
    put(qc, queue_id, "twice")
    [first] = get(qc, queue_id, visibility_in_seconds=1, timeout_in_seconds=10)
    [second] = get(qc, queue_id, visibility_in_seconds=30, timeout_in_seconds=10)
    assert (second.id, second.delivery_count) == (first.id, 2)
    assert second.receipt != first.receipt
    e = service_error(qc.delete_message, queue_id, first.receipt)
    assert e.status == 404, e
    assert counts(stats(qc, queue_id)) == ((0, 1), (0, 0))
    assert qc.delete_message(queue_id, second.receipt).status == 200
    assert counts(stats(qc, queue_id)) == ((0, 0), (0, 0))
    e = service_error(qc.delete_message, queue_id, second.receipt)  # already deleted
    assert e.status == 404, e


def test_batch_operations_report_bad_receipts_per_entry(qc):
    queue_id = new_queue_id()
    put(qc, queue_id, "one", "two")
    one, two = get_n(qc, queue_id, 2)

    upd = qc.update_messages(queue_id, M.UpdateMessagesDetails(entries=[
        M.UpdateMessagesDetailsEntry(receipt=one.receipt, visibility_in_seconds=60),
        M.UpdateMessagesDetailsEntry(receipt="AAAAbogusAAAA", visibility_in_seconds=60)])).data
    assert (upd.server_failures, upd.client_failures) == (0, 1)
    assert upd.entries[0].error_code is None and upd.entries[0].id == one.id
    assert upd.entries[1].error_code is not None and upd.entries[1].error_message

    res = qc.delete_messages(queue_id, M.DeleteMessagesDetails(entries=[
        M.DeleteMessagesDetailsEntry(receipt="AAAAbogusAAAA"),
        M.DeleteMessagesDetailsEntry(receipt=one.receipt),
        M.DeleteMessagesDetailsEntry(receipt=two.receipt)])).data
    assert (res.server_failures, res.client_failures) == (0, 1)
    assert len(res.entries) == 3
    assert res.entries[0].error_code is not None and res.entries[0].error_message
    assert res.entries[1].error_code is None and res.entries[2].error_code is None
    assert counts(stats(qc, queue_id)) == ((0, 0), (0, 0))


# --- channels -----------------------------------------------------------------------------

def test_channels_filter_list_and_stats(qc):
    queue_id = new_queue_id()
    put(qc, queue_id, "eu 1", "eu 2", channel="ch-eu")
    put(qc, queue_id, "us 1", channel="ch-us")
    put(qc, queue_id, "other 1", channel="other")

    items = qc.list_channels(queue_id).data.items
    assert set(items) == {"ch-eu", "ch-us", "other"}, items

    s = stats(qc, queue_id, channel_id="ch-eu")
    assert counts(s) == ((2, 0), (0, 0))
    assert s.channel_id == "ch-eu"
    assert counts(stats(qc, queue_id, channel_id="ch-us")) == ((1, 0), (0, 0))
    assert counts(stats(qc, queue_id)) == ((4, 0), (0, 0))

    eu = get(qc, queue_id, channel_filter="ch-eu", limit=20, timeout_in_seconds=5,
             visibility_in_seconds=30)
    assert [m.content for m in eu] == ["eu 1", "eu 2"]
    assert {m.metadata.channel_id for m in eu} == {"ch-eu"}
    assert counts(stats(qc, queue_id, channel_id="ch-eu")) == ((0, 2), (0, 0))

    # Wildcard: ch* matches ch-us (ch-eu is in flight) but never "other".
    wild = get(qc, queue_id, channel_filter="ch*", limit=20, timeout_in_seconds=5,
               visibility_in_seconds=30)
    assert [(m.content, m.metadata.channel_id) for m in wild] == [("us 1", "ch-us")]
    assert get(qc, queue_id, channel_filter="ch*", timeout_in_seconds=1) == []
    # An exact filter that names no channel gets nothing.
    assert get(qc, queue_id, channel_filter="ch", timeout_in_seconds=0) == []

    for m in eu + wild:
        qc.delete_message(queue_id, m.receipt)
    assert counts(stats(qc, queue_id, channel_id="ch-eu")) == ((0, 0), (0, 0))
    # ListChannels is documented as approximate (refreshed once per second): retry, bounded.
    wait_until(lambda: qc.list_channels(queue_id).data.items == ["other"],
               "ListChannels to show only 'other'")
    [o] = get_n(qc, queue_id, 1)
    assert (o.content, o.metadata.channel_id) == ("other 1", "other")


def test_channel_filter_long_poll_wakes_only_for_its_channel(config, broker, qc):
    queue_id = new_queue_id()
    get(qc, queue_id, timeout_in_seconds=0)
    poller = Background(lambda: get(queue_client(config, broker.base_url), queue_id,
                                    channel_filter="wanted", timeout_in_seconds=20,
                                    visibility_in_seconds=30))
    poller.start()
    broker.wait_long_polls(queue_id, 1)
    put(qc, queue_id, "not for you", channel="unwanted")
    assert broker.long_polls(queue_id) == 1, "woken by another channel's message"
    put(qc, queue_id, "for you", channel="wanted")
    got = poller.value()
    assert [(m.content, m.metadata.channel_id) for m in got] == [("for you", "wanted")]


# --- the blog's producer / consumer ---------------------------------------------------------

BLOG_CONF = """\
[OCI]
config_file = {oci_config}
profile = DEFAULT

[QUEUE]
queue_id = {queue_id}
messages_endpoint = {endpoint}
"""

BLOG_OCI_CONFIG = """\
[DEFAULT]
user={user}
fingerprint={fingerprint}
tenancy={tenancy}
region={region}
key_file={key_file}
"""

# The structure of the blog "An Initial Introduction to OCI Queue with OCI Python SDK":
# conf/conf.ini holds the OCI config profile and the queue's OCID and Messages Endpoint
# (gathered from the console); the producer puts messages, the consumer long-polls, prints
# and deletes. Only the endpoint in conf.ini points at Stampede.
BLOG_PRODUCER = '''\
import configparser
import os

import oci

conf = configparser.ConfigParser()
conf.read(os.path.join(os.path.dirname(os.path.abspath(__file__)), "conf", "conf.ini"))
config = oci.config.from_file(conf["OCI"]["config_file"], conf["OCI"]["profile"])
queue_id = conf["QUEUE"]["queue_id"]
queue_client = oci.queue.QueueClient(config, service_endpoint=conf["QUEUE"]["messages_endpoint"])


def produce(count):
    for i in range(count):
        messages = [oci.queue.models.PutMessagesDetailsEntry(content="Message number " + str(i))]
        response = queue_client.put_messages(
            queue_id=queue_id,
            put_messages_details=oci.queue.models.PutMessagesDetails(messages=messages))
        print("Produced:", response.data.messages[0].id, flush=True)


if __name__ == "__main__":
    produce(10)
'''

BLOG_CONSUMER = '''\
import configparser
import os

import oci

conf = configparser.ConfigParser()
conf.read(os.path.join(os.path.dirname(os.path.abspath(__file__)), "conf", "conf.ini"))
config = oci.config.from_file(conf["OCI"]["config_file"], conf["OCI"]["profile"])
queue_id = conf["QUEUE"]["queue_id"]
queue_client = oci.queue.QueueClient(config, service_endpoint=conf["QUEUE"]["messages_endpoint"])


def consume(expected):
    received = 0
    while received < expected:
        response = queue_client.get_messages(queue_id=queue_id, visibility_in_seconds=10,
                                             timeout_in_seconds=10, limit=5)
        for message in response.data.messages:
            print("Consumed:", message.content, flush=True)
            queue_client.delete_message(queue_id=queue_id, message_receipt=message.receipt)
            received += 1


if __name__ == "__main__":
    consume(10)
'''


def test_blog_producer_and_consumer(tmp_path, keys, broker, qc):
    queue_id = new_queue_id()
    app = tmp_path / "queue_demo"
    (app / "conf").mkdir(parents=True)
    oci_config = tmp_path / "oci_config"
    oci_config.write_text(BLOG_OCI_CONFIG.format(
        user="ocid1.user.oc1..aaaalocaluser", fingerprint="11:22:33:44:55:66:77:88:99:00:aa:bb:cc:dd:ee:ff",
        tenancy="ocid1.tenancy.oc1..aaaalocaltenancy", region="us-ashburn-1",
        key_file=keys["main"].private_file))
    os.chmod(oci_config, 0o600)
    (app / "conf" / "conf.ini").write_text(BLOG_CONF.format(
        oci_config=oci_config, queue_id=queue_id, endpoint=broker.base_url))
    (app / "producer.py").write_text(BLOG_PRODUCER)
    (app / "consumer.py").write_text(BLOG_CONSUMER)

    env = dict(os.environ, OCI_CLI_SUPPRESS_FILE_PERMISSIONS_WARNING="True")
    # The consumer starts first and waits in its long poll, as in the blog's side-by-side run.
    consumer = subprocess.Popen([sys.executable, str(app / "consumer.py")], cwd=app, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        producer = subprocess.run([sys.executable, str(app / "producer.py")], cwd=app, env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  timeout=60)
        assert producer.returncode == 0, producer.stderr
        out, err = consumer.communicate(timeout=60)
    finally:
        if consumer.poll() is None:
            consumer.kill()
            consumer.wait()
    assert consumer.returncode == 0, err
    produced = [line for line in producer.stdout.splitlines() if line.startswith("Produced:")]
    assert len(produced) == 10, producer.stdout
    consumed = [line for line in out.splitlines() if line.startswith("Consumed:")]
    assert consumed == ["Consumed: Message number %d" % i for i in range(10)], out
    assert counts(stats(qc, queue_id)) == ((0, 0), (0, 0))
