"""The slack: section of kizuna.yaml, working hours, the app factory's checks, migration 0002."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import date, datetime
from datetime import time as clock_time
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from slack_bolt.middleware.request_verification import RequestVerification

from bot.app import build_bot, create_app
from bot.settings import SlackSettings, WorkingHours, slack_settings
from connectors.demo import DemoCRM
from core.config import Environment, Settings, load_settings
from core.errors import ConfigError
from core.migrations import upgrade
from core.schema import metadata
from core.store import Store
from tests.fakes.slack import FakeSlack
from tests.slack_helpers import TODAY, TOKYO, make_rig, make_settings


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as server:
        yield server


def load(tmp_path: Path, text: str) -> Settings:
    path = tmp_path / "kizuna.yaml"
    path.write_text(text, encoding="utf-8")
    return load_settings({"KIZUNA_CONFIG": str(path)})


def test_slack_section_reads_times_written_with_or_without_quotes(tmp_path: Path) -> None:
    """`19:00` unquoted (YAML reads it as 1140) and quoted both mean seven in the evening."""
    settings = load(tmp_path, """\
slack:
  fallback_channel: "#cs-kizuna"
  quiet_hours: {start: 19:00, end: "08:30"}
  users: {Owner@Example.com: U012ABCDE}
  teams: [{name: SMB, channel: C0SMB, members: [a@example.com]}]
""")
    slack = slack_settings(settings)
    assert slack.quiet_hours is not None
    assert (slack.quiet_hours.start, slack.quiet_hours.end) == (clock_time(19), clock_time(8, 30))
    assert slack.users == {"owner@example.com": "U012ABCDE"}
    assert slack.daily_cap == 5 and slack.work_days == ["mon", "tue", "wed", "thu", "fri"]


@pytest.mark.parametrize(("text", "where"), [
    ("slack:\n  quiet_hours: {start: '19:00', end: '19:00'}\n", "kizuna.yaml:2: slack.quiet_hours"),
    ("slack:\n  users:\n    a@example.com: alice\n", "kizuna.yaml:2: slack.users"),
    ("slack:\n  daily_cap: 0\n", "kizuna.yaml:2: slack.daily_cap"),
    ("slack:\n  fallback_chanel: '#x'\n", "kizuna.yaml:2: slack.fallback_chanel: unknown field"),
])
def test_slack_section_errors_name_the_line_and_field(tmp_path: Path, text: str,
                                                      where: str) -> None:
    """A bad slack: setting is reported as kizuna.yaml:LINE: slack.field: message."""
    with pytest.raises(ConfigError) as exc:
        slack_settings(load(tmp_path, text))
    assert where in exc.value.describe()


def test_working_hours_quiet_at_night_weekends_and_holidays() -> None:
    """Quiet 19:00–09:00 (wrapping midnight), Saturdays, Sundays and listed holidays."""
    hours = WorkingHours(SlackSettings(holidays=[date(2026, 11, 25)]), TOKYO)

    def at(day: int, hour: int, minute: int = 0) -> datetime:
        return datetime(2026, 11, day, hour, minute, tzinfo=TOKYO)

    assert not hours.quiet(at(24, 9)) and not hours.quiet(at(24, 18, 59))
    assert hours.quiet(at(24, 19)) and hours.quiet(at(24, 8, 59)) and hours.quiet(at(24, 23))
    assert hours.quiet(at(25, 11))  # the holiday
    assert hours.quiet(at(28, 11)) and hours.quiet(at(29, 11))  # the weekend
    assert hours.next_opening(at(24, 22)) == at(26, 9)
    assert hours.next_opening(at(27, 20)) == at(30, 9)
    assert hours.next_opening(at(24, 10)) == at(24, 10)


def test_app_factory_requires_its_secrets(tmp_path: Path, fake: FakeSlack) -> None:
    """No bot token or no signing secret (outside Socket Mode) is a configuration error."""
    settings = make_settings(fake, data_dir=tmp_path)
    store = Store.open(f"sqlite:///{tmp_path / 'k.db'}")
    crm = DemoCRM(tmp_path / "demo.json", accounts=3, today=TODAY)
    no_secret = Settings(settings.config, Environment(slack_bot_token=fake.bot_token,
                                                      slack_api_url=fake.api_url,
                                                      slack_signing_secret=None), None)
    with pytest.raises(ConfigError, match="SLACK_SIGNING_SECRET"):
        create_app(no_secret, store, crm)
    no_token = Settings(settings.config, Environment(slack_bot_token=None,
                                                     slack_signing_secret="s"), None)
    with pytest.raises(ConfigError, match="SLACK_BOT_TOKEN"):
        create_app(no_token, store, crm)
    bad_token = Settings(settings.config, Environment(slack_bot_token="xoxb-wrong",
                                                      slack_api_url=fake.api_url.rstrip("/"),
                                                      slack_signing_secret="s"), None)
    with pytest.raises(ConfigError, match="refused the bot token"):
        create_app(bad_token, store, crm)
    app = create_app(settings, store, crm)
    assert any(isinstance(m, RequestVerification) for m in app._middleware_list)
    assert fake.calls_to("auth.test")[-1].ok


def test_socket_mode_needs_no_signing_secret(tmp_path: Path, fake: FakeSlack) -> None:
    """In Socket Mode requests come over the app's websocket, so no signing secret is needed."""
    rig = make_rig(tmp_path, fake)
    settings = Settings(rig.kizuna.settings.config,
                        Environment(slack_bot_token=fake.bot_token, slack_api_url=fake.api_url,
                                    slack_signing_secret=None), None)
    bot = build_bot(settings, rig.kizuna, socket_mode=True)
    assert bot.app.client.base_url == fake.api_url


