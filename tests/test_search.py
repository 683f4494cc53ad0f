"""PUCT search over many trees: Go problems it must solve, and the invariants of the tree arrays.

Problems are drawn as text (``X`` black, ``O`` white, first line = top row, GTP row N) and read like
minigo's: a position, the side to move, the move that decides the game. The search has no network: either
``UniformEvaluator`` (value 0 everywhere, so the only signal is the rules' score of finished games) or
``ScoreEvaluator`` below (the sign of the Tromp-Taylor score of the leaf, read from the input planes).
Positions are near-full small boards where every empty point is an eye or the vital point, so a finished
game is a few moves away and the score can only change by the capture in question.

Note: ``GoState.from_text`` builds a position with setup moves and passes, and they count towards the
2 * N * N move limit (the history buffer is sized for it), so these 5x5 games end by the move limit about a
dozen moves later. That only brings the finished games (and their scores) closer to the root.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from games.go import BLACK, WHITE, GoRules, GoState
from games.position import state_from_text
from native import tree as kernels
from native.layout import BLOOM_WORDS
from specmcts.config import NetConfig, SearchConfig
from specmcts.engine.evaluator import Evaluator, HashEvaluator, NetEvaluator, UniformEvaluator
from specmcts.engine.network import build_net
from specmcts.engine.nncache import NNCache
from specmcts.engine.search import Search, dirichlet_noise


# ----------------------------------------------------------------------------------------------
# Helpers


class ScoreEvaluator(Evaluator):
    """Uniform policy; value = sign of the Tromp-Taylor area score from the side to move's view.

    It sees only what a network sees: planes 0 (the mover's stones now), 8 (the opponent's stones now)
    and 16 (1 if black is to move); komi is a constructor argument, as it would be part of the model."""

    def __init__(self, board_size: int, komi: float, max_batch: int = 64):
        super().__init__(board_size, max_batch)
        self.komi = komi

    def _forward(self, n: int) -> None:
        for i in range(n):
            planes = self.inputs[i]
            own, opp = area_score(planes[0].astype(bool), planes[8].astype(bool))
            black_to_move = planes[16, 0, 0] == 1
            margin = own - opp + (-self.komi if black_to_move else self.komi)
            self._value[i] = np.sign(margin)
            self._score[i] = margin  # read by the search only with has_score (MarginEvaluator)
        self._policy[:n] = np.float32(1.0 / self.num_actions)


def area_score(own: np.ndarray, opp: np.ndarray) -> tuple[int, int]:
    """Tromp-Taylor area (stones plus empty regions that reach only that colour) of two stone masks."""
    size = own.shape[0]
    own_area, opp_area = int(own.sum()), int(opp.sum())
    seen = own | opp
    for r in range(size):
        for c in range(size):
            if seen[r, c]:
                continue
            seen[r, c] = True
            stack, region, reaches_own, reaches_opp = [(r, c)], 0, False, False
            while stack:
                y, x = stack.pop()
                region += 1
                for yy, xx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
                    if 0 <= yy < size and 0 <= xx < size:
                        if own[yy, xx]:
                            reaches_own = True
                        elif opp[yy, xx]:
                            reaches_opp = True
                        elif not seen[yy, xx]:
                            seen[yy, xx] = True
                            stack.append((yy, xx))
            if reaches_own and not reaches_opp:
                own_area += region
            elif reaches_opp and not reaches_own:
                opp_area += region
    return own_area, opp_area


def make_search(rules: GoRules, evaluator, sims: int, leaves_per_tree: int = 8, num_trees: int = 1,
                cache_entries: int = 0, **search_kw) -> Search:
    cfg = SearchConfig(sims=sims, leaves_per_tree=leaves_per_tree, **search_kw)
    cache = NNCache(cache_entries, rules.num_actions, 2 * rules.size ** 2 + 1)
    return Search(rules, cfg, evaluator, cache, num_trees=num_trees)


def search_counts(state: GoState, evaluator, sims: int, leaves_per_tree: int) -> dict[str, int]:
    search = make_search(state.rules, evaluator, sims, leaves_per_tree)
    search.reset(0, state)
    search.run([0], sims)
    counts = search.visit_counts(0)
    return {state.action_to_gtp(int(a)): int(counts[a]) for a in np.flatnonzero(counts)}


def best_move(counts: dict[str, int]) -> str:
    return max(counts, key=counts.get)


def node_path(search: Search, t: int, node: int) -> list[int]:
    """Actions from the root of tree ``t`` down to ``node``."""
    tr = search.trees
    path = []
    while tr.parent[t, node] != kernels.NO_PARENT:
        path.append(int(tr.action[t, node]))
        node = int(tr.parent[t, node])
    return path[::-1]


def random_positions(size: int, count: int, seed: int) -> list[GoState]:
    """Positions a few random (non-pass) moves into a game, all different."""
    rng = np.random.default_rng(seed)
    states = []
    for i in range(count):
        state = GoState(GoRules(size))
        for _ in range(2 + 3 * i):
            legal = state.legal_actions()
            state.play(int(rng.choice(legal[legal != state.rules.pass_action])))
        states.append(state)
    return states


def assert_no_virtual_loss(search: Search) -> None:
    vl = search.trees.virtual_loss
    assert not vl.any(), f"virtual loss left at {np.argwhere(vl != 0)[:5].tolist()}"


# ----------------------------------------------------------------------------------------------
# Go problems

# The cutting stone. White's C2 is cut off from the white wall; its only liberty is C3, the cutting point.
# Whoever plays C3 first decides the game (komi 2.5): White connects and wins by 1.5, Black captures the
# stone and wins by 2.5. Every other empty point is an eye. Every other move loses.
CUT_5 = """
. O . O .
O O O O O
X X . X X
X X O X X
. X X X .
"""

# Capturing to live. White's C3-C2 is in atari (its liberty C1 is an eye inside black's shape) and cannot
# extend: C1 is suicide. But the black cutting stone C4 is in atari too: White C5 captures it, which gives
# C3-C2 the liberty C4 and the connection to the wall. If White does anything else, Black C1 takes two
# stones and the game.
CAPTURE_TO_LIVE_5 = """
. O . O .
O O X O O
X X O X X
X X O X X
. X . X .
"""

# CUT_5 on 7x7 (komi 5.5): more eyes to fill, so more moves that do nothing.
CUT_7 = """
. O . O . O .
O O O O O O O
O O O . O O O
X X X O X X X
X X X X X X X
X X X X X X X
. X . X . X .
"""


def test_problems_are_what_their_comments_say():
    """The positions themselves, so a failing search test is the search's fault, not the diagram's."""
    rules = GoRules(5, komi=2.5)
    cut = state_from_text(rules, CUT_5, to_play=WHITE)
    assert cut.liberties(cut.gtp_to_action("C2")) == 1
    assert cut.score() == -0.5  # as it stands: white by half a point (C3 is dame)
    connected = cut.copy().play(cut.gtp_to_action("C3"))
    assert connected.score() == -1.5
    captured = state_from_text(rules, CUT_5, to_play=BLACK).play(cut.gtp_to_action("C3"))
    assert captured.captures == (1, 0) and captured.score() == 2.5

    live = state_from_text(rules, CAPTURE_TO_LIVE_5, to_play=WHITE)
    assert live.liberties(live.gtp_to_action("C3")) == 1
    assert live.liberties(live.gtp_to_action("C4")) == 1
    assert not live.is_legal(live.gtp_to_action("C1"))  # extending is suicide
    saved = live.copy().play(live.gtp_to_action("C5"))
    assert saved.captures == (0, 1) and saved.liberties(saved.gtp_to_action("C3")) == 2
    assert saved.score() < 0  # white ahead
    lost = live.copy().play(live.rules.pass_action).play(live.gtp_to_action("C1"))
    assert lost.captures == (2, 0) and lost.score() > 0  # black ahead


TERMINAL_ONLY = [  # (diagram, size, komi, to play, answer)
    pytest.param(CUT_5, 5, 2.5, WHITE, "C3", id="connect-the-cutting-stone"),
    pytest.param(CUT_5, 5, 2.5, BLACK, "C3", id="capture-the-cutting-stone"),
    pytest.param(CAPTURE_TO_LIVE_5, 5, 2.5, WHITE, "C5", id="capture-to-live"),
]


@pytest.mark.parametrize("leaves_per_tree", [1, 8])
@pytest.mark.parametrize("diagram,size,komi,to_play,answer", TERMINAL_ONLY)
def test_problem_solved_from_finished_games_alone(diagram, size, komi, to_play, answer, leaves_per_tree):
    """Value 0 everywhere: only the rules' score of finished games (found by reading to them) decides."""
    state = state_from_text(GoRules(size, komi), diagram, to_play=to_play)
    counts = search_counts(state, UniformEvaluator(size, max_batch=64), 1600, leaves_per_tree)
    assert best_move(counts) == answer, counts
    assert counts[answer] > 0.5 * 1600, counts


