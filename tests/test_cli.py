"""The `kizuna` command as a newcomer runs it: demo twice, dry run, account look-ups."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli_helpers import kizuna


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cwd = tmp_path_factory.mktemp("demo")
    first = kizuna(cwd, "demo")
    assert first.returncode == 0, first.stderr
    (cwd / "first.out").write_text(first.stdout, encoding="utf-8")
    return cwd


def test_demo_shows_nudges_tasks_and_drafts_for_several_csms(demo_dir: Path) -> None:
    """The first demo run prints, per CSM, Slack nudges, created CRM tasks and a drafted email."""
    out = (demo_dir / "first.out").read_text(encoding="utf-8")
    for csm in ("sato.hanako@example.com", "tanaka.kenji@example.com",
                "emily.clark@example.com", "yamamoto.yui@example.com"):
        assert csm in out
    assert out.count("Slack DM") >= 4
    assert "CRM task TSK-" in out
    assert "Drafted email" in out and "いつもお世話になっております。" in out


def test_demo_second_run_creates_nothing(demo_dir: Path) -> None:
    """Running the demo again reports no new tasks or nudges."""
    again = kizuna(demo_dir, "demo")
    assert again.returncode == 0, again.stderr
    assert "No new tasks or nudges" in again.stdout
    assert "CRM task TSK-" not in again.stdout


def test_dry_run_json_lists_plays_with_reason_and_evidence(demo_dir: Path) -> None:
    """`check --dry-run --json` names account, playbook, reason and the evidence numbers."""
    result = kizuna(demo_dir, "check", "--dry-run", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["accounts"] == 80
    play = next(p for p in data["plays"] if p["playbook_id"] == "low_form_impressions")
    assert play["account_name"] and play["reason"]["ja"] and play["reason"]["en"]
    assert isinstance(play["evidence"]["facts"]["usage_30d"], int | float)
    assert data["skipped"]["low_form_impressions"]  # accounts without usage data say so


@pytest.mark.parametrize(("query", "name"), [
    ("さくら", "株式会社さくらウェブ制作"),
    ("サクラウェブ", "株式会社さくらウェブ制作"),
    ("northwind", "Northwind Digital"),
    ("ＮＯＲＴＨＷＩＮＤ", "Northwind Digital"),
    ("ACC-00002", "Northwind Digital"),
])
def test_account_card_finds_by_part_of_name(demo_dir: Path, query: str, name: str) -> None:
    """`kizuna account` matches Japanese or English, ignoring case, width and kana type."""
    result = kizuna(demo_dir, "account", query, "--json")
    assert result.returncode == 0, result.stderr
    card = json.loads(result.stdout)
    assert card["name"].startswith(name)
    assert card["health"]["score"] is not None and card["portfolio"]["cell"]
    assert card["owner"].endswith("@example.com")


def test_account_card_text(demo_dir: Path) -> None:
    """The text card shows health with its explanation, the portfolio cell and open plays."""
    result = kizuna(demo_dir, "account", "Northwind")
    assert result.returncode == 0, result.stderr
    for label in ("Health:", "Portfolio:", "Last touch:", "Renewal:", "Open plays"):
        assert label in result.stdout


def test_unknown_account_is_a_helpful_miss(demo_dir: Path) -> None:
    """No match exits 1 with a hint instead of an empty card."""
    result = kizuna(demo_dir, "account", "zzzz-no-such-company")
    assert result.returncode == 1
    assert "No account matches" in result.stderr


def test_demo_reset_never_deletes_real_crm_data(tmp_path: Path) -> None:
    """`demo --reset` refuses when the store also mirrors a real CRM."""
    from core.domain import Account, SyncBatch
    from core.store import Store

    store = Store.open(f"sqlite:///{tmp_path}/.kizuna/kizuna.db")
    store.apply_sync("salesforce", [SyncBatch("Account", (Account(
        source="salesforce", crm_id="001A", name="Real Customer"),))])
    store.close()
    result = kizuna(tmp_path, "demo", "--reset")
    assert result.returncode == 2
    assert "also holds salesforce data" in result.stderr
    assert (tmp_path / ".kizuna" / "kizuna.db").exists()
