"""Settings: ``kizuna.yaml`` for everything reviewable, the environment for secrets.

Built once at start-up and passed in; nothing here reads the environment at import time.
Every field has a documented default, so an empty or absent ``kizuna.yaml`` is a working setup.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.errors import ConfigError
from core.yamlfile import YamlDocument, read_yaml, validate

PositiveNumber = Annotated[float, Field(gt=0, strict=True)]
Number = Annotated[float, Field(strict=True)]
TouchModel = Literal["high_touch", "low_touch", "tech_touch"]
ENGAGEMENTS = ("active", "passive", "dormant")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Localized(Strict):
    """A user-facing text in both languages the product speaks."""

    ja: str
    en: str

    def get(self, language: str) -> str:
        return self.en if language == "en" else self.ja


class Measure(Strict):
    """One line of the health scorecard: a fact mapped to 0–100 through threshold points.

    ``points`` are ``[value, score]`` pairs with increasing values; a value between two points is
    interpolated, beyond the ends it takes the end's score. Lower-is-better measures simply give
    falling scores (e.g. days since contact).
    """

    id: str
    label: Localized
    fact: str
    weight: PositiveNumber
    points: list[tuple[Number, Annotated[float, Field(ge=0, le=100, strict=True)]]] = Field(
        min_length=2)

    @field_validator("points")
    @classmethod
    def _increasing(cls, points: list[tuple[float, float]]) -> list[tuple[float, float]]:
        xs = [x for x, _ in points]
        if any(b <= a for a, b in pairwise(xs)):
            raise ValueError("point values must be strictly increasing")
        return points


class Bands(Strict):
    """Overall score at or above ``green`` is green, at or above ``yellow`` yellow, else red."""

    green: Annotated[float, Field(ge=0, le=100, strict=True)] = 70
    yellow: Annotated[float, Field(ge=0, le=100, strict=True)] = 40

    @model_validator(mode="after")
    def _ordered(self) -> Bands:
        if self.yellow >= self.green:
            raise ValueError("yellow must be below green")
        return self


def _default_measures() -> list[Measure]:
    return [
        Measure(id="usage", fact="usage_30d", weight=40,
                label=Localized(ja="フォーム表示回数(30日)", en="Form impressions (30 days)"),
                points=[(0, 0), (300, 25), (1000, 50), (3000, 75), (10000, 100)]),
        Measure(id="contact", fact="days_since_contact", weight=25,
                label=Localized(ja="最終接触からの日数", en="Days since last contact"),
                points=[(14, 100), (30, 85), (60, 55), (90, 30), (180, 0)]),
        Measure(id="nps", label=Localized(ja="NPS", en="NPS"), fact="nps", weight=15,
                points=[(-100, 0), (-20, 20), (0, 45), (30, 75), (60, 100)]),
        Measure(id="goal", fact="goal_attainment", weight=20,
                label=Localized(ja="目標達成率(CVR)", en="Goal attainment (CVR vs target)"),
                points=[(0, 0), (0.5, 30), (0.8, 60), (1.0, 85), (1.2, 100)]),
    ]


class Scorecard(Strict):
    measures: list[Measure] = Field(default_factory=_default_measures, min_length=1)
    bands: Bands = Bands()

    @field_validator("measures")
    @classmethod
    def _unique(cls, measures: list[Measure]) -> list[Measure]:
        ids = [m.id for m in measures]
        if len(ids) != len(set(ids)):
            raise ValueError("measure ids must be unique")
        return measures


class Usage(Strict):
    """The usage number that fits the product; for a form tool, form impressions."""

    metric: str = "form_impressions"
    label: Localized = Localized(ja="フォーム表示回数", en="form impressions")
    window_days: int = Field(30, gt=0)
    stale_after_days: int = Field(45, gt=0)


class Goal(Strict):
    """Goal attainment = the latest ``metric`` divided by the account's ``target_field``."""

    metric: str = "conversion_rate"
    target_field: str = "conversion_target"


class PotentialBand(Strict):
    id: str
    min: Number


class Engagement(Strict):
    """Engagement status from usage and contact recency.

    active: usage ≥ ``active_min_usage`` and contacted within ``active_within_days``;
    dormant: usage below ``dormant_below_usage`` (or unknown) and no contact within
    ``dormant_after_days``; passive: everything in between.
    """

    active_min_usage: Number = 1000
    active_within_days: int = Field(60, gt=0)
    dormant_below_usage: Number = 200
    dormant_after_days: int = Field(120, gt=0)


class Cell(Strict):
    touch: TouchModel
    cadence_days: int = Field(gt=0)


def _default_cells() -> dict[str, Cell]:
    grid = {
        "high": [("high_touch", 30), ("high_touch", 30), ("low_touch", 45)],
        "mid": [("low_touch", 60), ("low_touch", 60), ("tech_touch", 90)],
        "low": [("tech_touch", 90), ("tech_touch", 90), ("tech_touch", 180)],
    }
    return {f"{band}.{eng}": Cell(touch=touch, cadence_days=days)
            for band, row in grid.items()
            for eng, (touch, days) in zip(ENGAGEMENTS, row, strict=True)}