STATIC_SCORE = TERMINAL_ONLY + [
    pytest.param(CUT_7, 7, 5.5, WHITE, "D5", id="connect-7x7"),
    pytest.param(CUT_7, 7, 5.5, BLACK, "D5", id="capture-7x7"),
]


@pytest.mark.parametrize("leaves_per_tree", [1, 8])
@pytest.mark.parametrize("sims", [400, 1600])
@pytest.mark.parametrize("diagram,size,komi,to_play,answer", STATIC_SCORE)
def test_problem_solved_with_a_score_evaluator(diagram, size, komi, to_play, answer, sims, leaves_per_tree):
    state = state_from_text(GoRules(size, komi), diagram, to_play=to_play)
    counts = search_counts(state, ScoreEvaluator(size, komi), sims, leaves_per_tree)
    assert best_move(counts) == answer, counts
    assert counts[answer] > 0.8 * sims, counts


def test_passing_into_a_lost_game_is_scored_by_the_rules():
    """White just passed: Black's pass ends the game at once (a terminal leaf, lost by half a point), so
    its value is exactly -1 and the capture gets the visits."""
    rules = GoRules(5, komi=2.5)
    state = state_from_text(rules, CUT_5, to_play=WHITE).play(rules.pass_action)
    search = make_search(rules, UniformEvaluator(5, max_batch=64), 400, 1)
    search.reset(0, state)
    search.run([0], 400)
    tr = search.trees
    passed = tr.children[0, kernels.ROOT, rules.pass_action]
    assert passed >= 0 and tr.status[0, passed] == kernels.TERMINAL
    # value_sum is from the view of the player who moved into the node: black, who lost
    assert tr.value_sum[0, passed] == -tr.visits[0, passed]
    assert int(np.argmax(search.visit_counts(0))) == state.gtp_to_action("C3")


