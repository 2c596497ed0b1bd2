"""Slash commands through signed requests: /account, /kizuna, signatures, answers during a sync."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from connectors.demo import OWNERS, DemoCRM
from core.app import Kizuna
from core.domain import SyncBatch
from tests.fakes.slack import FakeSlack, validate_blocks
from tests.slack_helpers import SECRET, Rig, button_of, form_request, make_rig


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as server:
        yield server


@pytest.fixture
def rig(tmp_path: Path, fake: FakeSlack) -> Rig:
    return make_rig(tmp_path, fake)


@pytest.fixture(scope="module")
def reader(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    """One rig shared by the tests that only read (lookups change nothing)."""
    with FakeSlack() as server:
        yield make_rig(tmp_path_factory.mktemp("reader"), server)


def csm(rig: Rig) -> str:
    return rig.users[OWNERS[0][0]]


def answer(rig: Rig, command: str, text: str, user: str | None = None) -> dict[str, Any]:
    response, url = rig.slash(command, text, user=user or csm(rig))
    assert response.status == 200 and response.body == ""  # acknowledged, nothing shown yet
    (reply,) = rig.fake.responses(url)
    assert reply["response_type"] == "ephemeral"
    assert validate_blocks(reply["blocks"]) == []
    return reply


def names(rig: Rig) -> dict[str, str]:
    return {a.crm_id: a.name for a in rig.store.accounts_by_ids(
        "demo", [f"ACC-{i:05d}" for i in range(1, 25)]).values()}


@pytest.mark.parametrize("query", ["さくらウェブ", "サクラウェブ", "ｻｸﾗｳｪﾌﾞ", "ACC-00001"])
def test_account_finds_japanese_names_across_kana_and_width(reader: Rig, query: str) -> None:
    """Hiragana, katakana, half-width katakana and the CRM id all find the account card."""
    reply = answer(reader, "/account", query)
    assert reply["blocks"][0]["text"]["text"] == "株式会社さくらウェブ制作 (ACC-00001)"
    assert any(b["type"] == "section" and "fields" in b for b in reply["blocks"])


@pytest.mark.parametrize("query", ["NORTHWIND", "ｎｏｒｔｈｗｉｎｄ ｄｉｇｉｔａｌ",
                                   "Nortwind Digtal"])
def test_account_finds_english_names_ignoring_case_width_and_typos(reader: Rig, query: str) -> None:
    """Upper case, full-width letters and a misspelling reach Northwind Digital."""
    reply = answer(reader, "/account", query)
    assert reply["blocks"][0]["text"]["text"].startswith("Northwind Digital")


def test_card_lists_open_plays_with_open_buttons(rig: Rig) -> None:
    """After a tick the card shows the account's open plays, each with an *Open* button."""
    rig.kizuna.tick(sync=False)
    play = rig.kizuna.ledger.plays("demo")[0]
    reply = answer(rig, "/account", play.account_id)
    assert button_of(reply, "play_open")["value"] in {
        p.ref for p in rig.kizuna.ledger.plays("demo", account_id=play.account_id)}


def test_several_matches_give_a_pick_list_and_picking_shows_the_card(reader: Rig) -> None:
    """A vague query lists a few accounts; *Show* replaces the list with that card."""
    reply = answer(reader, "/account", "a")
    picks = [b["accessory"]["value"] for b in reply["blocks"] if b.get("accessory")]
    assert 1 < len(picks) <= 10
    _, url = reader.click({"action_id": "account_pick", "type": "button",
                               "value": picks[1]}, user=csm(reader), channel="C0CMD",
                              ephemeral=True)
    (card,) = reader.fake.responses(url)
    assert card["replace_original"] is True
    assert card["blocks"][0]["text"]["text"] == f"{names(reader)[picks[1]]} ({picks[1]})"


def test_no_match_and_empty_query_get_helpful_replies(reader: Rig) -> None:
    """Nothing found names the query and what works; an empty query explains the command."""
    assert "qqqzzzxxx" in answer(reader, "/account", "qqqzzzxxx")["text"]
    assert "/account" in answer(reader, "/account", "  ")["text"]


def test_hostile_query_is_escaped_in_the_reply(reader: Rig) -> None:
    """A query like <!channel> is echoed as text, never as a mention."""
    reply = answer(reader, "/account", "<!channel>")
    assert "<!channel>" not in str(reply) and "&lt;!channel&gt;" in reply["text"]


def test_forged_and_stale_signatures_are_rejected(reader: Rig) -> None:
    """A wrong secret or a 10-minute-old timestamp gets 401 and runs no listener."""
    url = reader.fake.new_response_url()
    fields = {"command": "/account", "text": "さくら", "user_id": csm(reader),
              "response_url": url, "team_id": reader.fake.team_id, "channel_id": "C0CMD"}
    forged = reader.dispatch(form_request(fields, secret="not-" + SECRET))
    stale = reader.dispatch(form_request(fields, timestamp=int(time.time()) - 600))
    assert (forged.status, stale.status) == (401, 401)
    assert reader.fake.responses(url) == []
    assert reader.dispatch(form_request(fields)).status == 200
    assert len(reader.fake.responses(url)) == 1


