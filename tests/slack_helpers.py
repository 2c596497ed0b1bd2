"""Test rig for the Slack bot: a demo-seeded store, the fake Slack, and signed requests.

Requests are signed with ``slack_sdk.signature.SignatureVerifier``'s scheme (HMAC-SHA256 of
``v0:timestamp:body``) and dispatched through ``App.dispatch`` so Bolt's own verification runs.
The rig's app processes before responding (Bolt's ``process_before_response``), so a test sees
every effect when dispatch returns; one test runs the production (threaded) mode as well.
"""

from __future__ import annotations

import atexit
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from slack_bolt import BoltRequest, BoltResponse
from slack_sdk.signature import SignatureVerifier

from bot.app import SlackBot, build_bot
from connectors.demo import OWNERS, DemoCRM
from connectors.retry import RetryPolicy
from core.app import Kizuna, Rules
from core.config import Environment, KizunaConfig, Settings
from core.store import Store
from tests.fakes.slack import FakeSlack

TOKYO = ZoneInfo("Asia/Tokyo")
TODAY = date(2026, 11, 24)  # a Tuesday
SECRET = "test-signing-secret"


class Clock:
    """A settable clock for Kizuna (quiet hours, the cap's day, due dates)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def set(self, day: date, hour: int, minute: int = 0) -> None:
        self.now = datetime(day.year, day.month, day.day, hour, minute, tzinfo=TOKYO)


class Sleeps:
    """Records the waits the retry policy asked for instead of sleeping."""

    def __init__(self, advance: Callable[[float], None] | None = None) -> None:
        self.waits: list[float] = []
        self.advance = advance

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        if self.advance is not None:
            self.advance(seconds)


# -- signed requests ---------------------------------------------------------------------------

def sign(body: str, *, secret: str = SECRET, timestamp: int | None = None) -> dict[str, str]:
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(secret).generate_signature(timestamp=stamp, body=body)
    return {"x-slack-request-timestamp": stamp, "x-slack-signature": signature}


def request(body: str, content_type: str, **signing: Any) -> BoltRequest:
    return BoltRequest(body=body, headers={"content-type": content_type, **sign(body, **signing)})


def form_request(fields: dict[str, Any], **signing: Any) -> BoltRequest:
    return request(urlencode(fields), "application/x-www-form-urlencoded", **signing)


def payload_request(payload: dict[str, Any], **signing: Any) -> BoltRequest:
    """Interactivity (buttons, modals) arrives as a form with one ``payload`` JSON field."""
    return form_request({"payload": json.dumps(payload, ensure_ascii=False)}, **signing)


def event_request(event: dict[str, Any], team_id: str, **signing: Any) -> BoltRequest:
    body = json.dumps({"type": "event_callback", "team_id": team_id, "api_app_id": "A1",
                       "event": event, "event_id": "Ev1", "event_time": int(time.time())})
    return request(body, "application/json", **signing)


# -- the rig -----------------------------------------------------------------------------------

def make_settings(fake: FakeSlack, *, slack: dict[str, Any] | None = None, language: str = "ja",
                  data_dir: Path | None = None, **config: Any) -> Settings:
    cfg = KizunaConfig(language=language, slack=slack or {}, data_dir=data_dir or Path("."),
                       **config)
    env = Environment(slack_bot_token=fake.bot_token, slack_signing_secret=SECRET,
                      slack_api_url=fake.api_url, slack_app_token=None)
    return Settings(cfg, env, None)


@dataclass
class Rig:
    fake: FakeSlack
    store: Store
    crm: DemoCRM
    kizuna: Kizuna
    bot: SlackBot
    clock: Clock
    sleeps: Sleeps
    users: dict[str, str]  # owner email → Slack user id

    def dispatch(self, req: BoltRequest) -> BoltResponse:
        return self.bot.app.dispatch(req)

    def slash(self, command: str, text: str, *, user: str, channel: str = "C0CMD",
              **signing: Any) -> tuple[BoltResponse, str]:
        response_url = self.fake.new_response_url()
        fields = {"command": command, "text": text, "user_id": user, "channel_id": channel,
                  "team_id": self.fake.team_id, "response_url": response_url,
                  "trigger_id": self.fake.new_trigger_id(user), "user_name": "csm",
                  "api_app_id": "A1", "token": "legacy"}
        return self.dispatch(form_request(fields, **signing)), response_url

    def click(self, action: dict[str, Any], *, user: str, message: dict[str, Any] | None = None,
              channel: str | None = None, ephemeral: bool = False,
              view: dict[str, Any] | None = None) -> tuple[BoltResponse, str]:
        """Click an element of a posted message (or of a view) as ``user``."""
        response_url = self.fake.new_response_url()
        payload: dict[str, Any] = {
            "type": "block_actions", "user": {"id": user}, "team": {"id": self.fake.team_id},
            "api_app_id": "A1", "trigger_id": self.fake.new_trigger_id(user),
            "actions": [{"block_id": "b", "action_ts": str(time.time()), **action}],
        }
        if view is not None:
            payload["container"] = {"type": "view", "view_id": view["id"]}
            payload["view"] = view
        else:
            payload["response_url"] = response_url
            payload["channel"] = {"id": channel}
            payload["container"] = {"type": "message", "channel_id": channel,
                                    "message_ts": (message or {}).get("ts"),
                                    "is_ephemeral": ephemeral}
            if message is not None:
                payload["message"] = message
        return self.dispatch(payload_request(payload)), response_url

    def submit(self, view: dict[str, Any], values: dict[str, Any], *, user: str) -> BoltResponse:
        state = {"values": {block: {block: value} for block, value in values.items()}}
        payload = {"type": "view_submission", "user": {"id": user},
                   "team": {"id": self.fake.team_id}, "api_app_id": "A1",
                   "view": {**view, "state": state}}
        return self.dispatch(payload_request(payload))


def button_of(message: dict[str, Any], action_id: str) -> dict[str, Any]:
    for block in message.get("blocks", []):
        elements = list(block.get("elements") or [])
        if block.get("accessory"):
            elements.append(block["accessory"])
        for element in elements:
            if element.get("action_id") == action_id:
                return element
    raise AssertionError(f"no {action_id} in the message")


def option(message: dict[str, Any], action_id: str, code: str) -> dict[str, Any]:
    overflow = button_of(message, action_id)
    chosen = next(o for o in overflow["options"] if o["value"].startswith(f"{code}|"))
    return {"action_id": action_id, "type": "overflow", "selected_option": chosen}


_SEEDED: dict[int, Path] = {}


def _seeded(accounts: int) -> Path:
    """A store synced from the demo CRM with health history, made once per test session."""
    if accounts not in _SEEDED:
        folder = Path(tempfile.mkdtemp(prefix="kizuna-seed-"))
        atexit.register(shutil.rmtree, folder, True)
        settings = Settings(KizunaConfig(data_dir=folder), Environment(), None)
        store = Store.open(f"sqlite:///{folder / 'kizuna.db'}")
        crm = DemoCRM(folder / "demo.json", accounts=accounts, today=TODAY)
        clock = Clock(datetime(TODAY.year, TODAY.month, TODAY.day, 10, 0, tzinfo=TOKYO))
        kizuna = Kizuna(settings, Rules.load(settings), store, crm, clock=clock)
        kizuna.sync()
        kizuna.backfill_health()
        with store.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        store.close()
        _SEEDED[accounts] = folder / "kizuna.db"
    return _SEEDED[accounts]


def make_rig(tmp_path: Path, fake: FakeSlack, *, slack: dict[str, Any] | None = None,
             language: str = "ja", accounts: int = 24, now: datetime | None = None,
             map_owners: bool = True, threaded: bool = False, **config: Any) -> Rig:
    """A store seeded from the demo CRM, a Kizuna service, and the bot wired to the fake."""
    clock = Clock(now or datetime(TODAY.year, TODAY.month, TODAY.day, 10, 0, tzinfo=TOKYO))
    users = {}
    if map_owners:
        for email, ja, en in OWNERS:
            users[email] = fake.add_user(email, name=en if language == "en" else ja)
    settings = make_settings(fake, slack=slack, language=language, data_dir=tmp_path, **config)
    shutil.copy(_seeded(accounts), tmp_path / "kizuna.db")
    store = Store.open(f"sqlite:///{tmp_path / 'kizuna.db'}")
    crm = DemoCRM(tmp_path / "demo.json", accounts=accounts, today=TODAY)
    kizuna = Kizuna(settings, Rules.load(settings), store, crm, clock=clock)
    sleeps = Sleeps()
    bot = build_bot(settings, kizuna, clock=clock,
                    retry=RetryPolicy(attempts=4, max_total_wait=30, sleep=sleeps),
                    process_before_response=not threaded)
    return Rig(fake, store, crm, kizuna, bot, clock, sleeps, users)


def in_days(n: int) -> date:
    return TODAY + timedelta(days=n)


# -- snapshots ---------------------------------------------------------------------------------

SNAPSHOTS = Path(__file__).parent / "snapshots"


def assert_snapshot(name: str, payload: Any) -> None:
    """Compare a Block Kit payload with ``tests/snapshots/<name>.json`` exactly.

    Regenerate deliberately with ``KIZUNA_UPDATE_SNAPSHOTS=1 pytest tests/test_bot_blocks.py``
    and review the diff.
    """
    import os

    path = SNAPSHOTS / f"{name}.json"
    text = json.dumps(payload, ensure_ascii=False, indent=1, sort_keys=True) + "\n"
    if os.environ.get("KIZUNA_UPDATE_SNAPSHOTS") == "1":
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"no snapshot {path.name}; run with KIZUNA_UPDATE_SNAPSHOTS=1"
    assert json.loads(text) == json.loads(path.read_text(encoding="utf-8")), \
        f"{path.name} differs from the payload; regenerate deliberately if intended"
