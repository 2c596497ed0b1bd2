"""The embedded demo CRM: a deterministic, generated book of business for trying Kizuna out.

About 80 accounts by default — Japanese and English web-production houses, agencies and SaaS
companies using a form-optimisation product — with a year of form impressions, QBRs and other
activities, renewals, four CSM owners and edge cases (new accounts, missing metrics). Tasks that
Kizuna creates are written back into a small JSON state file, so a second run sees them.

The same generator makes any number of accounts for benchmarks (``generate``).
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from core.config import Settings
from core.domain import (
    Account,
    Activity,
    ActivityKind,
    Contact,
    CrmTask,
    MetricPoint,
    SyncBatch,
)
from core.errors import ConfigError, FatalAPIError

SOURCE = "demo"
STATE_VERSION = 1
USAGE_METRIC = "form_impressions"

OWNERS: tuple[tuple[str, str, str], ...] = (
    ("sato.hanako@example.com", "佐藤 花子", "Hanako Sato"),
    ("tanaka.kenji@example.com", "田中 健二", "Kenji Tanaka"),
    ("emily.clark@example.com", "エミリー・クラーク", "Emily Clark"),
    ("yamamoto.yui@example.com", "山本 結衣", "Yui Yamamoto"),
)

_JA_STEMS = (
    "さくらウェブ制作", "青空デザイン", "東京フォームラボ", "みなと広告", "北斗マーケティング",
    "ひかりソフト", "富士クリエイティブ", "大阪デジタルワークス", "はるかコンサルティング",
    "こもれびメディア", "ミライ通販", "つばさ不動産", "いろは学習塾", "カモメ旅行",
    "ことのは出版", "やまびこ住宅", "ソラノ保険サービス", "しずくコスメ", "あおば人材",
    "ヒノキ建設", "ユメカナ結婚相談所", "リンクスWeb", "ナナイロ広告", "まほろばCMS",
    "ときわエステート", "はなみずき歯科グループ", "アサヒナ自動車販売", "うみかぜホテルズ",
    "ひまわり教育", "クスノキ法律事務所", "シロクマ物流", "フクロウ会計", "コスモ求人",
    "みどりの森不動産", "アオイ美容外科", "タカラ通信", "スバル英会話", "ワカバ介護",
    "ミツバチ農園", "カエデ広告制作所",
)
_EN_STEMS = (
    "Northwind Digital", "Bluebird Agency", "Harbor CMS Studio", "Acme Analytics",
    "Lumen Media", "Pinecrest Software", "Brightline Ads", "Maple & Co. Creative",
    "Orbit Commerce", "Redwood Realty Online", "Cobalt Insurance Direct", "Summit Learning",
    "Atlas Travel Group", "Kestrel Recruiting", "Nimbus SaaS", "Quartz Web Works",
    "Tidewater Health", "Sparrow Financial", "Vantage Auto Sales", "Willow Dental Partners",
    "Granite Legal", "Foxglove Beauty", "Helix Marketing", "Juniper Hotels",
    "Mosaic Publishing", "Ember Fitness", "Sequoia Homes", "Copper Kettle Foods",
    "Driftwood Events", "Polar Logistics", "Beacon Careers", "Clover Education",
    "Aster Wedding Co.", "Silverline Telecom", "Meridian Clinics", "Oakridge Property",
    "Zephyr Languages", "Lark Care Services", "Saffron Organics", "Indigo Creative Lab",
)
_JA_FORMS = ("株式会社{}", "{}株式会社", "合同会社{}", "株式会社{}")
_JA_PEOPLE = ("鈴木 一郎", "高橋 美咲", "伊藤 翔太", "渡辺 由美", "中村 大輔", "小林 彩",
              "加藤 拓也", "吉田 真由美", "山田 健太", "佐々木 恵")
_EN_PEOPLE = ("Olivia Brown", "James Wilson", "Sophia Martinez", "Liam Johnson", "Ava Davis",
              "Noah Miller", "Mia Anderson", "Ethan Taylor", "Isabella Thomas", "Lucas White")
_INDUSTRIES = ("Web production", "Advertising agency", "Marketing agency", "SaaS", "EC",
               "Real estate", "Education", "Healthcare")
_PLANS = (5_000, 20_000, 50_000)

#: Usage stories; the first accounts take them in order so every playbook has a case.
PROFILES = ("healthy", "declining", "crash", "low", "near_limit", "new_stalled", "new_ok",
            "no_metrics", "dormant", "qbr_overdue", "renewal_risk", "renewal_good", "stable",
            "growing")


@dataclass(frozen=True)
class DemoAccount:
    """One generated account with everything that hangs off it."""

    account: Account
    profile: str
    contacts: tuple[Contact, ...]
    activities: tuple[Activity, ...]
    metrics: tuple[MetricPoint, ...] = field(default_factory=tuple)


def _company_name(i: int, rng: random.Random) -> tuple[str, str]:
    japanese = i % 2 == 0
    stems = _JA_STEMS if japanese else _EN_STEMS
    stem = stems[(i // 2) % len(stems)]
    lap = (i // 2) // len(stems)
    if japanese:
        name = _JA_FORMS[(i // 2) % len(_JA_FORMS)].format(stem)
        if lap:
            name = f"{name} 第{lap + 1}営業部"
        return name, "ja"
    suffix = rng.choice(("Inc.", "LLC", "Ltd.", "Co."))
    name = f"{stem} {suffix}" if not lap else f"{stem} {lap + 1} {suffix}"
    return name, "en"


def _at(day: date, hour: int, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(hour, 0), tz).astimezone(UTC)


def generate(n: int, *, seed: int, today: date, tz: ZoneInfo | str = "Asia/Tokyo",
             weeks: int = 52) -> Iterator[DemoAccount]:
    """Yield ``n`` generated accounts, the same ones for the same arguments."""
    tz = ZoneInfo(tz) if isinstance(tz, str) else tz
    modified = _at(today, 6, tz)
    for i in range(n):
        rng = random.Random(f"{seed}:{i}")
        profile = PROFILES[i] if i < len(PROFILES) else rng.choice(PROFILES)
        yield _account(i, rng, profile, today, tz, modified, weeks)


def _account(i: int, rng: random.Random, profile: str, today: date, tz: ZoneInfo,
             modified: datetime, weeks: int) -> DemoAccount:
    name, language = _company_name(i, rng)
    crm_id = f"ACC-{i + 1:05d}"
    owner = OWNERS[i % len(OWNERS)][0]
    tier = rng.choices(("high", "mid", "low"), weights=(3, 4, 3))[0]
    if profile in ("qbr_overdue", "renewal_good", "near_limit"):
        tier = "high"
    potential = {"high": rng.randint(30, 200), "mid": rng.randint(10, 29),
                 "low": rng.randint(1, 9)}[tier] * 1_000_000
    plan = {"high": _PLANS[2], "mid": _PLANS[1], "low": _PLANS[0]}[tier]
    new = profile.startswith("new_")
    age_days = rng.randint(20, 55) if new else rng.randint(200, 1500)
    contract_start = today - timedelta(days=age_days)
    renewal = _next_anniversary(contract_start, today)
    if profile in ("renewal_risk", "renewal_good"):
        renewal = today + timedelta(days=rng.randint(20, 80))
        contract_start = renewal.replace(year=renewal.year - rng.randint(1, 3))
    arr = float(rng.randint(6, 120) * 100_000)
    custom: dict[str, Any] = {"segment": rng.choice(_INDUSTRIES)}
    has_goal = rng.random() < 0.5
    if has_goal:
        custom["conversion_target"] = round(rng.uniform(0.02, 0.05), 3)
    account = Account(
        source=SOURCE, crm_id=crm_id, name=name, owner_email=owner, potential=float(potential),
        arr=arr, mrr=round(arr / 12, 0), contract_start=contract_start, renewal_date=renewal,
        lifecycle_stage="onboarding" if new else "customer", language=language,
        plan_limit=float(plan), industry=custom["segment"], custom=custom, modified_at=modified)
    contacts = _contacts(crm_id, language, rng, modified)
    activities = _activities(crm_id, owner, profile, tier, rng, today, tz, contract_start,
                             modified)
    metrics = _metrics(crm_id, profile, plan, rng, today, contract_start, weeks, has_goal, custom)
    return DemoAccount(account, profile, contacts, activities, metrics)


def _next_anniversary(start: date, today: date) -> date:
    year = today.year
    while True:
        try:
            candidate = start.replace(year=year)
        except ValueError:  # 29 February
            candidate = date(year, 2, 28)
        if candidate > today:
            return candidate
        year += 1


def _contacts(account_id: str, language: str, rng: random.Random,
              modified: datetime) -> tuple[Contact, ...]:
    people = _JA_PEOPLE if language == "ja" else _EN_PEOPLE
    out = []
    for j in range(rng.randint(1, 3)):
        person = rng.choice(people)
        local = f"contact{j + 1}.{account_id.lower()}"
        title = "マーケティング部 部長" if language == "ja" else "Head of Marketing"
        out.append(Contact(source=SOURCE, crm_id=f"CON-{account_id[4:]}-{j + 1}",
                           account_id=account_id, name=person, email=f"{local}@example.net",
                           title=title if j == 0 else None, is_primary=j == 0,
                           modified_at=modified))
    return tuple(out)


def _activities(account_id: str, owner: str, profile: str, tier: str, rng: random.Random,
                today: date, tz: ZoneInfo, start: date,
                modified: datetime) -> tuple[Activity, ...]:
    out: list[Activity] = []
    if profile == "dormant":
        gap_range, last_gap = (60, 120), rng.randint(150, 260)
    elif profile in ("healthy", "renewal_good", "growing", "near_limit"):
        gap_range, last_gap = (14, 35), rng.randint(2, 20)
    else:
        gap_range, last_gap = (20, 70), rng.randint(5, 110)
    day = today - timedelta(days=last_gap)
    kinds = (ActivityKind.EMAIL, ActivityKind.CALL, ActivityKind.MEETING, ActivityKind.NOTE)
    n = 0
    while day > start:
        kind = rng.choices(kinds, weights=(5, 2, 2, 1))[0]
        subject = {ActivityKind.EMAIL: "Follow-up", ActivityKind.CALL: "Check-in call",
                   ActivityKind.MEETING: "Report review", ActivityKind.NOTE: "Internal note"}[kind]
        n += 1
        out.append(Activity(source=SOURCE, crm_id=f"ACT-{account_id[4:]}-{n}",
                            account_id=account_id, kind=kind,
                            occurred_at=_at(day, rng.randint(9, 17), tz), owner_email=owner,
                            subject=subject, modified_at=modified))
        day -= timedelta(days=rng.randint(*gap_range))
    if tier == "high" and profile != "new_ok" and profile != "new_stalled":
        last_qbr = rng.randint(100, 200) if profile == "qbr_overdue" else rng.randint(10, 85)
        qbr_day = today - timedelta(days=last_qbr)
        while qbr_day > start:
            n += 1
            out.append(Activity(source=SOURCE, crm_id=f"ACT-{account_id[4:]}-{n}",
                                account_id=account_id, kind=ActivityKind.QBR,
                                occurred_at=_at(qbr_day, 14, tz), owner_email=owner,
                                subject="QBR 四半期レビュー", modified_at=modified))
            qbr_day -= timedelta(days=rng.randint(85, 100))
    return tuple(out)


def _usage_level(profile: str, plan: int, rng: random.Random) -> float:
    return {
        "low": rng.uniform(150, 800),
        "dormant": rng.uniform(50, 180),
        "near_limit": plan * rng.uniform(0.86, 0.97),
        "new_stalled": rng.uniform(20, 250),
        "new_ok": rng.uniform(1500, 4000),
    }.get(profile, rng.uniform(0.2, 0.6) * plan)


def _metrics(account_id: str, profile: str, plan: int, rng: random.Random, today: date,
             start: date, weeks: int, has_goal: bool,
             custom: Mapping[str, Any]) -> tuple[MetricPoint, ...]:
    if profile == "no_metrics":
        return ()
    level = _usage_level(profile, plan, rng)
    out: list[MetricPoint] = []
    last_sunday = today - timedelta(days=(today.weekday() + 1) % 7)
    for w in range(weeks - 1, -1, -1):
        period = last_sunday - timedelta(weeks=w)
        if period < start + timedelta(days=7):
            continue
        factor = 1.0
        if profile == "growing":
            factor = 0.6 + 0.4 * (weeks - w) / weeks
        elif profile in ("declining", "renewal_risk") and w < 5:
            factor = 0.35
        elif profile == "crash" and w < 2:
            factor = 0.08
        value = max(0.0, level * factor * rng.uniform(0.9, 1.1))
        out.append(MetricPoint(account_id, USAGE_METRIC, period, round(value)))
    if rng.random() < 0.5 or profile == "renewal_risk":
        # A survey each quarter; history matters so past days can be scored the same way.
        nps = -30 if profile == "renewal_risk" else rng.randint(-10, 70)
        survey = today - timedelta(days=rng.randint(10, 80))
        while survey > start:
            out.append(MetricPoint(account_id, "nps", survey, nps + rng.randint(-5, 5)))
            survey -= timedelta(days=91)
    if has_goal:
        target = float(custom["conversion_target"])
        ratio = 0.5 if profile in ("declining", "renewal_risk", "crash") else rng.uniform(0.7, 1.3)
        month_end = today.replace(day=1) - timedelta(days=1)
        for _ in range(12):
            if month_end <= start:
                break
            out.append(MetricPoint(account_id, "conversion_rate", month_end,
                                   round(target * ratio * rng.uniform(0.95, 1.05), 4)))
            month_end = month_end.replace(day=1) - timedelta(days=1)
    return tuple(out)


# -- the connector -----------------------------------------------------------------------------

class DemoCRM:
    """The demo CRM as a connector: generated records plus a JSON file of written-back tasks."""

    name = SOURCE

    def __init__(self, state_path: Path, *, accounts: int = 80, seed: int = 7,
                 tz: str = "Asia/Tokyo", today: date | None = None) -> None:
        self.path = state_path
        self.tz = ZoneInfo(tz)
        self.calls = 0
        self.state = self._load()
        if self.state is None:
            anchor = today or datetime.now(self.tz).date()
            self.state = {"version": STATE_VERSION, "seed": seed, "accounts": accounts,
                          "anchor": anchor.isoformat(), "tasks": []}
            self._save()

    # state file -----------------------------------------------------------------------------

    def _load(self) -> dict[str, Any] | None:
        if not self.path.exists():
            return None
        try:
            state = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"demo CRM state unreadable ({exc}); delete it or run "
                              "`kizuna demo --reset`", file=str(self.path)) from exc
        if state.get("version") != STATE_VERSION:
            raise ConfigError("demo CRM state from another version; run `kizuna demo --reset`",
                              file=str(self.path))
        return state

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state, ensure_ascii=False, indent=1), encoding="utf-8")
        os.replace(tmp, self.path)

    @property
    def anchor(self) -> date:
        return date.fromisoformat(self.state["anchor"])

    def accounts(self) -> Iterator[DemoAccount]:
        return generate(self.state["accounts"], seed=self.state["seed"], today=self.anchor,
                        tz=self.tz)

    @property
    def tasks(self) -> list[dict[str, Any]]:
        return self.state["tasks"]

    # protocol ----------------------------------------------------------------------------------

    def check(self) -> None:
        """The demo CRM needs no credentials."""

    def pull(self, cursors: Mapping[str, str]) -> Iterator[SyncBatch]:
        self.calls += 1
        since = {k: datetime.fromisoformat(v) for k, v in cursors.items()}
        generated_at = _at(self.anchor, 6, self.tz)
        if since.get("records", datetime.min.replace(tzinfo=UTC)) < generated_at:
            for demo in self.accounts():
                yield SyncBatch("records", (demo.account, *demo.contacts, *demo.activities,
                                            *demo.metrics))
            yield SyncBatch("records", cursor=generated_at.isoformat())
        task_cursor = since.get("tasks")
        changed = [t for t in self.tasks
                   if task_cursor is None or datetime.fromisoformat(t["modified_at"]) > task_cursor]
        if changed:
            activities = tuple(Activity(
                source=SOURCE, crm_id=t["id"], account_id=t["account_id"], kind=ActivityKind.TASK,
                occurred_at=datetime.fromisoformat(t["created_at"]), owner_email=t["owner_email"],
                subject=t["subject"], modified_at=datetime.fromisoformat(t["modified_at"]))
                for t in changed)
            yield SyncBatch("tasks", activities,
                            cursor=max(t["modified_at"] for t in changed))

    def create_task(self, task: CrmTask) -> str:
        self.calls += 1
        for existing in self.tasks:
            if existing["ref"] == task.ref:
                return existing["id"]
        now = datetime.now(UTC).isoformat()
        record = {
            "id": f"TSK-{len(self.tasks) + 1:06d}", "ref": task.ref, "account_id": task.account_id,
            "owner_email": task.owner_email, "subject": task.subject, "body": task.body,
            "due_on": task.due_on.isoformat(), "priority": str(task.priority),
            "language": task.language, "status": "open", "created_at": now, "modified_at": now,
        }
        self.tasks.append(record)
        self._save()
        return record["id"]

    def complete_task(self, task_id: str) -> None:
        self.calls += 1
        for existing in self.tasks:
            if existing["id"] == task_id:
                now = datetime.now(UTC).isoformat()
                existing.update(status="completed", modified_at=now)
                self._save()
                return
        raise FatalAPIError(f"no task {task_id}", connector=SOURCE)

    def stats(self) -> Mapping[str, Any]:
        return {"api_calls": self.calls}


def from_settings(settings: Settings) -> DemoCRM:
    demo = settings.config.demo
    return DemoCRM(settings.data_dir / "demo-crm.json", accounts=demo.accounts, seed=demo.seed,
                   tz=settings.config.timezone)