def test_production_mode_acknowledges_then_answers(tmp_path: Path, fake: FakeSlack) -> None:
    """With Bolt's default threaded runner the command is acked at once and answered after."""
    rig = make_rig(tmp_path, fake, threaded=True)
    response, url = rig.slash("/account", "さくら", user=rig.users["sato.hanako@example.com"])
    assert response.status == 200
    for _ in range(500):
        if rig.fake.responses(url):
            break
        time.sleep(0.02)
    (reply,) = rig.fake.responses(url)
    assert "さくらウェブ制作" in reply["blocks"][0]["text"]["text"]


def test_migration_0002_creates_exactly_the_schema(tmp_path: Path) -> None:
    """Alembic's head matches core.schema (no drift), and 0002 downgrades cleanly."""
    store = Store.open(f"sqlite:///{tmp_path / 'm.db'}")
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []
    from alembic import command

    from core.migrations import alembic_config

    command.downgrade(alembic_config(store.engine), "0001")
    assert "slack_deliveries" not in store.tables() and "plays" in store.tables()
    upgrade(store.engine)
    assert {"play_events", "slack_users", "slack_deliveries", "slack_notices"} <= store.tables()


def test_kizuna_bot_check_reports_scopes_and_undelivered(tmp_path: Path, fake: FakeSlack) -> None:
    """`kizuna bot --check` verifies the token against Slack and lists failed deliveries."""
    from typer.testing import CliRunner

    from core.cli import app

    rig = make_rig(tmp_path, fake)
    fake.inject_error("chat.postMessage", "invalid_auth", times=100)
    rig.kizuna.tick(sync=False)
    fake.clear_injections()
    env = {"SLACK_BOT_TOKEN": fake.bot_token, "SLACK_API_URL": fake.api_url,
           "KIZUNA_DATABASE_URL": f"sqlite:///{tmp_path / 'kizuna.db'}",
           "KIZUNA_CONFIG": str(tmp_path / "none.yaml")}
    (tmp_path / "none.yaml").write_text("language: en\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["bot", "--check"], env=env)
    assert result.exit_code == 0, result.output
    assert "Kizuna Test" in result.output and "scopes missing: groups:history" in result.output
    assert "failed: nudge:kz-" in result.output and "invalid_auth" in result.output


def test_manifest_asks_for_what_the_bot_uses() -> None:
    """slack/manifest.yml: both commands, the Home event, interactivity, Socket Mode, and
    exactly the scopes `kizuna bot --check` expects."""
    import yaml

    from bot.app import REQUIRED_SCOPES

    root = Path(__file__).resolve().parent.parent
    manifest = yaml.safe_load((root / "slack" / "manifest.yml").read_text(encoding="utf-8"))
    commands = {c["command"] for c in manifest["features"]["slash_commands"]}
    assert commands == {"/account", "/kizuna"}
    assert sorted(manifest["oauth_config"]["scopes"]["bot"]) == sorted(REQUIRED_SCOPES)
    settings = manifest["settings"]
    assert settings["event_subscriptions"]["bot_events"] == ["app_home_opened"]
    assert settings["interactivity"]["is_enabled"] and settings["socket_mode_enabled"]
    assert manifest["features"]["app_home"]["home_tab_enabled"]
