"""Slack bot benchmarks, through the real Bolt app and slack_sdk against the local fake Slack.

1. ``/account`` latency: signed slash commands through ``app.dispatch()`` against a store of
   100,000 generated accounts (``connectors.demo.generate`` + ``Store.apply_sync``), for exact
   ids, Japanese and English names (kana and case variants), misspellings and misses. The time
   is the whole answer (ack + lookup + card + the POST to the response_url); the ack itself is
   measured separately in Bolt's threaded mode. Target: p99 under 100 ms.
2. 1,000 nudges posted against a fake that allows 1 message per second per channel, with
   bursts of injected 429s and a few 503s mid-run: duplicates and lost nudges are counted.

The 100,000-account store takes a few minutes to generate, so it is kept in
``$KIZUNA_BENCH_CACHE`` (default ``.kizuna/bench``) and reused while its schema is current.

    python -m bench slash_latency
"""

from __future__ import annotations

import logging
import os
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # tests.* (the fake Slack, signed requests) live in the repo

from bot.app import build_bot  # noqa: E402
from connectors.demo import _EN_STEMS, _JA_STEMS, DemoCRM, generate  # noqa: E402
from connectors.retry import RetryPolicy  # noqa: E402
from core.app import Kizuna, Rules  # noqa: E402
from core.domain import Play, PlayState, Severity, StepState, SyncBatch  # noqa: E402
from core.ledger import play_key, play_ref  # noqa: E402
from core.migrations import current  # noqa: E402
from core.store import Store  # noqa: E402
from tests.fakes.slack import FakeSlack  # noqa: E402
from tests.slack_helpers import Clock, form_request, make_settings  # noqa: E402

TOKYO = ZoneInfo("Asia/Tokyo")
TODAY = date(2026, 11, 24)  # a Tuesday
ACCOUNTS = 100_000
NUDGES = 1_000


# -- the 100,000-account store -------------------------------------------------------------------

def _records(n: int) -> Iterator[SyncBatch]:
    """Generated accounts, trimmed to what a card reads: recent activity and recent metrics."""
    recent = TODAY - timedelta(days=120)
    buffer: list[Any] = []
    for demo in generate(n, seed=7, today=TODAY, weeks=8):
        activities = sorted(demo.activities, key=lambda a: a.occurred_at, reverse=True)[:4]
        metrics = [m for m in demo.metrics if m.period >= recent]
        buffer += [demo.account, *demo.contacts[:1], *activities, *metrics]
        if len(buffer) >= 5000:
            yield SyncBatch("records", tuple(buffer))
            buffer = []
    yield SyncBatch("records", tuple(buffer), cursor=datetime(2026, 11, 24).isoformat())


def big_store() -> tuple[Store, float | None]:
    cache = Path(os.environ.get("KIZUNA_BENCH_CACHE", ROOT / ".kizuna" / "bench"))
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"accounts-{ACCOUNTS}.db"
    if path.exists():
        store = Store.open(f"sqlite:///{path}", migrate=False)
        if current(store.engine) == _head() and store.account_count("demo") == ACCOUNTS:
            return store, None
        store.close()
        path.unlink()
    started = time.perf_counter()
    store = Store.open(f"sqlite:///{path}")
    store.apply_sync("demo", _records(ACCOUNTS))
    return store, time.perf_counter() - started


def _head() -> str:
    from alembic.script import ScriptDirectory

    from core.migrations import alembic_config

    return ScriptDirectory.from_config(alembic_config()).get_current_head() or ""


def _queries(rng: random.Random) -> list[tuple[str, str]]:
    to_katakana = {c: c + 0x60 for c in range(0x3041, 0x3097)}
    out: list[tuple[str, str]] = []
    for _ in range(80):
        out.append(("crm id", f"ACC-{rng.randint(1, ACCOUNTS):05d}"))
        stem = rng.choice(_JA_STEMS)
        out.append(("japanese name", stem))
        out.append(("katakana/width variant", stem.translate(to_katakana)))
        en = rng.choice(_EN_STEMS)
        out.append(("english name, any case", f"{en.upper()} {rng.randint(2, 1200)}"))
        typo = list(en)
        del typo[rng.randrange(1, len(typo) - 1)]
        out.append(("misspelt (fuzzy)", "".join(typo)))
        out.append(("no match", f"zq{rng.randint(0, 99)}xv qqq"))
    rng.shuffle(out)
    return out


