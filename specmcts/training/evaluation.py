"""A run's matches (``specmcts run``): Elo points against the run's first net (or ``run.elo_reference``) and
GnuGo, per board size, and gating of a candidate net against the current self-play net. ``RunMatches`` holds
what they record (``last_elo``, ``gating``) and reads the rest from its ``RunLoop`` (trainer, writer, store,
the stop request).
"""
from __future__ import annotations

import json
from pathlib import Path

from specmcts.config import Config, ConfigError
from specmcts.engine.evaluator import make_evaluator
from specmcts.engine.network import CheckpointError, board_model_id, build_net, resolve_model
from specmcts.play.match import MatchError, NetSide, gate, opponent_side, play_match
from specmcts.training.backends import chunk_seed


def elo_reference(cfg: Config) -> Path | None:
    """The checkpoint named by ``run.elo_reference`` (``shipped``: the board's embedded net), or None when
    unset (the run's first checkpoint is the reference); ConfigError if it names no checkpoint."""
    spec = cfg.run.elo_reference
    if not spec:
        return None
    try:
        path = Path(resolve_model(spec, cfg.game.board, flag="run.elo_reference"))
    except CheckpointError as err:
        raise ConfigError(str(err)) from None
    if not path.is_file():
        raise ConfigError(f"run.elo_reference {spec}: no such checkpoint")
    return path


