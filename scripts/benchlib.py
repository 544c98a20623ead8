"""Shared pieces of Stampede's benchmark scripts (scripts/bench-engine, scripts/bench-peers):
a minimal stdlib STOMP 1.2 client, the stamp checker for drained backlogs, process and disk
measurements, the Stampede process wrapper, the local RabbitMQ node, the machine facts and the
number formatting of the reports. Python 3 stdlib only."""
import datetime
import json
import os
import platform
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MIB = 1024 * 1024

def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# A minimal STOMP 1.2 client (stdlib only), enough for the drain check and the churn scenario.
# --------------------------------------------------------------------------------------------

class StompError(Exception):
    pass


class Stomp:
    def __init__(self, host, port, login="guest", passcode="guest", vhost="/", timeout=30.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.pos = 0
        self.next_receipt = 0
        self.frame("CONNECT", {"accept-version": "1.2", "host": vhost, "login": login,
                               "passcode": passcode, "heart-beat": "0,0"})
        cmd, headers, _ = self.read_frame()
        if cmd != "CONNECTED":
            raise StompError(f"CONNECT answered {cmd}: {headers.get('message', '')}")
        self.server = headers.get("server", "")

    def frame(self, command, headers, body=b""):
        head = command + "\n" + "".join(f"{k}:{v}\n" for k, v in headers.items())
        if body:
            head += f"content-length:{len(body)}\n"
        self.sock.sendall(head.encode() + b"\n" + body + b"\0")

    def _fill(self):
        if self.pos > (1 << 20):
            del self.buf[:self.pos]
            self.pos = 0
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise StompError("connection closed by the broker")
        self.buf += chunk

    def read_frame(self):
        buf = self.buf
        while True:
            while self.pos < len(buf) and buf[self.pos] in (10, 13):
                self.pos += 1  # heart-beats / EOLs between frames
            he = buf.find(b"\n\n", self.pos)
            if he < 0:
                self._fill()
                buf = self.buf
                continue
            lines = bytes(buf[self.pos:he]).decode("utf-8", "replace").split("\n")
            cmd = lines[0].rstrip("\r")
            headers = {}
            for line in lines[1:]:
                k, _, v = line.rstrip("\r").partition(":")
                headers.setdefault(k, v)
            start = he + 2
            if "content-length" in headers:
                end = start + int(headers["content-length"])
                if len(buf) <= end:
                    self._fill()
                    buf = self.buf
                    continue
            else:
                end = buf.find(b"\0", start)
                if end < 0:
                    self._fill()
                    buf = self.buf
                    continue
            body = bytes(buf[start:end])
            self.pos = end + 1
            if cmd == "ERROR":
                raise StompError(f"ERROR frame: {headers.get('message', '')} {body[:200]!r}")
            return cmd, headers, body

    def receipt_id(self):
        self.next_receipt += 1
        return f"r{self.next_receipt}"

    def wait_receipt(self, rid, on_other=None):
        while True:
            cmd, headers, body = self.read_frame()
            if cmd == "RECEIPT" and headers.get("receipt-id") == rid:
                return
            if on_other:
                on_other(cmd, headers, body)

    def send(self, dest, body, receipt=True, persistent=True):
        headers = {"destination": dest}
        if persistent:
            headers["persistent"] = "true"
        rid = None
        if receipt:
            rid = self.receipt_id()
            headers["receipt"] = rid
        self.frame("SEND", headers, body)
        if rid:
            self.wait_receipt(rid)

    def close(self):
        try:
            rid = self.receipt_id()
            self.frame("DISCONNECT", {"receipt": rid})
            self.sock.settimeout(10)
            self.wait_receipt(rid)
        except (OSError, StompError):
            pass
        finally:
            self.sock.close()


def stomp_connect_ok(host, port, vhost="/"):
    try:
        c = Stomp(host, port, vhost=vhost, timeout=2)
        c.sock.close()
        return True
    except (OSError, StompError, ValueError):
        return False


def drain_check(host, port, dest, producers, per_producer, vhost="/", idle_timeout=15.0):
    """Subscribes with ack:auto and reads until producers*per_producer stamped messages arrived (or
    idle_timeout passes without one). Checks the stampede-bench stamp (run u16, producer u16, seq
    u64, little-endian) of every body: missing, duplicates, foreign run tags."""
    c = Stomp(host, port, vhost=vhost)
    expected = producers * per_producer
    seen = bytearray(expected)
    received = dups = out_of_range = redelivered = 0
    runs = {}
    c.frame("SUBSCRIBE", {"destination": dest, "id": "0", "ack": "auto"})
    t0 = time.perf_counter()
    last = t0
    c.sock.settimeout(idle_timeout)
    data = c.buf
    pos = c.pos
    unpack = struct.unpack_from
    try:
        while received < expected:
            try:
                chunk = c.sock.recv(1 << 22)
            except socket.timeout:
                break
            if not chunk:
                break
            if pos > (8 << 20):
                del data[:pos]
                pos = 0
            data += chunk
            n = len(data)
            while True:
                while pos < n and data[pos] == 10:
                    pos += 1
                he = data.find(b"\n\n", pos)
                if he < 0:
                    break
                cl = data.find(b"\ncontent-length:", pos, he)
                if cl >= 0:
                    nl = data.find(b"\n", cl + 16, he + 1)
                    end = he + 2 + int(data[cl + 16:nl])
                    if end >= n:
                        break
                else:
                    end = data.find(b"\0", he + 2)
                    if end < 0:
                        break
                if data.startswith(b"MESSAGE", pos):
                    received += 1
                    if data.find(b"\nredelivered:true", pos, he) >= 0:
                        redelivered += 1
                    if end - (he + 2) >= 12:
                        run, prod, seq = unpack("<HHQ", data, he + 2)
                        runs[run] = runs.get(run, 0) + 1
                        if prod < producers and seq < per_producer:
                            i = prod * per_producer + seq
                            if seen[i]:
                                dups += 1
                            else:
                                seen[i] = 1
                        else:
                            out_of_range += 1
                elif data.startswith(b"ERROR", pos):
                    raise StompError(bytes(data[pos:end]).decode("utf-8", "replace")[:300])
                pos = end + 1
            last = time.perf_counter()
    finally:
        c.sock.close()
    distinct = seen.count(1)
    secs = last - t0
    return {"received": received, "distinct": distinct, "missing": expected - distinct,
            "duplicates": dups, "out_of_range": out_of_range, "redelivered": redelivered,
            "run_tags": len(runs), "seconds": secs,
            "msgs_per_sec": received / secs if secs > 0 else 0.0}


# --------------------------------------------------------------------------------------------
# Measuring helpers
# --------------------------------------------------------------------------------------------

def du_bytes(path):
    """Allocated bytes under path, like `du -s` (st_blocks * 512)."""
    total = 0
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                pass
    try:
        total += os.lstat(path).st_blocks * 512
    except OSError:
        pass
    return total


def count_files(path):
    return sum(len(f) for _, _, f in os.walk(path))


def rss_kib(pid):
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    out[line.split(":")[0]] = int(line.split()[1])
    except OSError:
        return None
    return out


class DiskSampler(threading.Thread):
    """Samples du of a directory every `period` seconds and keeps the peak."""

    def __init__(self, path, period=0.5):
        super().__init__(daemon=True)
        self.path, self.period = path, period
        self.peak = 0
        self.stop_ev = threading.Event()

    def run(self):
        while not self.stop_ev.is_set():
            self.peak = max(self.peak, du_bytes(self.path))
            self.stop_ev.wait(self.period)

    def stop(self):
        self.stop_ev.set()
        self.join()
        self.peak = max(self.peak, du_bytes(self.path))
        return self.peak


def run_tool(bench, url, args, timeout):
    cmd = [bench, "--url", url, "--quiet", "--json"] + [str(a) for a in args]
    log("  $ " + " ".join(os.path.basename(c) if i == 0 else c for i, c in enumerate(cmd)))
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if p.returncode not in (0, 1) or not p.stdout.strip():
        # 1 = the run finished but was not clean (errors / lost messages): the JSON says why.
        raise RuntimeError(f"stampede-bench exited {p.returncode}: {p.stderr.strip()[-500:]}")
    r = json.loads(p.stdout)
    r["_exit"] = p.returncode
    if p.stderr.strip():
        r["_stderr"] = p.stderr.strip()[-500:]
    return r


# --------------------------------------------------------------------------------------------
# Brokers
# --------------------------------------------------------------------------------------------

class StampedeProc:
    """A Stampede release binary with its own data dir under the run's work dir."""

    def __init__(self, binary, port, workdir):
        self.binary, self.port, self.workdir = binary, port, workdir
        # Also serve STOMP over TLS here (a development certificate in the data dir) when set.
        self.tls_port = None
        # A fixed HTTP port (it serves STOMP over WebSocket at /ws) when set; any free one if not.
        self.http_port = None
        self.proc = None
        self.data = None
        self.logfile = None
        self.serial = 0
        self.warnings = []  # WARN / ERROR log lines over every instance

    @property
    def url(self):
        return f"127.0.0.1:{self.port}"

    def fresh(self, tag):
        self.stop()
        self.serial += 1
        self.data = os.path.join(self.workdir, f"data-{self.serial:02d}-{tag}")
        return self.start()

    def start(self, timeout=120):
        env = dict(os.environ, STAMPEDE__LISTENERS__STOMP__BIND=self.url,
                   STAMPEDE__LISTENERS__HTTP__BIND=f"127.0.0.1:{self.http_port or 0}")
        if self.tls_port:
            env["STAMPEDE__LISTENERS__STOMP_TLS__BIND"] = f"127.0.0.1:{self.tls_port}"
            env["STAMPEDE__LISTENERS__STOMP_TLS__SELF_SIGNED"] = "true"
        env.pop("RUST_LOG", None)
        path = os.path.join(self.workdir, "stampede.log")
        self.logfile = open(path, "a")
        ready = threading.Event()
        info = {"recovery": None, "ready_at": None, "exited": False}
        t0 = time.perf_counter()
        self.proc = subprocess.Popen([self.binary, "--log-format", "json", "--data-dir", self.data],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                                     text=True)
        logfile = self.logfile

        def reader(proc):
            for line in proc.stdout:
                now = time.perf_counter()
                logfile.write(line)
                try:
                    j = json.loads(line)
                except ValueError:
                    self.warnings.append(line.strip())
                    continue
                fields = j.get("fields", {})
                if j.get("level") in ("WARN", "ERROR"):
                    self.warnings.append(line.strip())
                if fields.get("message") == "recovery finished":
                    info["recovery"] = fields
                elif fields.get("message") == "ready" and not ready.is_set():
                    info["ready_at"] = now
                    ready.set()
            info["exited"] = True
            ready.set()
            logfile.flush()

        self.reader = threading.Thread(target=reader, args=(self.proc,), daemon=True)
        self.reader.start()
        if not ready.wait(timeout) or info["exited"]:
            raise RuntimeError(f"stampede did not become ready (see {path})")
        return {"exec_to_ready_ms": (info["ready_at"] - t0) * 1000,
                "recovery": info["recovery"] or {}}

    def rss(self):
        return rss_kib(self.proc.pid) if self.proc else None

    def stop(self, timeout=60):
        """SIGTERM and wait; returns the seconds until the process exited."""
        if not self.proc:
            return None
        t0 = time.perf_counter()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self.warnings.append("bench-engine: stampede did not exit within 60 s of SIGTERM; killed")
        dt = time.perf_counter() - t0
        if self.proc.returncode not in (0, -signal.SIGTERM):
            self.warnings.append(f"bench-engine: stampede exited with status {self.proc.returncode}")
        self.proc = None
        self.reader.join(10)  # the last log lines
        self.logfile.close()
        return dt

    def tls_ca(self):
        """The development certificate clients of the TLS listener trust."""
        return os.path.join(self.data, "tls", "self-signed.pem")

    def discard_data(self):
        if self.data and os.path.isdir(self.data):
            shutil.rmtree(self.data, ignore_errors=True)


class Rabbit:
    PID_FILE = "/var/run/rabbitmq/pid"

    def __init__(self, hostport, data_dir):
        host, _, port = hostport.rpartition(":")
        self.host, self.port = host, int(port)
        self.url = hostport
        self.data_dir = data_dir
        self.local = (host in ("127.0.0.1", "localhost", "::1") and os.geteuid() == 0
                      and shutil.which("rabbitmqctl") is not None and os.path.isdir(data_dir))
        self.created = set()
        self.version = None

    def ctl(self, *args, timeout=120):
        p = subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, timeout=timeout)
        return p.returncode, p.stdout

    def queue_messages(self, name):
        rc, out = self.ctl("list_queues", "-q", "--no-table-headers", "name", "messages")
        if rc != 0:
            return None
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] == name:
                return int(parts[1])
        return None

    def delete_queue(self, name):
        if self.local:
            self.ctl("delete_queue", name)

    def beam_pid(self):
        p = subprocess.run(["pgrep", "-x", "-u", "rabbitmq", "beam.smp"], capture_output=True,
                           text=True)
        pids = p.stdout.split()
        return int(pids[0]) if pids else None

    def rss(self):
        pid = self.beam_pid()
        return rss_kib(pid) if pid else None

    def disk(self):
        return du_bytes(self.data_dir)

    def stop(self):
        t0 = time.perf_counter()
        subprocess.run(["service", "rabbitmq-server", "stop"], capture_output=True, timeout=300)
        # `rabbitmqctl stop` returns once the node is down; make sure beam.smp is gone.
        while self.beam_pid() and time.perf_counter() - t0 < 300:
            time.sleep(0.05)
        return time.perf_counter() - t0

    def start(self, queue=None, expect=None, timeout=300):
        """Starts the node with the init script's own command; returns exec → STOMP CONNECT and
        exec → `rabbitmqctl list_queues` shows `expect` messages on `queue`."""
        os.makedirs(os.path.dirname(self.PID_FILE), exist_ok=True)
        shutil.chown(os.path.dirname(self.PID_FILE), "rabbitmq", "rabbitmq")
        env = dict(os.environ, RABBITMQ_PID_FILE=self.PID_FILE)
        t0 = time.perf_counter()
        subprocess.run(["start-stop-daemon", "--quiet", "--chuid", "rabbitmq", "--start",
                        "--exec", "/usr/sbin/rabbitmq-server", "--pidfile", self.PID_FILE,
                        "--background"], env=env, timeout=60, check=True)
        res = {}
        while time.perf_counter() - t0 < timeout:
            if stomp_connect_ok(self.host, self.port):
                res["exec_to_stomp_ms"] = (time.perf_counter() - t0) * 1000
                break
            time.sleep(0.02)
        else:
            raise RuntimeError("RabbitMQ did not accept STOMP within the timeout")
        if queue:
            while time.perf_counter() - t0 < timeout:
                n = self.queue_messages(queue)
                if n is not None and (expect is None or n >= expect):
                    res["exec_to_queue_ms"] = (time.perf_counter() - t0) * 1000
                    res["queue_messages"] = n
                    break
                time.sleep(0.1)
        # What the init script does after starting: wait until the node is fully booted.
        subprocess.run(["rabbitmqctl", "wait", "--timeout", "120", self.PID_FILE],
                       capture_output=True, timeout=180)
        return res

    def ensure_running(self):
        if self.local and not self.beam_pid():
            log("RabbitMQ is not running; starting it again")
            subprocess.run(["service", "rabbitmq-server", "start"], capture_output=True, timeout=300)