def _percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def slash_latency() -> None:
    store, built = big_store()
    print(f"store: {store.account_count('demo'):,} accounts "
          + (f"(built in {built:.0f} s)" if built else "(cached)"), flush=True)
    with FakeSlack() as fake, tempfile.TemporaryDirectory() as folder:
        user = fake.add_user("sato.hanako@example.com")
        settings = make_settings(fake, data_dir=Path(folder))
        clock = Clock(datetime(2026, 11, 24, 10, tzinfo=TOKYO))
        kizuna = Kizuna(settings, Rules.load(settings), store, _NameOnly(), clock=clock)
        full = build_bot(settings, kizuna, clock=clock, process_before_response=True).app
        workers = ThreadPoolExecutor(max_workers=8)
        threaded = build_bot(settings, kizuna, clock=clock, listener_executor=workers).app

        def slash(app: Any, text: str) -> float:
            fields = {"command": "/account", "text": text, "user_id": user,
                      "channel_id": "C0BENCH", "team_id": fake.team_id,
                      "response_url": fake.new_response_url(),
                      "trigger_id": fake.new_trigger_id(user)}
            request = form_request(fields)
            started = time.perf_counter()
            response = app.dispatch(request)
            elapsed = time.perf_counter() - started
            assert response.status == 200, response.body
            return elapsed * 1000

        queries = _queries(random.Random(11))
        for _, text in queries[:12]:  # warm caches and connections
            slash(full, text)
        by_kind: dict[str, list[float]] = {}
        for kind, text in queries:
            by_kind.setdefault(kind, []).append(slash(full, text))
        everything = [ms for values in by_kind.values() for ms in values]
        print(f"/account through app.dispatch(), whole answer, {len(everything)} requests:")
        for kind, values in by_kind.items():
            print(f"  {kind:24} p50 {statistics.median(values):6.1f} ms   "
                  f"p99 {_percentile(values, 99):6.1f} ms")
        print(f"  {'all':24} p50 {statistics.median(everything):6.1f} ms   "
              f"p99 {_percentile(everything, 99):6.1f} ms   (target p99 < 100 ms)")
        acks = [slash(threaded, text) for _, text in queries[:120]]
        workers.shutdown(wait=True)  # the answers after those acks, before the fake closes
        print(f"  ack only (threaded mode)  p50 {statistics.median(acks):6.1f} ms   "
              f"p99 {_percentile(acks, 99):6.1f} ms   (Slack's limit 3,000 ms)", flush=True)
    store.close()


class _NameOnly:
    """The CRM is not called by /account; only the source name is needed."""

    name = "demo"


# -- 1,000 nudges under rate limits --------------------------------------------------------------

