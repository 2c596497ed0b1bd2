"""YAML files validated by pydantic models, with errors that name the file, line and field.

Admins edit ``kizuna.yaml`` and playbooks by hand; a message like
``playbooks/x.yaml:12: when.any[1].lt: Input should be a valid number`` is what lets them fix it.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from core.errors import ConfigError, ConfigErrors

Model = TypeVar("Model", bound=BaseModel)
Loc = tuple[str | int, ...]


class YamlDocument:
    """Parsed YAML data plus the line of every mapping key and sequence item, by path."""

    def __init__(self, data: Any, lines: dict[Loc, int], file: str) -> None:
        self.data = data
        self.lines = lines
        self.file = file

    def line_of(self, loc: Iterable[str | int]) -> int | None:
        """Line of the deepest part of ``loc`` that exists in the file (1-based)."""
        path = tuple(loc)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), None)

    def error(self, message: str, loc: Iterable[str | int] = ()) -> ConfigError:
        loc = tuple(loc)
        return ConfigError(message, file=self.file, line=self.line_of(loc),
                           field=format_loc(loc) or None)


def format_loc(loc: Iterable[str | int]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _index(node: yaml.Node, path: Loc, lines: dict[Loc, int]) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            lines[(*path, key)] = key_node.start_mark.line + 1
            _index(value_node, (*path, key), lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[(*path, i)] = item.start_mark.line + 1
            _index(item, (*path, i), lines)


def parse_yaml(text: str, file: str) -> YamlDocument:
    """Parse YAML text; a syntax error becomes a ConfigError with its line."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise ConfigError(f"not valid YAML: {exc.problem or exc}", file=file, line=line) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {exc}", file=file) from exc
    lines: dict[Loc, int] = {}
    if node is not None:
        _index(node, (), lines)
    return YamlDocument(data, lines, file)


def read_yaml(path: Path) -> YamlDocument:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", file=str(path)) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError("not UTF-8 text", file=str(path)) from exc
    return parse_yaml(text, str(path))


def validate(doc: YamlDocument, model: type[Model], *, context: dict | None = None,
             at: Loc = ()) -> Model:
    """Validate a document (or the part of it at ``at``) against a model.

    Every problem is reported with file, line and the full dotted field path.
    """
    data: Any = doc.data
    for part in at:
        data = data.get(part) if isinstance(data, dict) else None
    data = {} if data is None else data
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        errors = []
        for err in exc.errors(include_url=False):
            loc = at + tuple(p for p in err["loc"] if not _is_union_tag(p))
            message = err["msg"]
            if err["type"] == "extra_forbidden":
                message = "unknown field"
            errors.append(doc.error(message, loc))
        raise (errors[0] if len(errors) == 1 else ConfigErrors(errors)) from None


def _is_union_tag(part: str | int) -> bool:
    # pydantic puts the union member's name in the loc (e.g. "function-after[...]"); hide it.
    return isinstance(part, str) and ("[" in part or part.startswith("function-"))