# ----------------------------------------------------------------------------------------------
# Invariants of the tree arrays


@pytest.mark.parametrize("leaves_per_tree", [1, 3, 8])
@pytest.mark.parametrize("sims", [1, 7, 64, 150])
def test_visit_counts_sum_to_sims_in_every_tree(sims, leaves_per_tree):
    roots = random_positions(9, 3, seed=sims)
    search = make_search(GoRules(9), HashEvaluator(9, seed=1, max_batch=64), sims, leaves_per_tree, num_trees=3)
    for t, state in enumerate(roots):
        search.reset(t, state)
    slots = np.arange(3, dtype=np.int32)
    while (want := search.wanted(slots, sims)).any():
        assert search.step(slots, want) > 0
        assert_no_virtual_loss(search)
    tr = search.trees
    for t in range(3):
        counts = search.visit_counts(t)
        assert counts.sum() == sims
        assert tr.visits[t, kernels.ROOT] == sims + 1  # the root's own evaluation counts once
        assert search.completed([t])[0] == sims
        # One node per simulation, except that a finished game reached again adds no node.
        terminal = np.flatnonzero(tr.status[t, :tr.node_count[t]] == kernels.TERMINAL)
        revisits = int((tr.visits[t, terminal] - 1).sum())
        assert tr.node_count[t] == sims + 1 - revisits


def test_per_tree_targets_and_a_fresh_tree_has_one_node_per_simulation():
    targets = np.array([5, 40, 123], np.int32)
    roots = random_positions(9, 3, seed=7)
    search = make_search(GoRules(9), HashEvaluator(9, seed=2, max_batch=64), 123, 8, num_trees=3)
    for t, state in enumerate(roots):
        search.reset(t, state)
    slots = np.arange(3, dtype=np.int32)
    while (want := search.wanted(slots, targets)).any():
        assert (want <= 8).all()
        search.step(slots, want)
        assert_no_virtual_loss(search)
    assert search.stats.terminal == 0  # no finished game within reach of these searches
    for t in range(3):
        assert search.visit_counts(t).sum() == targets[t]
        assert search.trees.node_count[t] == targets[t] + 1


def test_tree_never_overflows_max_nodes():
    """A tree that fills its node arrays stops growing; run() returns instead of spinning."""
    rules = GoRules(9)
    search = Search(rules, SearchConfig(sims=200, leaves_per_tree=8), HashEvaluator(9, max_batch=64),
                    NNCache(0, rules.num_actions, 163), num_trees=1, max_nodes=50)
    search.reset(0, GoState(rules))
    search.run([0], 200)
    assert search.trees.node_count[0] == 50
    assert_no_virtual_loss(search)
    assert search.visit_counts(0).sum() == search.completed([0])[0]


# Ko: black D5 is in atari, white takes it at C5; black may not retake at D5 at once.
KO = """
. . . . . . .
. . X O . . .
. X . X O . .
. . X O . . .
. . . . . . .
. . . . . . .
. . . . . . .
"""

# Three kos; after the cycle C9 B1 H9 B9 C1, white's G9 is a ko capture that simple ko allows (black's
# last capture was elsewhere) but that recreates the starting position: positional superko forbids it.
TRIPLE_KO = """
X O . O . X O . O
. X O . . . X O .
. . . . . . . . .
. . . . . . . . .
. . . . . . . . .
. . . . . . . . .
. . . . . . . . .
. X O . . . . . .
X . X O . . . . .
"""


def ko_position() -> GoState:
    state = state_from_text(GoRules(7), KO, to_play=WHITE)
    return state.play(state.gtp_to_action("C5"))


def superko_position() -> GoState:
    state = state_from_text(GoRules(9), TRIPLE_KO)
    for vertex in ("C9", "B1", "H9", "B9", "C1"):
        state.play(state.gtp_to_action(vertex))
    return state


def assert_priors_match_the_rules(search: Search, t: int, root: GoState) -> int:
    """Every expanded node: prior >= 0 exactly on the moves the search considers at its position (replayed
    from the root): the legal ones, less the mover's own eyes; and no child behind any other move. Returns
    the number of nodes checked."""
    tr = search.trees
    checked = 0
    for node in range(int(tr.node_count[t])):
        if tr.status[t, node] != kernels.EXPANDED:
            continue
        state = root.copy()
        for a in node_path(search, t, node):
            state.play(a)  # raises on an illegal move in the tree
        legal = search.searchable(state)
        assert not legal[~state.legal_mask()].any()
        np.testing.assert_array_equal(tr.prior[t, node] >= 0, legal)
        assert np.isclose(tr.prior[t, node][legal].sum(), 1.0, atol=1e-5)
        assert not (tr.children[t, node] >= 0)[~legal].any()
        checked += 1
    return checked


@pytest.mark.parametrize("make_root,illegal", [(ko_position, "D5"), (superko_position, "G9")], ids=["ko", "superko"])
def test_illegal_moves_get_no_prior_and_no_visits(make_root, illegal):
    root = make_root()
    action = root.gtp_to_action(illegal)
    assert not root.is_legal(action)
    size = root.size
    search = make_search(root.rules, HashEvaluator(size, seed=5, max_batch=64), 300, 8)
    search.reset(0, root)
    search.run([0], 300)
    assert search.trees.prior[0, kernels.ROOT, action] == kernels.ILLEGAL
    assert search.visit_counts(0)[action] == 0
    assert search.visit_counts(0)[~root.legal_mask()].sum() == 0
    assert assert_priors_match_the_rules(search, 0, root) > 20


