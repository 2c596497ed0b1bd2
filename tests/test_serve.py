"""`kizuna serve`: health endpoint, graceful SIGTERM, Slack over HTTP, and several replicas."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from slack_sdk.signature import SignatureVerifier

from tests.cli_helpers import ROOT
from tests.fakes.slack import FakeSlack

SECRET = "serve-test-signing-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cwd: Path, port: int, *args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("KIZUNA_", "SLACK_", "SALESFORCE_", "HUBSPOT_"))}
    base.update({"PYTHONPATH": str(ROOT), **env})
    return subprocess.Popen([sys.executable, "-m", "core.cli", "serve", "--host", "127.0.0.1",
                             "--port", str(port), *args], cwd=cwd, env=base, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def health(port: int) -> dict | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
            return json.loads(r.read())
    except OSError:
        return None


def wait_for(predicate, timeout: float = 40.0, every: float = 0.25):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    return None


def stop(proc: subprocess.Popen[str]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


@pytest.fixture
def demo_env(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "kizuna.yaml").write_text("scheduler:\n  lease_ttl_seconds: 10\n",
                                          encoding="utf-8")
    return {"KIZUNA_CONFIG": str(tmp_path / "kizuna.yaml"),
            "KIZUNA_DATABASE_URL": f"sqlite:///{tmp_path}/serve.db"}


def test_serve_answers_health_and_stops_cleanly(tmp_path: Path, demo_env: dict) -> None:
    """/healthz reports the store, the last sync and leadership; SIGTERM exits 0."""
    port = free_port()
    proc = start(tmp_path, port, "--no-slack", env=demo_env)
    try:
        body = wait_for(lambda: (h := health(port)) and h.get("last_sync") == "ok" and h)
        assert body, proc.stdout.read() if proc.poll() is not None else "no healthy answer"
        assert body["status"] == "ok" and body["store"] == "ok" and body["role"] == "leader"
        assert body["last_sync_age_seconds"] is not None
    finally:
        code = stop(proc)
    assert code == 0
    status = subprocess.run([sys.executable, "-m", "core.cli", "status", "--json"], cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": str(ROOT), **demo_env},
                            capture_output=True, text=True, check=True)
    data = json.loads(status.stdout)
    assert data["leader"]["live"] is False, "the lease is released on a clean stop"
    assert data["jobs"]["sync"]["status"] == "ok"


def test_serve_answers_slack_over_http(tmp_path: Path, demo_env: dict) -> None:
    """In HTTP mode a signed /account command posted to /slack/events gets an answer."""
    port = free_port()
    with FakeSlack() as slack:
        env = {**demo_env, "SLACK_BOT_TOKEN": slack.bot_token, "SLACK_API_URL": slack.api_url,
               "SLACK_SIGNING_SECRET": SECRET}
        proc = start(tmp_path, port, "--http", env=env)
        try:
            assert wait_for(lambda: (h := health(port)) and h.get("last_sync") == "ok")
            body = ("command=%2Faccount&text=northwind&user_id=U0TEST&team_id=T0TEST"
                    "&channel_id=C0TEST&trigger_id=1.2.3"
                    f"&response_url={slack.new_response_url()}")
            stamp = str(int(time.time()))
            signature = SignatureVerifier(SECRET).generate_signature(timestamp=stamp, body=body)
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/slack/events", data=body.encode(), method="POST",
                headers={"Content-Type": "application/x-www-form-urlencoded",
                         "X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": signature})
            with urllib.request.urlopen(request, timeout=5) as response:
                assert response.status == 200
            forged = urllib.request.Request(
                f"http://127.0.0.1:{port}/slack/events", data=body.encode(), method="POST",
                headers={"Content-Type": "application/x-www-form-urlencoded",
                         "X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": "v0=bad"})
            with pytest.raises(urllib.error.HTTPError) as rejected:
                urllib.request.urlopen(forged, timeout=5)
            assert rejected.value.code == 401
        finally:
            assert stop(proc) == 0


@pytest.fixture
def shared_postgres() -> Iterator[str]:
    from tests.conftest import throwaway_postgres

    with throwaway_postgres() as url:
        yield url


@pytest.mark.parametrize("replicas", [2, 3])
def test_replicas_elect_one_leader_and_hand_over(tmp_path: Path, demo_env: dict,
                                                 shared_postgres: str, replicas: int) -> None:
    """N replicas on one PostgreSQL: one leader runs the jobs once; killing it hands over."""
    from sqlalchemy import create_engine, text

    env = {**demo_env, "KIZUNA_DATABASE_URL": shared_postgres}
    ports = [free_port() for _ in range(replicas)]
    procs = [start(tmp_path, port, "--no-slack", env=env) for port in ports]
    try:
        def roles() -> list[str] | None:
            answers = [health(p) for p in ports]
            if None in answers:
                return None
            return [a["role"] for a in answers]

        settled = wait_for(lambda: (r := roles()) and r.count("leader") == 1 and r)
        assert settled, "no single leader emerged"
        leader = settled.index("leader")
        time.sleep(3)  # let any (wrong) second leader run its jobs
        engine = create_engine(shared_postgres)
        with engine.connect() as conn:
            syncs = conn.execute(text("SELECT count(*) FROM sync_runs")).scalar_one()
        assert syncs == 1, "only the leader catches up, once"
        procs[leader].kill()  # no clean shutdown: the lease must expire
        procs[leader].wait()
        rest = [p for i, p in enumerate(ports) if i != leader]
        took_over = wait_for(
            lambda: [health(p)["role"] for p in rest if health(p)].count("leader") == 1,
            timeout=60)
        assert took_over, "no follower took over within a minute"
        with engine.connect() as conn:
            holders = conn.execute(text("SELECT count(DISTINCT holder) FROM job_runs")).scalar_one()
        engine.dispose()
        assert holders >= 1
    finally:
        for proc in procs:
            stop(proc)
