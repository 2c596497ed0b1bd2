"""Bad config, playbooks and templates: exit 2, file:line and field named, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli_helpers import kizuna

GOOD_PLAYBOOK = """\
id: custom_check
title:
  ja: テスト
  en: Test
category: usage
when:
  fact: usage_30d
  lt: 10
reason:
  ja: 少ない
  en: low
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def assert_rejected(result, *fragments: str, cwd: Path) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr
    assert not (cwd / ".kizuna").exists(), "something was written before the error"


def test_good_custom_playbook_validates(tmp_path: Path) -> None:
    """The baseline custom playbook is accepted (so the failures below are about the defect)."""
    write(tmp_path / "plays" / "custom.yaml", GOOD_PLAYBOOK)
    result = kizuna(tmp_path, "playbooks", "validate", "plays")
    assert result.returncode == 0, result.stderr
    assert "custom_check" in result.stdout


@pytest.mark.parametrize(("text", "fragments"), [
    (GOOD_PLAYBOOK.replace("category: usage", "category: usage\nseverty: high"),
     ["custom.yaml:6", "severty", "unknown field"]),
    (GOOD_PLAYBOOK.replace("fact: usage_30d", "fact: usage_3Od"),
     ["custom.yaml:7", "when.fact", "unknown fact 'usage_3Od'"]),
    (GOOD_PLAYBOOK.replace("lt: 10", "less_than: 10"),
     ["custom.yaml:8", "when.less_than", "unknown operator"]),
    (GOOD_PLAYBOOK.replace("  en: low", "  en: '{{ usage_30 }} low'"),
     ["custom.yaml:11", "reason.en", "usage_30"]),
    (GOOD_PLAYBOOK.replace("title:\n", "title: [\n"),
     ["custom.yaml:", "not valid YAML"]),
    (GOOD_PLAYBOOK.replace("  en: Test\n", ""),
     ["custom.yaml:2", "title.en", "Field required"]),
])
def test_malformed_playbook(tmp_path: Path, text: str, fragments: list[str]) -> None:
    """A malformed playbook names file, line and field, exits 2, and the demo writes nothing."""
    write(tmp_path / "plays" / "custom.yaml", text)
    result = kizuna(tmp_path, "playbooks", "validate", "plays")
    assert_rejected(result, *fragments, cwd=tmp_path)
    config = write(tmp_path / "kizuna.yaml", "playbooks:\n  folder: plays\n")
    result = kizuna(tmp_path, "demo", env={"KIZUNA_CONFIG": str(config)})
    assert_rejected(result, *fragments, cwd=tmp_path)


@pytest.mark.parametrize(("weight", "line"), [("0", 9), ("-3", 9), ("heavy", 9)])
def test_scorecard_weight_must_be_positive(tmp_path: Path, weight: str, line: int) -> None:
    """A non-positive or non-numeric weight is reported at its line in kizuna.yaml."""
    config = write(tmp_path / "kizuna.yaml", """\
timezone: Asia/Tokyo
scorecard:
  measures:
    - id: usage
      label: {ja: 利用, en: usage}
      fact: usage_30d
      points: [[0, 0], [1000, 100]]
      weight: 3
      weight_note: ok
""".replace("      weight: 3\n      weight_note: ok\n", f"      weight: {weight}\n"))
    result = kizuna(tmp_path, "demo", env={"KIZUNA_CONFIG": str(config)})
    assert_rejected(result, f"kizuna.yaml:{line - 1}", "scorecard.measures[0].weight",
                    cwd=tmp_path)


def test_unknown_config_field_and_bad_time_zone(tmp_path: Path) -> None:
    """Typos in kizuna.yaml are caught, each with its own line, before anything runs."""
    config = write(tmp_path / "kizuna.yaml", "timezone: Asia/Tokio\nlanguge: en\n")
    result = kizuna(tmp_path, "demo", env={"KIZUNA_CONFIG": str(config)})
    assert_rejected(result, "kizuna.yaml:1", "timezone", "Asia/Tokio", "kizuna.yaml:2",
                    "languge", cwd=tmp_path)


def test_template_with_missing_field(tmp_path: Path) -> None:
    """An override template that uses a field the context lacks is reported at its line."""
    write(tmp_path / "mytemplates" / "email" / "qbr_due.ja.j2", """\
{% extends "email/_base.ja.j2" %}
{% set subject = "QBR" %}
{% block main %}
ご契約: {{ account.contract_nme }}
{% endblock %}
""")
    config = write(tmp_path / "kizuna.yaml", "templates:\n  folder: mytemplates\n")
    result = kizuna(tmp_path, "demo", env={"KIZUNA_CONFIG": str(config)})
    assert_rejected(result, "qbr_due.ja.j2:4", "contract_nme", cwd=tmp_path)


def test_missing_config_file(tmp_path: Path) -> None:
    """KIZUNA_CONFIG pointing nowhere is a configuration error, not a silent default."""
    result = kizuna(tmp_path, "demo", env={"KIZUNA_CONFIG": str(tmp_path / "nope.yaml")})
    assert_rejected(result, "nope.yaml", "file not found", cwd=tmp_path)


def test_unknown_crm(tmp_path: Path) -> None:
    """An unknown CRM name lists the ones that exist."""
    result = kizuna(tmp_path, "sync", env={"KIZUNA_CRM": "pipedrive"})
    assert_rejected(result, "unknown CRM 'pipedrive'", "salesforce", cwd=tmp_path)
