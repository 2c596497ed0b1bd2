"""A fake Slack Web API served over real HTTP, for testing the bot end to end.

Why a real server: slack_sdk/slack-bolt talk HTTP (urllib, aiohttp) and their
encoding choices (JSON vs form vs multipart, Authorization header, retries on
429) are part of what we want to exercise. Patching the client would hide them.

The fake follows Slack's *documented* Web API contract rather than mirroring
what one client happens to send: tokens from the ``Authorization: Bearer``
header or a form/multipart ``token`` field (never from a JSON body, and not
from the query string, which Slack refuses for apps created after 2021-02-24),
HTTP 200 with ``{"ok": false, "error": ...}`` for API errors, HTTP 429 +
``Retry-After`` for rate limits, Block Kit limits enforced, ``x-oauth-scopes``
response headers and ``missing_scope`` errors.

Usage::

    with FakeSlack() as fake:
        uid = fake.add_user("hanako@example.com", name="山田 花子")
        client = WebClient(token=fake.bot_token, base_url=fake.api_url)
        client.chat_postMessage(channel=uid, text="こんにちは")
        assert fake.messages(uid)[0]["text"] == "こんにちは"
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import math
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["DEFAULT_BOT_SCOPES", "FakeSlack", "RecordedCall", "validate_blocks"]

# Scopes a typical Kizuna install grants; `missing_scope` fires for anything else.
DEFAULT_BOT_SCOPES: tuple[str, ...] = (
    "app_mentions:read",
    "channels:history",
    "channels:read",
    "chat:write",
    "chat:write.public",
    "commands",
    "groups:read",
    "im:history",
    "im:read",
    "im:write",
    "mpim:write",
    "users:read",
    "users:read.email",
)

# Documented limits (docs.slack.dev: Block Kit reference, chat.postMessage, views).
MESSAGE_MAX_BLOCKS = 50
SURFACE_MAX_BLOCKS = 100  # modals and Home tabs
MESSAGE_TEXT_MAX = 40_000
MAX_ATTACHMENTS = 100
MARKDOWN_BLOCKS_TOTAL_MAX = 12_000
TRIGGER_TTL_SECONDS = 3.0
VIEW_STACK_LIMIT = 3
RESPONSE_URL_MAX_USES = 5
RESPONSE_URL_TTL_SECONDS = 30 * 60

_RETIRED_FAMILIES = frozenset({"channels", "groups", "im", "mpim"})
_TRIGGER_RE = re.compile(r"^\d+\.\d+\.[0-9a-fA-F]+$")
_B36 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_TZ_LABELS = {"Asia/Tokyo": "Japan Standard Time", "UTC": "Coordinated Universal Time"}


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class RecordedCall:
    """One Web API request as the fake saw it (header keys are lower-cased)."""

    method: str
    args: dict[str, Any]
    headers: dict[str, str]
    http_method: str
    content_type: str
    token: str | None
    status: int
    response: dict[str, Any] | None
    injected: str | None = None

    @property
    def ok(self) -> bool:
        """True when Slack would have reported success."""
        return self.status == 200 and bool(self.response and self.response.get("ok"))


class _ApiError(Exception):
    """An `ok: false` answer; Slack sends these with HTTP 200."""

    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.body: dict[str, Any] = {"ok": False, "error": error, **extra}


class _HttpError(Exception):
    """A non-200 answer (429 rate limit, injected 5xx)."""

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str]) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers


def _invalid_arguments(*messages: str) -> _ApiError:
    return _ApiError(
        "invalid_arguments", response_metadata={"messages": [f"[ERROR] {m}" for m in messages]}
    )


@dataclass
class _Injection:
    kind: str  # "ratelimit" | "error" | "status"
    remaining: int
    status: int = 200
    body: dict[str, Any] | None = None
    headers: dict[str, str] | None = None


# --------------------------------------------------------------------------- Block Kit

_TEXT_TYPES = ("plain_text", "mrkdwn")
_SELECTS_WITH_OPTIONS = frozenset({"static_select", "multi_static_select"})
_KNOWN_ELEMENTS = frozenset(
    {
        "button", "checkboxes", "channels_select", "conversations_select", "datepicker",
        "datetimepicker", "email_text_input", "external_select", "feedback_buttons",
        "file_input", "icon_button", "image", "multi_channels_select",
        "multi_conversations_select", "multi_external_select", "multi_static_select",
        "multi_users_select", "number_input", "overflow", "plain_text_input",
        "radio_buttons", "rich_text_input", "static_select", "timepicker",
        "url_text_input", "users_select", "workflow_button",
    }
)  # fmt: skip
# Validated loosely: accepted as long as `type` and `block_id` are sane.
_LENIENT_BLOCKS = frozenset({"call", "context_actions", "plan", "table", "task_card"})


class _BlockChecker:
    """Collects Slack-style problems: ``"<message> [json-pointer:/blocks/0/text]"``."""

    def __init__(self, *, strict_action_ids: bool) -> None:
        self.problems: list[str] = []
        self.strict_action_ids = strict_action_ids
        self._block_ids: set[str] = set()
        self._markdown_total = 0

    def add(self, message: str, pointer: str) -> None:
        self.problems.append(f"{message} [json-pointer:{pointer}]")

    # -- primitives
    def string(self, value: Any, ptr: str, limit: int, *, required: bool = False) -> None:
        if value is None:
            if required:
                parent, _, name = ptr.rpartition("/")
                self.add(f"missing required field: {name}", parent or "/")
            return
        if not isinstance(value, str):
            self.add("expected a string", ptr)
        elif len(value) > limit:
            self.add(f"must be less than {limit + 1} characters", ptr)

    def text(
        self, obj: Any, ptr: str, limit: int, *, plain_only: bool = False, required: bool = True
    ) -> None:
        if obj is None:
            if required:
                parent, _, name = ptr.rpartition("/")
                self.add(f"missing required field: {name}", parent or "/")
            return
        if not isinstance(obj, dict):
            self.add("expected a text object", ptr)
            return
        allowed = ("plain_text",) if plain_only else _TEXT_TYPES
        if obj.get("type") not in allowed:
            self.add(f"must be one of: {', '.join(allowed)}", f"{ptr}/type")
        text = obj.get("text")
        if not isinstance(text, str):
            self.add("missing required field: text", ptr)
        elif not text:
            self.add("must be more than 0 characters", f"{ptr}/text")
        elif len(text) > limit:
            self.add(f"must be less than {limit + 1} characters", f"{ptr}/text")

    def array(self, value: Any, ptr: str, limit: int, *, minimum: int = 0) -> list[Any]:
        if not isinstance(value, list):
            self.add("expected an array", ptr)
            return []
        if len(value) > limit:
            self.add(f"no more than {limit} items allowed", ptr)
        elif len(value) < minimum:
            self.add(f"must have at least {minimum} items", ptr)
        return value

    # -- composition objects
    def confirm(self, obj: Any, ptr: str) -> None:
        if obj is None:
            return
        if not isinstance(obj, dict):
            self.add("expected an object", ptr)
            return
        self.text(obj.get("title"), f"{ptr}/title", 100, plain_only=True)
        self.text(obj.get("text"), f"{ptr}/text", 300)
        self.text(obj.get("confirm"), f"{ptr}/confirm", 30, plain_only=True)
        self.text(obj.get("deny"), f"{ptr}/deny", 30, plain_only=True)

    def option(self, obj: Any, ptr: str, *, plain_only: bool) -> None:
        if not isinstance(obj, dict):
            self.add("expected an option object", ptr)
            return
        self.text(obj.get("text"), f"{ptr}/text", 75, plain_only=plain_only)
        self.string(obj.get("value"), f"{ptr}/value", 150, required=True)
        self.text(obj.get("description"), f"{ptr}/description", 75, required=False)
        self.string(obj.get("url"), f"{ptr}/url", 3000)

    # -- elements
    def element(self, el: Any, ptr: str, action_ids: set[str]) -> None:
        if not isinstance(el, dict):
            self.add("expected an element object", ptr)
            return
        etype = el.get("type")
        if not isinstance(etype, str) or not etype:
            self.add("missing required field: type", ptr)
            return
        if etype not in _KNOWN_ELEMENTS:
            self.add(f"unsupported type: {etype}", f"{ptr}/type")
            return
        if etype == "image":
            self.image_fields(el, ptr)
            return
        action_id = el.get("action_id")
        if action_id is None:
            if self.strict_action_ids:
                self.add("missing required field: action_id", ptr)
        elif not isinstance(action_id, str):
            self.add("expected a string", f"{ptr}/action_id")
        elif len(action_id) > 255:
            self.add("must be less than 256 characters", f"{ptr}/action_id")
        elif action_id in action_ids:
            self.add(f"duplicate action_id: {action_id}", f"{ptr}/action_id")
        else:
            action_ids.add(action_id)
        self.text(el.get("placeholder"), f"{ptr}/placeholder", 150, plain_only=True, required=False)
        self.confirm(el.get("confirm"), f"{ptr}/confirm")
        if etype == "button":
            self.text(el.get("text"), f"{ptr}/text", 75, plain_only=True)
            self.string(el.get("value"), f"{ptr}/value", 2000)
            self.string(el.get("url"), f"{ptr}/url", 3000)
            self.string(el.get("accessibility_label"), f"{ptr}/accessibility_label", 75)
            if "style" in el and el["style"] not in ("primary", "danger"):
                self.add("must be one of: primary, danger", f"{ptr}/style")
        elif etype in _SELECTS_WITH_OPTIONS:
            if "options" not in el and "option_groups" not in el:
                self.add("missing required field: options or option_groups", ptr)
            if "options" in el:
                for i, opt in enumerate(self.array(el["options"], f"{ptr}/options", 100)):
                    self.option(opt, f"{ptr}/options/{i}", plain_only=True)
            if "option_groups" in el:
                groups = self.array(el["option_groups"], f"{ptr}/option_groups", 100)
                for g, group in enumerate(groups):
                    gptr = f"{ptr}/option_groups/{g}"
                    if not isinstance(group, dict):
                        self.add("expected an object", gptr)
                        continue
                    self.text(group.get("label"), f"{gptr}/label", 75, plain_only=True)
                    group_opts = self.array(group.get("options"), f"{gptr}/options", 100)
                    for i, opt in enumerate(group_opts):
                        self.option(opt, f"{gptr}/options/{i}", plain_only=True)
        elif etype == "overflow":
            opts = self.array(el.get("options"), f"{ptr}/options", 5, minimum=1)
            for i, opt in enumerate(opts):
                self.option(opt, f"{ptr}/options/{i}", plain_only=True)
        elif etype in ("checkboxes", "radio_buttons"):
            opts = self.array(el.get("options"), f"{ptr}/options", 10, minimum=1)
            for i, opt in enumerate(opts):
                self.option(opt, f"{ptr}/options/{i}", plain_only=False)
        elif etype == "plain_text_input":
            self.string(el.get("initial_value"), f"{ptr}/initial_value", 3000)

    def image_fields(self, obj: dict[str, Any], ptr: str) -> None:
        if "image_url" not in obj and "slack_file" not in obj:
            self.add("missing required field: image_url or slack_file", ptr)
        self.string(obj.get("image_url"), f"{ptr}/image_url", 3000)
        self.string(obj.get("alt_text"), f"{ptr}/alt_text", 2000, required=True)

    # -- blocks
    def blocks(self, blocks: list[Any], ptr: str, max_blocks: int) -> None:
        if len(blocks) > max_blocks:
            self.add(f"no more than {max_blocks} items allowed", ptr)
        for i, block in enumerate(blocks):
            self.block(block, f"{ptr}/{i}")

    def block(self, b: Any, ptr: str) -> None:
        if not isinstance(b, dict):
            self.add("expected a block object", ptr)
            return
        btype = b.get("type")
        if not isinstance(btype, str) or not btype:
            self.add("missing required field: type", ptr)
            return
        block_id = b.get("block_id")
        if block_id is not None:
            if not isinstance(block_id, str):
                self.add("expected a string", f"{ptr}/block_id")
            elif len(block_id) > 255:
                self.add("must be less than 256 characters", f"{ptr}/block_id")
            elif block_id in self._block_ids:
                self.add(f"duplicate block_id: {block_id}", f"{ptr}/block_id")
            else:
                self._block_ids.add(block_id)
        action_ids: set[str] = set()
        if btype == "section":
            if "text" not in b and "fields" not in b:
                self.add("missing required field: text or fields", ptr)
            self.text(b.get("text"), f"{ptr}/text", 3000, required=False)
            if "fields" in b:
                fields = self.array(b["fields"], f"{ptr}/fields", 10)
                for i, f in enumerate(fields):
                    self.text(f, f"{ptr}/fields/{i}", 2000)
            if b.get("accessory") is not None:
                self.element(b["accessory"], f"{ptr}/accessory", action_ids)
        elif btype == "header":
            self.text(b.get("text"), f"{ptr}/text", 150, plain_only=True)
        elif btype == "actions":
            for i, el in enumerate(self.array(b.get("elements"), f"{ptr}/elements", 25, minimum=1)):
                self.element(el, f"{ptr}/elements/{i}", action_ids)
        elif btype == "context":
            for i, el in enumerate(self.array(b.get("elements"), f"{ptr}/elements", 10, minimum=1)):
                eptr = f"{ptr}/elements/{i}"
                if isinstance(el, dict) and el.get("type") in _TEXT_TYPES:
                    self.text(el, eptr, 3000)
                elif isinstance(el, dict) and el.get("type") == "image":
                    self.image_fields(el, eptr)
                else:
                    self.add("must be one of: image, plain_text, mrkdwn", eptr)
        elif btype == "divider":
            pass
        elif btype == "image":
            self.image_fields(b, ptr)
            self.text(b.get("title"), f"{ptr}/title", 2000, plain_only=True, required=False)
        elif btype == "input":
            self.text(b.get("label"), f"{ptr}/label", 2000, plain_only=True)
            self.text(b.get("hint"), f"{ptr}/hint", 2000, plain_only=True, required=False)
            if b.get("element") is None:
                self.add("missing required field: element", ptr)
            else:
                self.element(b["element"], f"{ptr}/element", action_ids)
        elif btype == "markdown":
            text = b.get("text")
            if not isinstance(text, str) or not text:
                self.add("missing required field: text", ptr)
            else:
                self._markdown_total += len(text)
                if self._markdown_total > MARKDOWN_BLOCKS_TOTAL_MAX:
                    self.add(
                        f"cumulative markdown text must be less than "
                        f"{MARKDOWN_BLOCKS_TOTAL_MAX + 1} characters",
                        f"{ptr}/text",
                    )
        elif btype == "rich_text":
            if not isinstance(b.get("elements"), list):
                self.add("missing required field: elements", ptr)
        elif btype == "file":
            self.string(b.get("external_id"), f"{ptr}/external_id", 255, required=True)
            self.string(b.get("source"), f"{ptr}/source", 255, required=True)
        elif btype == "video":
            self.string(b.get("alt_text"), f"{ptr}/alt_text", 2000, required=True)
            self.text(b.get("title"), f"{ptr}/title", 200, plain_only=True)
            self.string(b.get("thumbnail_url"), f"{ptr}/thumbnail_url", 3000, required=True)
            self.string(b.get("video_url"), f"{ptr}/video_url", 3000, required=True)
        elif btype not in _LENIENT_BLOCKS:
            self.add(f"unsupported type: {btype}", f"{ptr}/type")


def validate_blocks(
    blocks: Any,
    *,
    max_blocks: int = MESSAGE_MAX_BLOCKS,
    pointer: str = "/blocks",
    strict_action_ids: bool = False,
) -> list[str]:
    """Return Slack-style problems for a blocks array; empty means Slack would accept it.

    Exposed so product code can pre-flight payloads with the very rules the fake enforces.
    """
    checker = _BlockChecker(strict_action_ids=strict_action_ids)
    if not isinstance(blocks, list):
        checker.add("expected an array", pointer)
    else:
        checker.blocks(blocks, pointer, max_blocks)
    return checker.problems


# --------------------------------------------------------------------------- helpers


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes")
    return bool(value)


def _parse_content_type(value: str) -> tuple[str, dict[str, str]]:
    mime, _, rest = value.partition(";")
    params: dict[str, str] = {}
    for part in rest.split(";"):
        key, sep, val = part.strip().partition("=")
        if sep:
            params[key.strip().lower()] = val.strip().strip('"')
    return mime.strip().lower(), params


def _parse_multipart(body: bytes, content_type: str) -> dict[str, Any]:
    head = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1")
    message = BytesParser(policy=HTTP).parsebytes(head + body)
    out: dict[str, Any] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name:
            continue
        payload = part.get_payload(decode=True) or b""
        if part.get_filename():
            out[str(name)] = payload
        else:
            out[str(name)] = payload.decode(part.get_content_charset() or "utf-8")
    return out


# --------------------------------------------------------------------------- HTTP glue


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, fake: FakeSlack) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fake = fake


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Silence per-request logging; tests read `calls` instead."""

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _serve(self) -> None:
        body = self._read_body()
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            status, out_headers, payload = self.server.fake._handle_http(
                self.command, self.path, headers, body
            )
        except Exception as exc:
            # A bug in the fake must fail loudly, not look like a flaky connection
            # (WebClient's default ConnectionErrorRetryHandler would retry that).
            status, out_headers = 500, {"Content-Type": "application/json; charset=utf-8"}
            detail = {"ok": False, "error": "fake_slack_bug", "detail": repr(exc)}
            payload = json.dumps(detail).encode("utf-8")
        self.send_response(status)
        for key, value in out_headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = _serve
    do_POST = _serve


