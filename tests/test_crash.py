"""Crash safety: a tick killed at any point, then run again, delivers every play exactly once.

A child process runs `kizuna tick` against local Salesforce and Slack fakes and is killed with
SIGKILL at a crash point (``KIZUNA_CRASH_AT``); a fresh process then completes. The fakes'
records must show exactly one CRM Task and one Slack message per play, and no play lost.
Runs on SQLite and, when ``KIZUNA_TEST_POSTGRES_URL`` is set, on PostgreSQL.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.domain import PlayState
from core.ledger import Ledger
from core.store import Store
from tests.cli_helpers import kizuna
from tests.fakes.salesforce import FakeSalesforce
from tests.fakes.slack import FakeSlack

CSMS = ("sato.hanako@example.com", "emily.clark@example.com")
ACCOUNTS = 6
REF = re.compile(r"kz-[0-9a-f]{16}")

CONFIG = """\
crm: salesforce
salesforce:
  usage:
    account_fields:
      form_impressions: Form_Impressions_30d__c
slack:
  quiet_hours: null
  work_days: [mon, tue, wed, thu, fri, sat, sun]
  daily_cap: null
  low_severity_to_digest: false
"""


@pytest.fixture
def world(tmp_path: Path, database_url: str) -> Iterator[tuple[FakeSalesforce, FakeSlack, dict]]:
    with FakeSalesforce() as sf, FakeSlack() as slack:
        sf.define("Account", {"Form_Impressions_30d__c": "double"})
        owners = [sf.add("User", Username=e, Email=e, LastName=e.split(".")[0]) for e in CSMS]
        for i in range(ACCOUNTS):
            sf.add("Account", Name=f"株式会社クラッシュ{i}", OwnerId=owners[i % 2],
                   Form_Impressions_30d__c=100.0 + i)
        for email in CSMS:
            slack.add_user(email)
        (tmp_path / "kizuna.yaml").write_text(CONFIG, encoding="utf-8")
        env = {"KIZUNA_CONFIG": str(tmp_path / "kizuna.yaml"), "KIZUNA_DATABASE_URL": database_url,
               "SALESFORCE_INSTANCE_URL": sf.url, "SALESFORCE_SESSION_ID": sf.session_id,
               "SLACK_BOT_TOKEN": slack.bot_token, "SLACK_API_URL": slack.api_url}
        yield sf, slack, env


def task_refs(sf: FakeSalesforce) -> Counter[str]:
    refs: Counter[str] = Counter()
    for task in sf.records("Task", include_deleted=True):
        found = REF.search(" ".join(str(v) for v in task.values() if isinstance(v, str)))
        if found:
            refs[found.group()] += 1
    return refs


def message_refs(slack: FakeSlack) -> Counter[str]:
    refs: Counter[str] = Counter()
    for call in slack.calls_to("chat.postMessage"):
        if call.ok:
            found = REF.search(str(call.args.get("metadata")) + str(call.args.get("blocks")))
            if found:
                refs[found.group()] += 1
    return refs


@pytest.mark.parametrize("crash_at", [
    "after_sync", "mid_evaluation:3", "before_ledger_commit", "after_task_created:2",
    "after_nudge_sent:2",
])
def test_killed_tick_then_rerun_delivers_each_play_once(
        tmp_path: Path, world: tuple[FakeSalesforce, FakeSlack, dict], crash_at: str) -> None:
    """Kill at the crash point, run again: one Task and one message per play, none lost."""
    sf, slack, env = world
    crashed = kizuna(tmp_path, "tick", env={**env, "KIZUNA_CRASH_AT": crash_at})
    assert crashed.returncode == -9, crashed.stdout + crashed.stderr
    finished = kizuna(tmp_path, "tick", env=env)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    again = kizuna(tmp_path, "tick", env=env)
    assert again.returncode == 0, again.stderr

    store = Store.open(env["KIZUNA_DATABASE_URL"])
    plays = Ledger(store).plays("salesforce", states=[PlayState.OPEN])
    store.close()
    assert len(plays) >= ACCOUNTS
    tasks, messages = task_refs(sf), message_refs(slack)
    assert set(tasks) == {p.ref for p in plays} and set(tasks.values()) == {1}
    assert set(messages) == {p.ref for p in plays} and set(messages.values()) == {1}
    assert {str(p.task_state) for p in plays} == {"done"}
    assert {str(p.nudge_state) for p in plays} == {"done"}
