"""Logging set-up: readable text on a terminal, one JSON object per line in production.

Secrets never reach the log: settings hold them as ``SecretStr``, and as a last line of defence
every record is scrubbed of the values of the secret environment variables that are set.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime

SECRET_VARIABLES = ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET",
                    "SALESFORCE_SESSION_ID", "SALESFORCE_PASSWORD", "SALESFORCE_SECURITY_TOKEN",
                    "HUBSPOT_ACCESS_TOKEN")


class Redactor(logging.Filter):
    """Replaces any secret value that appears in a log message with ``***``."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if len(s) >= 6]

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            for secret in self.secrets:
                message = message.replace(secret, "***")
            record.msg, record.args = message, None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure(*, verbose: bool = False, json_format: bool | None = None) -> None:
    """Configure the root logger once; ``KIZUNA_LOG_FORMAT=json`` selects JSON lines."""
    if json_format is None:
        json_format = os.environ.get("KIZUNA_LOG_FORMAT", "").lower() == "json"
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if json_format else logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(Redactor([os.environ[v] for v in SECRET_VARIABLES if os.environ.get(v)]))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    for noisy in ("alembic", "apscheduler.scheduler", "slack_sdk.socket_mode"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
