"""One error handler for every listener.

Kizuna's own errors (a play or account not found, the CRM refusing a task, Slack refusing a
call) become a short message only the clicker sees; anything else is logged with a reference
id, and the person gets that id to hand to their admin — never a stack trace or a silence.
"""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING, Any

from slack_bolt import App, BoltResponse

from bot.blocks import esc
from bot.text import tr
from core.errors import DeliveryError, KizunaError, NotFoundError

if TYPE_CHECKING:
    from bot.app import SlackBot

log = logging.getLogger(__name__)


def user_message(error: Exception, language: str) -> str:
    """What the person sees for ``error`` (and the log gets the details of surprises)."""
    if isinstance(error, NotFoundError):
        return tr("not_found", language, message=esc(str(error)))
    if isinstance(error, KizunaError):
        return tr("error_known", language, message=esc(str(error)))
    ref = uuid.uuid4().hex[:8]
    log.error("unexpected error (ref %s)", ref, exc_info=error)
    return tr("error_unexpected", language, ref=ref)


def _user_of(body: dict[str, Any]) -> str | None:
    user = body.get("user")
    if isinstance(user, dict):
        return user.get("id")
    return body.get("user_id") or (body.get("event") or {}).get("user")


def register(app: App, bot: SlackBot) -> None:
    @app.error
    def on_error(error: Exception, body: dict[str, Any],
                 response: BoltResponse | None) -> BoltResponse | None:
        text = user_message(error, bot.language)
        user = _user_of(body)
        channel = (body.get("channel") or {}).get("id") or body.get("channel_id")
        if user is not None:
            try:
                bot.tell(user, text, response_url=body.get("response_url"), channel=channel)
            except DeliveryError as exc:
                log.warning("could not tell %s about an error: %s", user, exc)
        # The person has been told; Slack itself gets a plain 200 rather than "dispatch_failed".
        return BoltResponse(status=200, body="") if response is not None else None
