"""The OCI CLI (oci-cli 3.95.1, the `oci` of this venv) against Stampede: a throwaway config
profile, the global --endpoint, and the `queue messages` / `queue channels` / `queue queue-admin`
commands as reference §5 lists them."""

import json
import os

import pytest

from conftest import (COMPARTMENT, FINGERPRINT, REGION, TENANCY, USER, counts, new_queue_id,
                      put, run, stats, venv_bin)


@pytest.fixture
def cli(tmp_path, keys, broker):
    config_file = tmp_path / "oci-cli-config"
    config_file.write_text("[DEFAULT]\nuser=%s\nfingerprint=%s\ntenancy=%s\nregion=%s\nkey_file=%s\n"
                           % (USER, FINGERPRINT, TENANCY, REGION, keys["main"].private_file))
    os.chmod(config_file, 0o600)
    env = dict(os.environ, OCI_CLI_SUPPRESS_FILE_PERMISSIONS_WARNING="True",
               HOME=str(tmp_path))  # no ~/.oci of the developer's is read or written
    oci_bin = venv_bin("oci")
    if not os.path.exists(oci_bin):
        pytest.fail("the OCI CLI is not installed next to %s (tests/oci/requirements.txt)"
                    % oci_bin, pytrace=False)

    def call(*args, ok=True):
        cmd = [oci_bin, "--config-file", str(config_file), "--endpoint", broker.base_url,
               "--no-retry"] + list(args)
        r = run(cmd, env=env)
        if ok:
            assert r.returncode == 0, "%s\nrc=%d\nstdout=%s\nstderr=%s" % (
                " ".join(cmd), r.returncode, r.stdout, r.stderr)
        return r

    return call


def data(result):
    return json.loads(result.stdout)["data"] if result.stdout.strip() else None


def test_cli_put_get_stats_delete(cli, qc):
    queue_id = new_queue_id()
    r = cli("queue", "messages", "put-messages", "--queue-id", queue_id, "--messages",
            json.dumps([{"content": "x"},
                        {"content": "y", "metadata": {"channelId": "ch1",
                                                      "customProperties": {"k": "v"}}}]))
    put_ids = [m["id"] for m in data(r)["messages"]]
    assert len(put_ids) == 2 and all(isinstance(i, int) for i in put_ids), r.stdout

    s = data(cli("queue", "messages", "get-stats", "--queue-id", queue_id))
    assert s["queue"]["visible-messages"] == 2, s
    assert s["dlq"]["visible-messages"] == 0, s

    msgs = []
    for _ in range(5):  # bounded: each call long-polls up to 5 s
        if len(msgs) == 2:
            break
        msgs += data(cli("queue", "messages", "get-messages", "--queue-id", queue_id,
                         "--visibility-in-seconds", "60", "--timeout-in-seconds", "5",
                         "--limit", "10"))["messages"]
    assert [m["content"] for m in msgs] == ["x", "y"], msgs
    assert [m["id"] for m in msgs] == put_ids
    assert msgs[0]["delivery-count"] == 1
    assert msgs[1]["metadata"]["channel-id"] == "ch1"
    assert msgs[1]["metadata"]["custom-properties"] == {"k": "v"}

    s = data(cli("queue", "messages", "get-stats", "--queue-id", queue_id))
    assert (s["queue"]["visible-messages"], s["queue"]["in-flight-messages"]) == (0, 2), s

    r = cli("queue", "messages", "update-message", "--queue-id", queue_id,
            "--message-receipt", msgs[1]["receipt"], "--visibility-in-seconds", "120")
    assert data(r)["id"] == put_ids[1]

    for m in msgs:
        cli("queue", "messages", "delete-message", "--queue-id", queue_id,
            "--message-receipt", m["receipt"], "--force")
    s = data(cli("queue", "messages", "get-stats", "--queue-id", queue_id))
    assert (s["queue"]["visible-messages"], s["queue"]["in-flight-messages"]) == (0, 0), s
    assert counts(stats(qc, queue_id)) == ((0, 0), (0, 0))


def test_cli_delete_with_unknown_receipt_fails_with_404(cli, qc):
    queue_id = new_queue_id()
    put(qc, queue_id, "stays")
    r = cli("queue", "messages", "delete-message", "--queue-id", queue_id,
            "--message-receipt", "AAAAnotareceiptAAAA", "--force", ok=False)
    assert r.returncode != 0, r.stdout
    assert "404" in r.stderr and "NotAuthorizedOrNotFound" in r.stderr, r.stderr
    assert counts(stats(qc, queue_id)) == ((1, 0), (0, 0))


def test_cli_batch_delete_and_channels(cli, qc):
    queue_id = new_queue_id()
    put(qc, queue_id, "a1", channel="alpha")
    put(qc, queue_id, "b1", channel="beta")
    items = data(cli("queue", "channels", "list-channels", "--queue-id", queue_id))["items"]
    assert set(items) == {"alpha", "beta"}, items

    got = data(cli("queue", "messages", "get-messages", "--queue-id", queue_id,
                   "--channel-filter", "beta", "--timeout-in-seconds", "5",
                   "--visibility-in-seconds", "60"))["messages"]
    assert [m["content"] for m in got] == ["b1"], got
    s = data(cli("queue", "messages", "get-stats", "--queue-id", queue_id, "--channel-id", "beta"))
    assert (s["queue"]["visible-messages"], s["queue"]["in-flight-messages"]) == (0, 1), s

    r = data(cli("queue", "messages", "delete-messages", "--queue-id", queue_id, "--entries",
                 json.dumps([{"receipt": got[0]["receipt"]}, {"receipt": "AAAAbogusAAAA"}])))
    assert (r["server-failures"], r["client-failures"]) == (0, 1), r
    assert r["entries"][0].get("error-code") is None and r["entries"][1]["error-code"], r
    assert counts(stats(qc, queue_id, channel_id="beta")) == ((0, 0), (0, 0))
    assert counts(stats(qc, queue_id)) == ((1, 0), (0, 0))


def test_cli_admin_create_and_get_queue(cli):
    r = cli("queue", "queue-admin", "queue", "create", "--compartment-id", COMPARTMENT,
            "--display-name", "from-the-cli", "--visibility-in-seconds", "15",
            "--dlq-delivery-count", "3", "--wait-for-state", "SUCCEEDED",
            "--max-wait-seconds", "30", "--wait-interval-seconds", "1")
    wr = data(r)
    assert wr["status"] == "SUCCEEDED", wr
    queue_id = wr["resources"][0]["identifier"]
    q = data(cli("queue", "queue-admin", "queue", "get", "--queue-id", queue_id))
    assert (q["display-name"], q["visibility-in-seconds"], q["dead-letter-queue-delivery-count"],
            q["lifecycle-state"]) == ("from-the-cli", 15, 3, "ACTIVE"), q
    listed = data(cli("queue", "queue-admin", "queue", "list", "--compartment-id", COMPARTMENT))
    assert queue_id in [s["id"] for s in listed["items"]], listed
