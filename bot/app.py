"""The Slack app: built once from settings, a store and a connector.

``create_app(settings, store, connector)`` returns a slack-bolt ``App`` with every listener
registered; ``run`` serves it over Socket Mode (``SLACK_APP_TOKEN``, the default) or HTTP
(``/slack/events``). Request signatures are always verified: the signing secret comes from
``SLACK_SIGNING_SECRET`` and Bolt's verification middleware is never switched off.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from slack_bolt import App
from slack_bolt.error import BoltError
from slack_sdk import WebClient
from slack_sdk.webhook import WebhookClient

from bot.admin import AdminChannel
from bot.blocks import esc, mention
from bot.notifier import SlackNotifier
from bot.owners import Owners
from bot.settings import SlackSettings, WorkingHours, slack_settings
from bot.state import SENT, SlackState
from bot.text import tr
from bot.web import SlackCalls, SlackRejected, web_client
from connectors.base import Connector
from connectors.retry import RetryPolicy
from core.app import Kizuna, Rules
from core.config import Settings
from core.domain import Play
from core.errors import ConfigError, DeliveryError
from core.store import Store

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]


@dataclass
class SlackBot:
    """Everything the listeners, the notifier and the digests share."""

    app: App
    kizuna: Kizuna
    slack: SlackSettings
    calls: SlackCalls
    state: SlackState
    owners: Owners
    notifier: SlackNotifier
    hours: WorkingHours
    language: str

    # -- helpers the listeners share ---------------------------------------------------------

    def actor(self, user_id: str) -> str:
        return f"slack:{user_id}"

    def mention(self, actor: str | None) -> str:
        return mention(actor, self.language)

    def redraw(self, play: Play, note: str, *, channel: str | None, ts: str | None,
               ephemeral: bool, response_url: str | None) -> None:
        """Show a play's new state on the message that was clicked and on the original nudge."""
        payload = self.kizuna.nudge_payload(play, self.kizuna.account_of(play), note=note)
        if ephemeral and response_url:
            _webhook(response_url, replace_original=True, **payload)
        elif channel and ts:
            self.calls("chat_update", channel=channel, ts=ts, **payload)
        original = self.state.current_nudge(play.key)
        if original is not None and original.state == SENT and original.ts and \
                (original.channel, original.ts) != (channel, ts):
            try:
                self.calls("chat_update", channel=original.channel, ts=original.ts, **payload)
            except SlackRejected as exc:  # deleted by the user, channel archived…
                log.info("original nudge of %s not updated: %s", play.ref, exc.error)

    def tell(self, user_id: str, text: str, *, response_url: str | None = None,
             channel: str | None = None) -> None:
        """A short reply only this user sees: via the response_url, ephemeral, or a DM."""
        if response_url:
            _webhook(response_url, text=text, response_type="ephemeral", replace_original=False)
            return
        try:
            if channel:
                self.calls("chat_postEphemeral", channel=channel, user=user_id, text=text)
                return
        except DeliveryError as exc:
            log.info("ephemeral reply to %s failed (%s); sending a DM", user_id, exc)
        self.calls("chat_postMessage", channel=user_id, text=text)

    def note(self, key: str, actor: str | None, **values: Any) -> str:
        """Who did what, for the redrawn message (``day`` defaults to today)."""
        values.setdefault("day", self.kizuna.today().isoformat())
        return tr(key, self.language, actor=self.mention(actor), **values)


def _webhook(url: str, **payload: Any) -> None:
    response = WebhookClient(url).send_dict(payload)
    if response.status_code != 200:
        raise DeliveryError(f"response_url refused the reply: {esc(response.body)}")


