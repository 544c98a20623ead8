"""The stomp.py snippet in the repository README runs unchanged (only the port is pointed at the
broker under test) and prints what it promises."""

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_snippet():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert blocks, "README.md has no python example"
    return blocks[0]


def test_readme_stomp_py_example_runs(broker):
    code = readme_snippet()
    assert '("127.0.0.1", 61613)' in code, "the README example targets the default port"
    code = code.replace('("127.0.0.1", 61613)', repr(broker.host_and_ports[0]))
    if broker.vhost:
        code = code.replace('stomp.Connection([', 'stomp.Connection(vhost=%r, host_and_ports=[' % broker.vhost)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert "received: Hello, Stampede!" in out.stdout, out.stdout + out.stderr


def test_readme_start_command_names_a_runnable_binary():
    """The README's first command must start the broker: cargo has to know which binary to run
    (the workspace has more than one). Run it without --release, so no release build is needed,
    and ask the binary for its version."""
    blocks = re.findall(r"```sh\n(.*?)```", README.read_text(), re.S)
    assert blocks, "README.md has no sh block"
    start = blocks[0].splitlines()[0].split("#")[0].split()
    assert start[:2] == ["cargo", "run"], start
    cmd = [a for a in start if a != "--release"] + ["--", "--version"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=README.parent)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith("stampede "), out.stdout