def test_dirichlet_noise_is_legal_only():
    root = ko_position()
    legal = root.legal_mask()
    noise = dirichlet_noise(np.random.default_rng(0), legal, 0.3)
    assert noise.dtype == np.float32
    assert (noise[~legal] == 0).all() and (noise[legal] > 0).all()
    assert np.isclose(noise.sum(), 1.0, atol=1e-5)


def test_dirichlet_noise_changes_only_the_root_priors_of_legal_moves():
    root = ko_position()
    legal = root.legal_mask()
    noise = dirichlet_noise(np.random.default_rng(0), legal, 0.3)
    priors = {}
    for name, fraction in (("clean", 0.0), ("noisy", 0.25)):
        search = make_search(root.rules, HashEvaluator(7, seed=5, max_batch=64), 300, 8)
        search.reset(0, root, noise, fraction)
        search.run([0], 300)
        tr = search.trees
        priors[name] = {tuple(node_path(search, 0, node)): tr.prior[0, node].copy()
                        for node in range(int(tr.node_count[0])) if tr.status[0, node] == kernels.EXPANDED}
        assert assert_priors_match_the_rules(search, 0, root) > 20
    clean, noisy = priors["clean"], priors["noisy"]
    root_clean, root_noisy = clean[()], noisy[()]
    np.testing.assert_array_equal(root_noisy[~legal], kernels.ILLEGAL)
    np.testing.assert_allclose(root_noisy[legal], 0.75 * root_clean[legal] + 0.25 * noise[legal], rtol=1e-5)
    assert not np.allclose(root_noisy, root_clean)
    assert np.isclose(root_noisy[legal].sum(), 1.0, atol=1e-5)
    common = [path for path in clean if path and path in noisy]
    assert len(common) > 10
    for path in common:  # below the root, the same position has bit-identical priors with or without noise
        np.testing.assert_array_equal(noisy[path], clean[path])


def test_reset_without_noise_clears_the_previous_noise():
    root = ko_position()
    noise = dirichlet_noise(np.random.default_rng(0), root.legal_mask(), 0.3)
    search = make_search(root.rules, HashEvaluator(7, seed=5, max_batch=64), 20, 8)
    search.reset(0, root, noise, 0.25)
    search.reset(0, root)
    search.run([0], 20)
    reference = make_search(root.rules, HashEvaluator(7, seed=5, max_batch=64), 20, 8)
    reference.reset(0, root)
    reference.run([0], 20)
    np.testing.assert_array_equal(search.root_prior(0), reference.root_prior(0))


# ----------------------------------------------------------------------------------------------
# Picking the move


def reference_pick(counts: np.ndarray, temperature: float, uniform: float) -> int:
    """First action whose cumulative weight (counts ** (1 / T), scaled by the top count) exceeds u * total."""
    if temperature <= 0 or counts.max() == 0:
        return int(np.argmax(counts))  # numpy's argmax: the first maximum
    c = counts.astype(np.float64)
    weights = np.where(c > 0, (c / c.max()) ** (1.0 / temperature), 0.0)
    cumulative = np.cumsum(weights)
    a = int(np.searchsorted(cumulative, uniform * cumulative[-1], side="right"))
    return min(a, int(np.flatnonzero(c)[-1]))


def test_pick_argmax_breaks_ties_by_lowest_action():
    counts = np.array([0, 5, 3, 5, 5, 0], np.int32)
    for u in (0.0, 0.5, 0.999):
        assert kernels.pick_from_counts(counts, 0.0, u) == 1
    assert kernels.pick_from_counts(np.zeros(6, np.int32), 1.0, 0.7) == 0
    assert kernels.pick_from_counts(np.array([0, 0, 0, 9], np.int32), 1.0, 0.0) == 3
    assert kernels.pick_from_counts(np.array([0, 0, 0, 9], np.int32), 1.0, 0.9999) == 3


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0])
def test_pick_with_temperature_follows_the_cumulative_distribution(temperature):
    counts = np.array([0, 10, 0, 3, 25, 1, 0, 61, 0], np.int32)
    weights = np.where(counts > 0, (counts / counts.max()) ** (1 / temperature), 0.0)
    probs = weights / weights.sum()
    grid = (np.arange(4000) + 0.5) / 4000
    picks = np.array([kernels.pick_from_counts(counts, temperature, u) for u in grid])
    assert (np.diff(picks) >= 0).all()  # monotone in u: the inverse of the cumulative distribution
    for u, a in zip(grid, picks):
        assert a == reference_pick(counts, temperature, u)
    assert (counts[picks] > 0).all()
    frequency = np.bincount(picks, minlength=len(counts)) / len(grid)
    np.testing.assert_allclose(frequency, probs, atol=1 / 4000 + 1e-9)


