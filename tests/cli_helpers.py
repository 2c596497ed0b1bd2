"""Run the real `kizuna` command in a subprocess, in a folder of the test's own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def kizuna(cwd: Path, *args: str, env: dict[str, str] | None = None,
           timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``kizuna ARGS`` with a clean environment: no secrets or settings from the caller."""
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("KIZUNA_", "SLACK_", "SALESFORCE_", "HUBSPOT_"))}
    base.update({"PYTHONPATH": str(ROOT), "COLUMNS": "200", "NO_COLOR": "1",
                 "KIZUNA_DATABASE_URL": f"sqlite:///{cwd}/.kizuna/kizuna.db"})
    base.update(env or {})
    return subprocess.run([sys.executable, "-m", "core.cli", *args], cwd=cwd, env=base,
                          capture_output=True, text=True, timeout=timeout, check=False)
