"""Jinja2 rendering of drafts, task texts and playbook reasons.

Every template renders in a sandbox with ``StrictUndefined``: templates are user-editable files
(an admin may override any of ``templates/``), and a misspelt field must fail loudly at
validation time rather than produce an email that says "Dear ,".
"""

from __future__ import annotations

import traceback
from datetime import date
from pathlib import Path
from typing import Any

from jinja2 import (
    ChoiceLoader,
    FileSystemLoader,
    StrictUndefined,
    TemplateError,
    TemplateNotFound,
    TemplateSyntaxError,
)
from jinja2.sandbox import SandboxedEnvironment

from core.errors import ConfigError

BUILTIN_TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


def _num(value: Any, digits: int = 0) -> str:
    if value is None:
        return "—"
    if isinstance(value, int | float):
        return f"{value:,.{digits}f}"
    return str(value)


def _pct(value: Any, digits: int = 0) -> str:
    return "—" if value is None else f"{value:.{digits}f}%"


def _day(value: date | None, language: str = "en") -> str:
    if value is None:
        return "—"
    if language == "ja":
        return f"{value.year}年{value.month}月{value.day}日"
    return value.strftime("%b %-d, %Y")


_BANDS = {"green": ("良好", "green"), "yellow": ("注意", "yellow"), "red": ("危険", "red")}


def _band(value: str | None, language: str = "en") -> str:
    pair = _BANDS.get(value or "")
    if pair is None:
        return "不明" if language == "ja" else "unknown"
    return pair[0] if language == "ja" else pair[1]


def make_environment(override_folder: Path | None = None) -> SandboxedEnvironment:
    loaders = [FileSystemLoader(str(override_folder))] if override_folder else []
    loaders.append(FileSystemLoader(str(BUILTIN_TEMPLATES)))
    env = SandboxedEnvironment(
        loader=ChoiceLoader(loaders), undefined=StrictUndefined, autoescape=False,
        keep_trailing_newline=False, trim_blocks=True, lstrip_blocks=True,
    )
    env.filters.update(num=_num, pct=_pct, day=_day, band=_band)
    return env


class Renderer:
    """Renders templates by name; errors become ConfigError with the template's file and line."""

    def __init__(self, override_folder: Path | None = None) -> None:
        self.override_folder = override_folder
        self.env = make_environment(override_folder)

    def exists(self, name: str) -> bool:
        try:
            self.env.get_template(name)
        except TemplateNotFound:
            return False
        return True

    def first(self, *names: str) -> str:
        """The first of ``names`` that exists (most specific first)."""
        for name in names:
            if self.exists(name):
                return name
        raise ConfigError(f"none of these templates exists: {', '.join(names)}",
                          file=str(BUILTIN_TEMPLATES))

    def render(self, name: str, context: dict[str, Any]) -> str:
        try:
            template = self.env.get_template(name)
            return template.render(context).strip()
        except TemplateError as exc:
            raise self._error(exc, name) from exc

    def render_module(self, name: str, context: dict[str, Any], variable: str) -> tuple[str, str]:
        """Render a template and read one top-level ``{% set %}`` variable (an email's subject)."""
        try:
            template = self.env.get_template(name)
        except TemplateError as exc:
            raise self._error(exc, name) from exc
        try:
            module = template.make_module(context)
        except TemplateError:
            # make_module does not map the traceback to template lines; let Jinja do it.
            try:
                self.env.handle_exception()
            except TemplateError as exc:
                raise self._error(exc, name) from exc
        return str(module).strip(), str(getattr(module, variable, "")).strip()

    def render_string(self, source: str, context: dict[str, Any], *, file: str, line: int | None,
                      field: str) -> str:
        """Render an inline template (a playbook's reason); errors point at the YAML line."""
        try:
            return self.env.from_string(source).render(context).strip()
        except TemplateError as exc:
            raise ConfigError(_message(exc), file=file, line=line, field=field) from exc

    def _error(self, exc: TemplateError, name: str) -> ConfigError:
        file, line = self._where(exc, name)
        return ConfigError(_message(exc), file=file, line=line, field=name)

    def _where(self, exc: TemplateError, name: str) -> tuple[str, int | None]:
        if isinstance(exc, TemplateSyntaxError):
            return exc.filename or name, exc.lineno
        # Jinja rewrites tracebacks so template frames carry the template's file and line.
        for frame in reversed(traceback.extract_tb(exc.__traceback__)):
            if frame.filename.endswith(".j2"):
                return frame.filename, frame.lineno
        return name, None


def _message(exc: TemplateError) -> str:
    text = getattr(exc, "message", None) or str(exc)
    return f"template error: {text}"