@settings(max_examples=200)
@given(
    counts=st.lists(st.integers(0, 50), min_size=2, max_size=40),
    temperature=st.sampled_from([0.0, 0.25, 0.5, 1.0, 1.5]),
    uniform=st.floats(0.0, 1.0, exclude_max=True),
)
def test_pick_matches_the_reference(counts, temperature, uniform):
    counts = np.array(counts, np.int32)
    a = kernels.pick_from_counts(counts, temperature, uniform)
    assert a == reference_pick(counts, temperature, uniform)
    if counts.any():
        assert counts[a] > 0


# ----------------------------------------------------------------------------------------------
# NN-cache keys


def key(state: GoState) -> int:
    return int(kernels.input_key(state.core, state.hist))


def test_input_key_same_history_same_key_transposition_different_key():
    rules = GoRules(9)
    moves = ["C3", "G7", "E5", "D4", "F6"]
    a = GoState(rules)
    b = GoState(rules)
    for vertex in moves:
        a.play(a.gtp_to_action(vertex))
        b.play(b.gtp_to_action(vertex))
    assert key(a) == key(b)
    # Same stones, same side to move, another order: the history planes differ, so does the key.
    c = GoState(rules)
    for vertex in ["E5", "D4", "C3", "G7", "F6"]:
        c.play(c.gtp_to_action(vertex))
    np.testing.assert_array_equal(c.board(), a.board())
    assert c.to_play == a.to_play
    assert not np.array_equal(c.features(), a.features())
    assert key(c) != key(a)
    # Komi is part of the input the key stands for.
    d = GoState(GoRules(9, komi=6.5))
    for vertex in moves:
        d.play(d.gtp_to_action(vertex))
    assert key(d) != key(a)


def test_input_key_is_the_key_of_the_network_input_not_of_the_whole_history():
    """Two games that reach the same board by different paths (a captured stone in one, a pass in the
    other) and then play 8 identical moves: the last 8 boards, hence the planes, are identical, and so is
    the key. After 6 moves the older boards still differ, and so do the planes and the key."""
    rules = GoRules(9)
    one = GoState(rules)
    for vertex in ["A1", "B1", "E5", "A2"]:  # white captures A1
        one.play(one.gtp_to_action(vertex))
    two = GoState(rules)
    for vertex in ["pass", "B1", "E5", "A2"]:
        two.play(two.gtp_to_action(vertex))
    np.testing.assert_array_equal(one.board(), two.board())
    tail = ["G7", "C7", "G3", "C3", "H5", "B5", "F7", "D7"]
    for i, vertex in enumerate(tail, start=1):
        one.play(one.gtp_to_action(vertex))
        two.play(two.gtp_to_action(vertex))
        same_planes = np.array_equal(one.features(), two.features())
        assert same_planes == (i >= 7)  # board after move 4 is shared; boards 1..3 leave the planes at i = 7
        assert (key(one) == key(two)) == same_planes


def test_input_key_reads_exactly_the_last_eight_positions():
    state = GoState(GoRules(9))
    for vertex in ["C3", "G7", "E5", "D4", "F6", "C7", "G3", "E3", "D6", "F4"]:
        state.play(state.gtp_to_action(vertex))
    n = state.move_number
    base = key(state)
    older = state.hist.copy()
    older[BLOOM_WORDS + n - kernels.KEY_HISTORY] ^= np.uint64(12345)
    assert int(kernels.input_key(state.core, older)) == base
    newest_dropped = state.hist.copy()
    newest_dropped[BLOOM_WORDS + n - kernels.KEY_HISTORY + 1] ^= np.uint64(12345)
    assert int(kernels.input_key(state.core, newest_dropped)) != base


# ----------------------------------------------------------------------------------------------
# Reproducibility and the all-or-nothing batch rule


def seeded_net_search(seed: int) -> Search:
    rules = GoRules(7)
    torch.manual_seed(seed)
    net = build_net(7, NetConfig(blocks=2, channels=32, value_hidden=32))
    search = make_search(rules, NetEvaluator(net, "cpu", max_batch=64), 96, 8, num_trees=2, cache_entries=4096)
    rng = np.random.default_rng(seed)
    for t, state in enumerate(random_positions(7, 2, seed=seed)):
        search.reset(t, state, dirichlet_noise(rng, state.legal_mask(), 0.5), 0.25)
    search.run([0, 1], 96)
    return search


def test_seeded_search_is_reproducible_on_cpu():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny batches: intra-op threads only add barrier waits on a busy machine
    try:
        first, second = seeded_net_search(11), seeded_net_search(11)
    finally:
        torch.set_num_threads(threads)
    for t in range(2):
        np.testing.assert_array_equal(first.visit_counts(t), second.visit_counts(t))
        assert first.root_value(t) == second.root_value(t)
        np.testing.assert_array_equal(first.root_prior(t), second.root_prior(t))
    assert first.stats.cache_hits == second.stats.cache_hits


def tree_snapshot(search: Search, t: int) -> dict:
    tr = search.trees
    n = int(tr.node_count[t])
    return {name: getattr(tr, name)[t, :n].copy()
            for name in ("visits", "value_sum", "parent", "action", "status", "nn_value", "children", "prior")}


