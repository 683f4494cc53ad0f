"""Gymnasium environment for Go: ``gymnasium.make("specmcts/Go-v0", size=9, komi=7.5)`` after ``import games``.

One environment plays both colours (self-play / two-player turn-taking, as in PettingZoo's classic games but
with the single-agent API): every ``step`` is a move by the side to move, ``info["to_play"]`` says whose
turn it is.
"""
from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from games.go import GoRules, GoState, IllegalMoveError
from native.features import NUM_PLANES


class GoEnv(gym.Env):
    """Go under the project's rules (area scoring, positional superko, suicide illegal, komi).

    Spaces
        ``action_space``: ``Discrete(N*N + 1)``; ``a = row*N + col`` with row 0 the top row (GTP row N),
        ``N*N`` is pass. Resignation is not an action of this env.
        ``observation_space``: ``Box(0, 1, (18, N, N), float32)``, exactly ``GoState.features()``, the planes
        the network sees (from the point of view of the side to move).

    Info (on ``reset`` and every ``step``)
        ``action_mask``: ``np.int8 [N*N + 1]``, 1 for legal actions; all zeros once the game is over. It is the
        format ``env.action_space.sample(mask=info["action_mask"])`` expects.
        ``to_play``: ``games.BLACK`` (1) or ``games.WHITE`` (2), the side that moves next.
        ``move_number``: moves played so far (passes included).
        At the end also ``score`` (black's area minus white's area minus komi), ``winner``
        (BLACK/WHITE/EMPTY for a draw) and ``result`` (SGF style, e.g. ``"B+3.5"``).

    Rewards and termination
        The reward of a step is for the player who made that move: +1 if the move ended the game and that
        player won, -1 if it lost, 0 for a draw and for every move before the end. The game ends
        (``terminated=True``) after two consecutive passes or after the maximum length ``2*N*N`` moves; in
        both cases it is scored as it stands (Tromp-Taylor area), so reaching the length limit is a real end
        of the game, not a truncation. ``truncated`` is always False (wrap with ``TimeLimit`` for a shorter
        cut-off).

    Illegal actions
        Stepping with an illegal action (occupied point, suicide, superko), an action outside the space, or
        after the game has ended raises ``games.IllegalMoveError`` (a ``ValueError``) and leaves the state
        unchanged. Use ``info["action_mask"]`` to pick legal moves.

    Reset
        ``reset(seed=...)`` seeds ``self.np_random`` (the game itself is deterministic; the generator is
        there for agents and wrappers that want a reproducible stream tied to the env).
        ``reset(options={"moves": [...]})`` starts from the position after those actions.

    Rendering
        ``render_mode="ansi"``: ``render()`` returns the board as text (``str(GoState)``).
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 1}

    def __init__(self, size: int = 9, komi: float = 7.5, superko: bool = True, render_mode: str | None = None):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}")
        self.rules = GoRules(size=int(size), komi=float(komi), superko=bool(superko))
        self.render_mode = render_mode
        n = self.rules.size
        self.action_space = spaces.Discrete(n * n + 1)
        self.observation_space = spaces.Box(0.0, 1.0, (NUM_PLANES, n, n), np.float32)
        self.state = GoState(self.rules)

    # -- helpers -------------------------------------------------------------------------------
    def _obs(self) -> np.ndarray:
        return self.state.features(np.float32)

    def _info(self) -> dict[str, Any]:
        s = self.state
        info: dict[str, Any] = {
            "action_mask": s.legal_mask().astype(np.int8),
            "to_play": s.to_play,
            "move_number": s.move_number,
        }
        if s.is_over:
            info["score"] = s.score()
            info["winner"] = s.winner()
            info["result"] = s.result_string()
        return info

    # -- gymnasium API -------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.state = GoState(self.rules)
        if options and options.get("moves") is not None:
            for a in options["moves"]:
                self.state.play(int(a))
        return self._obs(), self._info()

    def step(self, action):
        s = self.state
        try:
            a = int(action)
        except (TypeError, ValueError):
            raise IllegalMoveError(f"action must be an integer in 0..{self.rules.pass_action}, got {action!r}") from None
        if s.is_over:
            raise IllegalMoveError("the game is over: call reset() before step()")
        if not 0 <= a <= self.rules.pass_action:
            raise IllegalMoveError(f"action {a} is outside the action space 0..{self.rules.pass_action}")
        mover = s.to_play
        s.play(a)  # raises IllegalMoveError with the reason, state unchanged
        terminated = s.is_over
        reward = float(s.result_for(mover)) if terminated else 0.0
        return self._obs(), reward, terminated, False, self._info()

    def render(self):
        if self.render_mode == "ansi":
            return str(self.state)
        return None

    def close(self):
        pass


__all__ = ["GoEnv"]
