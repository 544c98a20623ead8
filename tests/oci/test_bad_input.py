"""Requests the SDK would never send, as plain HTTP (http.client: no signing, no retries): each
gets an OCI error body {code, message} with the right status and code, leaves the queue's stats
as they were, and, like every response, carries an opc-request-id."""

import uuid

import pytest

from conftest import counts, get, get_n, new_queue_id, put, queue_client, stats

API = "/20210201"


def messages_path(queue_id):
    return "%s/queues/%s/messages" % (API, queue_id)


def assert_error(resp, status, *codes):
    assert resp.status == status, resp
    body = resp.json()
    assert isinstance(body, dict) and set(body) >= {"code", "message"}, body
    if codes:
        assert body["code"] in codes, body
    assert isinstance(body["message"], str) and body["message"], body
    assert resp.headers.get("opc-request-id"), resp.headers
    assert resp.headers.get("content-type", "").startswith("application/json"), resp.headers
    return body


class Seeded:
    """A queue with one visible and one in-flight message, and its stats before the test."""

    def __init__(self, qc):
        self.qc = qc
        self.queue_id = new_queue_id()
        put(qc, self.queue_id, "visible", "in flight")
        [m] = get(qc, self.queue_id, limit=1, visibility_in_seconds=600, timeout_in_seconds=5)
        assert m.content == "visible"  # FIFO: the first one is now in flight
        self.receipt = m.receipt
        self.before = stats(qc, self.queue_id)
        assert counts(self.before) == ((1, 1), (0, 0))

    def __iter__(self):
        return iter((self.queue_id, self.receipt))

    def assert_unchanged(self):
        after = stats(self.qc, self.queue_id)
        assert counts(after) == counts(self.before), "a refused request changed the queue"
        assert after.queue.size_in_bytes == self.before.queue.size_in_bytes


@pytest.fixture
def seeded(qc):
    return Seeded(qc)


def test_malformed_json_is_cannot_parse_request(broker, seeded):
    queue_id, _ = seeded
    for body in (b'{"messages": [{"content": "x"}', b"not json", b'{"messages": "nope"}',
                 b'{"messages": [{"contentt": "x"}]}'):
        resp = broker.raw("POST", messages_path(queue_id), body=body,
                          headers={"content-type": "application/json"})
        assert resp.status == 400, (body, resp)
        if body in (b'{"messages": [{"content": "x"}', b"not json"):
            assert_error(resp, 400, "CannotParseRequest")
        else:  # valid JSON of the wrong shape: either code is a fair answer
            assert_error(resp, 400, "CannotParseRequest", "InvalidParameter", "MissingParameter")
    seeded.assert_unchanged()


def test_21_messages_is_limit_exceeded(broker, seeded):
    queue_id, _ = seeded
    resp = broker.raw("POST", messages_path(queue_id),
                      body={"messages": [{"content": "m%d" % i} for i in range(21)]})
    assert_error(resp, 400, "LimitExceeded")
    seeded.assert_unchanged()


def test_20_messages_is_fine(broker, qc):
    queue_id = new_queue_id()
    resp = broker.raw("POST", messages_path(queue_id),
                      body={"messages": [{"content": "m%d" % i} for i in range(20)]})
    assert resp.status == 200, resp
    assert len(resp.json()["messages"]) == 20
    assert counts(stats(qc, queue_id)) == ((20, 0), (0, 0))


def test_content_over_128_kib_is_refused(broker, seeded):
    queue_id, _ = seeded
    resp = broker.raw("POST", messages_path(queue_id),
                      body={"messages": [{"content": "x" * 131073}]})
    assert_error(resp, 400, "LimitExceeded", "InvalidParameter")
    # Refused whole: a batch with one oversize entry stores none of it.
    resp = broker.raw("POST", messages_path(queue_id),
                      body={"messages": [{"content": "small"}, {"content": "y" * 131073}]})
    assert_error(resp, 400, "LimitExceeded", "InvalidParameter")
    seeded.assert_unchanged()


def test_content_of_exactly_128_kib_is_accepted(broker, qc):
    queue_id = new_queue_id()
    resp = broker.raw("POST", messages_path(queue_id),
                      body={"messages": [{"content": "z" * 131072}]})
    assert resp.status == 200, resp
    [m] = get_n(qc, queue_id, 1)
    assert m.content == "z" * 131072
    qc.delete_message(queue_id, m.receipt)


