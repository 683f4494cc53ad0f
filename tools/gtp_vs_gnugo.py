"""Play specmcts against GnuGo over GTP: full games, both colours, scored by both engines' final_score.

    python tools/gtp_vs_gnugo.py --games 4 --board 9 --visits 64 --level 1 --out runs/vs-gnugo
    python tools/gtp_vs_gnugo.py --model runs/go9/model.pt --games 20 --json

Prints one row per game (moves, how it ended, result, whether the two final_score answers agreed) and a
one-line summary; SGF of every game and both engines' stderr logs go to --out (default: a temp folder).
Ctrl-C (or SIGTERM) stops at the next move: the finished games are printed and kept, exit 130.
--engine replaces our side with any GTP command line, e.g. --engine "pachi -t =5000".
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from specmcts.play.gtp_client import EngineSpec, find_gnugo, gnugo_spec, parse_command, specmcts_spec  # noqa: E402
from specmcts.play.engine_match import format_summary, format_table, play_engines, summary  # noqa: E402
from specmcts.stopping import GracefulStop, say  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--games", type=int, default=2, help="games, colours alternate (default 2)")
    p.add_argument("--board", type=int, default=9, help="board size (default 9)")
    p.add_argument("--komi", type=float, default=7.5)
    p.add_argument("--visits", type=int, default=64, help="specmcts visits per move (default 64)")
    p.add_argument("--model", help="specmcts checkpoint (default: a fresh net)")
    p.add_argument("--seed", type=int, default=0, help="specmcts seed (fresh net weights)")
    p.add_argument("--level", type=int, default=1, help="GnuGo level 0..10 (default 1)")
    p.add_argument("--engine", help="our side as a GTP command line instead of specmcts")
    p.add_argument("--max-moves", type=int, help="stop games here and score them (default: 2 N^2)")
    p.add_argument("--out", help="folder for SGF and engine logs (default: a temporary folder)")
    p.add_argument("--json", action="store_true", help="print the games and the summary as JSON")
    args = p.parse_args(argv)

    if find_gnugo() is None:
        print("gtp_vs_gnugo: gnugo not found on PATH or in /usr/games (apt-get install -y gnugo)", file=sys.stderr)
        return 1
    if args.engine:
        ours = EngineSpec("engine", parse_command(args.engine))
    else:
        ours = specmcts_spec(args.visits, args.board, args.model, args.seed)
    gnugo = gnugo_spec(args.level)
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="gtp-vs-gnugo-"))

    def progress(game):
        if not args.json:
            print(f"game {game.index}: {game.black} (B) vs {game.white} (W): {len(game.moves)} moves, "
                  f"{game.end}, {game.result}", file=sys.stderr, flush=True)

    def stopping() -> None:
        say("gtp_vs_gnugo: stopping after this move, keeping the finished games (again to stop now)")

    with GracefulStop(stopping) as stop:
        games = play_engines(ours, gnugo, args.games, args.board, args.komi, out, args.max_moves, progress,
                           stop_when=lambda: stop.requested)
    s = summary(games, ours.name)
    s["out"] = str(out)
    s["stop_reason"] = "interrupted" if stop.requested else "done"
    if args.json:
        print(json.dumps({"games": [g.as_dict() for g in games], "summary": s}, indent=1, default=str))
    else:
        print(format_table(games))
        print(format_summary(s, gnugo.name) + f"; SGF and logs in {out}"
              + ("; stopped: interrupted (finished games kept)" if stop.requested else ""))
    if stop.requested:
        return 130
    return 0 if s["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