def rate_limited_nudges() -> None:
    now = [1_790_000_000.0]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds  # the fake's clock: no real waiting

    with FakeSlack(post_message_rate_limit=1, clock=lambda: now[0]) as fake, \
            tempfile.TemporaryDirectory() as folder:
        owners = [f"csm{i:02d}@example.com" for i in range(10)]
        for email in owners:
            fake.add_user(email)
        settings = make_settings(fake, data_dir=Path(folder),
                                 slack={"daily_cap": None, "low_severity_to_digest": False})
        store = Store.open(f"sqlite:///{Path(folder) / 'kizuna.db'}")
        crm = DemoCRM(Path(folder) / "demo.json", accounts=3, today=TODAY)
        clock = Clock(datetime(2026, 11, 24, 10, tzinfo=TOKYO))
        kizuna = Kizuna(settings, Rules.load(settings), store, crm, clock=clock)
        bot = build_bot(settings, kizuna, clock=clock, process_before_response=True,
                        retry=RetryPolicy(attempts=8, max_total_wait=120, sleep=sleep))
        _seed_plays(store, kizuna, owners)
        fake.ratelimit("chat.postMessage", times=25, retry_after=3)
        started = time.perf_counter()
        passes = [kizuna.deliver()]  # each pass is what one scheduler tick does
        fake.inject_status("chat.postMessage", 503, times=5)
        while kizuna.ledger.plays("demo", nudge_state=StepState.PENDING) and len(passes) < 10:
            passes.append(kizuna.deliver())
        wall = time.perf_counter() - started
        posted = Counter(c.args["metadata"]["event_payload"]["ref"]
                         for c in fake.calls_to("chat.postMessage")
                         if c.ok and (c.args.get("metadata") or {}).get("event_type") ==
                         "kizuna_nudge")
        plays = kizuna.ledger.plays("demo")
        stored = Counter(m["metadata"]["event_payload"]["ref"] for email in owners
                         for m in fake.messages(fake.dm_channel_id(
                             bot.owners.user_id(email)) or email) if m.get("metadata"))
        lost = [p.ref for p in plays if posted[p.ref] == 0 or p.nudge_state != StepState.DONE]
        duplicates = sum(n - 1 for n in stored.values() if n > 1)
        statuses = Counter(c.status for c in fake.calls_to("chat.postMessage"))
        print(f"{len(plays):,} nudges to {len(owners)} CSMs, 1 msg/s per channel, "
              f"25 injected 429s (Retry-After 3 s), 5 injected 503s:")
        print(f"  posted {sum(1 for p in plays if posted[p.ref])}, duplicates {duplicates}, "
              f"lost {len(lost)}")
        print(f"  HTTP 429 answers {statuses[429]}, 503 answers {statuses[503]}, "
              f"waits honoured {len(waits)} ({sum(waits):,.0f} s of Slack time), "
              f"history look-ups {len(fake.calls_to('conversations.history'))}")
        print(f"  ticks until nothing was pending: {len(passes)} (nudges left pending per "
              f"tick: {' → '.join(str(len(d.errors)) for d in passes)})")
        print(f"  wall {wall:.1f} s", flush=True)
        assert duplicates == 0 and not lost, (duplicates, lost[:5])
        store.close()


def _seed_plays(store: Store, kizuna: Kizuna, owners: list[str]) -> None:
    """1,000 generated accounts spread over 10 CSMs, one open play each, nudge pending."""
    accounts = [replace(demo.account, owner_email=owners[i % len(owners)])
                for i, demo in enumerate(generate(NUDGES, seed=3, today=TODAY, weeks=1))]
    store.apply_sync("demo", [SyncBatch("records", tuple(accounts))])
    plays = []
    for i, account in enumerate(accounts):
        key = play_key("bench_nudge", "demo", account.crm_id, 1)
        plays.append(Play(
            key=key, ref=play_ref(key), playbook_id="bench_nudge", variant=None, source="demo",
            account_id=account.crm_id, episode=1,
            severity=(Severity.HIGH, Severity.MEDIUM, Severity.LOW)[i % 3],
            state=PlayState.OPEN, opened_on=TODAY, due_on=TODAY + timedelta(days=i % 9),
            title={"ja": "ベンチマーク", "en": "Benchmark"},
            reason={"ja": f"{account.name} の確認", "en": f"Check {account.name}"},
            evidence={"facts": {"usage_30d": i}}, task_state=StepState.SKIPPED,
            nudge_state=StepState.PENDING))
    kizuna.ledger.insert(plays)


def main() -> None:
    for name in ("connectors.retry", "bot", "bot.bolt"):  # expected retries, not news here
        logging.getLogger(name).setLevel(logging.ERROR)
    slash_latency()
    rate_limited_nudges()


if __name__ == "__main__":
    main()