def test_negative_visibility_is_invalid_parameter(broker, seeded):
    queue_id, receipt = seeded
    resp = broker.raw("GET", messages_path(queue_id) + "?visibilityInSeconds=-1&timeoutInSeconds=0")
    assert_error(resp, 400, "InvalidParameter")
    resp = broker.raw("PUT", messages_path(queue_id) + "/" + receipt,
                      body={"visibilityInSeconds": -5})
    assert_error(resp, 400, "InvalidParameter")
    resp = broker.raw("GET", messages_path(queue_id) + "?visibilityInSeconds=abc")
    assert_error(resp, 400, "InvalidParameter", "CannotParseRequest")
    seeded.assert_unchanged()


def test_receipt_with_a_slash_is_invalid_parameter(broker, seeded):
    queue_id, receipt = seeded
    resp = broker.raw("DELETE", messages_path(queue_id) + "/" + receipt[:4] + "/" + receipt[4:])
    assert_error(resp, 400, "InvalidParameter")
    resp = broker.raw("PUT", messages_path(queue_id) + "/abc/def", body={"visibilityInSeconds": 5})
    assert_error(resp, 400, "InvalidParameter")
    seeded.assert_unchanged()


def test_unknown_route_is_404(broker, seeded):
    queue_id, _ = seeded
    for method, path in (("GET", API + "/nothing/here"),
                         ("GET", "%s/queues/%s/bogus" % (API, queue_id)),
                         ("POST", messages_path(queue_id) + "/actions/explode")):
        resp = broker.raw(method, path, body={} if method == "POST" else None)
        assert_error(resp, 404)
    # Outside the API's base path: a 404 too (the body need not be OCI's).
    assert broker.raw("GET", "/20990101/queues/%s/messages" % queue_id).status == 404
    seeded.assert_unchanged()


def test_every_response_has_an_opc_request_id_echoed_when_sent(broker, seeded):
    queue_id, _ = seeded
    mine = uuid.uuid4().hex.upper()
    for method, path, body in (("GET", "%s/queues/%s/stats" % (API, queue_id), None),
                               ("GET", "%s/queues/%s/channels" % (API, queue_id), None),
                               ("POST", messages_path(queue_id), b"{broken"),
                               ("DELETE", messages_path(queue_id) + "/AAAAnoSuchReceipt", None),
                               ("GET", API + "/no/such/route", None)):
        sent = broker.raw(method, path, body=body, headers={"opc-request-id": mine})
        assert sent.headers.get("opc-request-id") == mine, (method, path, sent)
        unsent = broker.raw(method, path, body=body)
        assert unsent.headers.get("opc-request-id"), (method, path, unsent)
        assert unsent.headers["opc-request-id"] != mine
    seeded.assert_unchanged()


def test_sdk_sees_service_errors_with_code_and_message(qc, seeded):
    import oci
    queue_id, _ = seeded
    m = oci.queue.models
    with pytest.raises(oci.exceptions.ServiceError) as info:
        qc.put_messages(queue_id, m.PutMessagesDetails(
            messages=[m.PutMessagesDetailsEntry(content="c%d" % i) for i in range(21)]))
    assert (info.value.status, info.value.code) == (400, "LimitExceeded")
    assert info.value.message
    assert info.value.request_id
    seeded.assert_unchanged()


def test_configured_limits_apply(broker_factory, config):
    b = broker_factory({"STAMPEDE__OCI__MAX_MESSAGES_PER_REQUEST": "3",
                        "STAMPEDE__OCI__MAX_MESSAGE_SIZE": "1KiB"})
    qc = queue_client(config, b.base_url)
    queue_id = new_queue_id()
    put(qc, queue_id, "a", "b", "c")
    resp = b.raw("POST", messages_path(queue_id),
                 body={"messages": [{"content": x} for x in "defg"]})
    assert_error(resp, 400, "LimitExceeded")
    resp = b.raw("POST", messages_path(queue_id), body={"messages": [{"content": "k" * 1025}]})
    assert_error(resp, 400, "LimitExceeded", "InvalidParameter")
    put(qc, queue_id, "k" * 1024)
    assert counts(stats(qc, queue_id)) == ((4, 0), (0, 0))
    # limit above max_messages_per_request is refused too (or capped: never more than 3 back).
    resp = b.raw("GET", messages_path(queue_id) + "?limit=4&timeoutInSeconds=0")
    if resp.status == 200:
        assert len(resp.json()["messages"]) <= 3, resp
    else:
        assert_error(resp, 400, "InvalidParameter", "LimitExceeded")
