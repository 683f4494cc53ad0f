"""Analysis output in the formats GUIs parse: Leela Zero's ``lz-analyze`` and KataGo's ``kata-analyze`` lines.

Winrates are from the side to move's point of view (what both formats specify). ``lcb`` is a normal
approximation ``winrate - 1.96 * sqrt(winrate * (1 - winrate) / visits)``: the tree does not keep value
variances."""
from __future__ import annotations

from typing import Callable

import numpy as np

from games.go import GoState, action_to_gtp
from specmcts.player import winrate_lcb

LCB_Z = 1.96


def format_info(analysis, state: GoState, style: str, min_moves: int = 0, max_moves: int = 0,
                pv: Callable[[int], list[int]] | None = None, ownership=None) -> str:
    """One analysis line (``info move ... info move ...``) in Leela Zero (``lz``) or KataGo (``kata``) style;
    empty when nothing has been searched yet (an empty line would end the GTP answer). ``pv(action)`` gives
    a move's principal variation where ``analysis.pvs`` has none. KataGo style adds each move's ``scoreLead``
    and ``scoreMean`` (the search's mean final score, side to move) when the net has a score head, and
    ``ownership`` (N*N values, side to move, row-major from the top left) at the end when given."""
    size = state.size
    ranked = analysis.ranked()
    if min_moves > len(ranked):  # unvisited moves by prior, as KataGo's minmoves does
        extra = [int(a) for a in np.argsort(-analysis.prior, kind="stable")
                 if analysis.prior[a] >= 0 and analysis.counts[a] == 0]
        ranked = ranked + extra[:min_moves - len(ranked)]
    if max_moves > 0:
        ranked = ranked[:max_moves]
    parts = []
    root_winrate = analysis.winrate
    for order, a in enumerate(ranked):
        visits = int(analysis.counts[a])
        q = float(analysis.q[a]) if visits > 0 and np.isfinite(analysis.q[a]) else analysis.root_value
        winrate = min(1.0, max(0.0, (q + 1.0) / 2.0)) if visits > 0 else root_winrate
        lcb = max(0.0, winrate_lcb(winrate, visits, LCB_Z))
        prior = max(0.0, float(analysis.prior[a]))
        line = analysis.pvs.get(a) or (pv(a) if pv is not None else [a])
        variation = " ".join(action_to_gtp(size, x) for x in line)
        move = action_to_gtp(size, a)
        if style == "kata":
            score = ""
            if analysis.score is not None:
                s = float(analysis.score[a]) if visits > 0 and np.isfinite(analysis.score[a]) else analysis.root_score
                score = f" scoreLead {s:.6f} scoreMean {s:.6f}"
            parts.append(f"info move {move} visits {visits} utility {2 * winrate - 1:.6f} winrate {winrate:.6f}"
                         f"{score} prior {prior:.6f} lcb {lcb:.6f} order {order} pv {variation}")
        else:
            parts.append(f"info move {move} visits {visits} winrate {round(winrate * 10000)} "
                         f"prior {round(prior * 10000)} lcb {round(lcb * 10000)} order {order} pv {variation}")
    if parts and style == "kata" and ownership is not None:
        parts.append("ownership " + " ".join(f"{v:.6f}" for v in ownership))
    return " ".join(parts)
