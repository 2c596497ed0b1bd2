"""User-facing strings of the bot, in Japanese and English."""

from __future__ import annotations

STRINGS: dict[str, dict[str, str]] = {
    "account": {"ja": "アカウント", "en": "Account"},
    "owner": {"ja": "担当", "en": "Owner"},
    "segment": {"ja": "ポートフォリオ", "en": "Portfolio"},
    "health": {"ja": "ヘルス", "en": "Health"},
    "health_unknown": {"ja": "算出不可(データ不足)", "en": "unknown (not enough data)"},
    "pulled_down": {"ja": "押し下げ要因", "en": "Pulled down by"},
    "why": {"ja": "理由", "en": "Why"},
    "evidence": {"ja": "根拠", "en": "Evidence"},
    "due": {"ja": "期限", "en": "Due"},
    "renewal": {"ja": "更新日", "en": "Renewal"},
    "last_touch": {"ja": "最終接触", "en": "Last touch"},
    "task_created": {"ja": "CRMタスク作成済み", "en": "CRM task created"},
    "btn_create_task": {"ja": "CRMタスクを作成", "en": "Create CRM task"},
    "btn_draft": {"ja": "メール下書き", "en": "Draft email"},
    "btn_snooze": {"ja": "スヌーズ", "en": "Snooze"},
    "btn_done": {"ja": "完了", "en": "Done"},
    "btn_not_useful": {"ja": "役に立たない", "en": "Not useful"},
    "snooze_1d": {"ja": "1日", "en": "1 day"},
    "snooze_1w": {"ja": "1週間", "en": "1 week"},
    "snooze_date": {"ja": "日付を指定…", "en": "Until a date…"},
    "severity_high": {"ja": "重要度: 高", "en": "Priority: high"},
    "severity_medium": {"ja": "重要度: 中", "en": "Priority: medium"},
    "severity_low": {"ja": "重要度: 低", "en": "Priority: low"},
    "high_touch": {"ja": "ハイタッチ", "en": "high-touch"},
    "low_touch": {"ja": "ロータッチ", "en": "low-touch"},
    "tech_touch": {"ja": "テックタッチ", "en": "tech-touch"},
    "active": {"ja": "アクティブ", "en": "active"},
    "passive": {"ja": "パッシブ", "en": "passive"},
    "dormant": {"ja": "休眠", "en": "dormant"},
    "green": {"ja": "良好", "en": "green"},
    "yellow": {"ja": "注意", "en": "yellow"},
    "red": {"ja": "危険", "en": "red"},
    "cadence": {"ja": "接触目安 {days}日", "en": "cadence {days} days"},
    "potential_band": {"ja": "ポテンシャル {band}", "en": "{band} potential"},
}


def tr(key: str, language: str, **values: object) -> str:
    """The string ``key`` in ``language`` (Japanese unless English is asked for)."""
    entry = STRINGS[key]
    text = entry.get(language) or entry["ja"]
    return text.format(**values) if values else text
