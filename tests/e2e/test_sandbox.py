"""The session's sandbox under a worker that tries to get out: real tool calls of the built-in
worker (the SDK's bash and file tools, driven by the scripted model), run in a real session.

Each escape (a file in the home folder, the store, the API key, a write outside the workspace, a
loopback server, a process outliving the session) is tried and shown to fail, beside the calls
that must work (editing files, running the project's tests, committing). A limit that is hit
ends the session `error` with the reason.
"""

from __future__ import annotations

import http.server
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from longrun.scheduler.control import create_run_from_file, run_session_now, start
from longrun.scheduler.session.sandbox import SandboxUnavailable, require_bwrap
from longrun.scheduler.session.sandbox.limits import Bounds, Limits
from longrun.store import log, runs
from longrun.store.db import Store

SECRET = "sk-ant-sandbox-test-0123456789"
MARK = "31415"
"""A sleep of this many seconds marks the processes the worker tries to leave behind."""


@pytest.fixture(autouse=True)
def _bwrap() -> None:
    try:
        require_bwrap()
    except SandboxUnavailable as exc:
        pytest.skip(exc.message)


@pytest.fixture
def user_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "user"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_ed25519").write_text("PRIVATE KEY\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    return home


@pytest.fixture
def loopback() -> Iterator[int]:
    class Hello(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"reached-the-host")

        def log_message(self, *_: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def bash(command: str) -> dict[str, Any]:
    return {"tool": "bash", "input": {"command": command}}


def play(
    store: Store, write_spec: Any, turns: list[dict[str, Any]], extra: str = ""
) -> tuple[Any, list[Any]]:
    """Run one scripted session of `turns`; (the session, its tool results in order)."""
    spec = write_spec([turns], extra=extra)
    run = create_run_from_file(store, spec)
    start(store, run.id)
    session = run_session_now(store, run.id)
    results = [e.data for e in log.read_events(store, run.id, kinds=["tool_result"])]
    return runs.get_session(store, session.id), results


def sleepers() -> list[int]:
    """Processes on this machine that run the marked sleep."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if cmdline[:2] == [b"sleep", MARK.encode()]:
                found.append(int(entry.name))
    return found


def test_an_escaping_worker_reaches_nothing_but_its_workspace(
    store: Store, write_spec: Any, user_home: Path, loopback: int, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.txt"
    turns = [
        bash(f"cat {user_home}/.ssh/id_ed25519"),
        bash(f"ls {store.home} && cat {store.home}/longrun.db | head -c 16"),
        bash(
            'echo "key=[$ANTHROPIC_API_KEY]"; env | grep -c ANTHROPIC; cat /proc/*/environ | grep -ac sk-ant'
        ),
        bash(f"echo escaped > {outside}; echo escaped > /usr/escaped"),
        bash(
            f"python -c \"import urllib.request as u; print(u.urlopen('http://127.0.0.1:{loopback}').read())\""
        ),
        {"tool": "read", "input": {"file_path": str(user_home / ".ssh" / "id_ed25519")}},
        {"tool": "write", "input": {"file_path": ".longrun/features.json", "content": "[]"}},
        bash("echo '[]' > .longrun/features.json"),
        bash(f"(sleep {MARK} &); setsid sleep {MARK} & nohup sleep {MARK} >/dev/null 2>&1 & echo left"),
        bash(f"python -c 'import shutil; shutil.rmtree(\"{store.home / 'checkpoints.git'}\")'"),
    ]
    workspace = tmp_path / "project" / "workspace"
    (workspace / ".longrun").mkdir(parents=True)
    (workspace / ".longrun" / "features.json").write_text('[{"id": "real"}]')
    session, results = play(store, write_spec, turns)
    assert session.end_reason == "finished", session
    out = [r["output"] for r in results]
    assert "No such file or directory" in out[0] and "PRIVATE KEY" not in out[0]
    assert "No such file or directory" in out[1] and "SQLite" not in out[1]
    assert out[2].splitlines()[:2] == ["key=[]", "0"] and SECRET not in out[2]
    assert not outside.exists() and not Path("/usr/escaped").exists()
    assert "Read-only file system" in out[3]
    assert "reached-the-host" not in out[4] and ("refused" in out[4] or "unreachable" in out[4]), out[4]
    assert results[5]["is_error"] and "PRIVATE KEY" not in out[5]
    assert results[6]["is_error"]
    assert "Read-only file system" in out[7]
    assert (workspace / ".longrun" / "features.json").read_text() == '[{"id": "real"}]'
    assert "left" in out[8]
    assert "No such file or directory" in out[9]
    assert (store.home / "checkpoints.git").is_dir()  # longrun's mirror is out of its reach
    assert sleepers() == []  # every process it started died with the session
    assert SECRET not in "".join(out)
    (confined,) = [e.data for e in log.read_events(store, session.run_id, kinds=["sandbox"])]
    assert confined["confined"] is True and confined["network"] == "off"
    assert "ANTHROPIC_API_KEY" not in confined["env"]


def test_the_work_itself_runs_in_the_sandbox(store: Store, write_spec: Any, tmp_path: Path) -> None:
    test_file = "from calc import add\n\ndef test_add():\n    assert add(2, 3) == 5\n"
    turns = [
        {"tool": "write", "input": {"file_path": "calc.py", "content": "def add(a, b):\n    return a - b\n"}},
        {"tool": "write", "input": {"file_path": "test_calc.py", "content": test_file}},
        {"tool": "edit", "input": {"file_path": "calc.py", "old_string": "a - b", "new_string": "a + b"}},
        bash("python -m pytest -q -p no:cacheprovider test_calc.py 2>&1 | tail -1"),
        bash("git add calc.py test_calc.py && git commit -qm 'add()' && git log --format=%s -1"),
        bash("echo scratch > /tmp/scratch && cat /tmp/scratch && echo $HOME"),
    ]
    session, results = play(store, write_spec, turns)
    assert session.end_reason == "finished", session
    assert not any(r["is_error"] for r in results), results
    out = [r["output"] for r in results]
    assert "1 passed" in out[3]
    assert out[4].strip() == "add()"
    assert out[5].split() == ["scratch", "/tmp/home"]
    assert not Path("/tmp/scratch").exists()  # its /tmp was its own
    workspace = tmp_path / "project" / "workspace"
    assert (workspace / "calc.py").read_text().endswith("a + b\n")


def test_the_network_can_be_turned_on(store: Store, write_spec: Any, loopback: int) -> None:
    fetch = (
        f"python -c \"import urllib.request as u; print(u.urlopen('http://127.0.0.1:{loopback}').read())\""
    )
    session, results = play(store, write_spec, [bash(fetch)], extra='[sandbox]\nnetwork = "on"\n')
    assert session.end_reason == "finished"
    assert "reached-the-host" in results[0]["output"]


def _server_on(host: str) -> tuple[http.server.ThreadingHTTPServer, int]:
    class Hello(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(f"reached-{host}".encode())

        def log_message(self, *_: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer((host, 0), Hello)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


def test_only_the_hosts_the_spec_names_are_reached_through_the_egress_proxy(
    store: Store, write_spec: Any
) -> None:
    """`network = [hosts]`: an allowed host is reached over plain HTTP and through a CONNECT
    tunnel; another host gets the proxy's refusal; a direct connection (no proxy) reaches nothing,
    since the sandbox still has no network of its own."""
    allowed, allowed_port = _server_on("127.0.0.2")
    other, other_port = _server_on("127.0.0.3")
    get = "python -c \"import urllib.request as u; print(u.urlopen('http://{}').read())\""
    tunnel = (
        "python -c \"import http.client, os; p = os.environ['HTTPS_PROXY'].rsplit(':', 1); "
        "c = http.client.HTTPConnection(p[0][7:], int(p[1])); "
        f"c.set_tunnel('127.0.0.2', {allowed_port}); c.request('GET', '/'); print(c.getresponse().read())\""
    )
    direct = (
        'python -c "import socket; s = socket.socket(); '
        f"print(s.connect_ex(('127.0.0.2', {allowed_port})), s.connect_ex(('10.0.0.1', 80)))\""
    )
    turns = [
        bash(get.format(f"127.0.0.2:{allowed_port}")),
        bash(tunnel),
        bash(get.format(f"127.0.0.3:{other_port}") + " 2>&1 | tail -1"),
        bash(direct),
        bash("env | grep -i _proxy= | sort | head -3"),
    ]
    try:
        session, results = play(
            store, write_spec, turns, extra='[sandbox]\nnetwork = ["127.0.0.2", "*.example.test"]\n'
        )
    finally:
        for server in (allowed, other):
            server.shutdown()
            server.server_close()
    assert session.end_reason == "finished", session
    out = [r["output"] for r in results]
    assert "reached-127.0.0.2" in out[0], out[0]
    assert "reached-127.0.0.2" in out[1], out[1]
    assert "reached-127.0.0.3" not in out[2] and "403" in out[2], out[2]
    assert "0" not in out[3].split(), out[3]  # neither connection was made
    assert "HTTP_PROXY=http://127.0.0.1:" in out[4], out[4]
    (confined,) = [e.data for e in log.read_events(store, session.run_id, kinds=["sandbox"])]
    assert confined["network"] == "only 127.0.0.2, *.example.test"
    (egress,) = [e.data for e in log.read_events(store, session.run_id, kinds=["egress"])]
    assert egress["allowed"] == {f"127.0.0.2:{allowed_port}": 2}
    assert egress["refused"] == {f"127.0.0.3:{other_port}": 1}


@pytest.mark.parametrize(
    ("extra", "command", "reason"),
    [
        (
            "[sandbox]\nprocesses = 16\n",
            f"for i in $(seq 64); do sleep {MARK} & done; wait",
            "the sandbox's process limit (16) was reached",
        ),
        (
            "[sandbox]\nmemory_mb = 64\n",
            "python -c 'b = bytearray(512 * 1024 * 1024); print(len(b))'",
            "the sandbox's memory limit (64 MiB) was reached: a process was killed",
        ),
    ],
    ids=["processes", "memory"],
)
def test_a_limit_hit_ends_the_session_with_the_reason(
    store: Store, write_spec: Any, extra: str, command: str, reason: str
) -> None:
    probe = Limits.make(f"longrun-probe-{os.getpid()}", Bounds(64, 16, 60))
    probe.remove()
    if not probe.version:
        pytest.skip(f"no cgroup to bound a sandbox with here ({probe.why_not})")
    turns = [bash(command), bash("echo after"), bash("echo still going")]
    session, _ = play(store, write_spec, turns, extra=extra)
    assert (session.state, session.end_reason) == ("ended", "error")
    (ended,) = log.read_events(store, session.run_id, kinds=["session_ended"])
    assert ended.data["detail"] == reason
    assert sleepers() == []


def test_a_run_that_asks_for_the_sandbox_does_not_start_without_bubblewrap(
    store: Store, write_spec: Any, cli: Any
) -> None:
    run = create_run_from_file(store, write_spec([[bash("true")]]))
    no_bwrap = {"PATH": str(Path(sys.executable).parent)}
    refused = cli("run", "start", run.id, env=no_bwrap)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    (line,) = refused.stderr.strip().splitlines()
    assert "the sandbox needs bubblewrap, which is not installed" in line
    assert "apt-get install bubblewrap" in line and 'mode = "off"' in line
    assert runs.get_run(store, run.id).state == "draft"
    assert cli("run", "start", run.id).returncode == 0