# --------------------------------------------------------------------------------------------
# Machine facts
# --------------------------------------------------------------------------------------------

def pct(samples, q):
    s = sorted(samples)
    return s[min(len(s) - 1, int(q * len(s)))]


def machine(workdir):
    m = {}
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in lscpu.splitlines():
            k, _, v = line.partition(":")
            if k.strip() in ("Model name", "Hypervisor vendor", "Virtualization type"):
                m[k.strip()] = v.strip()
    except OSError:
        pass
    m["cores"] = os.cpu_count()
    with open("/proc/meminfo") as f:
        m["ram_gib"] = int(f.readline().split()[1]) / 1024 / 1024
    m["kernel"] = platform.release()
    m["os"] = platform.freedesktop_os_release().get("PRETTY_NAME", "") if hasattr(
        platform, "freedesktop_os_release") else ""
    df = subprocess.run(["df", "-T", workdir], capture_output=True, text=True).stdout.splitlines()
    if len(df) > 1:
        parts = df[1].split()
        m["fs"] = f"{parts[1]} on {parts[0]} (mounted at {parts[-1]})"
    # fdatasync: 4 KiB write + fdatasync, 2000 times, on the work dir's filesystem.
    path = os.path.join(workdir, "fsync-probe")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    block = os.urandom(4096)
    lat = []
    for _ in range(2000):
        t = time.perf_counter()
        os.write(fd, block)
        os.fdatasync(fd)
        lat.append((time.perf_counter() - t) * 1e6)
    os.close(fd)
    os.unlink(path)
    m["fdatasync_p50_us"], m["fdatasync_p99_us"] = pct(lat, 0.5), pct(lat, 0.99)
    # Loopback RTT: 1-byte ping-pong with an echo server in another process (Python both ends, so
    # this includes Python's per-call overhead: an upper bound of the kernel's figure).
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    echo = subprocess.Popen([sys.executable, "-c",
                             "import socket,sys\n"
                             f"c=socket.create_connection(('127.0.0.1',{port}))\n"
                             "c.setsockopt(socket.IPPROTO_TCP,socket.TCP_NODELAY,1)\n"
                             "while True:\n"
                             " b=c.recv(1)\n"
                             " if not b: break\n"
                             " c.sendall(b)\n"])
    conn, _ = srv.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    rtt = []
    for i in range(5500):
        t = time.perf_counter()
        conn.sendall(b"x")
        conn.recv(1)
        if i >= 500:
            rtt.append((time.perf_counter() - t) * 1e6)
    conn.close()
    srv.close()
    echo.wait(10)
    m["rtt_p50_us"], m["rtt_p99_us"] = pct(rtt, 0.5), pct(rtt, 0.99)
    m["date"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")

    def git(*a):
        # rstrip only: `git status --porcelain` lines start with a status column that may be a space.
        return subprocess.run(["git", "-C", REPO, *a], capture_output=True, text=True).stdout.rstrip()
    m["commit"] = git("rev-parse", "--short=12", "HEAD")
    m["commit_subject"] = git("log", "-1", "--format=%s")
    m["dirty"] = [l for l in git("status", "--porcelain").splitlines() if l.strip()
                  and not l.endswith("docs/benchmarks.md")]
    return m



# --------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------

def fmt_int(v):
    return "–" if v is None else f"{v:,.0f}"


def fmt_ms(us):
    return "–" if us is None else f"{us / 1000:.2f}"


def fmt_mib(b):
    return "–" if b is None else f"{b / MIB:,.1f}"


def ratio(a, b):
    if a is None or b in (None, 0):
        return "–"
    return f"{a / b:.2f}×"


def get(d, *path):
    for k in path:
        if d is None:
            return None
        d = d.get(k) if isinstance(d, dict) else None
    return d


def rss_bytes(r):
    return None if not r else r.get("VmRSS", 0) * 1024
