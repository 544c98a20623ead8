"""Authentication on the OCI REST API in auth.mode "users": requests signed as the SDK signs them
(draft-cavage rsa-sha256, keyId <tenancy>/<user>/<fingerprint>) with a registered API key, or
HTTP Basic with the user's password; anything else is 401 NotAuthenticated and changes nothing.
And oci.auto_create=false: unknown queue ids are 404 NotAuthorizedOrNotFound."""

import base64
import email.utils
import json
import time

import oci
import pytest
from oci._vendor import requests as vendored_requests

from conftest import (KEY_ID, admin_client, counts, create_queue, get_n, new_queue_id, put,
                      queue_client, sdk_config, service_error, stats)

PASSWORD = "pw"


def users_config(keys):
    def text(process):
        return """
[auth]
mode = "users"
[auth.users.alice]
password_hash = "%s"
[[auth.users.alice.oci_api_keys]]
key_id = "%s"
public_key_file = "%s"
[oci]
auto_create = true
""" % (process.passwd(PASSWORD), KEY_ID, keys["main"].public_file)
    return text


@pytest.fixture
def users_broker(broker_factory, keys):
    return broker_factory(config_text=users_config(keys))


def basic(user, password):
    token = base64.b64encode(("%s:%s" % (user, password)).encode("utf-8")).decode("ascii")
    return {"authorization": "Basic " + token}


def messages_path(queue_id):
    return "/20210201/queues/%s/messages" % queue_id


def test_sdk_signed_with_the_registered_key_works(users_broker, config):
    qc = queue_client(config, users_broker.base_url)
    queue_id = new_queue_id()
    put(qc, queue_id, "signed")
    [m] = get_n(qc, queue_id, 1)
    assert m.content == "signed"
    assert qc.delete_message(queue_id, m.receipt).status == 200
    assert counts(stats(qc, queue_id)) == ((0, 0), (0, 0))
    admin = admin_client(config, users_broker.base_url)
    created, _ = create_queue(admin, visibility_in_seconds=5)
    assert admin.get_queue(created).data.visibility_in_seconds == 5


def test_sdk_signed_with_another_key_is_401(users_broker, config, keys):
    good = queue_client(config, users_broker.base_url)
    queue_id = new_queue_id()
    put(good, queue_id, "existing")
    before = stats(good, queue_id)

    bad = queue_client(sdk_config(keys["other"].private_file), users_broker.base_url)
    m = oci.queue.models
    for call, args in ((bad.put_messages, (queue_id, m.PutMessagesDetails(
                            messages=[m.PutMessagesDetailsEntry(content="forged")]))),
                       (bad.get_messages, (queue_id,)),
                       (bad.get_stats, (queue_id,))):
        e = service_error(call, *args)
        assert (e.status, e.code) == (401, "NotAuthenticated"), e
    e = service_error(admin_client(sdk_config(keys["other"].private_file),
                                   users_broker.base_url).get_queue, queue_id)
    assert (e.status, e.code) == (401, "NotAuthenticated"), e
    assert counts(stats(good, queue_id)) == counts(before)


def test_basic_auth_with_the_users_password_works(users_broker):
    queue_id = new_queue_id()
    resp = users_broker.raw("POST", messages_path(queue_id),
                            body={"messages": [{"content": "basic"}]},
                            headers=basic("alice", PASSWORD))
    assert resp.status == 200, resp
    resp = users_broker.raw("GET", messages_path(queue_id) + "?timeoutInSeconds=5",
                            headers=basic("alice", PASSWORD))
    assert resp.status == 200, resp
    [m] = resp.json()["messages"]
    assert m["content"] == "basic"
    resp = users_broker.raw("DELETE", messages_path(queue_id) + "/" + m["receipt"],
                            headers=basic("alice", PASSWORD))
    assert resp.status == 200, resp


