"""Crash points for the crash-safety tests.

``KIZUNA_CRASH_AT=<point>[:<n>]`` kills the process with SIGKILL — no clean-up, no commit, like
a power cut — the n-th time (default first) execution reaches ``crash_point(<point>)``. Unset, a
crash point costs one dictionary look-up. Points: ``after_sync``, ``mid_evaluation``,
``before_ledger_commit``, ``after_task_created``, ``after_nudge_sent``.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

_seen: Counter[str] = Counter()


def crash_point(name: str) -> None:
    target = os.environ.get("KIZUNA_CRASH_AT")
    if not target:
        return
    point, _, nth = target.partition(":")
    if point != name:
        return
    _seen[name] += 1
    if _seen[name] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
