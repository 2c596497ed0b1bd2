"""``kizuna serve``: the Slack bot and the scheduler in one long-running process.

- Every replica answers Slack (HTTP mode on ``/slack/events``, or Socket Mode) and ``/healthz``.
- Exactly one replica — the holder of the ``scheduler`` lease — runs the scheduled jobs; a
  background thread renews the lease, and a follower takes over within a minute of the leader's
  death, catching up once on whatever was missed.
- SIGTERM (or Ctrl-C) stops taking requests, lets the running job finish its current step (each
  effect is committed as it happens, so stopping between steps is always safe), releases the
  lease and exits 0.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from sqlalchemy import text

from core.app import Kizuna, Rules
from core.config import Settings
from core.errors import ConfigError
from core.guard import DataGuard
from core.leader import Lease
from core.store import Store
from scheduler import JobRunner, ScheduleSettings, build_scheduler, default_jobs

log = logging.getLogger(__name__)
WsgiApp = Callable[[dict, Callable], Iterable[bytes]]


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http: " + format, *args)


class Service:
    """The assembled long-running process; ``run()`` blocks until stopped."""

    def __init__(self, settings: Settings, *, http: bool = False, port: int = 8080,
                 host: str = "0.0.0.0", slack: bool = True) -> None:
        self.settings = settings
        self.http = http
        self.port = port
        self.host = host
        self.with_slack = slack
        self.stopping = threading.Event()
        self.schedule = settings.section("scheduler", ScheduleSettings)
        from connectors.base import create_connector

        rules = Rules.load(settings)
        self.connector = create_connector(settings)
        self.connector.check()
        self.store = Store.open(settings.database_url)
        self.kizuna = Kizuna(settings, rules, self.store, self.connector)
        self.lease = Lease(self.store, ttl=timedelta(seconds=self.schedule.lease_ttl_seconds))
        self.runner = JobRunner(self.store, self.lease, on_failure=self._failed)
        self.bot = self._bot() if slack else None
        self.jobs = default_jobs(self.schedule, sync=self.kizuna.sync, evaluate=self._evaluate,
                                 daily_digest=self._digest("send_daily") if self.bot else None,
                                 weekly_digest=self._digest("send_weekly") if self.bot else None)
        self.scheduler = build_scheduler(self.jobs, self.runner, settings.tz)
        self.httpd = make_server(host, port, self.wsgi, server_class=_ThreadingServer,
                                 handler_class=_QuietHandler)
        self.port = self.httpd.server_port

    # parts -----------------------------------------------------------------------------------

    def _bot(self) -> Any:
        env = self.settings.env
        if env.slack_bot_token is None:
            raise ConfigError("SLACK_BOT_TOKEN is not set (or run with --no-slack)",
                              field="SLACK_BOT_TOKEN")
        if self.http and env.slack_signing_secret is None:
            raise ConfigError("SLACK_SIGNING_SECRET is not set (needed in HTTP mode)",
                              field="SLACK_SIGNING_SECRET")
        if not self.http and env.slack_app_token is None:
            raise ConfigError("SLACK_APP_TOKEN is not set (needed for Socket Mode; or --http)",
                              field="SLACK_APP_TOKEN")
        from bot.app import build_bot

        return build_bot(self.settings, self.kizuna, socket_mode=not self.http)

    def _failed(self, job: Any, exc: Exception) -> None:
        """Tell the admin channel (once a day per job) that a scheduled job failed."""
        day = datetime.now(self.settings.tz).date()
        self.kizuna.alert(f"job-failed:{job.name}:{day}",
                          f"Kizuna's scheduled {job.name} failed: {exc}. The previous data stays "
                          "in use; the job runs again at its next time.")

    def _evaluate(self) -> None:
        self.kizuna.apply(self.kizuna.decide())

    def _digest(self, name: str) -> Callable[[], Any]:
        def send() -> Any:
            from bot import digest

            return getattr(digest, name)(self.kizuna, self.bot.notifier, datetime.now(UTC))
        return send

    # http ------------------------------------------------------------------------------------

    def health(self) -> tuple[int, dict[str, Any]]:
        """Store reachable, age of the last good sync, leader or follower, data guard."""
        body: dict[str, Any] = {"role": "leader" if self.lease.held else "follower"}
        try:
            with self.store.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            body["store"] = "ok"
        except Exception as exc:
            body.update(store="unreachable", error=type(exc).__name__)
            return 503, {"status": "unhealthy", **body}
        last = self.runner.runs().get("sync") or {}
        finished = last.get("finished_at")
        body["last_sync"] = last.get("status")
        body["last_sync_age_seconds"] = (
            round((datetime.now(UTC) - finished).total_seconds()) if finished else None)
        guard = DataGuard(self.store, self.kizuna.source).state()
        body["data_guard"] = "holding" if guard and guard["held"] else "ok"
        return 200, {"status": "ok", **body}

    def wsgi(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/healthz":
            status, body = self.health()
            payload = json.dumps(body).encode()
            start_response(f"{status} {'OK' if status == 200 else 'Service Unavailable'}",
                           [("Content-Type", "application/json"),
                            ("Content-Length", str(len(payload)))])
            return [payload]
        if path == "/slack/events" and self.http and self.bot is not None:
            from slack_bolt.adapter.wsgi import SlackRequestHandler

            return SlackRequestHandler(self.bot.app)(environ, start_response)
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found\n"]

    # lifecycle -------------------------------------------------------------------------------

    def _keep_lease(self) -> None:
        """Renew (or try to take) the lease until stopped; catch up when leadership starts."""
        interval = self.schedule.lease_ttl_seconds / 3
        while not self.stopping.is_set():
            was = self.lease.held
            try:
                leader = self.lease.acquire()
            except Exception:
                log.exception("lease renewal failed; retrying")
                leader = False
            if leader and not was:
                self._catch_up()
            self.stopping.wait(interval)

    def _catch_up(self) -> None:
        from scheduler import missed_run

        now = datetime.now(UTC)
        for job in self.jobs:
            if missed_run(job, self.settings.tz, self.runner.last_finished(job.name), now):
                log.info("catching up on %s", job.name)
                self.scheduler.modify_job(job.name, next_run_time=now)

    def run(self, *, install_signals: bool = True) -> None:
        if install_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: self.stopping.set())
        self.scheduler.start()
        threads = [threading.Thread(target=self._keep_lease, name="lease", daemon=True),
                   threading.Thread(target=self.httpd.serve_forever, name="http", daemon=True)]
        for thread in threads:
            thread.start()
        socket_handler = None
        if self.bot is not None and not self.http:
            from slack_bolt.adapter.socket_mode import SocketModeHandler

            token = self.settings.env.slack_app_token
            assert token is not None
            socket_handler = SocketModeHandler(self.bot.app, token.get_secret_value())
            socket_handler.connect()
        log.info("kizuna serve: listening on %s:%d (%s)", self.host, self.port,
                 "HTTP" if self.http else "Socket Mode" if self.bot else "no Slack")
        self.stopping.wait()
        self.shutdown(socket_handler, threads)

    def shutdown(self, socket_handler: Any = None,
                 threads: Iterable[threading.Thread] = ()) -> None:
        log.info("kizuna serve: stopping")
        self.httpd.shutdown()
        if socket_handler is not None:
            socket_handler.close()
        self.scheduler.shutdown(wait=True)
        for thread in threads:
            thread.join(timeout=5)
        if self.lease.held:
            self.lease.release()
        self.httpd.server_close()
        self.store.close()