class RunMatches:
    """Elo points and gating for a ``RunLoop`` (``loop``)."""

    def __init__(self, loop):
        self.loop = loop
        self.last_elo: dict = {}
        self.gating: dict = {"accepted": 0, "rejected": 0}
        self._gnugo_failed = False  # GnuGo could not be played: no more Elo points against it in this run start

    def adopt(self, path: Path) -> None:
        """Adopt ``path`` as the self-play net (``models/selfplay.json``), through a gating match when it is on."""
        r = self.loop.cfg.run
        step = self.loop.trainer.step
        if r.gating_games <= 0:
            self.loop.store.write_pointer(path, self.loop.trainer.model_id, step)
            return
        pointer = self.loop.store.read_pointer()
        if pointer is None or pointer.get("path") == path.name:
            self.loop.store.write_pointer(path, self.loop.trainer.model_id, step)
            return
        match = self._match(self.loop.store.dir / pointer["path"], r.gating_games, "gating", f"gate-{step:08d}")
        if match.stopped:  # a part of a match decides nothing
            self.loop.report(f"run: gating at step {step} interrupted after {len(match.games)} games: "
                        f"kept {pointer['path']}")
            return
        accepted = gate(match.score, r.gating_threshold)
        self.gating["accepted" if accepted else "rejected"] += 1
        self.loop.writer.add_scalar("gating/score", match.score, step)
        self.loop.writer.add_scalar("gating/accepted", 1.0 if accepted else 0.0, step)
        self.loop.report(f"run: gating at step {step}: {match.elo()} vs {pointer['path']} -> "
                    f"{'adopted' if accepted else 'kept ' + pointer['path']}")
        if accepted:
            self.loop.store.write_pointer(path, self.loop.trainer.model_id, step)

    def _match(self, opponent, games: int, purpose: str, prefix: str, board: int = 0):
        """The trainer's current net against ``opponent`` (a checkpoint path or 'gnugo'), ``games`` games on
        ``board`` (0: game.board); a Ctrl-C stops it at its next move (``MatchResult.stopped``: the caller
        records nothing from it)."""

        cfg = self.loop.cfg.at_board(board or self.loop.cfg.game.board)
        board = cfg.game.board
        concurrent = max(1, min(cfg.eval.concurrent, games))
        candidate = build_net(board, self.loop.trainer.net.net_cfg)
        candidate.load_state_dict({k: v.detach().cpu() for k, v in self.loop.trainer.net.state_dict().items()})
        candidate.model_id = board_model_id(self.loop.trainer.model_id, board, self.loop.cfg.game.board)
        a = NetSide(f"step{self.loop.trainer.step}", make_evaluator(cfg, board, candidate, device=self.loop.device), cfg,
                    concurrent, seed=chunk_seed(cfg.seed, self.loop.trainer.step, 1))
        b = opponent_side(str(opponent), cfg, concurrent, self.loop.device,
                          seed=chunk_seed(cfg.seed, self.loop.trainer.step, 2))
        rules = cfg.game.rules()
        sgf_dir = self.loop.run_dir / "eval" / purpose if cfg.eval.sgf else None
        prefix = f"{board}x{board}-{prefix}" if self.loop.cfg.game.mixed else prefix
        try:
            return play_match(rules, a, b, games, concurrent, sgf_dir, prefix=prefix, stop_when=self.loop._interrupted,
                              opening_plies=cfg.eval.opening_plies, seed=chunk_seed(cfg.seed, self.loop.trainer.step, 3))
        finally:
            a.close()
            b.close()

    def evaluate_elo(self) -> None:
        """Elo points: the net against the run's first net (or run.elo_reference) and against GnuGo, on each
        size of ``run.eval_boards`` (a mixed-size run; ``elo/<N>x<N>/...``). A match stopped by a Ctrl-C
        measures nothing: it and the ones after it are not recorded."""
        cfg = self.loop.cfg
        boards = cfg.run.eval_boards or cfg.game.sizes()
        for board in boards:
            if not self._evaluate_elo_on(board) or self.loop._interrupted():
                return

    def _evaluate_elo_on(self, board: int) -> bool:
        """One size's Elo point; False when interrupted."""
        r = self.loop.cfg.run
        mixed = self.loop.cfg.game.mixed
        tag = f"elo/{board}x{board}/" if mixed else "elo/"
        step = self.loop.trainer.step
        first = elo_reference(self.loop.cfg) or self.loop.store.first()
        point, lines = {}, []  # what was measured at this step
        if first is not None and r.eval_games > 0:
            m = self._match(first, r.eval_games, "elo", f"vs-first-{step:08d}", board)
            if m.stopped:
                self.loop.report(f"run: Elo at step {step} not measured: interrupted after {len(m.games)} games")
                return False
            est = m.elo()
            self.loop.writer.add_scalar(f"{tag}vs_first", est.elo, step)
            self.loop.writer.add_scalar(f"{tag}score_vs_first", est.score, step)
            point["vs_first"] = est.as_dict()
            lines.append(f"vs first {est}")
        if r.eval_gnugo_games > 0 and not self._gnugo_failed:
            level = self.loop.cfg.eval.gnugo_level
            try:
                m = self._match("gnugo", r.eval_gnugo_games, "elo", f"vs-gnugo-l{level}-{step:08d}", board)
            except MatchError as e:
                self.loop.report(f"run: no Elo vs GnuGo from now on: {e}")
                self._gnugo_failed = True
            else:
                if m.stopped:
                    self.loop.report(f"run: Elo vs GnuGo at step {step} not measured: interrupted after "
                                f"{len(m.games)} games")
                    return False
                est = m.elo()
                judged = {k: v for k, v in m.summary().items() if k.startswith("judge")}  # its final_score
                self.loop.writer.add_scalar(f"{tag}vs_gnugo_l{level}", est.elo, step)
                self.loop.writer.add_scalar(f"{tag}score_vs_gnugo_l{level}", est.score, step)
                point[f"vs_gnugo_l{level}"] = {**est.as_dict(), **judged}
                lines.append(f"vs gnugo-l{level} {est} ({judged['judge_disagreements']} disagree with "
                             f"Tromp-Taylor)")
        if point:
            if mixed:
                self.last_elo.setdefault(f"{board}x{board}", {}).update(point)
            else:
                self.last_elo.update(point)
            record = {"step": step, "model_id": self.loop.trainer.model_id, **({"board": board} if mixed else {}), **point}
            with open(self.loop.run_dir / "eval" / "elo.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")
            self.loop._note(f"run: step {step}{f' {board}x{board}' if mixed else ''}: " + "; ".join(lines))
        return True