def test_small_scratch_takes_trees_whole_or_skips_them_and_changes_nothing():
    """Three trees wanting 8 leaves each, 12 scratch rows: each step takes at most one of them whole
    (never a part of one), the others wait. Every tree ends exactly as with room for all."""
    rules = GoRules(9)
    roots = random_positions(9, 3, seed=3)
    sims = 80

    def build(capacity):
        search = make_search(rules, HashEvaluator(9, seed=4, max_batch=capacity), sims, 8, num_trees=3,
                             cache_entries=1024)
        for t, state in enumerate(roots):
            search.reset(t, state)
        return search

    small, large = build(12), build(512)
    large.run(np.arange(3), sims)

    skipped_some = False
    rotation = 0
    while True:
        slots = np.roll(np.arange(3, dtype=np.int32), rotation)  # who is listed first changes every step
        rotation += 1
        want = small.wanted(slots, sims)
        if not want.any():
            break
        before = small.trees.visits.copy()
        collisions = small.stats.collisions
        n = small.step(slots, want)
        assert_no_virtual_loss(small)
        leaves = small.trees.visits[:, kernels.ROOT] - before[:, kernels.ROOT]  # simulations per tree
        assert leaves.sum() == n
        reserved = 0  # rows promised to the trees taken so far (>= the leaves they produced)
        produced = 0
        dropped = 0
        for slot, wanted in zip(slots, want):
            if wanted > 0 and leaves[slot] == 0:  # skipped: it did not fit, and it is untouched
                assert reserved + wanted > 12
                np.testing.assert_array_equal(small.trees.visits[slot], before[slot])
                skipped_some = True
            elif wanted > 0:  # taken whole: every selection made (a collision drops one, nothing else)
                assert produced + wanted <= 12
                assert leaves[slot] <= wanted
                reserved += wanted
                produced += leaves[slot]
                dropped += wanted - leaves[slot]
        assert small.stats.collisions - collisions == dropped
    assert skipped_some
    for t in range(3):
        np.testing.assert_array_equal(small.visit_counts(t), large.visit_counts(t))
        assert small.root_value(t) == large.root_value(t)
        a, b = tree_snapshot(small, t), tree_snapshot(large, t)
        for name in a:
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_many_trees_parallel_kernels_match_the_serial_ones():
    """Twenty trees in one batch: the kernels run in parallel over trees (when numba has threads); each
    tree must end bit-identical to a serial run, with the same invariants."""
    rules = GoRules(7)
    roots = random_positions(7, 20, seed=9)
    sims = 60
    runs = {}
    for name, threads in (("serial", 1), ("parallel", 2)):
        search = make_search(rules, HashEvaluator(7, seed=6, max_batch=512), sims, 8, num_trees=20,
                             threads=threads, parallel_min_trees=2)
        for t, state in enumerate(roots):
            search.reset(t, state)
        slots = np.arange(20, dtype=np.int32)
        while (want := search.wanted(slots, sims)).any():
            search.step(slots, want)
            assert_no_virtual_loss(search)
        for t in range(20):
            assert search.visit_counts(t).sum() == sims
        runs[name] = search
    for t in range(20):
        a, b = tree_snapshot(runs["serial"], t), tree_snapshot(runs["parallel"], t)
        for name in a:
            np.testing.assert_array_equal(a[name], b[name], err_msg=f"tree {t}: {name}")
    assert runs["serial"].stats.collisions == runs["parallel"].stats.collisions


def test_leaves_per_tree_above_the_evaluator_batch_still_completes():
    """leaves_per_tree 8 with an evaluator that takes 4 rows: a tree asked for 8 leaves never fits, so the
    search must ask for at most 4 (it used to skip the tree forever: run() never returned)."""
    rules = GoRules(5)
    search = make_search(rules, UniformEvaluator(5, max_batch=4), 32, 8)
    search.reset(0, GoState(rules))
    slots = np.zeros(1, np.int32)
    for _ in range(100):  # bounded: a regression fails here instead of hanging
        want = search.wanted(slots, 32)
        if not want.any():
            break
        assert want.max() <= 4
        assert search.step(slots, want) > 0
    assert search.visit_counts(0).sum() == 32


# ----------------------------------------------------------------------------------------------
# Gumbel root: sequential halving (Danihelka et al. 2022; mctx's gumbel_muzero_policy)


def test_considered_visits_table_is_sequential_halving():
    from specmcts.engine.search import considered_visits

    # m = 4, n = 16: log2(m) = 2 phases; 4 candidates get 16 // (2 * 4) = 2 visits each, then 2 get the rest
    assert considered_visits(4, 16).tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert considered_visits(1, 5).tolist() == [0, 1, 2, 3, 4]
    for m, n in ((16, 200), (8, 40), (8, 10), (3, 7)):
        table = considered_visits(m, n)
        assert len(table) == n and (table[:min(m, n)] == 0).all()


