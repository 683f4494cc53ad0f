"""How often our dead-stone finding agrees with GnuGo's, on finished 9x9 games.

    python tools/scoring_agreement.py --sgf '/root/specmcts-runs/strength*/*/sgf/*.sgf' --gnugo-games 40
    python tools/scoring_agreement.py --gnugo-games 40 --json

Positions: the final position of every game given with ``--sgf`` that ended by two passes, and of
``--gnugo-games`` games GnuGo plays against itself (level 1, Chinese rules, komi 7.5; the first
``--random-moves`` moves of each are random, seeded by the game's number, so the games differ).

Referee: GnuGo 3.8 at ``--level`` loads each game (``loadsgf``) and answers ``final_score`` and
``final_status_list dead``. Ours (``games.scoring.estimate_status``) with three ownership estimates:

- ``playouts``: random playouts from the final position (what ``final_score`` used before the net had an
  ownership head);
- ``net``: the net's ownership head (``--model``, the shipped net by default);
- ``mean``: the mean of the two (``specmcts.engine.player.final_status``: what the GTP engine's ``final_score`` and
  ``final_status_list`` use when the net has an ownership head).

For each: the share of positions where the result string equals GnuGo's, and where the dead stones are the
same set. Prints a markdown table and a one-line summary; ``--json`` for one JSON object.
"""
from __future__ import annotations

import argparse
import glob
import json
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from games.go import GoRules, GoState, action_to_gtp, gtp_to_action  # noqa: E402
from games.scoring import DEFAULT_PLAYOUTS, estimate_status, ownership, parse_score  # noqa: E402
from specmcts.play.gtp_client import GtpClient, gnugo_command  # noqa: E402
from specmcts.sgf import read_sgf, write_sgf  # noqa: E402

KOMI = 7.5
METHODS = ("playouts", "net", "mean")


def gnugo_game(seed: int, random_moves: int, size: int = 9) -> tuple[GoRules, list[int]]:
    """GnuGo (level 1) against itself after ``random_moves`` seeded random legal moves, to two passes."""
    rules = GoRules(size, KOMI)
    state, moves, rng = GoState(rules), [], random.Random(seed)
    engine = GtpClient(gnugo_command(level=1, chinese_rules=True))
    try:
        engine.send(f"boardsize {size}")
        engine.send(f"komi {KOMI}")
        while not state.is_over:
            colour = "b" if len(moves) % 2 == 0 else "w"
            if len(moves) < random_moves:
                legal = [a for a in state.legal_actions() if a != rules.pass_action]
                a = rng.choice(legal)
                engine.send(f"play {colour} {action_to_gtp(size, a)}")
            else:
                answer = engine.send(f"genmove {colour}")
                a = rules.pass_action if answer.lower() == "pass" else gtp_to_action(size, answer)
                if answer.lower() == "resign":
                    break
            state.play(a)
            moves.append(a)
    finally:
        engine.close()
    return rules, moves


def referee(engine: GtpClient, path: Path) -> tuple[str, set[int]]:
    engine.send(f"loadsgf {path}")
    score = engine.send("final_score")
    dead = engine.send("final_status_list dead").split()
    return score, {gtp_to_action(9, v) for v in dead}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sgf", action="append", default=[], help="a glob of SGF files (repeatable)")
    ap.add_argument("--gnugo-games", type=int, default=0, help="GnuGo-vs-GnuGo games to add")
    ap.add_argument("--random-moves", type=int, default=4)
    ap.add_argument("--model", default="shipped", help="a checkpoint, or 'shipped' (specmcts/weights/go9.pt)")
    ap.add_argument("--level", type=int, default=10, help="GnuGo's level as referee")
    ap.add_argument("--playouts", type=int, default=DEFAULT_PLAYOUTS)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from specmcts.engine.network import load_model, resolve_model

    net, _ = load_model(resolve_model(args.model, 9), device="cpu", expect_board=9)
    from specmcts.engine.player import board_ownership, final_status

    started = time.time()
    records = []  # (name, rules, moves)
    for pattern in args.sgf:
        for name in sorted(glob.glob(pattern)):
            game = read_sgf(name)
            state = game.to_state()
            if state.is_over and not game.resigned and game.rules.size == 9:
                records.append((name, game.rules, game.moves))
    for i in range(args.gnugo_games):
        rules, moves = gnugo_game(i, args.random_moves)
        records.append((f"gnugo-self-{i}", rules, moves))
        print(f"\rgnugo games {i + 1}/{args.gnugo_games}", end="", file=sys.stderr, flush=True)

    agree = {m: {"result": 0, "dead": 0} for m in METHODS}
    with_dead, rows = 0, []
    engine = GtpClient(gnugo_command(level=args.level, chinese_rules=True))
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, rules, moves) in enumerate(records):
            path = Path(tmp) / "game.sgf"
            write_sgf(path, rules, moves)
            state = GoState(rules)
            for a in moves:
                state.play(a)
            score, dead = referee(engine, path)
            with_dead += bool(dead)
            row = {"game": name, "gnugo": score, "gnugo_dead": len(dead)}
            for method in METHODS:
                if method == "mean":
                    status = final_status(net, state, args.playouts)
                else:
                    own = board_ownership(net, state) if method == "net" else ownership(state, args.playouts)
                    status = estimate_status(state, own=own)
                ours_dead = {a for chain in status.dead for a in chain}
                same_result = parse_score(status.result()) == parse_score(score)
                agree[method]["result"] += same_result
                agree[method]["dead"] += ours_dead == dead
                row[method] = status.result()
            rows.append(row)
            print(f"\rpositions {i + 1}/{len(records)}", end="", file=sys.stderr, flush=True)
    engine.close()
    print(file=sys.stderr)
    n = len(records)
    summary = {"positions": n, "with_dead_stones": with_dead, "referee": f"gnugo-l{args.level}",
               "model": args.model, "playouts": args.playouts, "seconds": round(time.time() - started, 1),
               "agreement": {m: {k: v / max(n, 1) for k, v in agree[m].items()} for m in METHODS}}
    if args.json:
        print(json.dumps({**summary, "rows": rows}))
        return
    print("| ownership from | same result as GnuGo | same dead stones |")
    print("|---|---|---|")
    for m in METHODS:
        print(f"| {m} | {agree[m]['result']}/{n} | {agree[m]['dead']}/{n} |")
    best = max(METHODS, key=lambda m: (agree[m]["result"], agree[m]["dead"]))
    print(f"{n} finished positions ({with_dead} with dead stones by GnuGo): best {best}, "
          f"{agree[best]['result']}/{n} results agree; {summary['seconds']} s")


if __name__ == "__main__":
    main()