def test_no_auth_or_wrong_password_is_401(users_broker, config):
    qc = queue_client(config, users_broker.base_url)
    queue_id = new_queue_id()
    put(qc, queue_id, "existing")
    before = stats(qc, queue_id)
    for headers in ({}, basic("alice", "wrong"), basic("mallory", PASSWORD),
                    {"authorization": "Signature garbage"}):
        for method, path, body in (
                ("POST", messages_path(queue_id), {"messages": [{"content": "sneaky"}]}),
                ("GET", messages_path(queue_id) + "?timeoutInSeconds=0", None),
                ("GET", "/20210201/queues/%s/stats" % queue_id, None),
                ("POST", messages_path(new_queue_id()), {"messages": [{"content": "new"}]})):
            resp = users_broker.raw(method, path, body=body, headers=headers)
            assert resp.status == 401, (headers, method, path, resp)
            assert resp.json()["code"] == "NotAuthenticated", resp
            assert resp.headers.get("opc-request-id"), resp
    assert counts(stats(qc, queue_id)) == counts(before)


def signed(keys, method, url, body=None, date=None):
    """A request signed by the SDK's own signer, optionally with a chosen date header."""
    signer = oci.signer.Signer(tenancy=KEY_ID.split("/")[0], user=KEY_ID.split("/")[1],
                               fingerprint=KEY_ID.split("/")[2],
                               private_key_file_location=str(keys["main"].private_file))
    headers = {"content-type": "application/json", "accept": "application/json"}
    if date is not None:
        headers["date"] = date
    data = json.dumps(body) if body is not None else None
    prepared = vendored_requests.Request(method, url, headers=headers, data=data).prepare()
    signer(prepared)
    return prepared


def send(prepared):
    with vendored_requests.Session() as s:
        return s.send(prepared, timeout=30)


def test_signed_request_outside_the_clock_skew_or_with_a_changed_body_is_401(users_broker, keys,
                                                                             config):
    qc = queue_client(config, users_broker.base_url)
    queue_id = new_queue_id()
    put(qc, queue_id, "existing")
    before = stats(qc, queue_id)
    url = users_broker.base_url + messages_path(queue_id)
    body = {"messages": [{"content": "abc"}]}

    ok = send(signed(keys, "POST", url, body))  # the control: the same signer, now
    assert ok.status_code == 200, ok.text

    old = email.utils.formatdate(time.time() - 600, usegmt=True)  # clock_skew is 5m
    resp = send(signed(keys, "POST", url, body, date=old))
    assert resp.status_code == 401, resp.text
    assert resp.json()["code"] == "NotAuthenticated"

    tampered = signed(keys, "POST", url, body)
    tampered.body = json.dumps({"messages": [{"content": "xyz"}]})  # same length, other bytes
    resp = send(tampered)
    assert resp.status_code == 401, resp.text
    assert resp.json()["code"] == "NotAuthenticated"

    (visible, in_flight), dlq = counts(stats(qc, queue_id))
    assert (visible, in_flight, dlq) == (before.queue.visible_messages + 1, 0, (0, 0))


def test_auto_create_false_unknown_queue_is_404(broker_factory, config):
    b = broker_factory({"STAMPEDE__OCI__AUTO_CREATE": "false"})
    qc = queue_client(config, b.base_url)
    unknown = new_queue_id()
    m = oci.queue.models
    for call, args in ((qc.put_messages, (unknown, m.PutMessagesDetails(
                            messages=[m.PutMessagesDetailsEntry(content="nowhere")]))),
                       (qc.get_messages, (unknown,)),
                       (qc.get_stats, (unknown,)),
                       (qc.list_channels, (unknown,))):
        e = service_error(call, *args)
        assert (e.status, e.code) == (404, "NotAuthorizedOrNotFound"), e
    admin = admin_client(config, b.base_url)
    e = service_error(admin.get_queue, unknown)
    assert (e.status, e.code) == (404, "NotAuthorizedOrNotFound"), e
    # A queue made with CreateQueue works as usual.
    queue_id, _ = create_queue(admin)
    put(qc, queue_id, "somewhere")
    [got] = get_n(qc, queue_id, 1)
    assert got.content == "somewhere"
    # And the unknown id is still unknown: the failed requests created nothing.
    e = service_error(qc.get_stats, unknown)
    assert e.status == 404, e
