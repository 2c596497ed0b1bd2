"""Documentation that must stay true: the example configuration and the README's claims."""

from __future__ import annotations

from pathlib import Path

from core.config import KizunaConfig, load_settings
from playbooks.facts import FACTS

ROOT = Path(__file__).resolve().parent.parent


def test_example_config_equals_the_defaults() -> None:
    """kizuna.example.yaml documents every default exactly, and validates."""
    settings = load_settings({"KIZUNA_CONFIG": str(ROOT / "kizuna.example.yaml")})
    assert settings.config == KizunaConfig()


def test_readme_opens_with_the_two_commands() -> None:
    """A newcomer sees `make demo` and `make test` before anything else."""
    head = (ROOT / "README.md").read_text(encoding="utf-8").split("\n## ", 1)[0]
    assert "make demo" in head and "make test" in head


def test_readme_lists_every_fact() -> None:
    """Each fact a playbook may use is documented in the README's table."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert [name for name in FACTS if f"`{name}`" not in readme] == []
