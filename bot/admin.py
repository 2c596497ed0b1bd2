"""Telling the admin channel about problems people cannot fix from their DMs — once each.

Each notice has a key (e.g. ``unmapped:owner@example.com``); the store remembers which keys were
said, so a restart or a second process does not repeat them. Without ``slack.admin_channel``
the notice goes to the log only (and is still remembered).
"""

from __future__ import annotations

import logging

from bot.blocks import section
from bot.state import SlackState
from bot.web import SlackCalls
from core.errors import DeliveryError

log = logging.getLogger(__name__)


class AdminChannel:
    def __init__(self, calls: SlackCalls, state: SlackState, channel: str | None) -> None:
        self.calls = calls
        self.state = state
        self.channel = channel

    def notice(self, key: str, text: str) -> bool:
        """Post ``text`` (mrkdwn, already escaped) unless ``key`` was said before."""
        if self.state.noticed(key):
            return False
        log.warning("admin notice %s: %s", key, text)
        if self.channel:
            try:
                self.calls("chat_postMessage", channel=self.channel, text=text,
                           blocks=[section(text)], unfurl_links=False)
            except DeliveryError as exc:
                log.error("could not tell the admin channel %s: %s", self.channel, exc)
                return False  # not remembered: said at the next occasion instead
        return self.state.remember_notice(key, text, self.channel)
