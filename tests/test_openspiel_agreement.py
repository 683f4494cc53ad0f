"""OpenSpiel's Go as a second referee: legal move sets compared move by move on seeded random games.

OpenSpiel enforces simple ko only; we enforce positional superko. So the one allowed difference is a move
OpenSpiel allows and we forbid, and each such move must be a superko repetition: legal without superko, and
leading to a board that occurred earlier in the game. Anything we allow must be allowed by OpenSpiel.

Final returns are compared in every game: both end a game at two passes or at the same 2*N*N move limit
(asserted move by move), and both score the board as it stands by area.

Action ids: OpenSpiel numbers points from the bottom row (``a1`` = 0), ours from the top row; the mapping
is built from OpenSpiel's own ``action_to_string`` and checked on a few anchors.
"""
from __future__ import annotations

import random

import pytest

from games.go import BLACK, WHITE, GoRules, GoState, gtp_to_action
from native import board as kernels
from native import layout

try:
    import pyspiel
except ImportError:  # a dev install has it (pip install -e '.[dev]'); these tests never skip
    pytest.fail("open_spiel is required: pip install open_spiel", pytrace=False)

KOMI = 7.5
GAMES = {5: 200, 7: 200, 9: 150}


def openspiel_game(size: int):
    return pyspiel.load_game("go", {"board_size": size, "komi": KOMI})


def action_maps(size: int) -> tuple[dict[int, int], dict[int, int]]:
    """(openspiel id -> our action, our action -> openspiel id)."""
    game = openspiel_game(size)
    state = game.new_initial_state()
    theirs_to_ours = {}
    for a in range(game.num_distinct_actions()):
        text = state.action_to_string(state.current_player(), a)  # e.g. "B a1", "B PASS"
        theirs_to_ours[a] = gtp_to_action(size, text.split()[1])
    assert sorted(theirs_to_ours.values()) == list(range(size * size + 1))
    return theirs_to_ours, {v: k for k, v in theirs_to_ours.items()}


@pytest.mark.parametrize("size", [5, 7, 9])
def test_coordinate_convention(size):
    theirs_to_ours, _ = action_maps(size)
    n = size
    assert theirs_to_ours[0] == (n - 1) * n  # a1: bottom-left, our last row
    assert theirs_to_ours[n - 1] == n * n - 1  # bottom-right
    assert theirs_to_ours[n * n - n] == 0  # top-left
    assert theirs_to_ours[n * n] == n * n  # pass has the same id
    for a, ours in theirs_to_ours.items():
        if a < n * n:
            row_from_bottom, col = divmod(a, n)
            assert ours == (n - 1 - row_from_bottom) * n + col
    # And OpenSpiel's board agrees with where we put the stone.
    game = openspiel_game(size)
    state = game.new_initial_state()
    state.apply_action(1)  # b1
    assert "X" in str(state).splitlines()[-2]  # the last board row is row 1


def superko_repetition(state: GoState, action: int, seen: set[int]) -> bool:
    """Legal without superko, and the resulting board occurred before."""
    probe = state.copy()
    probe.core[layout.M_SUPERKO] = 0
    if not probe.is_legal(action):
        return False
    probe.play(action)
    return probe.hash in seen


def play_both(size: int, seed: int, uniform: bool):
    """One game in both implementations; returns (ours, theirs, number of superko differences)."""
    to_ours, to_theirs = action_maps(size)
    rules = GoRules(size, KOMI)
    ours = GoState(rules)
    theirs = openspiel_game(size).new_initial_state()
    rng = random.Random(seed)
    kernels.seed_kernels(seed)
    seen = {ours.hash}
    differences = 0
    while not ours.is_over:
        assert not theirs.is_terminal(), f"openspiel ended the game at move {ours.move_number}, we did not"
        assert theirs.current_player() == (0 if ours.to_play == BLACK else 1)
        legal_ours = set(ours.legal_actions().tolist())
        legal_theirs = {to_ours[a] for a in theirs.legal_actions()}
        extra = legal_ours - legal_theirs
        assert not extra, f"move {ours.move_number}: we allow {sorted(map(ours.action_to_gtp, extra))}\n{ours}"
        for a in legal_theirs - legal_ours:
            assert superko_repetition(ours, a, seen), (
                f"move {ours.move_number}: openspiel allows {ours.action_to_gtp(a)}, which is no superko "
                f"repetition\n{ours}\n{theirs}"
            )
            differences += 1
        if uniform:
            points = [a for a in legal_ours if a != rules.pass_action]
            a = rng.choice(sorted(points)) if points and rng.random() > 0.02 else rules.pass_action
            ours.play(a)
        else:
            a = ours.play_random()
        theirs.apply_action(to_theirs[a])
        seen.add(ours.hash)
    assert theirs.is_terminal(), f"we ended the game at move {ours.move_number}, openspiel did not"
    return ours, theirs, differences


@pytest.mark.parametrize("size", sorted(GAMES))
def test_legal_moves_and_results_agree_with_openspiel(size):
    total_differences = by_passes = 0
    for game in range(GAMES[size]):
        seed = 10_000 * size + game
        ours, theirs, differences = play_both(size, seed, uniform=game % 2 == 0)
        total_differences += differences
        returns = theirs.returns()
        if ours.consecutive_passes >= 2:
            by_passes += 1
        expected = [float(ours.result_for(BLACK)), float(ours.result_for(WHITE))]
        assert returns == expected, f"seed {seed}: openspiel returns {returns}, we score {ours.result_string()}"
    print(f"\n{size}x{size}: {GAMES[size]} games, {by_passes} ended by two passes, "
          f"{total_differences} superko-only differences")
    assert by_passes >= GAMES[size] // 2
    assert total_differences > 0, "no superko situation arose; the seeds no longer exercise the difference"
