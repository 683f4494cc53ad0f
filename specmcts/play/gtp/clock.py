"""GTP time controls (``time_settings``, ``kgs-time_settings``, ``time_left``): how many seconds a move gets."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Clock:
    """GTP time settings: ``kind`` none | absolute | canadian | byoyomi (KGS Japanese byo-yomi)."""

    kind: str = "none"
    main: float = 0.0
    byo_time: float = 0.0
    byo_stones: int = 0  # canadian: stones per period; byoyomi: periods
    left: dict = field(default_factory=dict)  # colour -> (seconds, stones) from time_left
    margin: float = 0.2  # seconds kept back per move for the controller's latency

    def budget(self, colour: int, move_number: int, size: int) -> float | None:
        """Seconds to spend on this move, or None without a limit."""
        if self.kind == "none":
            return None
        seconds, stones = self.left.get(colour, (self.main, 0 if self.main > 0 else self.byo_stones))
        if stones > 0 or (self.main <= 0 and seconds <= 0):  # in byo-yomi
            if self.kind == "canadian":
                per_move = (seconds if seconds > 0 else self.byo_time) / max(stones, 1)
            elif self.kind == "byoyomi":
                per_move = seconds if seconds > 0 else self.byo_time
            else:
                per_move = seconds / 30.0
        else:
            # Expect about 0.6 * N^2 moves in a game, half of them ours, and keep a floor of N^2 / 12.
            moves_left = max(size * size / 12.0, (0.6 * size * size - move_number) / 2.0)
            per_move = seconds / moves_left
            if self.kind == "canadian" and self.byo_stones > 0:
                per_move = max(per_move, min(seconds, self.byo_time / self.byo_stones))
            elif self.kind == "byoyomi":
                per_move = max(per_move, min(seconds, self.byo_time))
        return max(0.01, 0.9 * per_move - self.margin)