def test_kizuna_help_and_unknown_subcommand(reader: Rig) -> None:
    """`/kizuna help` explains the commands; an unknown word says so and shows the help."""
    assert "/kizuna due" in answer(reader, "/kizuna", "help")["text"]
    reply = answer(reader, "/kizuna", "frobnicate <@U1>")
    assert "frobnicate" in reply["text"] and "<@U1>" not in reply["text"]


def test_kizuna_due_and_snoozed_list_my_plays(rig: Rig) -> None:
    """`/kizuna due` lists the caller's open plays by due date; snoozed ones move lists."""
    rig.kizuna.tick(sync=False)
    email = OWNERS[0][0]
    mine = rig.kizuna.ledger.owner_plays("demo", email)
    reply = answer(rig, "/kizuna", "due")
    listed = [b["accessory"]["value"] for b in reply["blocks"] if b.get("accessory")]
    assert listed == [p.ref for p in mine][:20]
    rig.kizuna.snooze(mine[0].key, mine[0].due_on.replace(year=2027), "slack:U1")
    snoozed = answer(rig, "/kizuna", "snoozed")
    assert [b["accessory"]["value"] for b in snoozed["blocks"] if b.get("accessory")] == \
        [mine[0].ref]
    assert mine[0].ref not in str(answer(rig, "/kizuna", "due"))


def test_kizuna_due_for_someone_who_owns_nothing(rig: Rig) -> None:
    """A Slack user who is not a CRM owner gets an explanation, not an empty list."""
    stranger = rig.fake.add_user("stranger@example.org")
    assert "slack.users" in answer(rig, "/kizuna", "due", user=stranger)["text"]


class PausingCRM:
    """The demo CRM, but its pull stops half-way until released: a sync that is running."""

    name = "demo"

    def __init__(self, crm: DemoCRM) -> None:
        self.crm = crm
        self.inside = threading.Event()
        self.release = threading.Event()

    def check(self) -> None:
        return None

    def pull(self, cursors: Mapping[str, str]) -> Iterator[SyncBatch]:
        batches = self.crm.pull({})
        yield next(batches)
        self.inside.set()
        self.release.wait(30)
        yield from batches

    def create_task(self, task: Any) -> str:
        return self.crm.create_task(task)

    def complete_task(self, task_id: str) -> None:
        self.crm.complete_task(task_id)

    def stats(self) -> Mapping[str, Any]:
        return {}


def test_account_answers_while_a_sync_is_writing(rig: Rig) -> None:
    """With a sync's write transaction open, /account still acks and answers from the store."""
    crm = PausingCRM(rig.crm)
    syncing = Kizuna(rig.kizuna.settings, rig.kizuna.rules, rig.store, crm, clock=rig.clock)
    sync = threading.Thread(target=syncing.sync)
    sync.start()
    try:
        assert crm.inside.wait(30)
        done: list[dict[str, Any]] = []
        asker = threading.Thread(target=lambda: done.append(answer(rig, "/account", "さくら")))
        asker.start()
        asker.join(20)
        assert done and sync.is_alive(), "the answer waited for the sync"
        assert "さくらウェブ制作" in done[0]["blocks"][0]["text"]["text"]
    finally:
        crm.release.set()
        sync.join(30)


def test_large_store_lookups_agree_with_the_store_search(tmp_path: Path) -> None:
    """From 5,000 accounts names are searched in memory, with the store's matches and order."""
    from rapidfuzz import fuzz, process

    from core.app import NameIndex, Rules
    from core.domain import Account
    from core.store import Store
    from core.text import search_key
    from tests.slack_helpers import make_settings

    stems = ["さくらウェブ制作", "Northwind Digital", "青空デザイン", "Lumen Media", "ひかりソフト"]
    accounts = tuple(Account(source="demo", crm_id=f"A{i:05d}",
                             name=f"{stems[i % len(stems)]} {i // len(stems)} 株式会社")
                     for i in range(NameIndex.FROM_ACCOUNTS + 10))
    store = Store.open(f"sqlite:///{tmp_path / 'big.db'}")
    store.apply_sync("demo", [SyncBatch("records", accounts)])
    with FakeSlack() as fake:
        settings = make_settings(fake, data_dir=tmp_path)
    kizuna = Kizuna(settings, Rules.load(settings), store, PausingCRM(DemoCRM(
        tmp_path / "d.json", accounts=1)))
    for query in ("サクラウェブ", "northwind 12", "ﾋｶﾘｿﾌﾄ 99", "青空"):
        found = [a.crm_id for a in kizuna.find_accounts(query)]
        assert found == [a.crm_id for a in store.search_accounts("demo", query, limit=5)]
        assert found
    assert kizuna._names is not None and len(kizuna._names.ids) == len(accounts)
    names = dict(store.account_names("demo"))
    expected = process.extract(search_key("Nortwind Digtal 7"), names, scorer=fuzz.WRatio,
                               limit=5, score_cutoff=70)
    found = [a.crm_id for a in kizuna.find_accounts("Nortwind Digtal 7")]
    assert found[0] == expected[0][2] and set(found) <= set(names)
    assert kizuna.find_accounts("qqqzzzxxx") == []