class Portfolio(Strict):
    """Potential bands × engagement status, each cell a touch model and a contact cadence."""

    potential_fact: str = "potential"
    potential_bands: list[PotentialBand] = Field(
        default_factory=lambda: [PotentialBand(id="high", min=30_000_000),
                                 PotentialBand(id="mid", min=10_000_000),
                                 PotentialBand(id="low", min=0)], min_length=1)
    engagement: Engagement = Engagement()
    cells: dict[str, Cell] = Field(default_factory=_default_cells)

    @model_validator(mode="after")
    def _complete_grid(self) -> Portfolio:
        mins = [b.min for b in self.potential_bands]
        if mins != sorted(mins, reverse=True) or len(set(mins)) != len(mins):
            raise ValueError("potential_bands must be listed from the highest min to the lowest")
        missing = [f"{b.id}.{e}" for b in self.potential_bands for e in ENGAGEMENTS
                   if f"{b.id}.{e}" not in self.cells]
        if missing:
            raise ValueError(f"cells missing for: {', '.join(missing)}")
        return self


class Activities(Strict):
    """How activities are read: which subjects mark a quarterly business review."""

    qbr_pattern: str = r"QBR|Quarterly|四半期|定例"


class PlaybookSettings(Strict):
    folder: Path | None = None   # extra playbooks, next to the built-ins
    disabled: list[str] = Field(default_factory=list)
    complete_tasks_on_close: bool = True


class Templates(Strict):
    folder: Path | None = None   # overrides for templates/ (rendered in a sandbox)


class Demo(Strict):
    accounts: int = Field(80, gt=0, le=200_000)
    seed: int = 7


class Member(Strict):
    """A CSM or manager: display name for drafts and, later, a Slack user override."""

    email: str
    name: Localized | None = None
    slack_user: str | None = None


class KizunaConfig(Strict):
    """Everything in ``kizuna.yaml``. See README "Configuration" for each field."""

    timezone: str = "Asia/Tokyo"
    language: Literal["ja", "en"] = "ja"
    crm: str = "demo"
    currency: str = "JPY"
    company: Localized = Localized(ja="カスタマーサクセスチーム", en="Customer Success Team")
    team: list[Member] = Field(default_factory=list)
    data_dir: Path = Path(".kizuna")
    usage: Usage = Usage()
    goal: Goal = Goal()
    scorecard: Scorecard = Scorecard()
    portfolio: Portfolio = Portfolio()
    activities: Activities = Activities()
    playbooks: PlaybookSettings = PlaybookSettings()
    templates: Templates = Templates()
    demo: Demo = Demo()
    # Sections owned by one component each, validated by that component's own model through
    # ``Settings.section`` so errors still name kizuna.yaml's line.
    salesforce: dict[str, Any] = Field(default_factory=dict)
    hubspot: dict[str, Any] = Field(default_factory=dict)
    slack: dict[str, Any] = Field(default_factory=dict)
    scheduler: dict[str, Any] = Field(default_factory=dict)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value


class Environment(BaseSettings):
    """Secrets and deployment switches, from the environment only."""

    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False)

    kizuna_config: Path | None = None
    kizuna_database_url: str | None = None
    kizuna_crm: str | None = None
    slack_bot_token: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_api_url: str | None = None
    salesforce_instance_url: str | None = None
    salesforce_session_id: SecretStr | None = None
    salesforce_username: str | None = None
    salesforce_password: SecretStr | None = None
    salesforce_security_token: SecretStr | None = None
    salesforce_domain: str | None = None
    hubspot_access_token: SecretStr | None = None
    hubspot_base_url: str | None = None


Section = TypeVar("Section", bound=BaseModel)


@dataclass(frozen=True)
class Settings:
    """The resolved settings the rest of the program is given."""

    config: KizunaConfig
    env: Environment
    config_path: Path | None
    document: YamlDocument | None = None

    def section(self, name: str, model: type[Section]) -> Section:
        """Validate one component's section of kizuna.yaml (e.g. ``salesforce``) with its model."""
        raw = getattr(self.config, name)
        if self.document is None:
            return model.model_validate(raw)
        return validate(self.document, model, at=(name,))

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.config.timezone)

    @property
    def crm(self) -> str:
        return self.env.kizuna_crm or self.config.crm

    @property
    def data_dir(self) -> Path:
        return self.config.data_dir

    @property
    def database_url(self) -> str:
        if self.env.kizuna_database_url:
            return self.env.kizuna_database_url
        return f"sqlite:///{self.data_dir / 'kizuna.db'}"

    def resolve(self, path: Path) -> Path:
        """A path from kizuna.yaml, taken relative to the file it was written in."""
        if path.is_absolute() or self.config_path is None:
            return path
        return self.config_path.parent / path


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read the environment and ``kizuna.yaml`` (``KIZUNA_CONFIG``, else ./kizuna.yaml if any)."""
    env = Environment(**_env_kwargs(environ)) if environ is not None else Environment()
    path = env.kizuna_config
    if path is None and Path("kizuna.yaml").is_file():
        path = Path("kizuna.yaml")
    if path is None:
        return Settings(KizunaConfig(), env, None)
    if not path.is_file():
        raise ConfigError("file not found (set by KIZUNA_CONFIG)", file=str(path))
    doc = read_yaml(path)
    return Settings(validate(doc, KizunaConfig), env, path, doc)


def _env_kwargs(environ: Mapping[str, str]) -> dict[str, str]:
    fields = Environment.model_fields
    return {k.lower(): v for k, v in environ.items() if k.lower() in fields}
