"""Contract tests for FakeSlack, driven through the real slack_sdk WebClient.

Each test pins one documented Slack Web API behaviour, so product tests that run
against the fake can trust that a green run means "Slack would accept this".
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import pytest
from slack_bolt import App, BoltRequest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.webhook import WebhookClient

from tests.fakes.slack import FakeSlack, validate_blocks


class FakeClock:
    """Manually advanced epoch clock so rate windows need no real sleeps."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as server:
        yield server


@pytest.fixture
def client(fake: FakeSlack) -> WebClient:
    return WebClient(token=fake.bot_token, base_url=fake.api_url)


@pytest.fixture
def channel(fake: FakeSlack) -> str:
    return fake.add_channel("cs-alerts")


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def button(action_id: str, value: str = "v") -> dict[str, Any]:
    return {
        "type": "button",
        "action_id": action_id,
        "text": {"type": "plain_text", "text": "Go"},
        "value": value,
    }


def modal(title: str = "Renewal", **extra: Any) -> dict[str, Any]:
    return {
        "type": "modal",
        "title": {"type": "plain_text", "text": title},
        "blocks": [section("hello")],
        **extra,
    }


def raw_post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    """POST without slack_sdk, for wire-level behaviours the SDK never exercises."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


# --------------------------------------------------------------------------- auth


def test_auth_test_identifies_bot_team_and_scopes(fake: FakeSlack, client: WebClient) -> None:
    """auth.test returns the bot identity and the x-oauth-scopes header bolt reads."""
    resp = client.auth_test()
    assert resp["ok"] is True
    assert resp["user_id"] == fake.bot_user_id
    assert resp["bot_id"] == fake.bot_id
    assert resp["team_id"] == fake.team_id
    assert re.fullmatch(r"https://[a-z0-9-]+\.slack\.com/", resp["url"])
    assert "chat:write" in resp.headers["x-oauth-scopes"].split(",")


def test_invalid_token_is_invalid_auth_with_http_200(fake: FakeSlack) -> None:
    """An unknown token yields ok=false/invalid_auth on HTTP 200, as Slack does."""
    bad = WebClient(token="xoxb-not-the-one", base_url=fake.api_url)
    with pytest.raises(SlackApiError) as exc:
        bad.auth_test()
    assert exc.value.response.status_code == 200
    assert exc.value.response["error"] == "invalid_auth"
    assert fake.calls_to("auth.test")[0].token == "xoxb-not-the-one"


def test_missing_token_is_not_authed(fake: FakeSlack) -> None:
    """No token at all yields not_authed."""
    with pytest.raises(SlackApiError) as exc:
        WebClient(base_url=fake.api_url).auth_test()
    assert exc.value.response["error"] == "not_authed"


def test_token_inside_json_body_is_ignored(fake: FakeSlack) -> None:
    """JSON requests must carry the token in the Authorization header (Slack docs)."""
    status, body = raw_post(
        fake.api_url + "auth.test",
        json.dumps({"token": fake.bot_token}).encode(),
        {"Content-Type": "application/json; charset=utf-8"},
    )
    assert (status, body["error"]) == (200, "not_authed")


def test_token_in_query_string_refused_unless_legacy_app(fake: FakeSlack) -> None:
    """Apps created after 2021-02-24 may not send ?token=; opt-in models older apps."""
    url = f"{fake.api_url}auth.test?token={fake.bot_token}"
    assert raw_post(url, b"", {})[1]["error"] == "not_authed"
    with FakeSlack(allow_query_token=True) as legacy:
        assert raw_post(f"{legacy.api_url}auth.test?token={legacy.bot_token}", b"", {})[1]["ok"]


def test_form_token_field_is_accepted(fake: FakeSlack) -> None:
    """A urlencoded POST body may carry the token (Slack's documented alternative)."""
    status, body = raw_post(
        fake.api_url + "auth.test",
        f"token={fake.bot_token}".encode(),
        {"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert (status, body["ok"]) == (200, True)


def test_missing_scope_reports_needed_and_provided() -> None:
    """A method outside the granted scopes fails with missing_scope + needed/provided."""
    with FakeSlack(scopes=["chat:write", "users:read"]) as narrow:
        narrow.add_user("a@example.com")
        client = WebClient(token=narrow.bot_token, base_url=narrow.api_url)
        with pytest.raises(SlackApiError) as exc:
            client.users_lookupByEmail(email="a@example.com")
    assert exc.value.response["error"] == "missing_scope"
    assert exc.value.response["needed"] == "users:read.email"
    assert exc.value.response["provided"] == "chat:write,users:read"


def test_unknown_and_retired_methods(client: WebClient) -> None:
    """Unknown methods answer unknown_method; retired im.* answers method_deprecated."""
    with pytest.raises(SlackApiError) as exc:
        client.api_call("chat.sendCarrierPigeon")
    assert exc.value.response["error"] == "unknown_method"
    with pytest.raises(SlackApiError) as exc, pytest.warns(UserWarning, match="deprecated"):
        client.api_call("im.open", params={"user": "U123"})
    assert exc.value.response["error"] == "method_deprecated"


def test_bolt_app_boots_against_fake(fake: FakeSlack) -> None:
    """A bolt App verifies its token via auth.test against the fake at construction."""
    App(client=WebClient(token=fake.bot_token, base_url=fake.api_url), signing_secret="s")
    (call,) = fake.calls_to("auth.test")
    assert call.ok and call.headers["authorization"] == f"Bearer {fake.bot_token}"


def test_bolt_slash_command_round_trip(fake: FakeSlack) -> None:
    """A signed slash command drives bolt's respond(), say() and views_open into the fake."""
    uid, cid = fake.add_user("cmd@example.com"), fake.add_channel("cs")
    app = App(
        client=WebClient(token=fake.bot_token, base_url=fake.api_url),
        signing_secret="secret",
        process_before_response=True,  # run the listener inline: no sleeps in the test
    )

    @app.command("/kizuna")
    def handle(ack: Any, respond: Any, say: Any, client: WebClient, body: dict[str, Any]) -> None:
        ack()
        respond(text="受け付けました")
        say(text="公開メッセージ")
        client.views_open(trigger_id=body["trigger_id"], view=modal())

    response_url = fake.new_response_url()
    form = urlencode(
        {
            "command": "/kizuna",
            "user_id": uid,
            "channel_id": cid,
            "team_id": fake.team_id,
            "response_url": response_url,
            "trigger_id": fake.new_trigger_id(uid),
        }
    )
    stamp = str(int(time.time()))
    signature = hmac.new(b"secret", f"v0:{stamp}:{form}".encode(), hashlib.sha256).hexdigest()
    headers = {
        "content-type": ["application/x-www-form-urlencoded"],
        "x-slack-request-timestamp": [stamp],
        "x-slack-signature": [f"v0={signature}"],
    }
    assert app.dispatch(BoltRequest(body=form, headers=headers)).status == 200
    assert fake.responses(response_url) == [{"text": "受け付けました"}]
    assert [m["text"] for m in fake.messages(cid)] == ["公開メッセージ"]
    assert [v["type"] for v in fake.views(uid)] == ["modal"]


# --------------------------------------------------------------------------- chat.*


def test_post_message_to_user_id_opens_dm_and_returns_ts(
    fake: FakeSlack, client: WebClient
) -> None:
    """Posting to a U… id lands in the bot's D… DM and returns channel, ts and message."""
    uid = fake.add_user("hanako@example.com")
    resp = client.chat_postMessage(channel=uid, text="hello")
    assert resp["channel"].startswith("D")
    assert resp["channel"] == fake.dm_channel_id(uid)
    assert re.fullmatch(r"\d{10}\.\d{6}", resp["ts"])
    assert resp["message"]["ts"] == resp["ts"]
    assert resp["message"]["bot_id"] == fake.bot_id
    assert [m["text"] for m in fake.messages(uid)] == ["hello"]


def test_ts_values_strictly_increase_even_with_frozen_clock() -> None:
    """Message ts values are unique and strictly increasing per workspace."""
    with FakeSlack(clock=FakeClock()) as frozen:
        cid = frozen.add_channel("general")
        client = WebClient(token=frozen.bot_token, base_url=frozen.api_url)
        stamps = [client.chat_postMessage(channel=cid, text=str(i))["ts"] for i in range(3)]
    assert stamps[0] == "1700000000.000000"
    assert [Decimal(s) for s in stamps] == sorted({Decimal(s) for s in stamps})


def test_post_by_channel_name_resolves_to_id(
    fake: FakeSlack, client: WebClient, channel: str
) -> None:
    """'#name' is accepted as channel and the response carries the C… id."""
    assert client.chat_postMessage(channel="#cs-alerts", text="hi")["channel"] == channel
    assert len(fake.messages(channel)) == 1


@pytest.mark.parametrize("target", ["C0NOSUCH1", "#no-such-channel", "U0NOSUCH1"])
def test_unknown_channel_is_channel_not_found(client: WebClient, target: str) -> None:
    """Unknown channel ids, names and user ids all answer channel_not_found."""
    with pytest.raises(SlackApiError) as exc:
        client.chat_postMessage(channel=target, text="hi")
    assert exc.value.response["error"] == "channel_not_found"


def test_private_channel_without_bot_is_invisible(fake: FakeSlack, client: WebClient) -> None:
    """A private channel the bot is not in looks like channel_not_found."""
    fake.add_channel("secret", is_private=True, bot_is_member=False)
    with pytest.raises(SlackApiError) as exc:
        client.chat_postMessage(channel="#secret", text="hi")
    assert exc.value.response["error"] == "channel_not_found"


def test_public_channel_needs_membership_without_chat_write_public() -> None:
    """Without chat:write.public the bot gets not_in_channel for channels it hasn't joined."""
    with FakeSlack(scopes=["chat:write"]) as narrow:
        narrow.add_channel("lobby", bot_is_member=False)
        client = WebClient(token=narrow.bot_token, base_url=narrow.api_url)
        with pytest.raises(SlackApiError) as exc:
            client.chat_postMessage(channel="#lobby", text="hi")
    assert exc.value.response["error"] == "not_in_channel"


def test_post_message_requires_text_blocks_or_attachments(client: WebClient, channel: str) -> None:
    """A message with no text, blocks or attachments is rejected with no_text."""
    with pytest.raises(SlackApiError) as exc:
        client.api_call("chat.postMessage", json={"channel": channel})
    assert exc.value.response["error"] == "no_text"


def test_text_over_40000_chars_is_msg_too_long(client: WebClient, channel: str) -> None:
    """Message text up to 40,000 characters passes; 40,001 is msg_too_long."""
    client.chat_postMessage(channel=channel, text="あ" * 40_000)
    with pytest.raises(SlackApiError) as exc:
        client.chat_postMessage(channel=channel, text="あ" * 40_001)
    assert exc.value.response["error"] == "msg_too_long"


def test_chat_update_changes_stored_message(
    fake: FakeSlack, client: WebClient, channel: str
) -> None:
    """chat.update rewrites text/blocks in place, keeps ts and marks the message edited."""
    ts = client.chat_postMessage(channel=channel, text="v1")["ts"]
    resp = client.chat_update(channel=channel, ts=ts, text="v2", blocks=[section("*v2*")])
    assert (resp["channel"], resp["ts"], resp["text"]) == (channel, ts, "v2")
    (stored,) = fake.messages(channel)
    assert stored["ts"] == ts
    assert stored["text"] == "v2"
    assert stored["blocks"][0]["text"]["text"] == "*v2*"
    assert stored["blocks"][0]["block_id"]  # Slack generates missing block_ids
    assert stored["edited"]["user"] == fake.bot_user_id


def test_chat_update_unknown_ts_is_message_not_found(client: WebClient, channel: str) -> None:
    """Updating a ts that does not exist answers message_not_found."""
    with pytest.raises(SlackApiError) as exc:
        client.chat_update(channel=channel, ts="1700000000.000001", text="x")
    assert exc.value.response["error"] == "message_not_found"


def test_chat_update_in_dm_needs_the_d_id(fake: FakeSlack, client: WebClient) -> None:
    """chat.update documents that DMs need the D… id; a U… id is channel_not_found."""
    uid = fake.add_user("taro@example.com")
    posted = client.chat_postMessage(channel=uid, text="v1")
    with pytest.raises(SlackApiError) as exc:
        client.chat_update(channel=uid, ts=posted["ts"], text="v2")
    assert exc.value.response["error"] == "channel_not_found"
    client.chat_update(channel=posted["channel"], ts=posted["ts"], text="v2")
    assert fake.messages(uid)[0]["text"] == "v2"


def test_chat_update_of_a_human_message_is_refused(
    fake: FakeSlack, client: WebClient, channel: str
) -> None:
    """The bot cannot edit messages it did not post (cant_update_message)."""
    uid = fake.add_user("human@example.com")
    ts = fake.add_message(channel, "mine", user=uid)
    with pytest.raises(SlackApiError) as exc:
        client.chat_update(channel=channel, ts=ts, text="hijack")
    assert exc.value.response["error"] == "cant_update_message"


def test_post_ephemeral_and_permalink(fake: FakeSlack, client: WebClient) -> None:
    """postEphemeral returns message_ts without touching history; getPermalink links a ts."""
    uid = fake.add_user("member@example.com")
    cid = fake.add_channel("team", members=[uid])
    outsider = fake.add_user("outsider@example.com")
    resp = client.chat_postEphemeral(channel=cid, user=uid, text="only you")
    assert re.fullmatch(r"\d+\.\d{6}", resp["message_ts"])
    assert fake.messages(cid) == []
    assert fake.ephemeral_messages(cid)[0]["user"] == uid
    with pytest.raises(SlackApiError) as exc:
        client.chat_postEphemeral(channel=cid, user=outsider, text="nope")
    assert exc.value.response["error"] == "user_not_in_channel"

    ts = client.chat_postMessage(channel=cid, text="linked")["ts"]
    link = client.chat_getPermalink(channel=cid, message_ts=ts)["permalink"]
    assert link.endswith(f"/archives/{cid}/p{ts.replace('.', '')}")


# --------------------------------------------------------------------------- Block Kit


def test_51_blocks_is_invalid_blocks_but_50_pass(client: WebClient, channel: str) -> None:
    """Messages allow at most 50 blocks; the 51st yields invalid_blocks with errors[]."""
    client.chat_postMessage(channel=channel, text="ok", blocks=[section("b")] * 50)
    with pytest.raises(SlackApiError) as exc:
        client.chat_postMessage(channel=channel, text="too many", blocks=[section("b")] * 51)
    resp = exc.value.response
    assert (resp.status_code, resp["error"]) == (200, "invalid_blocks")
    assert any("[json-pointer:/blocks]" in e for e in resp["errors"])
    assert resp["response_metadata"]["messages"][0].startswith("[ERROR] ")


def test_section_text_over_3000_chars_is_invalid_blocks(client: WebClient, channel: str) -> None:
    """A section text object may hold 3,000 characters; 3,001 fails at its json-pointer."""
    client.chat_postMessage(channel=channel, text="ok", blocks=[section("x" * 3000)])
    with pytest.raises(SlackApiError) as exc:
        client.chat_postMessage(channel=channel, text="long", blocks=[section("x" * 3001)])
    assert exc.value.response["error"] == "invalid_blocks"
    assert exc.value.response["errors"] == [
        "must be less than 3001 characters [json-pointer:/blocks/0/text/text]"
    ]


def test_button_value_over_2000_chars_is_invalid_blocks(client: WebClient, channel: str) -> None:
    """A button value may hold 2,000 characters; 2,001 is invalid_blocks."""
    ok = [{"type": "actions", "elements": [button("a", "v" * 2000)]}]
    client.chat_postMessage(channel=channel, text="ok", blocks=ok)
    bad = [{"type": "actions", "elements": [button("a", "v" * 2001)]}]
    with pytest.raises(SlackApiError) as exc:
        client.chat_postMessage(channel=channel, text="bad", blocks=bad)
    assert exc.value.response["errors"] == [
        "must be less than 2001 characters [json-pointer:/blocks/0/elements/0/value]"
    ]


BAD_BLOCKS: dict[str, list[dict[str, Any]]] = {
    "missing type": [{"text": {"type": "mrkdwn", "text": "x"}}],
    "section without text or fields": [{"type": "section"}],
    "11 section fields": [{"type": "section", "fields": [{"type": "mrkdwn", "text": "f"}] * 11}],
    "header over 150": [{"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}],
    "header in mrkdwn": [{"type": "header", "text": {"type": "mrkdwn", "text": "h"}}],
    "26 actions elements": [{"type": "actions", "elements": [button(f"a{i}") for i in range(26)]}],
    "duplicate action_id in one block": [
        {"type": "actions", "elements": [button("same"), button("same")]}
    ],
    "action_id over 255": [{"type": "actions", "elements": [button("a" * 256)]}],
    "block_id over 255": [{**section("x"), "block_id": "b" * 256}],
    "duplicate block_id": [{**section("x"), "block_id": "b"}, {**section("y"), "block_id": "b"}],
    "button without text": [
        {"type": "actions", "elements": [{"type": "button", "action_id": "a"}]}
    ],
    "empty text": [section("")],
    "unknown block type": [{"type": "hologram"}],
}


@pytest.mark.parametrize("blocks", BAD_BLOCKS.values(), ids=BAD_BLOCKS.keys())
def test_documented_block_kit_violations_are_rejected(
    client: WebClient, channel: str, blocks: list[dict[str, Any]]
) -> None:
    """Each documented Block Kit limit violation answers invalid_blocks."""
    with pytest.raises(SlackApiError) as exc:
        client.chat_postMessage(channel=channel, text="x", blocks=blocks)
    assert exc.value.response["error"] == "invalid_blocks"
    assert exc.value.response["errors"]


def test_button_without_action_id_gets_one_generated(
    fake: FakeSlack, client: WebClient, channel: str
) -> None:
    """Slack auto-assigns a missing action_id; strict mode rejects it instead."""
    el = {"type": "button", "text": {"type": "plain_text", "text": "Go"}}
    client.chat_postMessage(
        channel=channel, text="x", blocks=[{"type": "actions", "elements": [el]}]
    )
    assert fake.messages(channel)[0]["blocks"][0]["elements"][0]["action_id"]
    assert validate_blocks([{"type": "actions", "elements": [el]}], strict_action_ids=True)


def test_form_encoded_blocks_string_is_decoded_and_recorded(
    fake: FakeSlack, client: WebClient, channel: str
) -> None:
    """blocks sent as a urlencoded JSON string are decoded, validated and recorded as a list."""
    blocks = [section("form")]
    client.api_call(
        "chat.postMessage",
        params={"channel": channel, "text": "x", "blocks": json.dumps(blocks)},
    )
    (call,) = fake.calls_to("chat.postMessage")
    assert call.content_type == "application/x-www-form-urlencoded"
    assert call.args["blocks"] == blocks
    assert "token" not in call.args
    fake.reset_calls()
    assert fake.calls == []


def test_undecodable_blocks_string_is_invalid_blocks_format(
    client: WebClient, channel: str
) -> None:
    """A blocks argument that is not JSON answers invalid_blocks_format."""
    with pytest.raises(SlackApiError) as exc:
        client.api_call("chat.postMessage", params={"channel": channel, "blocks": "[{oops"})
    assert exc.value.response["error"] == "invalid_blocks_format"


# --------------------------------------------------------------------------- users / conversations


def test_lookup_by_email_returns_realistic_user(fake: FakeSlack, client: WebClient) -> None:
    """users.lookupByEmail finds a member case-insensitively with profile.email, tz, real_name."""
    uid = fake.add_user("Hanako.Yamada@example.co.jp", name="山田 花子")
    user = client.users_lookupByEmail(email="hanako.yamada@EXAMPLE.co.jp")["user"]
    assert user["id"] == uid
    assert re.fullmatch(r"U[0-9A-Z]{8}", uid)
    assert user["profile"]["email"] == "Hanako.Yamada@example.co.jp"
    assert user["real_name"] == user["profile"]["real_name"] == "山田 花子"
    assert (user["tz"], user["tz_offset"]) == ("Asia/Tokyo", 9 * 3600)
    assert user["is_bot"] is False
    assert client.users_info(user=uid)["user"]["id"] == uid


def test_lookup_by_unknown_email_is_users_not_found(client: WebClient) -> None:
    """An unknown email raises SlackApiError with error users_not_found."""
    with pytest.raises(SlackApiError) as exc:
        client.users_lookupByEmail(email="nobody@example.com")
    assert exc.value.response["error"] == "users_not_found"


def test_conversations_open_is_idempotent(fake: FakeSlack, client: WebClient) -> None:
    """conversations.open returns the same D… id for the same user every time."""
    uid = fake.add_user("jiro@example.com")
    first = client.conversations_open(users=uid)
    second = client.conversations_open(users=[uid], return_im=True)
    assert first["channel"]["id"] == second["channel"]["id"]
    assert first["channel"]["id"].startswith("D")
    assert second["already_open"] is True
    assert second["channel"]["is_im"] is True and second["channel"]["user"] == uid
    assert client.chat_postMessage(channel=uid, text="x")["channel"] == first["channel"]["id"]


def test_conversations_open_errors(client: WebClient) -> None:
    """Unknown users give user_not_found; no users or channel gives users_list_not_supplied."""
    with pytest.raises(SlackApiError) as exc:
        client.conversations_open(users="U0NOSUCH1")
    assert exc.value.response["error"] == "user_not_found"
    with pytest.raises(SlackApiError) as exc:
        client.api_call("conversations.open", params={})  # the SDK method refuses this locally
    assert exc.value.response["error"] == "users_list_not_supplied"


def test_json_body_ignored_by_form_only_methods(fake: FakeSlack, client: WebClient) -> None:
    """users.lookupByEmail is documented form-only, so a JSON body carries no arguments."""
    fake.add_user("form@example.com")
    with pytest.raises(SlackApiError) as exc:
        client.api_call("users.lookupByEmail", json={"email": "form@example.com"})
    assert exc.value.response["error"] == "invalid_arguments"


def test_concurrent_posts_are_all_stored_with_unique_ts(
    fake: FakeSlack, client: WebClient, channel: str
) -> None:
    """Parallel chat.postMessage calls are serialised safely: no lost messages or ts clashes."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        stamps = list(
            pool.map(
                lambda i: client.chat_postMessage(channel=channel, text=str(i))["ts"], range(24)
            )
        )
    assert len(set(stamps)) == 24
    assert sorted(m["ts"] for m in fake.messages(channel)) == sorted(stamps)


def test_japanese_text_round_trips_over_json_form_and_multipart(
    fake: FakeSlack, client: WebClient, channel: str
) -> None:
    """Japanese text survives JSON, urlencoded and multipart bodies byte-for-byte."""
    text = "更新のお知らせ：契約は来月で満了します 🎌"
    resp = client.chat_postMessage(channel=channel, text=text, blocks=[section(f"*{text}*")])
    assert resp["message"]["text"] == text
    client.api_call("chat.postMessage", params={"channel": channel, "text": text})
    boundary = "kizuna-boundary"
    multipart = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="channel"\r\n\r\n'
        f"{channel}\r\n"
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="text"\r\n\r\n'
        f"{text}\r\n"
        f"--{boundary}--\r\n"
    ).encode()
    status, body = raw_post(
        fake.api_url + "chat.postMessage",
        multipart,
        {
            "Authorization": f"Bearer {fake.bot_token}",
            "Content-Type": f"multipart/form-data; boundary={boundary}",
        },
    )
    assert (status, body["message"]["text"]) == (200, text)
    stored = fake.messages(channel)
    assert [m["text"] for m in stored] == [text] * 3
    assert stored[0]["blocks"][0]["text"]["text"] == f"*{text}*"
    kinds = [c.content_type for c in fake.calls_to("chat.postMessage")]
    assert kinds == ["application/json", "application/x-www-form-urlencoded", "multipart/form-data"]


# --------------------------------------------------------------------------- views


def test_views_publish_stores_home_tab(fake: FakeSlack, client: WebClient) -> None:
    """views.publish stores a home view per user; republishing keeps its id; stale hash fails."""
    uid = fake.add_user("home@example.com")
    first = client.views_publish(user_id=uid, view={"type": "home", "blocks": [section("v1")]})
    assert first["view"]["type"] == "home" and first["view"]["id"].startswith("V")
    second = client.views_publish(user_id=uid, view={"type": "home", "blocks": [section("v2")]})
    assert second["view"]["id"] == first["view"]["id"]
    (home,) = fake.views(uid)
    assert home["blocks"][0]["text"]["text"] == "v2"
    with pytest.raises(SlackApiError) as exc:
        client.views_publish(
            user_id=uid, view={"type": "home", "blocks": []}, hash=first["view"]["hash"]
        )
    assert exc.value.response["error"] == "hash_conflict"


def test_views_publish_rejects_unknown_user_and_modal_type(
    fake: FakeSlack, client: WebClient
) -> None:
    """views.publish needs a real user_id and a view of type home (invalid_arguments)."""
    uid = fake.add_user("home2@example.com")
    for kwargs in (
        {"user_id": "U0NOSUCH1", "view": {"type": "home", "blocks": []}},
        {"user_id": uid, "view": modal()},
    ):
        with pytest.raises(SlackApiError) as exc:
            client.views_publish(**kwargs)
        assert exc.value.response["error"] == "invalid_arguments"


def test_views_open_stores_modal_and_burns_trigger(fake: FakeSlack, client: WebClient) -> None:
    """views.open stores the modal for the trigger's user; a trigger_id works only once."""
    uid = fake.add_user("modal@example.com")
    trigger = fake.new_trigger_id(uid)
    view = client.views_open(trigger_id=trigger, view=modal(callback_id="renewal"))["view"]
    assert view["callback_id"] == "renewal"
    assert view["root_view_id"] == view["id"]
    assert [v["id"] for v in fake.views(uid)] == [view["id"]]
    with pytest.raises(SlackApiError) as exc:
        client.views_open(trigger_id=trigger, view=modal())
    assert exc.value.response["error"] == "exchanged_trigger_id"


def test_views_open_trigger_expiry_and_strict_mode() -> None:
    """Issued triggers expire after 3 s; strict mode refuses triggers the fake never issued."""
    clock = FakeClock()
    with FakeSlack(clock=clock, strict_triggers=True) as strict:
        client = WebClient(token=strict.bot_token, base_url=strict.api_url)
        trigger = strict.new_trigger_id()
        clock.advance(3.5)
        with pytest.raises(SlackApiError) as exc:
            client.views_open(trigger_id=trigger, view=modal())
        assert exc.value.response["error"] == "expired_trigger_id"
        with pytest.raises(SlackApiError) as exc:
            client.views_open(trigger_id="123.456.abcdef", view=modal())
        assert exc.value.response["error"] == "invalid_trigger_id"


@pytest.mark.parametrize(
    ("view", "pointer"),
    [
        (modal(title="x" * 25), "/view/title/text"),
        (modal(callback_id="c" * 256), "/view/callback_id"),
        (modal(private_metadata="m" * 3001), "/view/private_metadata"),
        ({**modal(), "blocks": [section("b")] * 101}, "/view/blocks"),
    ],
    ids=["title>24", "callback_id>255", "private_metadata>3000", "101 blocks"],
)
def test_views_open_enforces_modal_limits(
    client: WebClient, view: dict[str, Any], pointer: str
) -> None:
    """Modal limit violations answer invalid_arguments with a json-pointer message."""
    with pytest.raises(SlackApiError) as exc:
        client.views_open(trigger_id="1.2.abc", view=view)
    assert exc.value.response["error"] == "invalid_arguments"
    messages = exc.value.response["response_metadata"]["messages"]
    assert any(f"[json-pointer:{pointer}]" in m for m in messages)


def test_modal_allows_100_blocks_and_24_char_title(client: WebClient) -> None:
    """Modals accept up to 100 blocks and a 24-character title."""
    view = {**modal(title="x" * 24), "blocks": [section("b")] * 100}
    assert client.views_open(trigger_id="1.2.abc", view=view)["ok"]


def test_views_update_and_push(fake: FakeSlack, client: WebClient) -> None:
    """views.update replaces a view by id; views.push stacks up to 3 views."""
    uid = fake.add_user("stack@example.com")
    root = client.views_open(trigger_id=fake.new_trigger_id(uid), view=modal("One"))["view"]
    updated = client.views_update(view_id=root["id"], hash=root["hash"], view=modal("Uno"))
    assert updated["view"]["id"] == root["id"]
    assert fake.view(root["id"])["title"]["text"] == "Uno"
    with pytest.raises(SlackApiError) as exc:
        client.views_update(view_id=root["id"], hash=root["hash"], view=modal("Stale"))
    assert exc.value.response["error"] == "hash_conflict"
    for title in ("Two", "Three"):
        pushed = client.views_push(trigger_id=fake.new_trigger_id(uid), view=modal(title))
        assert pushed["view"]["root_view_id"] == root["id"]
    with pytest.raises(SlackApiError) as exc:
        client.views_push(trigger_id=fake.new_trigger_id(uid), view=modal("Four"))
    assert exc.value.response["error"] == "push_limit_reached"


# --------------------------------------------------------------------------- faults & limits


def test_injected_ratelimit_surfaces_as_429_with_retry_after(
    fake: FakeSlack, client: WebClient, channel: str
) -> None:
    """An injected rate limit is HTTP 429 + Retry-After + ratelimited, then clears."""
    fake.ratelimit("chat.postMessage", retry_after=7)
    with pytest.raises(SlackApiError) as exc:
        client.chat_postMessage(channel=channel, text="x")
    resp = exc.value.response
    assert resp.status_code == 429
    assert resp.headers["Retry-After"] == "7"
    assert resp["error"] == "ratelimited"
    assert client.chat_postMessage(channel=channel, text="x")["ok"]
    assert [c.injected for c in fake.calls_to("chat.postMessage")] == ["ratelimit", None]


def test_rate_limit_retry_handler_recovers(
    fake: FakeSlack, client: WebClient, channel: str
) -> None:
    """RateLimitErrorRetryHandler honours Retry-After: one 429, one 200, one message."""
    fake.ratelimit("chat.postMessage", times=1, retry_after=1)
    client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=1))
    started = time.monotonic()
    assert client.chat_postMessage(channel=channel, text="retried")["ok"]
    assert time.monotonic() - started >= 1.0
    assert [c.status for c in fake.calls_to("chat.postMessage")] == [429, 200]
    assert [m["text"] for m in fake.messages(channel)] == ["retried"]


def test_enforced_post_message_limit_is_per_channel_per_second() -> None:
    """With a 1/s/channel limit the second post in a second is 429; others are unaffected."""
    clock = FakeClock()
    with FakeSlack(post_message_rate_limit=1, clock=clock) as limited:
        a, b = limited.add_channel("a"), limited.add_channel("b")
        client = WebClient(token=limited.bot_token, base_url=limited.api_url)
        client.chat_postMessage(channel=a, text="1")
        with pytest.raises(SlackApiError) as exc:
            client.chat_postMessage(channel=a, text="2")
        assert exc.value.response.status_code == 429
        assert exc.value.response.headers["Retry-After"] == "1"
        client.chat_postMessage(channel=b, text="other channel")
        clock.advance(1.0)
        client.chat_postMessage(channel=a, text="3")
        assert [m["text"] for m in limited.messages(a)] == ["1", "3"]


def test_injected_error_and_status(fake: FakeSlack, client: WebClient, channel: str) -> None:
    """inject_error gives a 200 ok=false body; inject_status gives a raw 5xx; both recorded."""
    fake.inject_error("chat.postMessage", "internal_error")
    fake.inject_status("*", 503)
    with pytest.raises(SlackApiError) as exc:
        client.chat_postMessage(channel=channel, text="x")
    assert (exc.value.response.status_code, exc.value.response["error"]) == (200, "internal_error")
    with pytest.raises(SlackApiError) as exc:
        client.auth_test()
    assert exc.value.response.status_code == 503
    assert [(c.method, c.status, c.injected) for c in fake.calls] == [
        ("chat.postMessage", 200, "error"),
        ("auth.test", 503, "status"),
    ]
    assert fake.messages(channel) == []


# --------------------------------------------------------------------------- response_url


def test_response_url_receiver_records_respond_payloads(fake: FakeSlack) -> None:
    """POSTs to a response_url are recorded; bad blocks are 400 and the 6th use is refused."""
    url = fake.new_response_url()
    assert url.startswith(f"{fake.url}/response/")
    webhook = WebhookClient(url)
    resp = webhook.send(text="承知しました", response_type="ephemeral")
    assert (resp.status_code, resp.body) == (200, "ok")
    assert fake.responses(url) == [{"text": "承知しました", "response_type": "ephemeral"}]
    assert webhook.send(text="x", blocks=[section("y" * 3001)]).status_code == 400
    for _ in range(4):
        assert webhook.send(text="again").status_code == 200
    assert webhook.send(text="sixth").status_code == 404
    assert len(fake.responses(url)) == 5