@dataclass(frozen=True)
class _Method:
    handler: str
    accepts_json: bool
    scope: str | None


# Content types and scopes per the method reference pages on docs.slack.dev.
_METHODS: dict[str, _Method] = {
    "auth.test": _Method("_auth_test", False, None),
    "chat.postMessage": _Method("_chat_post_message", True, "chat:write"),
    "chat.update": _Method("_chat_update", True, "chat:write"),
    "chat.postEphemeral": _Method("_chat_post_ephemeral", True, "chat:write"),
    "chat.getPermalink": _Method("_chat_get_permalink", False, None),
    "conversations.open": _Method("_conversations_open", True, "im:write"),
    "conversations.history": _Method("_conversations_history", False, None),
    "users.lookupByEmail": _Method("_users_lookup_by_email", False, "users:read.email"),
    "users.info": _Method("_users_info", False, "users:read"),
    "views.open": _Method("_views_open", True, None),
    "views.update": _Method("_views_update", True, None),
    "views.push": _Method("_views_push", True, None),
    "views.publish": _Method("_views_publish", True, None),
}

_JSON_ENCODED_ARGS = ("blocks", "attachments", "view", "metadata")


# --------------------------------------------------------------------------- the fake


class FakeSlack:
    """In-process Slack Web API + response_url receiver on 127.0.0.1:<ephemeral>.

    Starts serving on construction; use as a context manager (or call `close()`).
    All state is guarded by one lock so the server threads and the test thread
    can inspect/mutate it safely.
    """

    def __init__(
        self,
        *,
        bot_token: str = "xoxb-valid",
        team_name: str = "Kizuna Test",
        team_domain: str = "kizuna-test",
        bot_name: str = "kizuna",
        scopes: Iterable[str] = DEFAULT_BOT_SCOPES,
        post_message_rate_limit: int | None = None,
        clock: Callable[[], float] = time.time,
        strict_triggers: bool = False,
        strict_action_ids: bool = False,
        allow_query_token: bool = False,
    ) -> None:
        """Create and start the fake.

        post_message_rate_limit: N chat.postMessage per second per channel (None = off),
            mirroring Slack's documented "1 per second per channel" special tier.
        clock: seconds since the epoch; drives `ts` values, rate windows and trigger
            expiry, so tests can advance time without sleeping.
        strict_triggers: reject trigger_ids not issued by `new_trigger_id()`.
        strict_action_ids: reject interactive elements without `action_id` (Slack
            itself auto-generates one; strict mode catches handlers that can't route).
        allow_query_token: accept `?token=` (only apps created before 2021-02-24 may).
        """
        self._lock = threading.RLock()
        self._clock = clock
        self.bot_token = bot_token
        self.team_name = team_name
        self.team_domain = team_domain
        self.bot_name = bot_name
        self.scopes = tuple(scopes)
        self.post_message_rate_limit = post_message_rate_limit
        self.strict_triggers = strict_triggers
        self.strict_action_ids = strict_action_ids
        self.allow_query_token = allow_query_token

        self._id_counter = 0
        self._last_ts_micros = 0
        self._calls: list[RecordedCall] = []
        self._injections: dict[str, deque[_Injection]] = {}
        self._post_windows: dict[str, deque[float]] = {}

        self._users: dict[str, dict[str, Any]] = {}
        self._email_index: dict[str, str] = {}
        self._channels: dict[str, dict[str, Any]] = {}
        self._name_index: dict[str, str] = {}
        self._dm_by_user: dict[str, str] = {}
        self._mpim_by_users: dict[tuple[str, ...], str] = {}
        self._messages: dict[str, list[dict[str, Any]]] = {}
        self._ephemeral: list[dict[str, Any]] = []

        self._views: dict[str, dict[str, Any]] = {}
        self._view_owner: dict[str, str | None] = {}
        self._view_order: list[str] = []
        self._home_by_user: dict[str, str] = {}
        self._stacks: dict[str | None, list[str]] = {}
        self._triggers: dict[str, tuple[str | None, float]] = {}
        self._used_triggers: set[str] = set()

        self._response_urls: dict[str, dict[str, Any]] = {}

        self.team_id = self._new_id("T")
        self.app_id = self._new_id("A")
        self.bot_id = self._new_id("B")
        self.bot_user_id = self._new_id("U")
        now = int(self._clock())
        self._users[self.bot_user_id] = {
            "id": self.bot_user_id,
            "team_id": self.team_id,
            "name": bot_name,
            "deleted": False,
            "real_name": bot_name,
            "tz": "America/Los_Angeles",
            "tz_label": "Pacific Standard Time",
            "tz_offset": -28800,
            "profile": {
                "real_name": bot_name,
                "display_name": "",
                "bot_id": self.bot_id,
                "api_app_id": self.app_id,
                "always_active": False,
                "team": self.team_id,
            },
            "is_admin": False,
            "is_owner": False,
            "is_bot": True,
            "is_app_user": False,
            "updated": now,
        }

        self._server = _Server(self)
        self.port: int = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.api_url = f"{self.url}/api/"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.01},  # bounds close() latency
            name=f"FakeSlack:{self.port}",
            daemon=True,
        )
        self._thread.start()
        self._closed = False

    # ----------------------------------------------------------------- lifecycle
    def __enter__(self) -> FakeSlack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop serving and release the port; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # ----------------------------------------------------------------- ids & time
    def _new_id(self, prefix: str, width: int = 8) -> str:
        """Deterministic, Slack-looking ids (e.g. U3KX9ZQ0A) that never collide."""
        while True:
            self._id_counter += 1
            n = (self._id_counter * 2654435761 + 7_777_777) % (36**width)
            digits = []
            for _ in range(width):
                n, r = divmod(n, 36)
                digits.append(_B36[r])
            candidate = prefix + "".join(reversed(digits))
            if candidate not in self._users and candidate not in self._channels:
                return candidate

    def _next_ts(self) -> str:
        micros = int(self._clock() * 1_000_000)
        if micros <= self._last_ts_micros:
            micros = self._last_ts_micros + 1
        self._last_ts_micros = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    # ----------------------------------------------------------------- workspace setup
    def add_user(
        self,
        email: str,
        *,
        user_id: str | None = None,
        name: str | None = None,
        tz: str = "Asia/Tokyo",
    ) -> str:
        """Add a human member; `name` is the real name (handle = email local part)."""
        try:
            zone = ZoneInfo(tz)
        except ZoneInfoNotFoundError as exc:
            raise ValueError(f"unknown time zone {tz!r}") from exc
        with self._lock:
            if email.lower() in self._email_index:
                raise ValueError(f"duplicate email {email!r}")
            uid = user_id or self._new_id("U")
            if uid in self._users:
                raise ValueError(f"duplicate user id {uid!r}")
            handle = email.split("@", 1)[0]
            real_name = name or handle.replace(".", " ").title()
            first, _, last = real_name.partition(" ")
            now = datetime.now(zone)
            offset = now.utcoffset()
            self._users[uid] = {
                "id": uid,
                "team_id": self.team_id,
                "name": handle,
                "deleted": False,
                "color": "9f69e7",
                "real_name": real_name,
                "tz": tz,
                "tz_label": _TZ_LABELS.get(tz, now.tzname() or tz),
                "tz_offset": int(offset.total_seconds()) if offset else 0,
                "profile": {
                    "title": "",
                    "phone": "",
                    "skype": "",
                    "real_name": real_name,
                    "real_name_normalized": real_name,
                    "display_name": real_name,
                    "display_name_normalized": real_name,
                    "status_text": "",
                    "status_emoji": "",
                    "avatar_hash": "g" + hashlib.md5(uid.encode()).hexdigest()[:11],
                    "email": email,
                    "first_name": first,
                    "last_name": last,
                    "image_24": f"https://secure.gravatar.com/avatar/{uid}.jpg?s=24",
                    "image_48": f"https://secure.gravatar.com/avatar/{uid}.jpg?s=48",
                    "image_72": f"https://secure.gravatar.com/avatar/{uid}.jpg?s=72",
                    "team": self.team_id,
                },
                "is_admin": False,
                "is_owner": False,
                "is_primary_owner": False,
                "is_restricted": False,
                "is_ultra_restricted": False,
                "is_bot": False,
                "is_app_user": False,
                "updated": int(self._clock()),
                "is_email_confirmed": True,
                "who_can_share_contact_card": "EVERYONE",
            }
            self._email_index[email.lower()] = uid
            return uid

    def add_channel(
        self,
        name: str,
        *,
        channel_id: str | None = None,
        is_private: bool = False,
        bot_is_member: bool = True,
        members: Iterable[str] | None = None,
        is_archived: bool = False,
    ) -> str:
        """Add a channel (leading '#' optional). `members=None` means everyone is in it."""
        clean = name.lstrip("#")
        with self._lock:
            if clean in self._name_index:
                raise ValueError(f"duplicate channel name {clean!r}")
            cid = channel_id or self._new_id("C")
            if cid in self._channels:
                raise ValueError(f"duplicate channel id {cid!r}")
            self._channels[cid] = {
                "id": cid,
                "name": clean,
                "name_normalized": clean,
                "is_channel": not is_private,
                "is_group": False,
                "is_im": False,
                "is_mpim": False,
                "is_private": is_private,
                "is_archived": is_archived,
                "is_general": False,
                "is_member": bot_is_member,
                "created": int(self._clock()),
                "creator": "",
                "_members": set(members) if members is not None else None,
            }
            self._name_index[clean] = cid
            self._messages[cid] = []
            return cid

    def add_message(
        self,
        channel: str,
        text: str,
        *,
        user: str,
        thread_ts: str | None = None,
        blocks: list[dict[str, Any]] | None = None,
    ) -> str:
        """Seed a message as if a human had posted it; returns its ts."""
        with self._lock:
            try:
                cid = self._lookup_channel(channel, allow_user=True)["id"]
            except _ApiError:
                raise KeyError(channel) from None
            msg: dict[str, Any] = {
                "type": "message",
                "user": user,
                "text": text,
                "ts": self._next_ts(),
                "team": self.team_id,
            }
            if blocks is not None:
                msg["blocks"] = copy.deepcopy(blocks)
            self._append_message(cid, msg, thread_ts)
            return str(msg["ts"])

    # ----------------------------------------------------------------- inspection
    @property
    def calls(self) -> list[RecordedCall]:
        """Snapshot of every Web API request so far (including injected answers)."""
        with self._lock:
            return list(self._calls)

    def calls_to(self, method: str) -> list[RecordedCall]:
        """Calls to one method, e.g. ``calls_to("chat.postMessage")``."""
        with self._lock:
            return [c for c in self._calls if c.method == method]

    def reset_calls(self) -> None:
        """Forget recorded calls (workspace state is kept)."""
        with self._lock:
            self._calls.clear()

    def user(self, user_id: str) -> dict[str, Any]:
        """The stored user object (copy)."""
        with self._lock:
            return copy.deepcopy(self._users[user_id])

    def _inspect_channel(self, channel: str) -> dict[str, Any]:
        """Resolve for test inspection: never opens a DM, KeyError when unknown."""
        try:
            return self._lookup_channel(channel, allow_user=True, create_dm=False)
        except _ApiError:
            raise KeyError(channel) from None

    def channel(self, channel: str) -> dict[str, Any]:
        """Channel/DM object by id, '#name', name, or user id (their DM)."""
        with self._lock:
            return self._public_channel(self._inspect_channel(channel))

    def dm_channel_id(self, user_id: str) -> str | None:
        """The bot's DM id with this user, if one has been opened."""
        with self._lock:
            return self._dm_by_user.get(user_id)

    def messages(self, channel: str) -> list[dict[str, Any]]:
        """Messages (and thread replies) in post order; accepts id, '#name' or user id."""
        with self._lock:
            if channel in self._users and channel not in self._dm_by_user:
                return []  # no DM opened yet, so nothing was posted to them
            cid = self._inspect_channel(channel)["id"]
            return copy.deepcopy(self._messages.get(cid, []))

    def ephemeral_messages(self, channel: str | None = None) -> list[dict[str, Any]]:
        """Ephemeral messages, optionally only those for one channel."""
        with self._lock:
            if channel is None:
                return copy.deepcopy(self._ephemeral)
            cid = self._inspect_channel(channel)["id"]
            return copy.deepcopy([m for m in self._ephemeral if m["channel"] == cid])

    def views(self, user_id: str | None = None) -> list[dict[str, Any]]:
        """Current views (Home tab + modals ever opened/pushed) for a user, or all."""
        with self._lock:
            ids = [v for v in self._view_order if user_id is None or self._view_owner[v] == user_id]
            return copy.deepcopy([self._views[v] for v in ids])

    def view(self, view_id: str) -> dict[str, Any]:
        """One view by id (copy)."""
        with self._lock:
            return copy.deepcopy(self._views[view_id])

    def new_trigger_id(self, user_id: str | None = None) -> str:
        """Issue a trigger_id (valid once, for 3 s of the fake clock) tied to a user."""
        with self._lock:
            self._id_counter += 1
            issued = self._clock()
            trigger = f"{int(issued)}.{self._id_counter}.{self._id_counter * 2654435761:032x}"
            self._triggers[trigger] = (user_id, issued)
            return trigger

    def new_response_url(self) -> str:
        """A response_url (as in slash commands / interactions) that records POSTs."""
        with self._lock:
            rid = self._new_id("R", width=10)
            self._response_urls[rid] = {"created": self._clock(), "responses": [], "uses": 0}
            return f"{self.url}/response/{rid}"

    def responses(self, response_url: str) -> list[dict[str, Any]]:
        """Accepted payloads POSTed to a response_url (full URL or its id)."""
        rid = response_url.rstrip("/").rsplit("/", 1)[-1]
        with self._lock:
            return copy.deepcopy(self._response_urls[rid]["responses"])

    # ----------------------------------------------------------------- fault injection
    def _inject(self, method: str, injection: _Injection) -> None:
        with self._lock:
            self._injections.setdefault(method, deque()).append(injection)

    def ratelimit(self, method: str, *, times: int = 1, retry_after: int = 1) -> None:
        """Next `times` calls to `method` ('*' = any) get HTTP 429 + Retry-After."""
        self._inject(
            method,
            _Injection(
                "ratelimit",
                times,
                status=429,
                body={"ok": False, "error": "ratelimited"},
                headers={"Retry-After": str(int(retry_after))},
            ),
        )

    def inject_error(self, method: str, error: str, *, times: int = 1, **extra: Any) -> None:
        """Next `times` calls to `method` ('*' = any) get HTTP 200 ``{"ok": false, "error"}``."""
        self._inject(
            method, _Injection("error", times, body={"ok": False, "error": error, **extra})
        )

    def inject_status(
        self, method: str, status: int, times: int = 1, *, body: dict[str, Any] | None = None
    ) -> None:
        """Next `times` calls to `method` ('*' = any) get a raw HTTP `status` (e.g. 500, 503)."""
        default_error = "service_unavailable" if status == 503 else "internal_error"
        self._inject(
            method,
            _Injection(
                "status",
                times,
                status=status,
                body=body if body is not None else {"ok": False, "error": default_error},
            ),
        )

    def clear_injections(self) -> None:
        """Drop any pending injected failures."""
        with self._lock:
            self._injections.clear()

    def _take_injection(self, method: str) -> _Injection | None:
        for key in (method, "*"):
            queue = self._injections.get(key)
            if queue:
                head = queue[0]
                head.remaining -= 1
                if head.remaining <= 0:
                    queue.popleft()
                return head
        return None

    # ----------------------------------------------------------------- HTTP entry
    def _handle_http(
        self, verb: str, raw_path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        split = urlsplit(raw_path)
        if split.path.startswith("/api/"):
            return self._handle_api(verb, split.path[5:], split.query, headers, body)
        if split.path.startswith("/response/"):
            return self._handle_response_url(verb, split.path[10:], headers, body)
        return 404, {"Content-Type": "text/plain; charset=utf-8"}, b"not_found"

    def _parse_request(
        self, query: str, headers: dict[str, str], body: bytes
    ) -> tuple[dict[str, Any], dict[str, Any], str, bool, list[str], str | None]:
        """Return (query_args, body_args, mime, is_json, warnings, parse_error)."""
        warnings: list[str] = []
        try:
            query_args = dict(parse_qsl(query, keep_blank_values=True, errors="strict"))
        except UnicodeDecodeError:
            return {}, {}, "", False, warnings, "invalid_form_data"
        mime, params = _parse_content_type(headers.get("content-type", ""))
        charset = params.get("charset", "").lower()
        if not body:
            return query_args, {}, mime, mime == "application/json", warnings, None
        if not mime:
            return query_args, {}, mime, False, warnings, "missing_post_type"
        if charset and charset not in ("utf-8", "utf8", "iso-8859-1"):
            return query_args, {}, mime, False, warnings, "invalid_charset"
        encoding = "iso-8859-1" if charset == "iso-8859-1" else "utf-8"
        if mime == "application/json":
            if not charset:
                warnings.append("missing_charset")
            try:
                parsed = json.loads(body.decode(encoding))
            except (UnicodeDecodeError, json.JSONDecodeError):
                return query_args, {}, mime, True, warnings, "invalid_json"
            if not isinstance(parsed, dict):
                return query_args, {}, mime, True, warnings, "invalid_json"
            return query_args, parsed, mime, True, warnings, None
        if mime == "application/x-www-form-urlencoded":
            if charset:
                warnings.append("superfluous_charset")
            try:
                form = dict(
                    parse_qsl(
                        body.decode("latin-1"),
                        keep_blank_values=True,
                        encoding=encoding,
                        errors="strict",
                    )
                )
            except UnicodeDecodeError:
                return query_args, {}, mime, False, warnings, "invalid_form_data"
            return query_args, form, mime, False, warnings, None
        if mime == "multipart/form-data":
            try:
                parts = _parse_multipart(body, headers["content-type"])
            except Exception:  # malformed multipart is the client's bug; report it Slack-style
                return query_args, {}, mime, False, warnings, "invalid_form_data"
            return query_args, parts, mime, False, warnings, None
        if mime == "text/plain":
            return query_args, {}, mime, False, warnings, None
        return query_args, {}, mime, False, warnings, "invalid_post_type"

    def _handle_api(
        self, verb: str, method: str, query: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        query_args, body_args, mime, is_json, warnings, parse_error = self._parse_request(
            query, headers, body
        )
        # Token sources Slack documents: Bearer header, or a form/multipart POST field.
        token: str | None = None
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            token = auth[7:].strip() or None
        if token is None and not is_json and isinstance(body_args.get("token"), str):
            token = body_args["token"]
        if token is None and self.allow_query_token:
            token = query_args.get("token")
        spec = _METHODS.get(method)
        # JSON bodies only count for methods documented to accept application/json.
        use_body = not is_json or (spec is not None and spec.accepts_json)
        args: dict[str, Any] = {**query_args, **(body_args if use_body else {})}
        args.pop("token", None)
        args = {k: v for k, v in args.items() if v is not None}
        for key in _JSON_ENCODED_ARGS:
            value = args.get(key)
            if isinstance(value, str):
                if not value.strip():
                    args.pop(key)
                    continue
                # Undecodable values stay str; the method then reports *_format errors.
                with contextlib.suppress(json.JSONDecodeError):
                    args[key] = json.loads(value)
        recorded_args = copy.deepcopy(args)

        with self._lock:
            status = 200
            extra_headers: dict[str, str] = {}
            injected: str | None = None
            injection = self._take_injection(method)
            if injection is not None:
                injected = injection.kind
                status = injection.status
                payload = copy.deepcopy(injection.body or {"ok": False, "error": "fatal_error"})
                extra_headers.update(injection.headers or {})
            else:
                try:
                    if parse_error:
                        raise _ApiError(parse_error)
                    payload = self._dispatch(method, spec, token, args, verb)
                    if warnings:
                        payload["warning"] = ",".join(warnings)
                        payload.setdefault("response_metadata", {})["warnings"] = warnings
                except _ApiError as err:
                    payload = err.body
                except _HttpError as err:
                    status, payload = err.status, err.body
                    extra_headers.update(err.headers)
            if token == self.bot_token:
                extra_headers["x-oauth-scopes"] = ",".join(self.scopes)
                extra_headers["x-accepted-oauth-scopes"] = (spec.scope or "") if spec else ""
            self._calls.append(
                RecordedCall(
                    method=method,
                    args=recorded_args,
                    headers=dict(headers),
                    http_method=verb,
                    content_type=mime,
                    token=token,
                    status=status,
                    response=copy.deepcopy(payload),
                    injected=injected,
                )
            )
        out = {"Content-Type": "application/json; charset=utf-8", **extra_headers}
        return status, out, json.dumps(payload, ensure_ascii=False).encode("utf-8")

    def _dispatch(
        self, method: str, spec: _Method | None, token: str | None, args: dict[str, Any], verb: str
    ) -> dict[str, Any]:
        if spec is None:
            if method.split(".", 1)[0] in _RETIRED_FAMILIES:
                raise _ApiError("method_deprecated")
            raise _ApiError("unknown_method", req_method=method)
        if not token:
            raise _ApiError("not_authed")
        if token != self.bot_token:
            raise _ApiError("invalid_auth")
        if spec.scope and spec.scope not in self.scopes:
            raise _ApiError("missing_scope", needed=spec.scope, provided=",".join(self.scopes))
        result: dict[str, Any] = getattr(self, spec.handler)(args)
        return {"ok": True, **result}

    # ----------------------------------------------------------------- channel resolution
    def _lookup_channel(
        self, ref: Any, *, allow_user: bool, create_dm: bool = True
    ) -> dict[str, Any]:
        if not isinstance(ref, str) or not ref:
            raise _ApiError("channel_not_found")
        if ref in self._channels:
            return self._channels[ref]
        if allow_user and ref in self._users:
            if not create_dm and ref not in self._dm_by_user:
                raise _ApiError("channel_not_found")
            return self._open_dm(ref)[0]
        cid = self._name_index.get(ref.lstrip("#"))
        if cid is None:
            raise _ApiError("channel_not_found")
        return self._channels[cid]

    def _resolve_post_target(self, ref: Any) -> dict[str, Any]:
        channel = self._lookup_channel(ref, allow_user=True)
        if channel["is_private"] and not channel["is_member"]:
            raise _ApiError("channel_not_found")  # private channels are invisible to outsiders
        if channel["is_archived"]:
            raise _ApiError("is_archived")
        if not channel["is_member"] and "chat:write.public" not in self.scopes:
            raise _ApiError("not_in_channel")
        return channel

    def _public_channel(self, channel: dict[str, Any]) -> dict[str, Any]:
        return copy.deepcopy({k: v for k, v in channel.items() if not k.startswith("_")})

    def _open_dm(self, user_id: str) -> tuple[dict[str, Any], bool]:
        existing = self._dm_by_user.get(user_id)
        if existing:
            return self._channels[existing], True
        did = self._new_id("D")
        self._channels[did] = {
            "id": did,
            "created": int(self._clock()),
            "is_im": True,
            "is_channel": False,
            "is_group": False,
            "is_mpim": False,
            "is_private": True,
            "is_archived": False,
            "is_member": True,
            "is_org_shared": False,
            "user": user_id,
            "is_user_deleted": False,
            "priority": 0,
            "_members": {user_id, self.bot_user_id},
        }
        self._dm_by_user[user_id] = did
        self._messages[did] = []
        return self._channels[did], False

    # ----------------------------------------------------------------- message helpers
    def _find_message(self, cid: str, ts: Any) -> dict[str, Any] | None:
        for msg in self._messages.get(cid, []):
            if msg["ts"] == ts:
                return msg
        return None

    def _append_message(self, cid: str, msg: dict[str, Any], thread_ts: Any) -> None:
        if thread_ts:
            msg["thread_ts"] = str(thread_ts)
            parent = self._find_message(cid, str(thread_ts))
            if parent is not None:
                parent["thread_ts"] = parent["ts"]
                parent["reply_count"] = parent.get("reply_count", 0) + 1
                parent["latest_reply"] = msg["ts"]
                users = parent.setdefault("reply_users", [])
                if msg.get("user") and msg["user"] not in users:
                    users.append(msg["user"])
        self._messages.setdefault(cid, []).append(msg)

    def _check_content(self, args: dict[str, Any], *, require: bool) -> dict[str, Any]:
        """Validate text/blocks/attachments the way chat.* does; return what was given."""
        content: dict[str, Any] = {}
        if "markdown_text" in args:
            if "text" in args or "blocks" in args:
                raise _ApiError("markdown_text_conflict")
            markdown = str(args["markdown_text"])
            if len(markdown) > MARKDOWN_BLOCKS_TOTAL_MAX:
                raise _ApiError("msg_too_long")
            content["text"] = markdown
        blocks = args.get("blocks")
        if blocks is not None:
            if not isinstance(blocks, list):
                raise _ApiError("invalid_blocks_format")
            problems = validate_blocks(blocks, strict_action_ids=self.strict_action_ids)
            if problems:
                raise _ApiError(
                    "invalid_blocks",
                    errors=problems,
                    response_metadata={"messages": [f"[ERROR] {p}" for p in problems]},
                )
            content["blocks"] = self._with_generated_ids(blocks)
        attachments = args.get("attachments")
        if attachments is not None:
            if not isinstance(attachments, list):
                raise _ApiError("invalid_attachments")
            if len(attachments) > MAX_ATTACHMENTS:
                raise _ApiError("too_many_attachments")
            for i, att in enumerate(attachments):
                if isinstance(att, dict) and "blocks" in att:
                    problems = validate_blocks(
                        att["blocks"],
                        pointer=f"/attachments/{i}/blocks",
                        strict_action_ids=self.strict_action_ids,
                    )
                    if problems:
                        raise _ApiError(
                            "invalid_attachments",
                            errors=problems,
                            response_metadata={"messages": [f"[ERROR] {p}" for p in problems]},
                        )
            content["attachments"] = copy.deepcopy(attachments)
        if "text" in args:
            content["text"] = args["text"] if isinstance(args["text"], str) else str(args["text"])
        has_any = (
            bool(content.get("text"))
            or bool(content.get("blocks"))
            or bool(content.get("attachments"))
        )
        if require and not has_any:
            raise _ApiError("no_text")
        if len(content.get("text", "")) > MESSAGE_TEXT_MAX:
            raise _ApiError("msg_too_long")
        return content

    def _with_generated_ids(self, blocks: list[Any]) -> list[Any]:
        """Slack fills in missing block_id/action_id; mimic that on the stored copy."""
        out = copy.deepcopy(blocks)
        for block in out:
            if not isinstance(block, dict):
                continue
            block.setdefault("block_id", self._new_id("", width=5))
            elements = list(block.get("elements") or []) if block.get("type") == "actions" else []
            for key in ("accessory", "element"):
                if isinstance(block.get(key), dict):
                    elements.append(block[key])
            for el in elements:
                if isinstance(el, dict) and el.get("type") not in (None, "image"):
                    el.setdefault("action_id", self._new_id("", width=5))
        return out

    def _bot_message(self, content: dict[str, Any], args: dict[str, Any]) -> dict[str, Any]:
        msg: dict[str, Any] = {
            "user": self.bot_user_id,
            "type": "message",
            "ts": self._next_ts(),
            "bot_id": self.bot_id,
            "app_id": self.app_id,
            "text": content.get("text", ""),
            "team": self.team_id,
            "bot_profile": {
                "id": self.bot_id,
                "app_id": self.app_id,
                "name": self.bot_name,
                "deleted": False,
                "team_id": self.team_id,
            },
        }
        for key in ("blocks", "attachments"):
            if content.get(key):
                msg[key] = content[key]
        if isinstance(args.get("metadata"), dict):
            msg["metadata"] = copy.deepcopy(args["metadata"])
        if args.get("username"):
            msg["username"] = str(args["username"])
        return msg

    def _enforce_post_rate(self, cid: str) -> None:
        limit = self.post_message_rate_limit
        if not limit:
            return
        now = self._clock()
        window = self._post_windows.setdefault(cid, deque())
        while window and window[0] <= now - 1.0:
            window.popleft()
        if len(window) >= limit:
            retry_after = max(1, math.ceil(window[0] + 1.0 - now))
            raise _HttpError(
                429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(retry_after)}
            )
        window.append(now)

    # ----------------------------------------------------------------- methods: auth/chat
    def _auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "url": f"https://{self.team_domain}.slack.com/",
            "team": self.team_name,
            "user": self.bot_name,
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _chat_post_message(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._resolve_post_target(args.get("channel"))
        content = self._check_content(args, require=True)
        self._enforce_post_rate(channel["id"])
        msg = self._bot_message(content, args)
        if args.get("thread_ts") and _truthy(args.get("reply_broadcast")):
            msg["subtype"] = "thread_broadcast"
        self._append_message(channel["id"], msg, args.get("thread_ts"))
        return {"channel": channel["id"], "ts": msg["ts"], "message": copy.deepcopy(msg)}

    def _chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        ref = args.get("channel")
        if isinstance(ref, str) and ref in self._users:
            raise _ApiError("channel_not_found")  # documented: DMs need the D… id here
        channel = self._lookup_channel(ref, allow_user=False)
        msg = self._find_message(channel["id"], args.get("ts"))
        if msg is None:
            raise _ApiError("message_not_found")
        if msg.get("bot_id") != self.bot_id:
            raise _ApiError("cant_update_message")
        content = self._check_content(args, require=True)
        if "text" in content:
            msg["text"] = content["text"]
        for key in ("blocks", "attachments"):
            if key in content:
                if content[key]:
                    msg[key] = content[key]
                else:
                    msg.pop(key, None)  # documented: an empty array removes them
        if isinstance(args.get("metadata"), dict):
            msg["metadata"] = copy.deepcopy(args["metadata"])
        msg["edited"] = {"user": self.bot_user_id, "ts": self._next_ts()}
        return {
            "channel": channel["id"],
            "ts": msg["ts"],
            "text": msg.get("text", ""),
            "message": copy.deepcopy(msg),
        }

    def _chat_post_ephemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._resolve_post_target(args.get("channel"))
        user = args.get("user")
        members = channel.get("_members")
        if user not in self._users or (members is not None and user not in members):
            raise _ApiError("user_not_in_channel")
        content = self._check_content(args, require=True)
        ts = self._next_ts()
        self._ephemeral.append(
            {
                "type": "message",
                "channel": channel["id"],
                "user": user,
                "ts": ts,
                "thread_ts": args.get("thread_ts"),
                **content,
            }
        )
        return {"message_ts": ts}

    def _chat_get_permalink(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._lookup_channel(args.get("channel"), allow_user=False)
        msg = self._find_message(channel["id"], args.get("message_ts"))
        if msg is None:
            raise _ApiError("message_not_found")
        cid = channel["id"]
        link = f"https://{self.team_domain}.slack.com/archives/{cid}/p{msg['ts'].replace('.', '')}"
        if msg.get("thread_ts") and msg["thread_ts"] != msg["ts"]:
            link += f"?thread_ts={msg['thread_ts']}&cid={cid}"
        return {"channel": cid, "permalink": link}

    # ----------------------------------------------------------------- methods: conversations/users
    def _conversations_open(self, args: dict[str, Any]) -> dict[str, Any]:
        raw = args.get("users")
        if raw:
            user_ids = raw if isinstance(raw, list) else str(raw).split(",")
            user_ids = [u.strip() for u in user_ids if u and u.strip()]
            if not user_ids:
                raise _ApiError("users_list_not_supplied")
            if any(u not in self._users for u in user_ids):
                raise _ApiError("user_not_found")
            others = [u for u in dict.fromkeys(user_ids) if u != self.bot_user_id] or user_ids[:1]
            if len(others) > 8:
                raise _ApiError("too_many_users")
            if len(others) == 1:
                channel, existed = self._open_dm(others[0])
            else:
                if "mpim:write" not in self.scopes:
                    raise _ApiError(
                        "missing_scope", needed="mpim:write", provided=",".join(self.scopes)
                    )
                channel, existed = self._open_mpim(others)
        elif args.get("channel"):
            channel = self._channels.get(str(args["channel"]))
            if channel is None or not (channel["is_im"] or channel["is_mpim"]):
                raise _ApiError("channel_not_found")
            existed = True
        else:
            raise _ApiError("users_list_not_supplied")
        body: dict[str, Any] = {}
        if existed:
            body.update({"no_op": True, "already_open": True})
        if _truthy(args.get("return_im")):
            body["channel"] = self._public_channel(channel)
        else:
            body["channel"] = {"id": channel["id"]}
        return body

    def _conversations_history(self, args: dict[str, Any]) -> dict[str, Any]:
        """Top-level messages newest first; ``oldest``/``latest`` exclusive unless ``inclusive``;
        cursor pagination; ``metadata`` only with ``include_all_metadata`` (docs.slack.dev)."""
        channel = self._lookup_channel(args.get("channel"), allow_user=False)
        if channel["is_im"]:
            needed = "im:history"
        elif channel["is_mpim"]:
            needed = "mpim:history"
        elif channel["is_private"]:
            needed = "groups:history"
        else:
            needed = "channels:history"
        if needed not in self.scopes:
            raise _ApiError("missing_scope", needed=needed, provided=",".join(self.scopes))
        if channel["is_private"] and not channel["is_member"]:
            raise _ApiError("channel_not_found")
        if not channel["is_member"]:
            raise _ApiError("not_in_channel")
        try:
            oldest = float(args.get("oldest") or 0)
            latest = float(args["latest"]) if args.get("latest") else math.inf
        except ValueError:
            raise _ApiError("invalid_ts_oldest") from None
        inclusive = _truthy(args.get("inclusive"))
        try:
            limit = min(max(int(args.get("limit") or 100), 1), 999)
            start = int(args.get("cursor") or 0)
        except ValueError:
            raise _ApiError("invalid_cursor") from None
        with_metadata = _truthy(args.get("include_all_metadata"))

        def wanted(msg: dict[str, Any]) -> bool:
            if msg.get("thread_ts") not in (None, msg["ts"]) and \
                    msg.get("subtype") != "thread_broadcast":
                return False
            ts = float(msg["ts"])
            if inclusive:
                return oldest <= ts <= latest
            return oldest < ts < latest

        found = [m for m in reversed(self._messages.get(channel["id"], [])) if wanted(m)]
        page = found[start:start + limit]
        out = []
        for msg in page:
            item = copy.deepcopy(msg)
            if not with_metadata:
                item.pop("metadata", None)
            out.append(item)
        more = start + limit < len(found)
        return {"messages": out, "has_more": more, "pin_count": 0,
                "response_metadata": {"next_cursor": str(start + limit) if more else ""}}

    def _open_mpim(self, user_ids: list[str]) -> tuple[dict[str, Any], bool]:
        key = tuple(sorted(user_ids))
        existing = self._mpim_by_users.get(key)
        if existing:
            return self._channels[existing], True
        gid = self._new_id("G")
        names = [self._users[u]["name"] for u in [self.bot_user_id, *user_ids]]
        name = "mpdm-" + "--".join(names) + "-1"
        self._channels[gid] = {
            "id": gid,
            "name": name,
            "name_normalized": name,
            "created": int(self._clock()),
            "is_im": False,
            "is_channel": False,
            "is_group": False,
            "is_mpim": True,
            "is_private": True,
            "is_archived": False,
            "is_member": True,
            "_members": {self.bot_user_id, *user_ids},
        }
        self._mpim_by_users[key] = gid
        self._messages[gid] = []
        return self._channels[gid], False

    def _user_payload(self, uid: str, *, include_locale: bool = False) -> dict[str, Any]:
        user = copy.deepcopy(self._users[uid])
        if "users:read.email" not in self.scopes:
            user["profile"].pop("email", None)  # email needs its own scope
        if include_locale:
            user["locale"] = "ja-JP" if user.get("tz") == "Asia/Tokyo" else "en-US"
        return user

    def _users_lookup_by_email(self, args: dict[str, Any]) -> dict[str, Any]:
        email = args.get("email")
        if not isinstance(email, str) or not email:
            raise _invalid_arguments("missing required field: email")
        uid = self._email_index.get(email.strip().lower())
        if uid is None:
            raise _ApiError("users_not_found")
        return {"user": self._user_payload(uid)}

    def _users_info(self, args: dict[str, Any]) -> dict[str, Any]:
        uid = args.get("user")
        if uid not in self._users:
            raise _ApiError("user_not_found")
        return {"user": self._user_payload(uid, include_locale=_truthy(args.get("include_locale")))}

    # ----------------------------------------------------------------- methods: views
    def _view_arg(self, args: dict[str, Any]) -> dict[str, Any]:
        view = args.get("view")
        if view is None:
            raise _invalid_arguments("missing required field: view")
        if not isinstance(view, dict):
            raise _invalid_arguments("invalid JSON in view [json-pointer:/view]")
        return view

    def _validate_view(self, view: dict[str, Any], expected_type: str) -> None:
        checker = _BlockChecker(strict_action_ids=self.strict_action_ids)
        if view.get("type") != expected_type:
            checker.add(f"must be {expected_type}", "/view/type")
        if expected_type == "modal":
            checker.text(view.get("title"), "/view/title", 24, plain_only=True)
            checker.text(view.get("close"), "/view/close", 24, plain_only=True, required=False)
            checker.text(view.get("submit"), "/view/submit", 24, plain_only=True, required=False)
        blocks = view.get("blocks")
        if blocks is None:
            checker.add("missing required field: blocks", "/view")
        elif isinstance(blocks, list):
            checker.blocks(blocks, "/view/blocks", SURFACE_MAX_BLOCKS)
            has_input = any(isinstance(b, dict) and b.get("type") == "input" for b in blocks)
            if expected_type == "modal" and has_input and view.get("submit") is None:
                checker.add("submit is required when blocks contain an input", "/view/submit")
        else:
            checker.add("expected an array", "/view/blocks")
        checker.string(view.get("private_metadata"), "/view/private_metadata", 3000)
        checker.string(view.get("callback_id"), "/view/callback_id", 255)
        checker.string(view.get("external_id"), "/view/external_id", 255)
        if checker.problems:
            raise _invalid_arguments(*checker.problems)

    def _check_external_id(self, view: dict[str, Any], own_id: str | None) -> None:
        ext = view.get("external_id")
        if not ext:
            return
        for vid, stored in self._views.items():
            if vid != own_id and stored.get("external_id") == ext:
                raise _ApiError("duplicate_external_id")

    def _consume_trigger(self, args: dict[str, Any]) -> str | None:
        trigger = args.get("trigger_id") or args.get("interactivity_pointer")
        if not trigger:
            raise _invalid_arguments("invalid `trigger_id` [json-pointer:/trigger_id]")
        trigger = str(trigger)
        if not _TRIGGER_RE.match(trigger):
            raise _ApiError("invalid_trigger_id")
        if trigger in self._used_triggers:
            raise _ApiError("exchanged_trigger_id")
        issued = self._triggers.get(trigger)
        if issued is None and self.strict_triggers:
            raise _ApiError("invalid_trigger_id")
        if issued is not None and self._clock() - issued[1] > TRIGGER_TTL_SECONDS:
            raise _ApiError("expired_trigger_id")
        self._used_triggers.add(trigger)
        return issued[0] if issued else None

    def _store_view(
        self,
        view: dict[str, Any],
        *,
        owner: str | None,
        view_id: str | None = None,
        root_view_id: str | None = None,
        previous_view_id: str | None = None,
    ) -> dict[str, Any]:
        vid = view_id or self._new_id("V")
        is_modal = view.get("type") == "modal"
        self._id_counter += 1
        stored: dict[str, Any] = {
            "id": vid,
            "team_id": self.team_id,
            "type": view.get("type"),
            "title": copy.deepcopy(view.get("title")) if is_modal else None,
            "close": copy.deepcopy(view.get("close")) if is_modal else None,
            "submit": copy.deepcopy(view.get("submit")) if is_modal else None,
            "blocks": self._with_generated_ids(view.get("blocks") or []),
            "private_metadata": view.get("private_metadata", ""),
            "callback_id": view.get("callback_id", ""),
            "state": {"values": {}},
            "hash": f"{int(self._clock())}.{self._id_counter * 2654435761 % 16**8:08x}",
            "clear_on_close": bool(view.get("clear_on_close", False)),
            "notify_on_close": bool(view.get("notify_on_close", False)),
            "root_view_id": root_view_id or vid,
            "previous_view_id": previous_view_id,
            "app_id": self.app_id,
            "external_id": view.get("external_id", ""),
            "app_installed_team_id": self.team_id,
            "bot_id": self.bot_id,
        }
        if vid not in self._views:
            self._view_order.append(vid)
        self._views[vid] = stored
        self._view_owner[vid] = owner
        return stored

    def _views_open(self, args: dict[str, Any]) -> dict[str, Any]:
        view = self._view_arg(args)
        owner = self._consume_trigger(args)
        self._validate_view(view, "modal")
        self._check_external_id(view, None)
        stored = self._store_view(view, owner=owner)
        self._stacks[owner] = [stored["id"]]
        return {"view": copy.deepcopy(stored)}

    def _views_push(self, args: dict[str, Any]) -> dict[str, Any]:
        view = self._view_arg(args)
        owner = self._consume_trigger(args)
        self._validate_view(view, "modal")
        self._check_external_id(view, None)
        stack = self._stacks.setdefault(owner, [])
        if len(stack) >= VIEW_STACK_LIMIT:
            raise _ApiError("push_limit_reached")
        stored = self._store_view(
            view,
            owner=owner,
            root_view_id=stack[0] if stack else None,
            previous_view_id=stack[-1] if stack else None,
        )
        stack.append(stored["id"])
        return {"view": copy.deepcopy(stored)}

    def _views_update(self, args: dict[str, Any]) -> dict[str, Any]:
        view = self._view_arg(args)
        vid = args.get("view_id")
        if not vid and args.get("external_id"):
            vid = next(
                (k for k, v in self._views.items() if v["external_id"] == args["external_id"]),
                None,
            )
            if vid is None:
                raise _ApiError("not_found")
        if not vid:
            raise _invalid_arguments("either view_id or external_id is required")
        current = self._views.get(str(vid))
        if current is None:
            raise _ApiError("not_found")
        if args.get("hash") and args["hash"] != current["hash"]:
            raise _ApiError("hash_conflict")
        self._validate_view(view, current["type"])
        self._check_external_id(view, current["id"])
        stored = self._store_view(
            view,
            owner=self._view_owner[current["id"]],
            view_id=current["id"],
            root_view_id=current["root_view_id"],
            previous_view_id=current["previous_view_id"],
        )
        return {"view": copy.deepcopy(stored)}

    def _views_publish(self, args: dict[str, Any]) -> dict[str, Any]:
        user_id = args.get("user_id")
        if user_id not in self._users:
            raise _invalid_arguments("invalid `user_id`")
        view = self._view_arg(args)
        self._validate_view(view, "home")
        current_id = self._home_by_user.get(user_id)
        if current_id and args.get("hash") and args["hash"] != self._views[current_id]["hash"]:
            raise _ApiError("hash_conflict")
        self._check_external_id(view, current_id)
        stored = self._store_view(view, owner=user_id, view_id=current_id)
        self._home_by_user[user_id] = stored["id"]
        return {"view": copy.deepcopy(stored)}

    # ----------------------------------------------------------------- response_url
    def _handle_response_url(
        self, verb: str, rid: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        def answer(status: int, text: str) -> tuple[int, dict[str, str], bytes]:
            return status, {"Content-Type": "text/html; charset=utf-8"}, text.encode("utf-8")

        if verb != "POST":
            return answer(405, "invalid_method")
        mime, _ = _parse_content_type(headers.get("content-type", ""))
        try:
            if mime == "application/x-www-form-urlencoded":
                form = dict(parse_qsl(body.decode("latin-1"), keep_blank_values=True))
                payload = json.loads(form.get("payload", ""))
            else:
                payload = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            return answer(400, "invalid_payload")
        if not isinstance(payload, dict):
            return answer(400, "invalid_payload")
        with self._lock:
            slot = self._response_urls.get(rid)
            if slot is None:
                return answer(404, "no_service")
            if self._clock() - slot["created"] > RESPONSE_URL_TTL_SECONDS:
                return answer(404, "expired_url")
            if slot["uses"] >= RESPONSE_URL_MAX_USES:
                return answer(404, "used_url")
            blocks = payload.get("blocks")
            if blocks is not None and validate_blocks(
                blocks, strict_action_ids=self.strict_action_ids
            ):
                return answer(400, "invalid_blocks")
            has_content = payload.get("text") or blocks or payload.get("attachments")
            if not has_content and not _truthy(payload.get("delete_original")):
                return answer(400, "no_text")
            if len(str(payload.get("text") or "")) > MESSAGE_TEXT_MAX:
                return answer(400, "msg_too_long")
            slot["uses"] += 1
            slot["responses"].append(copy.deepcopy(payload))
        return answer(200, "ok")