@pytest.mark.parametrize("leaves_per_tree", [1, 4, 8])
@pytest.mark.parametrize("m,sims", [(4, 16), (8, 40), (16, 64)])
def test_gumbel_root_visits_follow_the_halving_table(m, sims, leaves_per_tree):
    """Root children end with the visit counts the table implies: m candidates, the survivors of each
    phase ahead; in-flight walks of a batch count, so batching does not change the schedule."""
    from specmcts.engine.search import considered_visits

    state = random_positions(9, 1, seed=m + sims)[0]
    search = make_search(GoRules(9), HashEvaluator(9, seed=3, max_batch=64), sims, leaves_per_tree,
                         gumbel_considered=m)
    g = np.random.default_rng(0).gumbel(size=82).astype(np.float32) * state.legal_mask()
    search.reset(0, state, gumbel=g, budget=sims)
    search.run([0], sims)
    assert_no_virtual_loss(search)
    counts = np.sort(search.visit_counts(0))[::-1]
    table = considered_visits(m, sims)
    # visits per candidate implied by the table: entry i goes to the candidate holding table[i] visits
    per_candidate = np.zeros(m, np.int64)
    for v in table:
        per_candidate[np.flatnonzero(per_candidate == v)[0]] += 1
    expected = np.sort(per_candidate)[::-1]
    assert counts.sum() == sims and (counts[:m] == expected).all() and (counts[m:] == 0).all()
    action = search.gumbel_action(0)
    assert search.visit_counts(0)[action] == counts[0]  # the move is among the most visited
    target = search.improved_policy(0)
    assert target.sum() == pytest.approx(1.0, abs=1e-5) and (target[~state.legal_mask()] == 0).all()


def test_gumbel_without_noise_picks_deterministically_and_prefers_the_prior():
    """No Gumbel noise (evaluation): the same search twice gives the same move; with one uninformative
    child value, the improved policy keeps the prior's order."""
    state = random_positions(9, 1, seed=11)[0]
    moves = []
    for _ in range(2):
        search = make_search(GoRules(9), HashEvaluator(9, seed=4, max_batch=64), 32, 8, gumbel_considered=8)
        search.reset(0, state, budget=32)
        search.run([0], 32)
        moves.append(search.gumbel_action(0))
    assert moves[0] == moves[1] and moves[0] >= 0
    uniform = make_search(GoRules(9), UniformEvaluator(9, max_batch=64), 16, 8, gumbel_considered=4)
    uniform.reset(0, state, budget=16)
    uniform.run([0], 16)
    target = uniform.improved_policy(0)
    legal = state.legal_mask()
    # a uniform prior and value 0 everywhere (no finished games within reach): the target stays uniform
    assert uniform.stats.terminal == 0
    np.testing.assert_allclose(target[legal], 1.0 / legal.sum(), rtol=1e-5)


# ----------------------------------------------------------------------------------------------
# Score utility (KataGo's dynamic score utility)


class MarginEvaluator(ScoreEvaluator):
    """ScoreEvaluator whose score (the margin itself, which ScoreEvaluator computes anyway) the search uses:
    the value is saturated (every move of a won game is worth the same), the score is not."""

    has_score = True


# White is far ahead whatever it plays (the value says +1 everywhere); only the score sees that C4 captures
# the black stone in atari. A net in this state passes its lead away unless the search looks at points.
WON_WITH_A_CAPTURE_7 = """
. . . . . . .
. O O O . . .
. O X O . . .
. . . . . . .
. . . . . . .
. . . . . . .
. . . . . . .
"""


@pytest.mark.parametrize("root", ["puct", "gumbel"])
def test_score_utility_keeps_fighting_for_points_when_the_value_has_saturated(root):
    rules = GoRules(7, 0.5)
    state = state_from_text(rules, WON_WITH_A_CAPTURE_7, to_play=WHITE)
    capture = state.gtp_to_action("C4")
    tops = {}
    for weight in (0.0, 0.3):
        search = make_search(rules, MarginEvaluator(7, 0.5), 200, 8, score_utility=weight, gumbel_considered=48)
        search.reset(0, state, budget=200 if root == "gumbel" else 0)
        search.run([0], 200)
        assert_no_virtual_loss(search)
        assert search.trees.score_center[0] == pytest.approx(4.5)  # the root's own score: 5 - 1 + 0.5
        counts = search.visit_counts(0)
        tops[weight] = search.gumbel_action(0) if root == "gumbel" else int(np.argmax(counts))
    assert tops[0.3] == capture
    assert tops[0.0] != capture  # the value alone cannot tell the moves apart


def test_scores_are_backed_up_like_values():
    """score_sum follows value_sum's sign convention: with an evaluator whose score is its value times a
    constant, every node's score sum is its value sum times that constant (terminal leaves excepted)."""
    state = random_positions(9, 1, seed=5)[0]
    search = make_search(GoRules(9), HashEvaluator(9, seed=8, max_batch=64), 100, 4, score_utility=0.2)
    search.reset(0, state)
    search.run([0], 100)
    tr = search.trees
    used = tr.node_count[0]
    assert search.stats.terminal == 0
    np.testing.assert_allclose(tr.score_sum[0, :used], tr.value_sum[0, :used] * 81 / 4, rtol=1e-4, atol=1e-3)


def assert_utility_is_current(search, slot):
    """Every visited node's cached score utility (``tree.utility``) is what its definition gives now: its mean
    score around the root's score centre, from the view of the player who moved into it."""
    tr, p = search.trees, search.params
    for node in range(1, int(tr.node_count[slot])):
        if tr.visits[slot, node] == 0:
            continue
        depth, cur = 0, node
        while tr.parent[slot, cur] != kernels.NO_PARENT:
            depth, cur = depth + 1, tr.parent[slot, cur]
        center = tr.score_center[slot] if depth % 2 else -tr.score_center[slot]
        mean = tr.score_sum[slot, node] / tr.visits[slot, node]
        assert tr.utility[slot, node] == pytest.approx(p.su_weight * kernels.score_utility(mean, center, p.su_scale),
                                                       rel=1e-12, abs=1e-15)


