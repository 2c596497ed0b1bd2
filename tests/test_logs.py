"""Logs: JSON lines when asked, and secrets never printed."""

from __future__ import annotations

import json
import logging

from core.logs import JsonFormatter, Redactor


def test_secret_values_are_redacted() -> None:
    """A token that slips into a message is replaced before any handler writes it."""
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "auth failed for %s",
                               ("xoxb-123456-secret",), None)
    Redactor(["xoxb-123456-secret"]).filter(record)
    assert record.getMessage() == "auth failed for ***"


def test_json_lines() -> None:
    """Each record becomes one JSON object with time, level, logger and message."""
    record = logging.LogRecord("kizuna.sync", logging.WARNING, __file__, 1, "synced %d", (3,),
                               None)
    entry = json.loads(JsonFormatter().format(record))
    assert entry["level"] == "warning" and entry["message"] == "synced 3"
    assert entry["logger"] == "kizuna.sync" and entry["time"].endswith("+00:00")
