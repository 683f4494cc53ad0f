"""Elo difference from a match score, with a 95 % confidence interval.

Logistic Elo: a player scoring ``s`` (wins + draws / 2, over games) is ``400 * log10(s / (1 - s))`` stronger.
The interval is the Wilson score interval of ``s`` (it stays inside [0, 1] and behaves at 0 % and 100 %,
where the normal approximation collapses to a point), mapped through the same formula; draws count through
an effective number of games ``n * s(1 - s) / variance`` (a draw is less informative than a win/loss pair's
spread suggests, so the interval narrows). A perfect score has an
infinite upper bound (a shutout says "at least this much stronger"); the point estimate then uses the score
of half a game less, ``(n - 1/2) / n``, so it stays finite for logs and curves.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

Z95 = 1.959963984540054


def elo_from_score(score: float) -> float:
    """Elo difference for an expected score in (0, 1); +-inf at the ends."""
    if score <= 0.0:
        return -math.inf
    if score >= 1.0:
        return math.inf
    return 400.0 * math.log10(score / (1.0 - score))


def score_from_elo(elo: float) -> float:
    return 1.0 / (1.0 + 10.0 ** (-elo / 400.0))


def wilson_interval(score: float, games: float, z: float = Z95) -> tuple[float, float]:
    if games <= 0:
        return 0.0, 1.0
    n = float(games)
    centre = (score + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(score * (1 - score) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    low, high = max(0.0, centre - half), min(1.0, centre + half)
    # Exact ends: a shutout's bound is the end itself, not a rounding error away from it.
    return (0.0 if score <= 0.0 else low), (1.0 if score >= 1.0 else high)


@dataclass(frozen=True)
class EloEstimate:
    wins: int
    draws: int
    losses: int
    score: float  # (wins + draws / 2) / games
    elo: float  # point estimate (finite; see the module docstring)
    low: float  # 95 % interval, may be -inf
    high: float  # ... may be +inf

    @property
    def games(self) -> int:
        return self.wins + self.draws + self.losses

    def as_dict(self) -> dict:
        finite = lambda x: x if math.isfinite(x) else None  # noqa: E731  (JSON has no infinity)
        return {"wins": self.wins, "draws": self.draws, "losses": self.losses, "games": self.games,
                "score": self.score, "elo": self.elo, "elo_low": finite(self.low), "elo_high": finite(self.high)}

    def __str__(self) -> str:
        return (f"{self.wins}-{self.losses}" + (f"-{self.draws}" if self.draws else "") +
                f" ({100 * self.score:.1f}%), Elo {format_elo(self.elo)} [{format_elo(self.low)}, "
                f"{format_elo(self.high)}]")


def format_elo(x: float) -> str:
    if math.isinf(x):
        return "+inf" if x > 0 else "-inf"
    return f"{x:+.0f}"


def estimate(wins: int, draws: int, losses: int, z: float = Z95) -> EloEstimate:
    """Elo of the player who scored ``wins``/``draws``/``losses`` against the other one."""
    n = wins + draws + losses
    if n == 0:
        return EloEstimate(0, 0, 0, 0.5, 0.0, -math.inf, math.inf)
    score = (wins + 0.5 * draws) / n
    # Draws lower the variance of a game's score below the win/loss s(1 - s): widen the sample accordingly.
    variance = (wins * (1 - score) ** 2 + draws * (0.5 - score) ** 2 + losses * score ** 2) / n
    effective = n * score * (1 - score) / variance if variance > 0 and 0 < score < 1 else n
    low, high = wilson_interval(score, effective, z)
    point = min(max(score, 0.5 / n), 1.0 - 0.5 / n)
    return EloEstimate(wins, draws, losses, score, elo_from_score(point), elo_from_score(low), elo_from_score(high))
