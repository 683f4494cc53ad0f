"""KataGo's GTP extensions that GUIs send (KaTrain, Lizzie, Sabaki): rules, parameters, the raw net, avoid/allow.

- ``kata-get-rules`` answers KataGo's JSON rules object; ``kata-set-rules NAME|JSON`` accepts area-scoring rules
  (``chinese``, ``tromp-taylor`` and the other names of ``games.go.AREA_RULES``, or a JSON object whose
  ``scoring`` is ``AREA``) and refuses territory scoring with a clear ``?``: specmcts counts by area.
- ``kata-get-param``/``kata-set-param``/``kata-list-params``: ``maxVisits`` (visits per genmove) and
  ``numSearchThreads`` (threads of the batch kernels); ``playoutDoublingAdvantage`` and the other KataGo
  parameters are refused by name.
- ``kata-raw-nn SYMMETRY`` (0..7 or ``all``): the net's own evaluation of the position, from white's view as
  KataGo reports it (``whiteWin whiteLoss noResult whiteLead whiteScoreSelfplay policy policyPass
  whiteOwnership``); illegal points are ``NAN`` in the policy.
- ``avoid``/``allow`` of ``kata-analyze`` and ``lz-analyze``: ``avoid PLAYER VERTEX,VERTEX,... UNTILDEPTH``.
  They apply at the root (the first move), as the analysis engine's ``avoidMoves``/``allowMoves`` do.
- ``lz-setoption name NAME value VALUE`` (Leela Zero; Lizzie sends it): ``visits`` and ``playouts`` set the
  visits per genmove; the memory and pondering options are accepted and have nothing to change here.
"""
from __future__ import annotations

import json

import numpy as np

from games.go import AREA_RULES, BLACK, GoRules, GoState
from specmcts.play.gtp.protocol import GtpError, parse_colour, parse_int, parse_vertex

TERRITORY_RULES = {"japanese", "korean"}
PARAMS = ("maxVisits", "numSearchThreads")
KATAGO_ONLY_PARAMS = {"playoutDoublingAdvantage", "analysisWideRootNoise", "wideRootNoise", "humanSLProfile",
                      "antiMirror", "rootPolicyTemperature", "chosenMoveTemperature", "searchFactorAfterOnePass"}
LZ_VISITS = ("visits", "playouts")
LZ_NOTHING_TO_CHANGE = ("maximum memory use (mib)", "percentage of memory for cache", "pondering", "lagbuffer",
                        "resign percentage")


# -- rules ------------------------------------------------------------------------------------------------------


def rules_json(rules: GoRules) -> str:
    """KataGo's rules object for ours: area scoring, no suicide, positional or simple ko."""
    return json.dumps({"friendlyPassOk": True, "hasButton": False, "ko": "POSITIONAL" if rules.superko else "SIMPLE",
                       "scoring": "AREA", "suicide": False, "tax": "NONE", "whiteHandicapBonus": "0"},
                      separators=(",", ":"))


def parse_rules(text: str, rules: GoRules) -> GoRules:
    """``kata-set-rules``'s argument as our rules (the board size and komi kept); GtpError for territory
    scoring, suicide, or a name we do not know."""
    text = text.strip()
    superko = rules.superko
    if text.startswith("{"):
        try:
            spec = json.loads(text)
        except ValueError:
            raise GtpError("rules: not a rules name or JSON object") from None
        if not isinstance(spec, dict):
            raise GtpError("rules: not a rules name or JSON object")
        scoring = str(spec.get("scoring", "AREA")).upper()
        if scoring != "AREA":
            raise GtpError(f"rules: {scoring.lower()} scoring is not supported (specmcts counts by area: chinese, "
                           f"tromp-taylor)")
        if spec.get("suicide"):
            raise GtpError("rules: suicide is not supported (specmcts forbids it)")
        ko = str(spec.get("ko", "POSITIONAL")).upper()
        if ko not in ("SIMPLE", "POSITIONAL", "SITUATIONAL"):
            raise GtpError(f"rules: unknown ko rule {ko}")
        superko = ko != "SIMPLE"
    else:
        name = text.lower()
        if name in TERRITORY_RULES:
            raise GtpError(f"rules: {name} rules score territory, which specmcts does not (area rules: "
                           f"{', '.join(sorted(AREA_RULES))})")
        if name not in AREA_RULES:
            raise GtpError(f"rules: unknown rules {text!r} (area rules: {', '.join(sorted(AREA_RULES))})")
    return GoRules(rules.size, rules.komi, superko)


