"""The Stampede binary as a child process, for the Python suites (stomp.py in tests/python,
django-stomp in tests/django): started on free ports, ready once it logs its `ready` event, its
output kept for failure messages and for waiting on log events."""

import collections
import json
import os
import queue
import signal
import subprocess
import threading
import time

import pytest

READY_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0


def split_host_port(addr):
    """'127.0.0.1:61613' / '[::1]:61613' / 'localhost:61613' -> (host, port)."""
    host, _, port = addr.strip().rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host or not port.isdigit():
        raise ValueError("expected host:port, got %r" % addr)
    return host, int(port)


class StampedeProcess:
    """A Stampede child process whose stdout is drained forever by a thread."""

    def __init__(self, binary, data_dir, overrides=None, config=None):
        self.binary = str(binary)
        self.data_dir = str(data_dir)
        self.overrides = dict(overrides or {})
        self.config = str(config) if config else None
        self.output = collections.deque(maxlen=5000)
        self._events = queue.Queue()
        self.proc = None
        self.address = None
        self.http_address = None
        self._grew = threading.Condition()

    def start(self):
        if not os.path.isfile(self.binary) or not os.access(self.binary, os.X_OK):
            pytest.fail("Stampede binary %s not found or not executable: build it (cargo build) "
                        "or set STAMPEDE_BIN, or point STOMP_TEST_BROKER at a running broker"
                        % self.binary, pytrace=False)
        env = dict(os.environ)
        env["STAMPEDE__LISTENERS__STOMP__BIND"] = "127.0.0.1:0"
        env["STAMPEDE__LISTENERS__HTTP__BIND"] = "127.0.0.1:0"
        # Free ports for both listeners, so the session broker and per-test brokers never
        # collide; other STAMPEDE__* variables in the caller's environment pass through.
        env.update(self.overrides)
        cmd = [self.binary, "serve", "--log-format", "json", "--data-dir", self.data_dir]
        if self.config:
            cmd += ["--config", self.config]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env, cwd=self.data_dir)
        threading.Thread(target=self._drain_stdout, name="stampede-stdout", daemon=True).start()
        self._stderr_thread = threading.Thread(target=self._drain_stderr, name="stampede-stderr",
                                               daemon=True)
        self._stderr_thread.start()

        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self.stop()
                pytest.fail("Stampede did not log a 'ready' event within %.0fs\n%s"
                            % (READY_TIMEOUT, self.format_output()), pytrace=False)
            try:
                kind, value = self._events.get(timeout=left)
            except queue.Empty:
                continue
            if kind == "ready":
                self.address = value
                return split_host_port(value)
            if kind == "eof":
                try:
                    code = self.proc.wait(timeout=STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    code = "still running"
                self.stop()
                self._stderr_thread.join(STOP_TIMEOUT)  # so its last words are in the output
                pytest.fail("Stampede closed stdout before 'ready' (exit %s)\n%s"
                            % (code, self.format_output()), pytrace=False)

    def _drain_stdout(self):
        for raw in iter(self.proc.stdout.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.output.append(line)
            try:
                record = json.loads(line)
                fields = record.get("fields", {})
            except (ValueError, AttributeError):
                continue
            if isinstance(fields, dict) and fields.get("message") == "ready" and "stomp" in fields:
                self.http_address = fields.get("http")
                self._events.put(("ready", fields["stomp"]))
            with self._grew:
                self._grew.notify_all()
        self._events.put(("eof", None))

    def _drain_stderr(self):
        for raw in iter(self.proc.stderr.readline, b""):
            self.output.append("[stderr] " + raw.decode("utf-8", "replace").rstrip("\n"))

    def wait_for_log(self, *needles, timeout=10.0):
        """The first output line containing every needle, waiting for it if need be."""
        deadline = time.monotonic() + timeout
        with self._grew:
            while True:
                for line in list(self.output):
                    if all(n in line for n in needles):
                        return line
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("no log line with %r\n%s" % (needles, self.format_output()))
                self._grew.wait(left)

    def listener(self, name):
        """(host, port) of the STOMP listener called `name`, from its `listening` event."""
        line = self.wait_for_log('"listening"', '"listener":"%s"' % name)
        return split_host_port(json.loads(line)["fields"]["addr"])

    def passwd(self, password):
        """An argon2id hash of `password`, made by `stampede passwd` as an operator would."""
        out = subprocess.run([self.binary, "passwd"], input=password.encode("utf-8"),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=True)
        return out.stdout.decode("utf-8").strip()

    def format_output(self):
        lines = list(self.output)
        return "---- stampede output (%d lines) ----\n%s" % (len(lines), "\n".join(lines[-200:]))

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=STOP_TIMEOUT)


