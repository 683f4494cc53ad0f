"""GnuGo as an independent referee for the rules kernels.

Seeded random games (``GoState.play_random``: uniform over legal moves that do not fill the mover's own eye,
pass only when none is left) are replayed into GnuGo over GTP with Chinese rules and komi 7.5:

- GnuGo must accept every move, and its board at the end (``list_stones``) must equal ours (captures);
- the winner must agree in every game that ended by two passes, and in max-length games where GnuGo
  finds no dead stones;
- where GnuGo's dead list is empty, area scoring has nothing to remove, so ``final_score`` must equal our
  Tromp-Taylor result string exactly. Such games must be the large majority.

On 9x9 the final positions are also probed point by point: GnuGo's ``is_legal`` for both colours must equal
our occupancy + suicide rule (after two passes neither side has a ko restriction).

This test is not optional: CI installs gnugo, so a missing binary is a failure, not a skip.
"""
from __future__ import annotations

import time

import numpy as np
import pytest

from games.go import BLACK, WHITE, GoRules, GoState, action_to_gtp
from native import board as kernels
from native import layout
from specmcts.play.gtp_client import GtpClient, GtpClientError, find_gnugo, gnugo_command

KOMI = 7.5
GAMES = {9: 150, 13: 20, 19: 50}  # 220 games, ~10 s on two cores


def seed_for(size: int, game: int) -> int:
    return 1_000 * size + game


@pytest.fixture(scope="module")
def gnugo_factory():
    if find_gnugo() is None:
        pytest.fail(
            "gnugo is required for the rules agreement tests and was not found on PATH or in /usr/games; "
            "install it (apt-get install -y gnugo)",
            pytrace=False,
        )
    engines = []

    def start(size: int) -> GtpClient:
        engine = GtpClient(gnugo_command(level=1, chinese_rules=True))
        engines.append(engine)
        engine.send(f"boardsize {size}")
        engine.send(f"komi {KOMI}")
        return engine

    yield start
    for engine in engines:
        engine.close()


def random_game(size: int, seed: int) -> tuple[GoState, list[int]]:
    kernels.seed_kernels(seed)
    state = GoState(GoRules(size, KOMI))
    moves = []
    while not state.is_over:
        moves.append(state.play_random())
    return state, moves


def gtp_stones(engine: GtpClient, colour: str) -> set[str]:
    return set(engine.send(f"list_stones {colour}").upper().split())


def our_stones(state: GoState, colour: int) -> set[str]:
    return {action_to_gtp(state.size, int(a)) for a in np.flatnonzero(state.board().flatten() == colour)}


def final_position_legality(engine: GtpClient, state: GoState) -> list[str]:
    """Compare GnuGo's ``is_legal`` with ours (occupancy + suicide) for both colours on every point."""
    problems = []
    for colour, name in ((BLACK, "b"), (WHITE, "w")):
        probe = state.copy()
        probe.core[layout.M_GAME_OVER] = 0
        probe.core[layout.M_SUPERKO] = 0  # GnuGo knows no superko; after two passes there is no simple ko
        probe.core[layout.M_TO_PLAY] = colour
        for a in range(state.size * state.size):
            vertex = action_to_gtp(state.size, a)
            theirs = engine.send(f"is_legal {name} {vertex}") == "1"
            if theirs != probe.is_legal(a):
                problems.append(f"{name} {vertex}: gnugo {theirs}, ours {not theirs}")
    return problems


@pytest.mark.parametrize("size", sorted(GAMES))
def test_random_games_agree_with_gnugo(size, gnugo_factory):
    engine = gnugo_factory(size)
    failures: list[str] = []
    no_dead = exact = max_length = 0
    started = time.perf_counter()
    for game in range(GAMES[size]):
        seed = seed_for(size, game)
        state, moves = random_game(size, seed)
        tag = f"{size}x{size} seed {seed} ({len(moves)} moves, ours {state.result_string()})"
        engine.send("clear_board")
        try:
            for i, a in enumerate(moves):
                engine.send(f"play {'BW'[i % 2]} {action_to_gtp(size, a)}")
        except GtpClientError as e:
            failures.append(f"{tag}: gnugo refused move {i + 1}: {e}")
            continue
        for colour, name in ((BLACK, "black"), (WHITE, "white")):
            if gtp_stones(engine, name) != our_stones(state, colour):
                failures.append(f"{tag}: {name} stones differ from gnugo's board")
        dead = engine.send("final_status_list dead").split()
        theirs = engine.send("final_score")
        by_max_length = state.consecutive_passes < 2
        max_length += by_max_length
        if not dead:
            no_dead += 1
            if theirs == state.result_string():
                exact += 1
            else:
                failures.append(f"{tag}: gnugo scores {theirs} with no dead stones")
        if (not by_max_length or not dead) and theirs[:1] != state.result_string()[:1]:
            failures.append(f"{tag}: gnugo says {theirs} (dead: {' '.join(dead)})")
        if size == 9 and not by_max_length:
            failures += [f"{tag}: is_legal {p}" for p in final_position_legality(engine, state)]
    elapsed = time.perf_counter() - started
    print(
        f"\n{size}x{size}: {GAMES[size]} games in {elapsed:.1f}s, {max_length} ended by the move limit, "
        f"{GAMES[size] - no_dead} with gnugo dead stones, {exact} exact score matches"
    )
    assert not failures, "\n".join(failures[:30])
    assert no_dead >= 0.9 * GAMES[size], f"only {no_dead}/{GAMES[size]} games had no dead stones"