# -- parameters -------------------------------------------------------------------------------------------------


def check_param(name: str) -> None:
    if name in KATAGO_ONLY_PARAMS:
        raise GtpError(f"{name} is a KataGo parameter that specmcts does not have")
    if name not in PARAMS:
        raise GtpError(f"unknown parameter {name!r} (specmcts has: {', '.join(PARAMS)})")


def lz_option(args: list[str]) -> tuple[str, str]:
    """``name NAME value VALUE`` (NAME may have spaces) as (lower-case name, value)."""
    words = [w.lower() for w in args]
    if len(args) < 2 or words[0] != "name":
        raise GtpError("syntax error (expected: name NAME [value VALUE])")
    if "value" in words[1:]:
        at = words.index("value", 1)
        return " ".join(words[1:at]), " ".join(args[at + 1:])
    return " ".join(words[1:]), ""


# -- avoid / allow ----------------------------------------------------------------------------------------------


def take_avoid_allow(key: str, rest: list[str], size: int, to_play: int) -> np.ndarray:
    """Consume ``PLAYER VERTICES UNTILDEPTH`` of an ``avoid`` or ``allow`` key from ``rest``; the actions it
    forbids at the root for ``to_play`` (none if it names the other player)."""
    if len(rest) < 3:
        raise GtpError(f"syntax error ({key} takes PLAYER VERTEX,VERTEX,... UNTILDEPTH)")
    colour = parse_colour(rest.pop(0))
    vertices = {parse_vertex(size, v) for v in rest.pop(0).split(",") if v}
    parse_int(rest.pop(0), "untilDepth", 1)
    if colour != to_play:
        return np.zeros(0, np.int64)
    if key == "allow":
        vertices = set(range(size * size + 1)) - vertices
    return np.array(sorted(vertices), np.int64)


# -- the raw net ------------------------------------------------------------------------------------------------


def raw_nn(net, state: GoState, symmetries: list[int]) -> str:
    """``kata-raw-nn``'s answer: for each symmetry, the net's evaluation of ``state`` with its input turned
    by that symmetry and its board outputs turned back, from white's view."""
    import torch

    from games.symmetry import apply_symmetry

    size = state.size
    planes = state.features(np.float32)
    x = np.stack([apply_symmetry(planes, s) for s in symmetries]).copy()
    device = next(net.parameters()).device
    with torch.no_grad():
        out = net.heads(torch.from_numpy(x).to(device), aux=getattr(net, "has_aux_heads", False))
    logits = out["policy"].float().cpu().numpy()
    values = out["value"].float().cpu().numpy()
    scores = out["score"].float().cpu().numpy() if "score" in out else np.zeros(len(symmetries), np.float32)
    owned = (torch.tanh(out["ownership_logit"] / 2).float().cpu().numpy() if "ownership_logit" in out else None)
    legal = state.legal_mask()
    white = -1.0 if state.to_play == BLACK else 1.0  # outputs are the side to move's
    lines = []
    for i, s in enumerate(symmetries):
        inverse = (4 - s) % 4 if s < 4 else s  # a mirror after turns is its own inverse
        board = apply_symmetry(logits[i, :size * size].reshape(size, size), inverse).reshape(-1)
        logit = np.concatenate([board, logits[i, size * size:]])
        logit = np.where(legal, logit, -np.inf)
        policy = np.exp(logit - logit.max())
        policy /= policy.sum()
        win = (1.0 + white * float(values[i])) / 2.0
        lead = white * float(scores[i])
        lines += [f"symmetry {s}", f"whiteWin {win:.6f}", f"whiteLoss {1.0 - win:.6f}", "noResult 0.000000",
                  f"whiteLead {lead:.6f}", f"whiteScoreSelfplay {lead:.6f}", "policy"]
        grid = np.where(legal[:-1], policy[:-1], np.nan).reshape(size, size)
        lines += [" ".join("NAN" if np.isnan(p) else f"{p:.6f}" for p in row) for row in grid]
        lines.append(f"policyPass {policy[-1]:.6f}")
        if owned is not None:
            own = white * apply_symmetry(owned[i], inverse)
            lines.append("whiteOwnership")
            lines += [" ".join(f"{v:.6f}" for v in row) for row in own]
    return "\n".join(lines)


def parse_symmetry(args: list[str]) -> list[int]:
    if len(args) != 1:
        raise GtpError("syntax error (expected SYMMETRY: 0..7 or all)")
    if args[0].lower() == "all":
        return list(range(8))
    return [parse_int(args[0], "symmetry", 0, 7)]
