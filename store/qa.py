"""QA reviews (质检评分): scoring against the configured rubric, saved as ``qa_reviews`` rows.

Each rubric item is scored 0–100 (how well the call met it); the total is the weight-averaged score,
``Σ score × weight ÷ Σ weight``, rounded to one decimal, so it stays 0–100 whatever the weights add up to.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from config.settings import RubricItem
from store.models import QaReview
from store.records import get_call

MAX_SCORE = 100
MAX_COMMENT = 4000


class QaError(ValueError):
    """A review that cannot be stored (missing or out-of-range score, empty rubric)."""


@dataclass(frozen=True)
class ScoredReview:
    items: dict[str, dict[str, Any]]
    total: float


def score(rubric: Sequence[RubricItem], scores: Mapping[str, Any]) -> ScoredReview:
    """Check one score per rubric item (0–100) and compute the weighted total."""
    if not rubric:
        raise QaError("质检评分项未配置（[[qa.rubric]]）")
    unknown = set(scores) - {item.id for item in rubric}
    if unknown:
        raise QaError(f"未知的评分项：{', '.join(sorted(unknown))}")
    items: dict[str, dict[str, Any]] = {}
    weighted = 0.0
    weights = 0
    for item in rubric:
        raw = scores.get(item.id)
        if raw is None or raw == "":
            raise QaError(f"{item.label}：请评分")
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise QaError(f"{item.label}：评分必须是数字") from None
        if not 0 <= value <= MAX_SCORE or value != value:
            raise QaError(f"{item.label}：评分应在 0–{MAX_SCORE} 之间")
        items[item.id] = {"label": item.label, "weight": item.weight, "score": value}
        weighted += value * item.weight
        weights += item.weight
    if weights <= 0:
        raise QaError("质检评分项的权重之和必须大于 0")
    return ScoredReview(items, round(weighted / weights, 1))


def save_review(session: Session, record_id: str, reviewer: str, rubric: Sequence[RubricItem],
                scores: Mapping[str, Any], comment: str = "") -> QaReview:
    """Score and store a review of the call ``record_id`` (raises RecordNotFound / QaError)."""
    call = get_call(session, record_id)
    scored = score(rubric, scores)
    review = QaReview(call_id=call.id, reviewer=reviewer, items=scored.items, total=scored.total,
                      comment=comment.strip()[:MAX_COMMENT], status="done")
    session.add(review)
    session.flush()
    return review


def reviews_of(session: Session, call_id: int) -> list[QaReview]:
    """A call's reviews, newest first."""
    return list(session.scalars(select(QaReview).where(QaReview.call_id == call_id)
                                .order_by(QaReview.reviewed_at.desc(), QaReview.id.desc())))


__all__ = ["QaError", "ScoredReview", "score", "save_review", "reviews_of"]
