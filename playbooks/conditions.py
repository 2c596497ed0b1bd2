"""Playbook conditions: structured YAML compiled once into plain Python callables.

A condition is a tree of ``all`` / ``any`` / ``not`` nodes over comparisons such as
``{fact: usage_30d, lt: 1000}``. The right-hand side may be a literal, ``{param: name}`` (from
the playbook's ``params``) or ``{fact: other}``. No ``eval``, no template per account.

Logic is three-valued: a comparison on an unknown (None) fact is *unknown*, ``any`` is true if
any branch is true, ``all`` is false if any branch is false; a playbook whose condition ends
unknown is *skipped* for that account, and the facts it lacked are reported.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any

from core.yamlfile import Loc, YamlDocument
from playbooks.facts import is_known_fact

Facts = Mapping[str, Any]
Condition = Callable[[Facts], bool | None]

_BINARY: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq, "ne": operator.ne, "lt": operator.lt, "lte": operator.le,
    "gt": operator.gt, "gte": operator.ge,
}
_SET = {"in", "not_in"}
_OPERATORS = {*_BINARY, *_SET, "between", "exists"}


class Compiler:
    """Compiles one playbook's condition, reporting errors at the YAML line they come from."""

    def __init__(self, doc: YamlDocument, params: Mapping[str, Any]) -> None:
        self.doc = doc
        self.params = params
        self.facts: set[str] = set()

    def compile(self, node: Any, loc: Loc) -> Condition:
        if not isinstance(node, dict) or not node:
            raise self.doc.error("a condition must be a mapping with all, any, not or fact", loc)
        if "fact" in node:
            return self._comparison(node, loc)
        if len(node) != 1:
            raise self.doc.error(
                f"use exactly one of all, any, not per mapping (found {', '.join(node)})", loc)
        (kind, value), = node.items()
        if kind in ("all", "any"):
            if not isinstance(value, list) or not value:
                raise self.doc.error(f"{kind} needs a non-empty list of conditions", (*loc, kind))
            parts = tuple(self.compile(v, (*loc, kind, i)) for i, v in enumerate(value))
            return _all(parts) if kind == "all" else _any(parts)
        if kind == "not":
            inner = self.compile(value, (*loc, "not"))
            return lambda f: None if (r := inner(f)) is None else not r
        raise self.doc.error(f"unknown condition {kind!r}; expected all, any, not or fact",
                             (*loc, kind))

    def _fact_name(self, name: Any, loc: Loc) -> str:
        if not isinstance(name, str) or not is_known_fact(name):
            raise self.doc.error(f"unknown fact {name!r} (see README 'Facts')", loc)
        self.facts.add(name)
        return name

    def _operand(self, value: Any, loc: Loc) -> Callable[[Facts], Any]:
        if isinstance(value, dict):
            if set(value) == {"param"}:
                name = value["param"]
                if name not in self.params:
                    raise self.doc.error(f"unknown param {name!r}", (*loc, "param"))
                constant = self.params[name]
                return lambda f: constant
            if set(value) == {"fact"}:
                other = self._fact_name(value["fact"], (*loc, "fact"))
                return lambda f: f.get(other)
            raise self.doc.error("an operand is a value, {param: name} or {fact: name}", loc)
        return lambda f: value

    def _comparison(self, node: dict, loc: Loc) -> Condition:
        name = self._fact_name(node["fact"], (*loc, "fact"))
        ops = [k for k in node if k != "fact"]
        if not ops:
            raise self.doc.error(f"no comparison given for fact {name!r}", loc)
        tests: list[Condition] = []
        for op in ops:
            where = (*loc, op)
            if op not in _OPERATORS:
                raise self.doc.error(
                    f"unknown operator {op!r}; expected one of {', '.join(sorted(_OPERATORS))}",
                    where)
            tests.append(self._test(name, op, node[op], where))
        return tests[0] if len(tests) == 1 else _all(tuple(tests))

    def _test(self, name: str, op: str, raw: Any, loc: Loc) -> Condition:
        if op == "exists":
            if not isinstance(raw, bool):
                raise self.doc.error("exists takes true or false", loc)
            return lambda f: (f.get(name) is not None) == raw
        if op in _SET:
            if not isinstance(raw, list):
                raise self.doc.error(f"{op} takes a list", loc)
            values = frozenset(raw)
            negate = op == "not_in"

            def member(f: Facts) -> bool | None:
                v = f.get(name)
                return None if v is None else (v in values) != negate
            return member
        if op == "between":
            if not isinstance(raw, list) or len(raw) != 2:
                raise self.doc.error("between takes [low, high]", loc)
            low, high = self._operand(raw[0], (*loc, 0)), self._operand(raw[1], (*loc, 1))

            def between(f: Facts) -> bool | None:
                v, lo, hi = f.get(name), low(f), high(f)
                if v is None or lo is None or hi is None:
                    return None
                try:
                    return lo <= v <= hi
                except TypeError:
                    return None
            return between
        compare = _BINARY[op]
        operand = self._operand(raw, loc)
        if not isinstance(raw, dict) or set(raw) == {"param"}:
            constant = operand({})  # literals and params are fixed: compare without a lookup

            def against_constant(f: Facts) -> bool | None:
                v = f.get(name)
                if v is None:
                    return None
                try:
                    return compare(v, constant)
                except TypeError:
                    return None
            return against_constant

        def against_operand(f: Facts) -> bool | None:
            v, w = f.get(name), operand(f)
            if v is None or w is None:
                return None
            try:
                return compare(v, w)
            except TypeError:
                return None
        return against_operand


def _all(parts: tuple[Condition, ...]) -> Condition:
    def all_of(f: Facts) -> bool | None:
        unknown = False
        for part in parts:
            r = part(f)
            if r is False:
                return False
            if r is None:
                unknown = True
        return None if unknown else True
    return all_of


def _any(parts: tuple[Condition, ...]) -> Condition:
    def any_of(f: Facts) -> bool | None:
        unknown = False
        for part in parts:
            r = part(f)
            if r is True:
                return True
            if r is None:
                unknown = True
        return None if unknown else False
    return any_of
