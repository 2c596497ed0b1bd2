"""The connector protocol and the registry that picks one by name.

A connector reads its CRM in bulk and incrementally (``pull`` with a cursor per stream) and
writes tasks back (``create_task``, idempotent on the task's ``ref``). Playbooks and the bot never
see vendor records: connectors convert them into ``core.domain`` records.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import Any, Protocol, runtime_checkable

from core.config import Settings
from core.domain import CrmTask, SyncBatch
from core.errors import ConfigError


@runtime_checkable
class Connector(Protocol):
    name: str

    def check(self) -> None:
        """Verify credentials and field mapping before anything is written; raise if wrong."""

    def pull(self, cursors: Mapping[str, str]) -> Iterator[SyncBatch]:
        """Yield every record changed since ``cursors`` (all records for a missing cursor)."""

    def create_task(self, task: CrmTask) -> str:
        """Create the task, or return the id of the one already created for ``task.ref``."""

    def complete_task(self, task_id: str) -> None:
        """Mark a task Kizuna created as completed (its play closed by itself)."""

    def stats(self) -> Mapping[str, Any]:
        """API calls used by this instance and whatever headroom the CRM reports."""


#: name → "module:factory"; imported lazily so the demo needs no vendor library at start-up.
REGISTRY: dict[str, str] = {
    "demo": "connectors.demo:from_settings",
    "salesforce": "connectors.salesforce:from_settings",
    "hubspot": "connectors.hubspot:from_settings",
}


def create_connector(settings: Settings) -> Connector:
    name = settings.crm
    target = REGISTRY.get(name)
    if target is None:
        raise ConfigError(f"unknown CRM {name!r}; expected one of {', '.join(REGISTRY)}",
                          file=str(settings.config_path or "KIZUNA_CRM"), field="crm")
    module_name, _, factory = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            raise ConfigError(f"the {name} connector is not available in this version",
                              field="crm") from exc
        raise
    return getattr(module, factory)(settings)