def build_bot(settings: Settings, kizuna: Kizuna, *, client: WebClient | None = None,
              clock: Clock | None = None, retry: RetryPolicy | None = None,
              listener_executor: Executor | None = None,
              process_before_response: bool = False, socket_mode: bool = False) -> SlackBot:
    """Wire the notifier, owner mapping and listeners around an existing Kizuna service.

    Outside Socket Mode every request is verified against ``SLACK_SIGNING_SECRET``, so the
    secret is required; in Socket Mode requests arrive over the app's own websocket.
    """
    slack = slack_settings(settings)
    env = settings.env
    if client is None:
        if env.slack_bot_token is None:
            raise ConfigError("SLACK_BOT_TOKEN is not set", field="SLACK_BOT_TOKEN")
        client = web_client(env.slack_bot_token.get_secret_value(), env.slack_api_url)
    secret = env.slack_signing_secret.get_secret_value() if env.slack_signing_secret else ""
    if not secret and not socket_mode:
        raise ConfigError("SLACK_SIGNING_SECRET is not set", field="SLACK_SIGNING_SECRET")
    clock = clock or kizuna.clock
    calls = SlackCalls(client, retry)
    state = SlackState(kizuna.store)
    hours = WorkingHours(slack, settings.tz)
    owners = Owners(calls, state, slack, settings.config.team, clock)
    language = settings.config.language
    admin = AdminChannel(calls, state, slack.admin_channel)
    notifier = SlackNotifier(calls, state, owners, admin, slack, hours, language=language,
                             clock=clock)
    kizuna.notifier = notifier
    try:
        app = App(client=client, signing_secret=secret, listener_executor=listener_executor,
                  process_before_response=process_before_response,
                  logger=logging.getLogger("bot.bolt"))
    except BoltError as exc:
        raise ConfigError(f"Slack refused the bot token: {exc}", field="SLACK_BOT_TOKEN") \
            from exc
    bot = SlackBot(app, kizuna, slack, calls, state, owners, notifier, hours, language)
    from bot import errors
    from bot.listeners import actions, commands, events, views

    errors.register(app, bot)
    commands.register(app, bot)
    actions.register(app, bot)
    views.register(app, bot)
    events.register(app, bot)
    return bot


def create_app(settings: Settings, store: Store, connector: Connector, *,
               client: WebClient | None = None, clock: Clock | None = None,
               **kwargs: Any) -> App:
    """The app factory: checks the configuration, then returns the Bolt app."""
    rules = Rules.load(settings)
    kizuna = Kizuna(settings, rules, store, connector, clock=clock)
    return build_bot(settings, kizuna, client=client, clock=clock, **kwargs).app


def run(settings: Settings, *, http: bool = False, port: int = 3000) -> None:
    """Serve the bot until interrupted: Socket Mode by default, HTTP on ``port`` if asked."""
    from connectors.base import create_connector

    env = settings.env
    if http and env.slack_signing_secret is None:
        raise ConfigError("SLACK_SIGNING_SECRET is not set (needed in HTTP mode)",
                          field="SLACK_SIGNING_SECRET")
    if not http and env.slack_app_token is None:
        raise ConfigError("SLACK_APP_TOKEN is not set (needed for Socket Mode; or use --http)",
                          field="SLACK_APP_TOKEN")
    rules = Rules.load(settings)
    connector = create_connector(settings)
    connector.check()
    store = Store.open(settings.database_url)
    kizuna = Kizuna(settings, rules, store, connector)
    bot = build_bot(settings, kizuna, socket_mode=not http)
    if http:
        bot.app.start(port=port, path="/slack/events")
        return
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    assert env.slack_app_token is not None
    SocketModeHandler(bot.app, env.slack_app_token.get_secret_value()).start()


#: Bot scopes the manifest asks for; ``kizuna bot --check`` reports any the install lacks.
REQUIRED_SCOPES = ("chat:write", "chat:write.public", "commands", "im:write", "im:history",
                   "channels:history", "groups:history", "users:read", "users:read.email")


def check(settings: Settings) -> list[str]:
    """Verify the token and scopes, and list deliveries that failed or were interrupted."""
    slack = slack_settings(settings)
    env = settings.env
    if env.slack_bot_token is None:
        raise ConfigError("SLACK_BOT_TOKEN is not set", field="SLACK_BOT_TOKEN")
    calls = SlackCalls(web_client(env.slack_bot_token.get_secret_value(), env.slack_api_url))
    try:
        auth = calls("auth_test")
    except SlackRejected as exc:
        raise ConfigError(f"Slack refused the bot token: {exc.error}",
                          field="SLACK_BOT_TOKEN") from exc
    granted = set((auth.headers.get("x-oauth-scopes") or "").split(","))
    lines = [f"Slack: workspace {auth.get('team')} as {auth.get('user')} ({auth.get('user_id')})"]
    missing = [s for s in REQUIRED_SCOPES if s not in granted]
    lines.append("scopes: ok" if not missing else f"scopes missing: {', '.join(missing)} "
                 "(reinstall the app from slack/manifest.yml)")
    for name in ("fallback_channel", "admin_channel", "manager_channel"):
        lines.append(f"{name}: {getattr(slack, name) or 'not set'}")
    state = SlackState(Store.open(settings.database_url))
    counts = state.counts()
    lines.append("deliveries: " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
                                   or "none yet"))
    for row in state.problems():
        lines.append(f"  {row.state}: {row.marker} → {row.target} ({row.error or 'interrupted'})")
    return lines
