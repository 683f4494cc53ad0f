"""Full games between two GTP engines: specmcts against GnuGo (or Pachi, or another specmcts), both colours.

The games are played by the one match loop, ``specmcts.play.match.play_match``, with a ``GTPSide`` for each
engine. A referee ``GoState`` (our rules: area scoring, positional superko, suicide illegal) follows every
game: each ``genmove`` answer is checked and passed on to the other engine with ``play``. A game ends

- by two passes in a row, or at the rules' length limit (2·N² moves): then *both* engines are asked
  ``final_score`` and the result stands when they agree (same winner, same margin); a disagreement is
  recorded as a dispute with both answers, and the referee's Tromp-Taylor count (no dead stones removed)
  is written to the SGF (``games.scoring.judge_game``);
- by resignation (``X+R``), or by an illegal or unreadable move, which loses (``X+F``).

Every game is written as SGF (``<out>/game-NNNN.sgf``) with both engines' scores in the game comment.
``play_engines`` alternates colours and returns ``MatchGame`` records; ``summary`` condenses them.
Used by ``tools/gtp_vs_gnugo.py``. How an engine is started (``EngineSpec``, ``gnugo_spec``, ``specmcts_spec``)
is ``specmcts.play.gtp_client``'s.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from games.go import BLACK, GoRules, action_to_gtp
from games.scoring import FINAL_SCORE, Judgement
from specmcts.play.match import GTPSide, MatchError
from specmcts.play.match import play_match as play
from specmcts.play.gtp_client import EngineSpec


@dataclass
class MatchGame:
    index: int
    black: str
    white: str
    moves: list[str] = field(default_factory=list)  # GTP vertices
    end: str = ""  # passes | length limit | resignation | illegal move | engine error
    result: str | None = None  # 'B+3.5', 'W+R', '0', 'B+F' ...; the agreed one when both engines scored
    scores: dict[str, str] = field(default_factory=dict)  # engine name -> its final_score answer
    agreed: bool | None = None  # None: no scoring was needed (resignation, forfeit)
    judgement: list[str] = field(default_factory=list)  # both engines' final_score and our count (Judgement)
    sgf: str | None = None
    seconds: float = 0.0
    note: str = ""

    @property
    def winner(self) -> str | None:
        """Name of the winning engine, None for a draw or no result."""
        if not self.result or self.result == "0":
            return None
        return self.black if self.result.upper().startswith("B") else self.white

    def as_dict(self) -> dict:
        d = asdict(self)
        d["winner"] = self.winner
        return d


def _colour(c: int) -> str:
    return "B" if c == BLACK else "W"


def play_engines(a: EngineSpec, b: EngineSpec, games: int = 2, size: int = 9, komi: float = 7.5,
               out: Path | None = None, max_moves: int | None = None, progress=None,
               stop_when=None) -> list[MatchGame]:
    """``games`` games, ``a`` Black in the even-numbered ones, through the one match loop
    (``specmcts.play.match.play_match``); each engine is started once and reused (``clear_board`` between
    games). SGF (``game-NNNN.sgf``) and engine logs (``<name>.log``) go under ``out`` when given. An engine
    that fails ends the match: the games so far come back, the last one marked ``engine error``.
    ``stop_when()`` true (checked before each move): the finished games come back, the one in flight is
    abandoned (a Ctrl-C)."""
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
    rules = GoRules(size, komi)
    sides = [GTPSide(spec.name, list(spec.command), rules, 1, setup=spec.setup,
                     log_path=out / f"{spec.name}.log" if out else None) for spec in (a, b)]
    results: list[MatchGame] = []

    def done(record) -> None:
        results.append(_match_game(record, size))
        if progress is not None:
            progress(results[-1])

    try:
        play(rules, sides[0], sides[1], games, concurrent=1, sgf_dir=out, prefix="game", max_moves=max_moves,
             on_game=done, stop_when=stop_when)
    except MatchError as e:
        i = len(results)
        black, white = (a.name, b.name) if i % 2 == 0 else (b.name, a.name)
        results.append(MatchGame(i, black, white, end="engine error", note=f"MatchError: {e}"))
    finally:
        for side in sides:
            side.close()
    return results


def _match_game(record, size: int) -> MatchGame:
    """An ``evaluate.GameResult`` as this module reports games: moves as GTP vertices, both judgements."""
    game = MatchGame(record.index, record.black, record.white,
                     moves=[action_to_gtp(size, x) for x in record.actions if x != size * size + 1],
                     end=record.end, result=record.result, note=record.note, seconds=record.seconds, sgf=record.sgf)
    if record.judge is not None:
        game.scores = {name: answer for name, answer in record.final_score.items()}
        game.agreed = record.judge == FINAL_SCORE
        judgement = Judgement(record.result, record.winner, record.judge, record.tromp_taylor,
                              dict(record.final_score), record.disagreement)
        game.judgement = judgement.comment_lines()
        if not game.agreed:
            game.note = "final_score disputed; result is the Tromp-Taylor count as the board stands"
    return game


def summary(games: list[MatchGame], name: str) -> dict:
    """Wins/losses/draws of engine ``name``, scoring agreement, moves and time."""
    played = [g for g in games if g.result]
    wins = sum(g.winner == name for g in played)
    draws = sum(g.result == "0" for g in played)
    scored = [g for g in games if g.agreed is not None]
    return {
        "engine": name,
        "games": len(games),
        "wins": wins,
        "losses": len(played) - wins - draws,
        "draws": draws,
        "scored": len(scored),
        "agreed": sum(bool(g.agreed) for g in scored),
        "errors": sum(g.end in ("engine error", "illegal move") for g in games),
        "moves": sum(len(g.moves) for g in games),
        "seconds": sum(g.seconds for g in games),
    }


def format_table(games: list[MatchGame]) -> str:
    head = f"{'game':>4}  {'black':<12} {'white':<12} {'moves':>5}  {'end':<12} {'result':<8} {'agreed':<6}  scores"
    rows = [head]
    for g in games:
        agreed = "-" if g.agreed is None else ("yes" if g.agreed else "NO")
        scores = ", ".join(f"{n}: {s}" for n, s in g.scores.items())
        rows.append(f"{g.index:>4}  {g.black:<12} {g.white:<12} {len(g.moves):>5}  {g.end:<12} "
                    f"{g.result or '-':<8} {agreed:<6}  {scores}")
    return "\n".join(rows)


def format_summary(s: dict, opponent: str) -> str:
    return (f"{s['engine']} vs {opponent}: {s['wins']}-{s['losses']}-{s['draws']} (W-L-D) in {s['games']} games, "
            f"final_score agreed {s['agreed']}/{s['scored']}, {s['errors']} errors, {s['moves']} moves, "
            f"{s['seconds']:.1f} s")
