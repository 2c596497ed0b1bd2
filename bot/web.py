"""Calling the Slack Web API from the notifier and the digests, with the shared retry policy.

Slack answers in three ways that matter for exactly-once posting:

* HTTP 429 ``ratelimited`` with ``Retry-After``: nothing was posted; wait and try again
  (``connectors.retry.RetryPolicy``, bounded) — then ``SlackRateLimited`` if still refused.
* HTTP 200 ``ok: false`` (``invalid_blocks``, ``channel_not_found``…): nothing was posted and
  repeating will not help — ``SlackRejected`` with the error code.
* A 5xx or a broken connection: Slack may or may not have posted — ``SlackUnsure``; the caller
  keeps its ``sending`` mark and looks for its marker before any new attempt.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web import SlackResponse

from connectors.retry import RetryPolicy
from core.errors import DeliveryError, RetriableAPIError

log = logging.getLogger(__name__)

#: Errors that depend on workspace set-up (a channel, the app's membership, its scopes).
SETUP_ERRORS = frozenset({
    "channel_not_found", "not_in_channel", "is_archived", "missing_scope", "invalid_auth",
    "account_inactive", "token_revoked", "not_authed", "restricted_action", "user_not_found",
    "cannot_dm_bot", "user_disabled",
})


class SlackRejected(DeliveryError):
    """Slack refused the call (``ok: false``); nothing was posted."""

    def __init__(self, error: str, detail: Any = None) -> None:
        self.error = error
        self.detail = detail
        super().__init__(f"Slack refused: {error}")


class SlackRateLimited(DeliveryError):
    """Still rate limited after the retry policy's waits; nothing was posted."""


class SlackUnsure(DeliveryError):
    """The call may or may not have taken effect (server error, broken connection)."""


def web_client(token: str, api_url: str | None = None) -> WebClient:
    """A client without slack_sdk's own retries: ours decide what is safe to repeat."""
    kwargs: dict[str, Any] = {"token": token, "retry_handlers": []}
    if api_url:
        kwargs["base_url"] = api_url if api_url.endswith("/") else api_url + "/"
    return WebClient(**kwargs)


def retry_after(response: Any) -> float | None:
    headers = getattr(response, "headers", None) or {}
    for name, value in headers.items():
        if name.lower() == "retry-after":
            value = value[0] if isinstance(value, list | tuple) else value
            try:
                return float(value)
            except (TypeError, ValueError):
                return None
    return None


class SlackCalls:
    """Runs Web API methods under the retry policy and sorts failures into the three kinds."""

    def __init__(self, client: WebClient, policy: RetryPolicy | None = None) -> None:
        self.client = client
        self.policy = policy or RetryPolicy(attempts=6, max_total_wait=90, max_single_wait=60)

    def __call__(self, method: str, **kwargs: Any) -> SlackResponse:
        fn: Callable[..., SlackResponse] = getattr(self.client, method)

        def once() -> SlackResponse:
            try:
                return fn(**kwargs)
            except SlackApiError as exc:
                status = exc.response.status_code
                if status == 429:
                    raise RetriableAPIError("ratelimited", connector="slack",
                                            retry_after=retry_after(exc.response)) from exc
                if status >= 500:
                    raise SlackUnsure(f"Slack answered HTTP {status} to {method}") from exc
                error = str(exc.response.get("error") or "unknown_error")
                detail = exc.response.get("response_metadata") or exc.response.get("errors")
                raise SlackRejected(error, detail) from exc
            except (SlackClientError, OSError) as exc:
                raise SlackUnsure(f"{method}: {exc}") from exc

        try:
            return self.policy.run(once)
        except RetriableAPIError as exc:
            raise SlackRateLimited(f"{method}: still rate limited after retrying") from exc