def test_cached_score_utility_follows_backups_and_tree_reuse():
    """Selection reads each child's score utility from ``tree.utility`` (no atan per child per walk): it is
    set at every backup and recomputed for a reused subtree, whose root has a new score centre."""
    state = random_positions(9, 1, seed=6)[0]
    search = make_search(GoRules(9), HashEvaluator(9, seed=3, max_batch=64), 200, 8, score_utility=0.4)
    search.reset(0, state)
    search.run([0], 200)
    assert_utility_is_current(search, 0)
    action = int(np.argmax(search.visit_counts(0)))
    after = state.copy()
    after.play(action)
    bigger = make_search(GoRules(9), HashEvaluator(9, seed=3, max_batch=64), 200, 8, score_utility=0.4, num_trees=2)
    bigger.reset(0, state)
    bigger.run([0], 200)
    assert bigger.reuse(0, action, 1, after)
    assert_utility_is_current(bigger, 1)
    bigger.run([1], 300)
    assert_utility_is_current(bigger, 1)


def test_score_utility_applies_only_with_a_score_head():
    rules = GoRules(9)
    with_score = make_search(rules, HashEvaluator(9, max_batch=16), 8, score_utility=0.3)
    without = make_search(rules, UniformEvaluator(9, max_batch=16), 8, score_utility=0.3)
    fc = make_search(rules, NetEvaluator(build_net(9, NetConfig(1, 8, heads="fc")), max_batch=16), 8, score_utility=0.3)
    kata = make_search(rules, NetEvaluator(build_net(9, NetConfig(1, 8)), max_batch=16), 8, score_utility=0.3)
    assert with_score.params.su_weight == kata.params.su_weight == 0.3 and without.params.su_weight == fc.params.su_weight == 0.0


# Black owns the board; every empty point is one of its eyes. The only sound move is to pass: filling the
# eyes one by one ends with every black stone captured (what a young net did against a passing opponent).
OWN_EYES_5 = """
. X X . X
X X X X X
X . X X .
X X X X X
X X . X X
"""


def test_the_search_never_fills_its_own_eyes_unless_told_to():
    rules = GoRules(5, 0.5)
    state = state_from_text(rules, OWN_EYES_5)
    search = make_search(rules, UniformEvaluator(5, max_batch=16), 32, 4)
    assert search.searchable(state).sum() == 1  # pass
    search.reset(0, state)
    search.run([0], 32)
    counts = search.visit_counts(0)
    assert counts[rules.pass_action] == counts.sum() == 32
    filling = make_search(rules, UniformEvaluator(5, max_batch=16), 32, 4, fill_own_eyes=True)
    assert filling.searchable(state).sum() == 6
    filling.reset(0, state)
    filling.run([0], 32)
    assert filling.visit_counts(0)[:25].sum() > 0


def test_the_same_input_in_one_batch_is_evaluated_once():
    """Trees of several games at the same position (every game starts on the empty board) ask for the same
    input in one batch: it is evaluated once, and every tree gets that answer, the one it would have got
    alone (cache off, so only the batch can share)."""
    rules = GoRules(9)
    cfg = SearchConfig(sims=8, leaves_per_tree=1)
    ev = HashEvaluator(9, seed=3, max_batch=64)
    search = Search(rules, cfg, ev, NNCache(0, rules.num_actions, rules.max_moves), num_trees=5)
    for t in range(5):
        search.reset(t, GoState(rules))
    slots = np.arange(5, dtype=np.int32)
    search.step(slots, search.wanted(slots, 8))
    assert (search.stats.evals, search.stats.shared_rows) == (1, 4) and ev.evals == 1
    alone = Search(rules, cfg, HashEvaluator(9, seed=3, max_batch=64), NNCache(0, rules.num_actions, rules.max_moves),
                   num_trees=1)
    alone.reset(0, GoState(rules))
    alone.step(np.zeros(1, np.int32), alone.wanted(np.zeros(1, np.int32), 8))
    for t in range(5):
        assert search.root_prior(t).tobytes() == alone.root_prior(0).tobytes()
    search.run(slots, 8)  # then the trees go their own ways, each evaluated as before
    assert all(search.completed([t])[0] == 8 for t in range(5))


def test_every_evaluator_and_the_cache_keep_the_search_protocols():
    """``Search`` is typed by what it uses (``BatchEvaluator``, ``LeafCache``); every evaluator the project has
    (its own net, the hash and uniform ones, the emulated device and its recorder) and the NN cache keep them."""
    from specmcts.engine.emulate import EmulatedDevice, RecordingEvaluator, RowRecord, forward_cost
    from specmcts.engine.evaluator import HashEvaluator, NetEvaluator, UniformEvaluator
    from specmcts.engine.network import build_net
    from specmcts.engine.nncache import NNCache
    from specmcts.engine.search import BatchEvaluator, LeafCache

    net = NetEvaluator(build_net(5), "cpu", max_batch=4)
    device = EmulatedDevice(RowRecord(26), forward_cost(9, 6, 64), 5, max_batch=4)
    for ev in (net, HashEvaluator(5), UniformEvaluator(5), RecordingEvaluator(net), device):
        assert isinstance(ev, BatchEvaluator), type(ev).__name__
    assert isinstance(NNCache.for_board(64, 5), LeafCache) and not isinstance(object(), LeafCache)
