"""Text helpers shared by search and display: normalisation for Japanese and English names."""

from __future__ import annotations

import unicodedata

_KATAKANA_TO_HIRAGANA = {code: code - 0x60 for code in range(0x30A1, 0x30F7)}
_COMPANY_AFFIXES = (
    "株式会社", "かぶしきがいしゃ", "(株)", "㈱", "有限会社", "合同会社",
    " inc.", " inc", " co., ltd.", " co.,ltd.", " ltd.", " ltd", " llc", " corp.", " corporation",
)


def fold(text: str) -> str:
    """Fold a name for matching: width (NFKC), case, and katakana→hiragana differences vanish."""
    return unicodedata.normalize("NFKC", text).casefold().translate(_KATAKANA_TO_HIRAGANA).strip()


def search_key(name: str) -> str:
    """The key a company name is searched by: folded, without legal-form affixes and spaces."""
    key = fold(name)
    for affix in _COMPANY_AFFIXES:
        key = key.replace(fold(affix), " ")
    return " ".join(key.split())


def truncate(text: str, limit: int) -> str:
    """Cut ``text`` to at most ``limit`` characters, marking the cut with an ellipsis."""
    if len(text) <= limit:
        return text
    return text[: max(limit - 1, 0)] + "…"
