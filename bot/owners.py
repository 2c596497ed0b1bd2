"""Owner mapping: a CRM owner's email → the Slack user (or channel) who gets their nudges.

Order: ``slack.users`` in kizuna.yaml, then ``team[].slack_user``, then the store's cache, then
``users.lookupByEmail`` (cached, including "no such member" for ``lookup_retry_hours`` so a
missing owner is not asked about on every nudge). Owners in a ``slack.teams`` entry get their
nudges in that team's channel; owners nobody can map go to ``slack.fallback_channel``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.settings import SlackSettings
from bot.state import SlackState
from bot.web import SlackCalls, SlackRejected
from core.config import Member

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Route:
    """Where one owner's messages go."""

    kind: str              # dm / channel / fallback
    target: str            # a user id (DMs) or a channel id or name
    owner_email: str       # lower-cased; "" for accounts without an owner
    user_id: str | None = None

    @property
    def unmapped(self) -> bool:
        return self.kind == "fallback"


class Owners:
    def __init__(self, calls: SlackCalls, state: SlackState, slack: SlackSettings,
                 team: list[Member], clock: Callable[[], datetime]) -> None:
        self.calls = calls
        self.state = state
        self.slack = slack
        self.clock = clock
        self.overrides = {m.email.lower(): m.slack_user for m in team if m.slack_user}
        self.overrides.update(slack.users)
        self.team_channel = {email.lower(): team_.channel
                             for team_ in slack.teams for email in team_.members}

    def _now(self) -> datetime:
        return self.clock()

    def user_id(self, email: str | None) -> str | None:
        """The Slack user with this email, or None when there is none (cached both ways)."""
        if not email:
            return None
        email = email.strip().lower()
        if email in self.overrides:
            return self.overrides[email]
        known, user_id, looked_up_at = self.state.cached_user(email)
        now = self._now()
        if known and (user_id is not None or looked_up_at is None
                      or now - looked_up_at < timedelta(hours=self.slack.lookup_retry_hours)):
            return user_id
        try:
            user = self.calls("users_lookupByEmail", email=email)["user"]
            user_id = user["id"]
        except SlackRejected as exc:
            if exc.error != "users_not_found":
                raise
            user_id = None
        self.state.remember_user(email, user_id, now)
        return user_id

    def route(self, email: str | None) -> Route | None:
        """Where this owner's nudges go; None when nowhere (no user and no fallback channel)."""
        owner = (email or "").strip().lower()
        user_id = self.user_id(owner)
        channel = self.team_channel.get(owner)
        if channel:
            return Route("channel", channel, owner, user_id)
        if user_id:
            return Route("dm", user_id, owner, user_id)
        if self.slack.fallback_channel:
            return Route("fallback", self.slack.fallback_channel, owner)
        return None

    def email_of(self, user_id: str) -> str | None:
        """The CRM owner a Slack user is (for /kizuna due and App Home)."""
        for email, uid in self.overrides.items():
            if uid == user_id:
                return email
        cached = self.state.email_of(user_id)
        if cached:
            return cached
        try:
            user = self.calls("users_info", user=user_id)["user"]
        except SlackRejected as exc:
            log.warning("users.info %s failed: %s", user_id, exc.error)
            return None
        email = (user.get("profile") or {}).get("email")
        if not email:
            return None
        self.state.remember_user(email, user_id, self._now())
        return email.lower()
