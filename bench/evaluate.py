"""Score + segment + evaluate 100,000 generated accounts on one core.

Target (issue #2): the whole evaluation under 3 s and under 1 GB. Signals are built from the
demo generator in memory first (not timed); the timed part is exactly what a tick runs per
account: facts → health scorecard → portfolio placement → every playbook's condition.

    make bench            # all benchmarks
    .venv/bin/python -m bench evaluate
"""

from __future__ import annotations

import gc
import os
import resource
import time
from datetime import date

from connectors.demo import USAGE_METRIC, generate
from core.config import Environment, KizunaConfig, Settings
from core.domain import CONTACT_KINDS, AccountSignals, ActivityKind
from core.render import Renderer
from playbooks.catalog import load_playbooks
from playbooks.engine import Evaluator

N = int(os.environ.get("KIZUNA_BENCH_ACCOUNTS", "100000"))
TODAY = date(2026, 11, 23)


def signals(n: int) -> list[AccountSignals]:
    out = []
    for demo in generate(n, seed=1, today=TODAY, weeks=12):
        contact = [a.occurred_at for a in demo.activities if a.kind in CONTACT_KINDS]
        qbr = [a.occurred_at for a in demo.activities if a.kind == ActivityKind.QBR]
        usage = tuple((m.period, m.value) for m in demo.metrics if m.metric == USAGE_METRIC)
        latest: dict[str, tuple[date, float]] = {}
        for m in demo.metrics:
            if m.metric != USAGE_METRIC and (m.metric not in latest
                                             or latest[m.metric][0] < m.period):
                latest[m.metric] = (m.period, m.value)
        score = 40.0 + (hash(demo.account.crm_id) % 50)
        out.append(AccountSignals(
            account=demo.account, last_contact_at=max(contact, default=None),
            last_qbr_at=max(qbr, default=None), usage=usage,
            metrics={k: v for k, (_, v) in latest.items()},
            previous_health=score, peak_health_14d=score + 5))
    return out


def main() -> None:
    started = time.perf_counter()
    data = signals(N)
    print(f"   generated {len(data):,} accounts' signals in {time.perf_counter() - started:.1f} s")
    settings = Settings(KizunaConfig(), Environment(), None)
    playbooks = load_playbooks(Renderer())
    evaluator = Evaluator(settings.config, playbooks)
    gc.collect()
    fired = skipped = 0
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    for ev in evaluator.evaluate_all(data, TODAY):
        fired += len(ev.fired)
        skipped += len(ev.skipped)
    cpu = time.process_time() - cpu0
    wall = time.perf_counter() - t0
    checks = len(data) * len(playbooks)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"   evaluated {len(data):,} accounts × {len(playbooks)} playbooks in {wall:.2f} s wall "
          f"({cpu:.2f} s CPU, one core)")
    print(f"   {len(data) / wall:,.0f} accounts/s, {checks / wall:,.0f} playbook checks/s; "
          f"{fired:,} plays fired, {skipped:,} skipped for missing data")
    print(f"   peak memory (max RSS of the process, signals included): {peak_mb:,.0f} MB")
