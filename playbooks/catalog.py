"""Loading playbooks: YAML files → validated specs → compiled ``Playbook`` objects.

Built-ins come from ``playbooks/builtin/``; an admin adds more with ``playbooks.folder`` in
kizuna.yaml. A playbook in the folder with a built-in's id replaces the built-in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, StrictBool, StrictFloat, StrictInt, StrictStr

from core.config import Localized, Strict, TouchModel
from core.domain import Severity
from core.errors import ConfigError, ConfigErrors
from core.render import Renderer
from core.yamlfile import YamlDocument, read_yaml, validate
from playbooks.conditions import Compiler, Condition
from playbooks.facts import FACTS, is_known_fact

BUILTIN = Path(__file__).resolve().parent / "builtin"
Category = Literal["usage", "contact", "renewal", "health", "lifecycle", "growth"]
ParamValue = StrictInt | StrictFloat | StrictStr | StrictBool


class AppliesTo(Strict):
    """Which accounts a playbook looks at: touch models and/or portfolio cells (all if empty)."""

    touch: list[TouchModel] | None = None
    cells: list[str] | None = None


class Actions(Strict):
    crm_task: bool = True
    email_draft: bool = True
    slack_nudge: bool = True


class VariantSpec(Strict):
    """An alternative wording chosen by its own condition (the first matching variant wins)."""

    id: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
    when: Any = None
    title: Localized | None = None
    reason: Localized | None = None
    severity: Severity | None = None


class PlaybookSpec(Strict):
    id: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]
    title: Localized
    description: Localized | None = None
    category: Category
    applies_to: AppliesTo = AppliesTo()
    params: dict[str, ParamValue] = Field(default_factory=dict)
    when: Any
    severity: Severity = Severity.MEDIUM
    due_in_days: Annotated[int, Field(ge=0, le=365, strict=True)] = 7
    cooldown_days: Annotated[int, Field(ge=0, le=3650, strict=True)] = 14
    max_per_year: Annotated[int, Field(gt=0, strict=True)] | None = None
    evidence: list[str] = Field(default_factory=list)
    reason: Localized
    variants: list[VariantSpec] = Field(default_factory=list)
    actions: Actions = Actions()
    enabled: bool = True


@dataclass(frozen=True)
class Variant:
    id: str
    condition: Condition | None
    title: Localized
    reason: Localized
    severity: Severity


class Playbook:
    """A compiled playbook: ``check(facts)`` → a Variant (fires), False, or None (unknown)."""

    def __init__(self, spec: PlaybookSpec, doc: YamlDocument) -> None:
        self.spec = spec
        self.id = spec.id
        self.file = doc.file
        self.doc = doc
        compiler = Compiler(doc, spec.params)
        self.condition = compiler.compile(spec.when, ("when",))
        self.variants: list[Variant] = []
        for i, v in enumerate(spec.variants):
            cond = compiler.compile(v.when, ("variants", i, "when")) if v.when is not None else None
            self.variants.append(Variant(v.id, cond, v.title or spec.title, v.reason or spec.reason,
                                         v.severity or spec.severity))
        self.default = Variant("default", None, spec.title, spec.reason, spec.severity)
        self.referenced = frozenset(compiler.facts)
        for i, name in enumerate(spec.evidence):
            if not is_known_fact(name):
                raise doc.error(f"unknown fact {name!r}", ("evidence", i))
        self.touch = frozenset(spec.applies_to.touch) if spec.applies_to.touch else None
        self.cells = frozenset(spec.applies_to.cells) if spec.applies_to.cells else None

    def applies(self, touch: str, cell: str) -> bool:
        return ((self.touch is None or touch in self.touch)
                and (self.cells is None or cell in self.cells))

    def check(self, facts: Mapping[str, Any]) -> Variant | bool | None:
        result = self.condition(facts)
        if not result:
            return result
        for v in self.variants:
            if v.condition is None or v.condition(facts):
                return v
        return self.default

    def missing(self, facts: Mapping[str, Any]) -> list[str]:
        """Referenced facts this account lacks: why the playbook was skipped."""
        return sorted(name for name in self.referenced if facts.get(name) is None)

    def line_of(self, *loc: str | int) -> int | None:
        return self.doc.line_of(loc)


def sample_facts() -> dict[str, Any]:
    """Plausible values for every fact, for checking templates before anything runs."""
    sample: dict[str, Any] = {name: 10 for name in FACTS}
    sample.update(health_band="yellow", potential_band="high", engagement="active",
                  cell="high.active", touch="high_touch", language="ja",
                  lifecycle_stage="customer", industry="SaaS", usage_drop_pct=55.0,
                  has_contact=True, has_qbr=True)
    return sample


def reason_context(facts: Mapping[str, Any], params: Mapping[str, Any],
                   account_name: str) -> dict[str, Any]:
    """What a reason template may use: facts by name, ``metric``/``custom`` maps, params."""
    ctx: dict[str, Any] = {k: v for k, v in facts.items() if "." not in k}
    ctx["metric"] = {k[7:]: v for k, v in facts.items() if k.startswith("metric.")}
    ctx["custom"] = {k[7:]: v for k, v in facts.items() if k.startswith("custom.")}
    ctx["params"] = dict(params)
    ctx["account_name"] = account_name
    return ctx


def _check_reasons(pb: Playbook, renderer: Renderer) -> None:
    ctx = reason_context(sample_facts(), pb.spec.params, "Acme")
    texts = [(("reason",), pb.spec.reason)] + [
        (("variants", i, "reason"), v.reason) for i, v in enumerate(pb.spec.variants) if v.reason]
    for loc, localized in texts:
        for lang in ("ja", "en"):
            renderer.render_string(getattr(localized, lang), ctx, file=pb.file,
                                   line=pb.line_of(*loc, lang), field=".".join(
                                       str(p) for p in (*loc, lang)))


def load_file(path: Path, renderer: Renderer) -> Playbook:
    doc = read_yaml(path)
    spec = validate(doc, PlaybookSpec)
    pb = Playbook(spec, doc)
    _check_reasons(pb, renderer)
    return pb


def load_playbooks(renderer: Renderer, folder: Path | None = None,
                   disabled: Sequence[str] = (), *, cells: Sequence[str] | None = None,
                   include_builtin: bool = True) -> list[Playbook]:
    """Every enabled playbook; all errors in all files are collected and raised together."""
    paths = sorted(BUILTIN.glob("*.yaml")) if include_builtin else []
    if folder is not None:
        if not folder.is_dir():
            raise ConfigError("playbook folder not found", file=str(folder),
                              field="playbooks.folder")
        paths += sorted(folder.glob("*.y*ml"))
    errors: list[ConfigError] = []
    by_id: dict[str, Playbook] = {}
    for path in paths:
        try:
            pb = load_file(path, renderer)
        except ConfigErrors as exc:
            errors.extend(exc.errors)
            continue
        except ConfigError as exc:
            errors.append(exc)
            continue
        if cells is not None and pb.cells:
            unknown = sorted(pb.cells - set(cells))
            if unknown:
                errors.append(pb.doc.error(f"unknown portfolio cells: {', '.join(unknown)}",
                                           ("applies_to", "cells")))
                continue
        by_id[pb.id] = pb
    if errors:
        raise errors[0] if len(errors) == 1 else ConfigErrors(errors)
    return [pb for pb in by_id.values() if pb.spec.enabled and pb.id not in set(disabled)]
