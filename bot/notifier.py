"""SlackNotifier: posts each nudge once, to the right person, at a decent hour.

``Kizuna.deliver`` calls ``send`` for every pending nudge, most important first, and marks the
play's nudge step done as soon as ``send`` returns. ``send``:

1. resolves an earlier attempt first: ``sent`` → the same (channel, ts) again; ``sending`` (the
   process died between Slack accepting and the ledger commit, or Slack answered 5xx) → looks
   for the attempt's marker in the channel's recent history (``conversations.history`` with
   ``include_all_metadata``; every nudge carries ``metadata.event_payload.marker``) and only
   posts if it is not there;
2. holds nudges in quiet hours, weekends and holidays (``NudgeHeld``: they stay pending);
3. routes to the owner's DM, their team channel, or the fallback channel (the admin channel is
   told once about an owner nobody can map);
4. sends low-severity plays, and whatever exceeds the per-CSM daily cap, to the daily digest;
5. writes the attempt (``sending``) before ``chat.postMessage`` and ``sent`` right after.

Rate limits are waited out (``Retry-After``, bounded); ``invalid_blocks`` is reported to the
admin channel and a plain version is posted instead; set-up errors (``channel_not_found``…) are
reported once and the play stays pending for the next tick.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

from bot.admin import AdminChannel
from bot.blocks import NUDGE_EVENT, esc, nudge_metadata, plain_nudge
from bot.owners import Owners, Route
from bot.settings import SlackSettings, WorkingHours
from bot.state import FAILED, QUEUED, SENDING, SENT, DeliveryRow, SlackState
from bot.text import tr
from bot.web import SETUP_ERRORS, SlackCalls, SlackRejected, SlackUnsure
from core.app import Nudge, NudgeHeld
from core.domain import Severity
from core.errors import DeliveryError

log = logging.getLogger(__name__)
DIGEST = "digest"  # the channel recorded in the ledger for nudges that went to the digest
_HISTORY_PAGES = 10


class SlackNotifier:
    def __init__(self, calls: SlackCalls, state: SlackState, owners: Owners,
                 admin: AdminChannel, slack: SlackSettings, hours: WorkingHours, *,
                 language: str, clock: Callable[[], datetime]) -> None:
        self.calls = calls
        self.state = state
        self.owners = owners
        self.admin = admin
        self.slack = slack
        self.hours = hours
        self.language = language
        self.clock = clock

    # -- Notifier protocol -------------------------------------------------------------------

    def send(self, nudge: Nudge) -> tuple[str, str | None]:
        play = nudge.play
        now = self.clock()
        earlier = self.state.current_nudge(play.key)
        if earlier is not None:
            if earlier.state == SENT:
                return earlier.channel or "", earlier.ts
            if earlier.state == QUEUED or earlier.route == DIGEST:
                return DIGEST, None
            if earlier.state == SENDING:
                found = self.find_posted(earlier)
                if found is not None:
                    self.state.mark(earlier.id, SENT, channel=found[0], ts=found[1])
                    return found
                self.state.mark(earlier.id, FAILED, error="interrupted; not found in Slack")
        if self.hours.quiet(now):
            raise NudgeHeld(f"quiet hours until {self.hours.next_opening(now):%Y-%m-%d %H:%M}")
        route = self.route(nudge.recipient)
        day = now.astimezone(self.hours.tz).date()
        marker = earlier.marker if earlier is not None else self.state.nudge_marker(play)
        if self._to_digest(play.severity, route.owner_email, day):
            self.state.begin(marker, kind="nudge", route=DIGEST, target=route.target,
                             owner_email=route.owner_email, day=day, play_key=play.key,
                             state=QUEUED)
            return DIGEST, None
        row = self.state.begin(marker, kind="nudge", route=route.kind, target=route.target,
                               owner_email=route.owner_email, day=day, play_key=play.key)
        return self._post(row, route, nudge.payload, play.ref)

    def alert(self, key: str, text: str) -> None:
        """Kizuna's own alerts (e.g. the data guard holding playbooks): the admin hears once."""
        self.admin.notice(key, f":rotating_light: {esc(text)}")

    # -- steps -----------------------------------------------------------------------------------

    def route(self, recipient: str | None) -> Route:
        """Where an owner's messages go; the admin channel hears once about unmapped owners."""
        route = self.owners.route(recipient)
        owner = (recipient or "").lower() or "(no owner)"
        if route is None:
            self.admin.notice(f"unmapped:{owner}",
                              tr("admin_unmapped_nowhere", self.language, email=esc(owner)))
            raise DeliveryError(f"no Slack user for {owner} and no slack.fallback_channel")
        if route.unmapped:
            self.admin.notice(f"unmapped:{owner}", tr("admin_unmapped", self.language,
                                                      email=esc(owner),
                                                      channel=esc(route.target)))
        return route

    def _to_digest(self, severity: Severity, owner_email: str, day: date) -> bool:
        if severity == Severity.LOW and self.slack.low_severity_to_digest:
            return True
        cap = self.slack.daily_cap
        return cap is not None and self.state.sent_today(owner_email, day) >= cap

    def _post(self, row: DeliveryRow, route: Route, payload: dict[str, Any],
              ref: str) -> tuple[str, str]:
        message = {"channel": route.target, "text": payload["text"], "blocks": payload["blocks"],
                   "metadata": nudge_metadata(ref, row.marker), "unfurl_links": False,
                   "unfurl_media": False}
        try:
            response = self.calls("chat_postMessage", **message)
        except SlackRejected as exc:
            if exc.error not in ("invalid_blocks", "invalid_blocks_format", "msg_too_long"):
                self._rejected(row, route, exc, retry=True)
                raise
            self._rejected(row, route, exc, retry=False)
            try:
                response = self.calls("chat_postMessage", **{**message, **plain_nudge(payload)})
            except SlackRejected as again:
                self.state.mark(row.id, FAILED, error=again.error)
                raise
        except SlackUnsure:
            raise  # the row stays "sending": the next attempt looks before posting
        except DeliveryError as exc:
            self.state.mark(row.id, FAILED, error=str(exc))
            raise
        channel, ts = response["channel"], response["ts"]
        self.state.mark(row.id, SENT, channel=channel, ts=ts)
        return channel, ts

    def _rejected(self, row: DeliveryRow, route: Route, exc: SlackRejected, *,
                  retry: bool) -> None:
        what = tr("admin_will_retry" if retry else "admin_fallback_sent", self.language)
        key = (f"rejected:{exc.error}:{route.target}" if exc.error in SETUP_ERRORS
               else f"rejected:{exc.error}:{row.marker}")
        self.admin.notice(key, tr("admin_rejected", self.language, error=esc(exc.error),
                                  target=esc(route.target), what=what) +
                          (f"\n`{esc(str(exc.detail))[:1500]}`" if exc.detail else ""))
        if retry:
            self.state.mark(row.id, FAILED, error=exc.error)

    # -- finding our own earlier post ----------------------------------------------------------

    def find_posted(self, row: DeliveryRow) -> tuple[str, str] | None:
        """Look for the message carrying ``row.marker`` posted since the attempt began."""
        channel = row.channel or self._channel_id(row.target)
        if channel is None:
            log.warning("cannot check %s for %s (a channel name never posted to); posting again",
                        row.target, row.marker)
            return None
        oldest = (row.created_at - timedelta(minutes=1)).timestamp()
        cursor: str | None = None
        for _ in range(_HISTORY_PAGES):
            try:
                page = self.calls("conversations_history", channel=channel, oldest=f"{oldest:.6f}",
                                  limit=100, include_all_metadata=True, cursor=cursor)
            except SlackRejected as exc:
                raise DeliveryError(f"cannot check {channel} for {row.marker}: {exc.error}") \
                    from exc
            for message in page.get("messages", []):
                meta = message.get("metadata") or {}
                payload = meta.get("event_payload") or {}
                if meta.get("event_type") in (NUDGE_EVENT, "kizuna_digest") and \
                        payload.get("marker") == row.marker:
                    return channel, message["ts"]
            cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
            if not page.get("has_more") or not cursor:
                return None
        raise DeliveryError(f"{row.marker}: too much history to check in {channel}")

    def _channel_id(self, target: str | None) -> str | None:
        if not target:
            return None
        known = self.state.channel_of(target)
        if known:
            return known
        if target[:1] in ("U", "W"):
            opened = self.calls("conversations_open", users=target)
            return opened["channel"]["id"]
        if target[:1] in ("C", "G", "D") and not target.startswith("#"):
            return target
        return None
