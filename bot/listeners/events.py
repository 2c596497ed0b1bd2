"""Events: ``app_home_opened`` publishes the CSM's book of business to their Home tab."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from slack_bolt import App

from bot.home import build_book, home_view, stamp, unknown_user_view

if TYPE_CHECKING:
    from bot.app import SlackBot


def publish_home(bot: SlackBot, user_id: str) -> dict[str, Any]:
    """Build and publish one user's Home tab; returns the view that was sent."""
    email = bot.owners.email_of(user_id)
    if email is None:
        view = unknown_user_view(bot.language)
    else:
        book = build_book(bot.kizuna, email)
        view = home_view(book, language=bot.language,
                         updated=stamp(bot.kizuna.clock(), bot.hours.tz))
    bot.calls("views_publish", user_id=user_id, view=view)
    return view


def register(app: App, bot: SlackBot) -> None:
    @app.event("app_home_opened")
    def home_opened(event: dict[str, Any]) -> None:
        if event.get("tab", "home") == "home":
            publish_home(bot, event["user"])
