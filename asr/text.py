"""Transcript text helpers: CJK spacing and character error rate."""

from __future__ import annotations

import re
import unicodedata

# CJK unified ideographs (base, extension A, compatibility, extensions B+).
_IDEOGRAPH = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
_SPACE_BETWEEN_IDEOGRAPHS = re.compile(rf"(?<=[{_IDEOGRAPH}])\s+(?=[{_IDEOGRAPH}])")


def join_cjk(text: str) -> str:
    """Remove whitespace between two CJK ideographs (Vosk spaces Chinese words apart); keep every other
    space, e.g. between Korean hangul words or between an ideograph and a Latin word."""
    return _SPACE_BETWEEN_IDEOGRAPHS.sub("", text.strip())


def normalize_for_cer(text: str) -> str:
    """Characters compared by CER: no whitespace, no punctuation or symbols, NFKC, lower case."""
    text = unicodedata.normalize("NFKC", text).lower()
    return "".join(ch for ch in text if unicodedata.category(ch)[0] in ("L", "N"))


def edit_distance(ref: str, hyp: str) -> int:
    """Levenshtein distance between two strings (substitution, insertion, deletion cost 1)."""
    if len(ref) < len(hyp):
        ref, hyp = hyp, ref
    prev = list(range(len(hyp) + 1))
    for i, rc in enumerate(ref, 1):
        cur = [i]
        for j, hc in enumerate(hyp, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (rc != hc)))
        prev = cur
    return prev[-1]


def character_error_rate(reference: str, hypothesis: str) -> tuple[int, int]:
    """``(errors, reference_characters)`` after :func:`normalize_for_cer`; sum these over a corpus and
    divide once, so long calls weigh more than short ones."""
    ref = normalize_for_cer(reference)
    hyp = normalize_for_cer(hypothesis)
    return edit_distance(ref, hyp), len(ref)
