"""Array-based PUCT trees, many at once: select leaves, expand them, back their values up.

The data model (structure of arrays, like mctx's ``Tree``), for ``T`` tree slots of ``M`` nodes and ``A``
actions (``N * N + 1``: board points and pass):

==================  ==================  ===========================================================
field               shape, dtype        meaning
==================  ==================  ===========================================================
node_count          [T] int32           nodes in use; node ``ROOT`` (0) is the root
visits              [T, M] int32        completed visits (the node's own evaluation counts as one)
value_sum           [T, M] float64      sum of backed-up values, from the view of the player who moved
                                        *into* the node (so a parent picks the child with the best mean)
virtual_loss        [T, M] int32        selections in flight through the node (undone at backup)
parent              [T, M] int32        parent node, ``NO_PARENT`` for the root
action              [T, M] int32        action that led from the parent to the node
status              [T, M] int8         ``UNEXPANDED``, ``PENDING`` (awaiting its evaluation),
                                        ``EXPANDED`` or ``TERMINAL`` (game over: value from the rules)
nn_value            [T, M] float32      the node's evaluation, from the view of its side to move
children            [T, M, A] int32     child node per action, ``UNVISITED`` if none yet
prior               [T, M, A] float32   policy prior per action, ``ILLEGAL`` (-1) for illegal moves
root_noise          [T, A] float32      Dirichlet noise mixed into the root priors at root expansion
noise_fraction      [T] float32         weight of that noise (0: none)
root_budget         [T] int32           Gumbel root: the simulation budget of sequential halving (0: PUCT)
gumbel              [T, A] float32      Gumbel root: the Gumbel noise per action (0 in evaluation)
gumbel_table        [T, M] int32        Gumbel root: the visit count the i-th root simulation adds to
score_sum           [T, M] float64      sum of backed-up scores (final margins in points), same view as
                                        ``value_sum``
score_center        [T] float32         the root's own score (its mover's view): the centre of the score
                                        utility
utility             [T, M] float64      the score utility of the node's mean score around the centre, from
                                        the view of the player who moved into it (``su_weight`` > 0 and
                                        ``visits`` > 0; set at backup, so selection computes no ``atan``)
==================  ==================  ===========================================================

Score utility (KataGo's dynamic score utility; ``su_weight`` > 0): selection maximises ``q + su_weight *
(2 / pi) * atan((mean score - centre) / su_scale)`` instead of ``q``, the centre being the root's own score
estimate from the chooser's view. A net whose value has saturated (a game won or lost by any margin) still
sees the points: it keeps its lead instead of passing it away. The value alone is still what a search
reports (root value, resignation).

Gumbel root (Danihelka et al. 2022, mctx's ``gumbel_muzero_policy``): the i-th simulation of a tree with
``root_budget > 0`` goes to the action that maximises ``g(a) + log prior(a) + sigma(completed q(a))`` among
the legal actions whose visit count (in-flight walks included) equals ``gumbel_table[t, i]``: the table of
sequential halving (``specmcts.engine.search.considered_visits``), so the top m actions by ``g + log prior`` get
one visit each, then the better half by score more, and so on. Below the root, PUCT.

One simulation: copy the root state into a scratch row, walk down by PUCT (adding virtual loss), play
the moves on the scratch state, stop at a node that is new (needs the network), terminal (scored by the
rules) or pending in this same batch (a collision: the walk is undone and dropped). After the
evaluator has answered, ``expand_and_backup`` sets priors from the policy (masked to legal moves,
renormalised) and adds the value along the path, alternating sign, removing the virtual loss.
"""
import math
from typing import NamedTuple

import numpy as np
from numba import njit, prange

from . import variant
from .arrays import copy_into, fill
from .board import copy_state, play, searchable_points, score_x2, winner, winner_of_score
from .features import encode
from .layout import BLACK, BLOOM_WORDS, EMPTY, M_GAME_OVER, M_KOMI_X2, M_MOVE_NUMBER, M_RESIGNED, M_SIZE, M_TO_PLAY

ROOT = 0
NO_PARENT = -1
UNVISITED = -1
ILLEGAL = np.float32(-1.0)

UNEXPANDED = 0
PENDING = 1
EXPANDED = 2
TERMINAL = 3

# What a selected leaf needs next.
LEAF_EVAL = 0  # the network
LEAF_TERMINAL = 1  # nothing: its value comes from the rules
LEAF_NONE = 2  # a row whose walk collided: no leaf

KEY_HISTORY = 8  # positions mixed into a leaf's NN-cache key (the network sees the last 8 boards)


def free_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux: MemAvailable), None where unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


# -- the records the kernels take (numba types a NamedTuple of arrays by its fields) ---------------------------


class Tree(NamedTuple):
    """``T`` tree slots of ``M`` nodes and ``A`` actions: the fields of the table above."""

    node_count: np.ndarray
    visits: np.ndarray
    value_sum: np.ndarray
    virtual_loss: np.ndarray
    parent: np.ndarray
    action: np.ndarray
    status: np.ndarray
    nn_value: np.ndarray
    children: np.ndarray
    prior: np.ndarray
    root_noise: np.ndarray
    noise_fraction: np.ndarray
    root_budget: np.ndarray
    gumbel: np.ndarray
    gumbel_table: np.ndarray
    score_sum: np.ndarray
    score_center: np.ndarray
    utility: np.ndarray

    @classmethod
    def nbytes(cls, num_trees: int, max_nodes: int, num_actions: int) -> int:
        """What ``allocate`` takes: per node 49 bytes and a child index and prior per action."""
        return num_trees * max_nodes * (49 + 8 * num_actions) + num_trees * 8 * num_actions

    @classmethod
    def allocate(cls, num_trees: int, max_nodes: int, num_actions: int) -> "Tree":
        """The trees, zeroed; a ValueError (before allocating) if they would not fit in the free memory."""
        t, m, a = num_trees, max_nodes, num_actions
        need, free = cls.nbytes(t, m, a), free_memory()
        if free is not None and need > free:
            raise ValueError(f"the search trees need {need / 2**30:.1f} GiB ({t} trees of {m:,} nodes), more than "
                             f"the {free / 2**30:.1f} GiB of free memory: fewer simulations (search.sims), "
                             f"leaves (search.leaves_per_tree) or positions searched at once")
        return cls(
            node_count=np.zeros(t, np.int32),
            visits=np.zeros((t, m), np.int32),
            value_sum=np.zeros((t, m), np.float64),
            virtual_loss=np.zeros((t, m), np.int32),
            parent=np.full((t, m), NO_PARENT, np.int32),
            action=np.full((t, m), -1, np.int32),
            status=np.zeros((t, m), np.int8),
            nn_value=np.zeros((t, m), np.float32),
            children=np.full((t, m, a), UNVISITED, np.int32),
            prior=np.full((t, m, a), ILLEGAL, np.float32),
            root_noise=np.zeros((t, a), np.float32),
            noise_fraction=np.zeros(t, np.float32),
            root_budget=np.zeros(t, np.int32),
            gumbel=np.zeros((t, a), np.float32),
            gumbel_table=np.zeros((t, m), np.int32),
            score_sum=np.zeros((t, m), np.float64),
            score_center=np.zeros(t, np.float32),
            utility=np.zeros((t, m), np.float64),
        )


class States(NamedTuple):
    """Go states stacked in rows (``layout``): the roots (one per tree) or the scratch rows (one per leaf)."""

    core: np.ndarray
    hist: np.ndarray
    past: np.ndarray


class Leaves(NamedTuple):
    """One batch's leaves, row ``j`` for scratch row ``j``: the tree and node, what the leaf needs
    (``LEAF_*``), its value and score (from the rules, the cache or the network, side to move's view), its
    NN-cache key, its root's move number, and the policy the network or the cache gave it."""

    slot: np.ndarray
    node: np.ndarray
    kind: np.ndarray
    value: np.ndarray
    score: np.ndarray
    key: np.ndarray
    move_number: np.ndarray
    policy: np.ndarray

    @classmethod
    def allocate(cls, rows: int, num_actions: int) -> "Leaves":
        return cls(slot=np.zeros(rows, np.int32), node=np.zeros(rows, np.int32), kind=np.zeros(rows, np.int8),
                   value=np.zeros(rows, np.float32), score=np.zeros(rows, np.float32),
                   key=np.zeros(rows, np.uint64), move_number=np.zeros(rows, np.int32),
                   policy=np.zeros((rows, num_actions), np.float32))


class Params(NamedTuple):
    """Selection constants: PUCT (``c_puct``, first-play urgency reduction, the value of a virtual loss),
    the Gumbel root's sigma (``c_visit``, ``c_scale``), the score utility (``su_weight``, 0: off;
    ``su_scale``, in points)."""

    c_puct: float
    fpu_reduction: float
    vl_value: float
    c_visit: float
    c_scale: float
    su_weight: float
    su_scale: float


@njit(cache=True)
def reset_tree(tr, t):
    """Make slot ``t`` of ``tr`` a fresh tree whose root is unexpanded (only the root's rows are cleared; a
    node is initialised when it is allocated)."""
    tr.node_count[t] = 1
    tr.visits[t, 0] = 0
    tr.value_sum[t, 0] = 0.0
    tr.virtual_loss[t, 0] = 0
    tr.parent[t, 0] = NO_PARENT
    tr.action[t, 0] = -1
    tr.status[t, 0] = UNEXPANDED
    fill(tr.children[t, 0], UNVISITED)
    fill(tr.prior[t, 0], ILLEGAL)
    tr.score_sum[t, 0] = 0.0


@njit(cache=True)
def score_utility(mean, center, scale):
    """``(2 / pi) * atan((mean - center) / scale)``: in (-1, 1), steepest at the centre."""
    return 0.6366197723675814 * math.atan((mean - center) / scale)


@njit(cache=True)
def _mix64(x):
    # splitmix64 finaliser
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return x


@njit(cache=True)
def input_key(core, hist):
    """64-bit key of the exact network input: the last ``KEY_HISTORY`` position hashes (an empty board
    before the first move, as the planes show it), the side to move, board size and komi."""
    n = core[M_MOVE_NUMBER]
    k = _mix64(np.uint64(core[M_TO_PLAY]) + np.uint64(core[M_SIZE]) * np.uint64(16) + np.uint64(core[M_KOMI_X2] + 4096) * np.uint64(65536))
    for i in range(KEY_HISTORY):
        j = n - i
        h = hist[BLOOM_WORDS + j] if j >= 0 else np.uint64(0)
        k = _mix64(k ^ (h + np.uint64(i + 1) * np.uint64(0x9E3779B97F4A7C15)))
    if k == np.uint64(0):
        k = np.uint64(1)
    return k


@njit(cache=True)
def _pick_child(tr, t, node, p, center):
    """PUCT over the legal actions of an expanded node, in one pass over the actions: the best visited child
    (lowest action on ties) against the best unvisited one (the highest prior, lowest action on ties), whose
    q is the first-play urgency (the node's q less ``fpu_reduction * sqrt(visited prior mass)``). With
    ``su_weight`` > 0 a visited child's q adds its score utility (``utility``, around ``center``, the
    chooser's view)."""
    visits, value_sum, virtual_loss, children, prior, score_sum, utility = (
        tr.visits, tr.value_sum, tr.virtual_loss, tr.children, tr.prior, tr.score_sum, tr.utility)
    c_puct, fpu_reduction, vl_value, su_weight, su_scale = p.c_puct, p.fpu_reduction, p.vl_value, p.su_weight, p.su_scale
    num_actions = prior.shape[2]
    parent_n = visits[t, node] + virtual_loss[t, node]
    # value of the node for the player to move there = minus the value for the player who moved into it
    parent_u = 0.0
    if visits[t, node] > 0:
        parent_q = -value_sum[t, node] / visits[t, node]
        if su_weight > 0.0:
            parent_u = su_weight * score_utility(-score_sum[t, node] / visits[t, node], center, su_scale)
    else:
        parent_q = 0.0
    parent_q += parent_u
    explore = c_puct * math.sqrt(max(parent_n, 1))
    visited_mass = 0.0
    best = -1
    best_score = -1e30
    fresh = -1  # the unvisited action with the highest prior
    fresh_prior = -1.0
    for a in range(num_actions):
        pa = prior[t, node, a]
        c = children[t, node, a]
        n = 0
        if c >= 0:
            n = visits[t, c] + virtual_loss[t, c]
        if n > 0:
            visited_mass += pa
            if pa < 0.0:
                continue
            q = (value_sum[t, c] - vl_value * virtual_loss[t, c]) / n
            if su_weight > 0.0:
                q += utility[t, c] if visits[t, c] > 0 else parent_u
            score = q + explore * pa / (1 + n)
            if score > best_score:
                best_score = score
                best = a
        elif pa > fresh_prior:
            fresh_prior = pa
            fresh = a
    if fresh >= 0:
        fpu = parent_q - fpu_reduction * math.sqrt(visited_mass)
        score = fpu + explore * fresh_prior
        if score > best_score or (score == best_score and fresh < best):
            best = fresh
    return best


@njit(cache=True)
def _root_child_q(tr, t, c, p):
    """A visited root child's completed q: its mean value, plus its score utility around the root's score."""
    q = tr.value_sum[t, c] / tr.visits[t, c]
    if p.su_weight > 0.0:
        q += tr.utility[t, c]  # a root child's mover is the root's player: the centre is the root's score
    return q


@njit(cache=True)
def root_sigma(tr, t, p, sigma):
    """``sigma(completed q)`` of every root action into ``sigma`` [A] (0 for illegal ones), as mctx's
    ``qtransform_completed_by_mix_value``: a visited child's q is its mean value (plus its score utility
    when ``su_weight`` > 0: the root's own score is the centre, so the root's utility is 0), an unvisited one's the
    mixed value (the root's own evaluation mixed with the prior-weighted q of the visited children); the q's
    are rescaled to [0, 1] by their min and max and multiplied by ``(c_visit + max visits) * c_scale``."""
    visits, nn_value, children, prior = tr.visits, tr.nn_value, tr.children, tr.prior
    num_actions = prior.shape[2]
    sum_n = 0
    max_n = 0
    sum_p = 0.0
    weighted_q = 0.0
    for a in range(num_actions):
        c = children[t, ROOT, a]
        if c >= 0 and visits[t, c] > 0 and prior[t, ROOT, a] >= 0.0:
            n = visits[t, c]
            sum_n += n
            if n > max_n:
                max_n = n
            sum_p += prior[t, ROOT, a]
            weighted_q += prior[t, ROOT, a] * _root_child_q(tr, t, c, p)
    v_mix = float(nn_value[t, ROOT])
    if sum_n > 0 and sum_p > 0.0:
        v_mix = (v_mix + sum_n * weighted_q / sum_p) / (sum_n + 1)
    q_min = v_mix
    q_max = v_mix
    for a in range(num_actions):
        sigma[a] = 0.0
        if prior[t, ROOT, a] < 0.0:
            continue
        c = children[t, ROOT, a]
        q = v_mix
        if c >= 0 and visits[t, c] > 0:
            q = _root_child_q(tr, t, c, p)
        sigma[a] = q
        q_min = min(q_min, q)
        q_max = max(q_max, q)
    scale = (p.c_visit + max_n) * p.c_scale
    spread = max(q_max - q_min, 1e-8)
    for a in range(num_actions):
        if prior[t, ROOT, a] >= 0.0:
            sigma[a] = scale * (sigma[a] - q_min) / spread


@njit(cache=True)
def _pick_root_gumbel(tr, t, p):
    """Sequential halving at an expanded root: the action for the next simulation, or -1 when no legal
    action has the visit count the table asks for (more simulations than the budget: PUCT takes over)."""
    num_actions = tr.prior.shape[2]
    total = 0
    for a in range(num_actions):
        c = tr.children[t, ROOT, a]
        if c >= 0:
            total += tr.visits[t, c] + tr.virtual_loss[t, c]
    considered = tr.gumbel_table[t, min(total, tr.root_budget[t] - 1, tr.gumbel_table.shape[1] - 1)]
    sigma = np.empty(num_actions, np.float64)
    root_sigma(tr, t, p, sigma)
    return _best_considered(tr, t, sigma, considered, True)


@njit(cache=True)
def _best_considered(tr, t, sigma, considered, in_flight):
    """Among the legal root actions whose visit count (walks in flight included when ``in_flight``) equals
    ``considered``, the one with the highest ``g + log prior + sigma`` (lowest action on ties); -1 if none."""
    visits, virtual_loss, children, prior, gumbel = tr.visits, tr.virtual_loss, tr.children, tr.prior, tr.gumbel
    best = -1
    best_score = -1e300
    for a in range(prior.shape[2]):
        pa = prior[t, ROOT, a]
        if pa < 0.0:
            continue
        c = children[t, ROOT, a]
        n = 0
        if c >= 0:
            n = visits[t, c] + virtual_loss[t, c] if in_flight else visits[t, c]
        if n != considered:
            continue
        score = gumbel[t, a] + math.log(max(pa, 1e-30)) + sigma[a]
        if score > best_score:
            best_score = score
            best = a
    return best


@njit(cache=True)
def gumbel_root_action(tr, t, p):
    """The move of a Gumbel search (final or partial): among the legal root actions with the most completed
    visits, the one with the highest ``g + log prior + sigma(q)`` (lowest action on ties); -1 if the root
    is not expanded."""
    visits, children, prior = tr.visits, tr.children, tr.prior
    num_actions = prior.shape[2]
    sigma = np.empty(num_actions, np.float64)
    root_sigma(tr, t, p, sigma)
    max_n = 0
    for a in range(num_actions):
        c = children[t, ROOT, a]
        if c >= 0 and prior[t, ROOT, a] >= 0.0 and visits[t, c] > max_n:
            max_n = visits[t, c]
    return _best_considered(tr, t, sigma, max_n, False)


@njit(cache=True)
def gumbel_improved_policy(tr, t, p, out):
    """The Gumbel training target: ``softmax(log prior + sigma(completed q))`` over the legal root actions
    into ``out`` [A] (0 for illegal ones)."""
    prior = tr.prior
    num_actions = prior.shape[2]
    sigma = np.empty(num_actions, np.float64)
    root_sigma(tr, t, p, sigma)
    top = -1e300
    for a in range(num_actions):
        if prior[t, ROOT, a] >= 0.0:
            sigma[a] += math.log(max(prior[t, ROOT, a], 1e-30))
            top = max(top, sigma[a])
    total = 0.0
    for a in range(num_actions):
        if prior[t, ROOT, a] >= 0.0:
            sigma[a] = math.exp(sigma[a] - top)
            total += sigma[a]
        else:
            sigma[a] = 0.0
    for a in range(num_actions):
        out[a] = sigma[a] / total if total > 0.0 else 0.0


@njit(cache=True)
def _undo_path(tr, t, node):
    while node != NO_PARENT:
        tr.virtual_loss[t, node] -= 1
        node = tr.parent[t, node]


@njit(cache=True)
def reserve_rows(wanted, max_rows, row_start):
    """Give tree ``i`` the rows ``row_start[i] .. row_start[i] + wanted[i] - 1``, in order, or -1 if its batch
    does not fit in what is left. A tree's batch is all or nothing, so its sequence of batches (hence its
    result) never depends on what else shares the evaluator: the base of lossless speculation. Callers list
    the trees that matter most first. Returns the rows used."""
    n = 0
    for i in range(wanted.shape[0]):
        if wanted[i] <= 0 or n + wanted[i] > max_rows:
            row_start[i] = -1
        else:
            row_start[i] = n
            n += wanted[i]
    return n


@njit(cache=True)
def _select_one(tr, t, row, roots, scratch, leaves, p):
    """One simulation's walk down tree ``t`` of ``tr`` from its root (row ``t`` of ``roots``) into scratch row
    ``row``, the leaf into ``leaves`` row ``row``; False if it collided."""
    node_count, visits, value_sum, virtual_loss, parent, action, status, children, prior = (
        tr.node_count, tr.visits, tr.value_sum, tr.virtual_loss, tr.parent, tr.action, tr.status, tr.children,
        tr.prior)
    score_sum, score_center, root_budget = tr.score_sum, tr.score_center, tr.root_budget
    root_core, root_hist, root_past = roots.core, roots.hist, roots.past
    scratch_core, scratch_hist, scratch_past = scratch.core, scratch.hist, scratch.past
    leaf_slot, leaf_node, leaf_kind, leaf_value, leaf_key, leaf_move_number, leaf_score = (
        leaves.slot, leaves.node, leaves.kind, leaves.value, leaves.key, leaves.move_number, leaves.score)
    max_nodes = visits.shape[1]
    copy_state(root_core[t], root_hist[t], root_past[t], scratch_core[row], scratch_hist[row], scratch_past[row])
    node = ROOT
    virtual_loss[t, node] += 1
    while True:
        st = status[t, node]
        if st == EXPANDED:
            a = -1
            if node == ROOT and root_budget[t] > 0:
                a = _pick_root_gumbel(tr, t, p)
            if a < 0:
                # the score utility's centre, from the view of the player choosing here
                center = score_center[t]
                if scratch_core[row, M_TO_PLAY] != root_core[t, M_TO_PLAY]:
                    center = -center
                a = _pick_child(tr, t, node, p, center)
            child = children[t, node, a]
            if child < 0:
                child = node_count[t]
                if child >= max_nodes:  # tree full: this walk ends here
                    _undo_path(tr, t, node)
                    leaf_kind[row] = LEAF_NONE
                    return False
                node_count[t] = child + 1
                visits[t, child] = 0
                value_sum[t, child] = 0.0
                score_sum[t, child] = 0.0
                virtual_loss[t, child] = 0
                parent[t, child] = node
                action[t, child] = a
                status[t, child] = UNEXPANDED
                fill(children[t, child], UNVISITED)
                fill(prior[t, child], ILLEGAL)
                children[t, node, a] = child
            play(scratch_core[row], scratch_hist[row], scratch_past[row], a)
            node = child
            virtual_loss[t, node] += 1
            continue
        if st == PENDING:  # another walk of this batch already waits for this leaf's evaluation
            _undo_path(tr, t, node)
            leaf_kind[row] = LEAF_NONE
            return False
        break
    leaf_slot[row] = t
    leaf_node[row] = node
    leaf_move_number[row] = root_core[t, M_MOVE_NUMBER]
    core = scratch_core[row]
    if status[t, node] == TERMINAL or core[M_GAME_OVER] != 0:
        status[t, node] = TERMINAL
        s_x2 = score_x2(core)  # one count for both the winner and the score
        w = winner(core) if core[M_RESIGNED] != EMPTY else winner_of_score(s_x2)
        leaf_kind[row] = LEAF_TERMINAL
        leaf_value[row] = 0.0 if w == EMPTY else (1.0 if w == core[M_TO_PLAY] else -1.0)
        leaf_score[row] = s_x2 / 2.0 if core[M_TO_PLAY] == BLACK else -s_x2 / 2.0
        leaf_key[row] = np.uint64(0)
    else:
        status[t, node] = PENDING
        leaf_kind[row] = LEAF_EVAL
        leaf_value[row] = 0.0
        leaf_score[row] = 0.0
        leaf_key[row] = input_key(core, scratch_hist[row])
    return True


def _select_leaves(slots, wanted, row_start, tr, roots, scratch, leaves, p):
    """Select ``wanted[i]`` leaves in tree ``slots[i]`` into its reserved rows (``reserve_rows``); trees run
    in parallel (each owns its rows and its tree), the walks of one tree run in order.

    Returns ``(rows used, collisions)``. Row ``j`` is a leaf described by ``leaves`` row ``j`` with its
    position in scratch row ``j``, or ``LEAF_NONE`` if that walk collided with a leaf already pending in the
    batch (its virtual loss is undone). ``leaves.move_number`` is the root's move number (statistics by phase).
    """
    n = reserve_rows(wanted, scratch.core.shape[0], row_start)
    collisions = 0
    for i in prange(slots.shape[0]):
        start = row_start[i]
        if start < 0:
            continue
        t = slots[i]
        for j in range(wanted[i]):
            if not _select_one(tr, t, start + j, roots, scratch, leaves, p):
                collisions += 1
    return n, collisions


def _encode_leaves(scratch, rows, out):
    """Feature planes of scratch rows ``rows`` into ``out[0 : len(rows)]``."""
    for i in prange(rows.shape[0]):
        r = rows[i]
        encode(scratch.core[r], scratch.past[r], out[i])


@njit(cache=True)
def _depth(parent, t, node):
    """Moves from the root of tree ``t`` to ``node``."""
    depth = 0
    while parent[t, node] != NO_PARENT:
        depth += 1
        node = parent[t, node]
    return depth


@njit(cache=True)
def _set_utility(tr, t, node, depth, su_weight, su_scale):
    """``utility`` of a visited node at ``depth``: its mean score around the root's score, from the view of
    the player who moved into it (the root's player at odd depths)."""
    center = tr.score_center[t] if depth % 2 == 1 else -tr.score_center[t]
    tr.utility[t, node] = su_weight * score_utility(tr.score_sum[t, node] / tr.visits[t, node], center, su_scale)


@njit(cache=True)
def _expand_backup_one(tr, j, scratch, leaves, p, fill_eyes):
    visits, value_sum, virtual_loss, parent, status, nn_value, prior = (
        tr.visits, tr.value_sum, tr.virtual_loss, tr.parent, tr.status, tr.nn_value, tr.prior)
    root_noise, noise_fraction, score_sum, score_center = tr.root_noise, tr.noise_fraction, tr.score_sum, tr.score_center
    su_weight, su_scale = p.su_weight, p.su_scale
    scratch_core, scratch_hist = scratch.core, scratch.hist
    leaf_slot, leaf_node, leaf_kind, leaf_value, leaf_policy, leaf_score = (
        leaves.slot, leaves.node, leaves.kind, leaves.value, leaves.policy, leaves.score)
    kind = leaf_kind[j]
    if kind == LEAF_NONE:
        return
    num_actions = prior.shape[2]
    t = leaf_slot[j]
    node = leaf_node[j]
    v = leaf_value[j]
    if kind == LEAF_EVAL:
        core = scratch_core[j]
        hist = scratch_hist[j]
        total = 0.0
        legal = 1  # pass
        node_prior = prior[t, node]
        legal += searchable_points(core, hist, fill_eyes, node_prior)  # 1 or 0 per point, into the prior row
        for a in range(num_actions - 1):
            if node_prior[a] > 0.0:
                pa = leaf_policy[j, a]
                node_prior[a] = pa
                total += pa
            else:
                node_prior[a] = ILLEGAL
        prior[t, node, num_actions - 1] = leaf_policy[j, num_actions - 1]  # pass is always legal
        total += leaf_policy[j, num_actions - 1]
        for a in range(num_actions):
            if prior[t, node, a] >= 0.0:
                prior[t, node, a] = prior[t, node, a] / total if total > 0.0 else 1.0 / legal
        eps = noise_fraction[t]
        if node == ROOT and eps > 0.0:
            for a in range(num_actions):
                if prior[t, node, a] >= 0.0:
                    prior[t, node, a] = (1.0 - eps) * prior[t, node, a] + eps * root_noise[t, a]
        status[t, node] = EXPANDED
        if node == ROOT:
            score_center[t] = leaf_score[j]
    nn_value[t, node] = v
    w = -v  # for the player who moved into the leaf
    ws = -leaf_score[j]
    depth = _depth(parent, t, node) if su_weight > 0.0 else 0
    cur = node
    while cur != NO_PARENT:
        visits[t, cur] += 1
        value_sum[t, cur] += w
        score_sum[t, cur] += ws
        virtual_loss[t, cur] -= 1
        if su_weight > 0.0:
            _set_utility(tr, t, cur, depth, su_weight, su_scale)
            depth -= 1
        w = -w
        ws = -ws
        cur = parent[t, cur]


def _expand_and_backup(slots, wanted, row_start, tr, scratch, leaves, p, fill_eyes):
    """Expand evaluated leaves (legal-masked, renormalised priors; root noise; unless ``fill_eyes``, a move into one of the mover's own true eyes
    (``board.is_eye``) counts as illegal: Tromp-Taylor play never needs it, and a net that has not learnt to
    pass would otherwise fill its eyes until its groups die) and back up all values,
    tree by tree in parallel, each tree's leaves in their selection order (what makes it deterministic).

    ``leaves.policy[j]`` / ``leaves.value[j]`` are the network's output for leaf ``j`` (value from the view
    of the side to move at the leaf); terminal leaves carry their rules value in ``leaves.value``. With
    ``p.su_weight`` > 0 each node on a path gets its score utility anew (``utility``).
    """
    for i in prange(slots.shape[0]):
        start = row_start[i]
        if start < 0:
            continue
        for j in range(start, start + wanted[i]):
            _expand_backup_one(tr, j, scratch, leaves, p, fill_eyes)


# Each batch kernel exists twice: serial, and parallel over trees (numba prange, OpenMP threads). Threads pay
# off only when a batch has many trees: for a handful of leaves the fork/join costs more than the work, and
# on a loaded machine much more. ``specmcts.engine.search`` picks per step; results are identical either way
# (trees are independent, each tree's leaves are processed in order).
# They release the GIL (nogil): with ``search.overlap`` a forward pass runs in another thread meanwhile.
# The parallel ones compile a copy of the function (``native.variant``): numba caches them apart.
select_leaves = njit(cache=True, nogil=True)(_select_leaves)
select_leaves_parallel = njit(cache=True, parallel=True, nogil=True)(variant(_select_leaves, "_parallel"))
encode_leaves = njit(cache=True, nogil=True)(_encode_leaves)
encode_leaves_parallel = njit(cache=True, parallel=True, nogil=True)(variant(_encode_leaves, "_parallel"))
expand_and_backup = njit(cache=True, nogil=True)(_expand_and_backup)
expand_and_backup_parallel = njit(cache=True, parallel=True, nogil=True)(variant(_expand_and_backup, "_parallel"))


@njit(cache=True)
def root_visit_counts(tr, t, out):
    """Visits of each root child (0 for unvisited and illegal actions: a root move made illegal after it was
    visited, by ``restrict_root`` on a reused tree, counts 0)."""
    for a in range(out.shape[0]):
        c = tr.children[t, ROOT, a]
        out[a] = tr.visits[t, c] if c >= 0 and tr.prior[t, ROOT, a] >= 0.0 else 0


@njit(cache=True)
def root_leader(tr, t):
    """Tree ``t``'s most visited root action (the lowest on ties, as ``pick_from_counts`` at temperature 0)
    and its lead over the runner-up in visits (the counts of ``root_visit_counts``)."""
    visits, children, prior = tr.visits, tr.children, tr.prior
    top = -1
    top_n = -1
    second_n = 0
    for a in range(children.shape[2]):
        c = children[t, ROOT, a]
        n = visits[t, c] if c >= 0 and prior[t, ROOT, a] >= 0.0 else 0
        if n > top_n:
            if top_n > second_n:
                second_n = top_n
            top = a
            top_n = n
        elif n > second_n:
            second_n = n
    return top, top_n - second_n


@njit(cache=True)
def stage_events(tr, slots, next_event, watch, targets, crossed, sure, sure_best, sure_left):
    """What a speculation pipeline asks after every batch, in one call. ``crossed`` gets the trees of
    ``slots`` whose completed simulations (the root's visits less its own evaluation) reached
    ``next_event[tree]`` (their next stage boundary), in ``slots``' order; ``sure`` the indices into
    ``watch`` of the trees whose leader's lead in visits is larger than the simulations they have left
    (``targets[tree]`` less those completed: no simulation left can change their greedy move), with that
    move in ``sure_best`` and the simulations left in ``sure_left``. Returns (crossed, sure) counts."""
    visits = tr.visits
    n_crossed = 0
    for i in range(slots.shape[0]):
        t = slots[i]
        if max(visits[t, ROOT] - 1, 0) >= next_event[t]:
            crossed[n_crossed] = t
            n_crossed += 1
    n_sure = 0
    for i in range(watch.shape[0]):
        t = watch[i]
        best, lead = root_leader(tr, t)
        left = targets[t] - max(visits[t, ROOT] - 1, 0)
        if lead > left:
            sure[n_sure] = i
            sure_best[n_sure] = best
            sure_left[n_sure] = left
            n_sure += 1
    return n_crossed, n_sure


@njit(cache=True)
def ranked_root_actions(tr, t, first, others, actions, counts):
    """``first``, then up to ``others`` more of tree ``t``'s visited root actions by visits (the lowest
    action on ties; ``first`` and unvisited actions left out), into ``actions``, with their visits in
    ``counts``. Returns (how many, the visits of every root action together). The counts of
    ``root_visit_counts``."""
    visits, children, prior = tr.visits, tr.children, tr.prior
    num_actions = children.shape[2]
    total = 0
    for a in range(num_actions):
        c = children[t, ROOT, a]
        if c >= 0 and prior[t, ROOT, a] >= 0.0:
            total += visits[t, c]
    c = children[t, ROOT, first]
    actions[0] = first
    counts[0] = visits[t, c] if c >= 0 and prior[t, ROOT, first] >= 0.0 else 0
    n = 1
    previous_n = np.int64(1) << 62  # ranks go down (visits, then action): the next is below the previous
    previous_a = -1
    for _ in range(others):
        best = -1
        best_n = 0
        for a in range(num_actions):
            if a == first:
                continue
            c = children[t, ROOT, a]
            if c < 0 or prior[t, ROOT, a] < 0.0:
                continue
            v = np.int64(visits[t, c])
            if v <= 0 or v > previous_n or (v == previous_n and a <= previous_a):
                continue
            if v > best_n:
                best = a
                best_n = v
        if best < 0:
            break
        actions[n] = best
        counts[n] = best_n
        n += 1
        previous_n = best_n
        previous_a = best
    return n, total


@njit(cache=True)
def pick_from_counts(counts, temperature, uniform):
    """The move from visit counts: argmax (lowest action on ties) when ``temperature`` is 0, else the
    action where ``uniform`` falls in the cumulative distribution of ``counts ** (1 / temperature)``.
    Speculation applies the same pre-drawn ``uniform`` to partial counts to predict the final pick."""
    best = 0
    total = 0.0
    for a in range(counts.shape[0]):
        if counts[a] > counts[best]:
            best = a
    if temperature <= 0.0 or counts[best] == 0:
        return best
    inv = 1.0 / temperature
    top = counts[best]
    for a in range(counts.shape[0]):
        if counts[a] > 0:
            total += (counts[a] / top) ** inv
    target = uniform * total
    acc = 0.0
    last = best
    for a in range(counts.shape[0]):
        if counts[a] > 0:
            acc += (counts[a] / top) ** inv
            last = a
            if acc > target:
                return a
    return last


@njit(cache=True)
def principal_variation(tr, t, node, out):
    """Most-visited path below ``node`` (actions into ``out``); returns its length."""
    visits, children = tr.visits, tr.children
    n = 0
    while n < out.shape[0]:
        best = -1
        best_visits = 0
        for a in range(children.shape[2]):
            c = children[t, node, a]
            if c >= 0 and visits[t, c] > best_visits:
                best_visits = visits[t, c]
                best = a
        if best < 0:
            break
        out[n] = best
        n += 1
        node = children[t, node, best]
    return n


@njit(cache=True)
def extract_subtree(tr, src, node, dst, queue, p):
    """Tree reuse: copy the subtree below ``(src, node)`` into slot ``dst`` (``src != dst``) as a tree whose
    root is that node, renumbering breadth-first. ``queue`` is int32 scratch of at least M entries. The
    new root has a centre of its own (its mean score): every node's score utility is computed anew."""
    node_count, visits, value_sum, virtual_loss, parent, action, status, nn_value, children, prior = (
        tr.node_count, tr.visits, tr.value_sum, tr.virtual_loss, tr.parent, tr.action, tr.status, tr.nn_value,
        tr.children, tr.prior)
    score_sum, score_center = tr.score_sum, tr.score_center
    num_actions = prior.shape[2]
    queue[0] = node
    head = 0
    tail = 1
    visits[dst, 0] = visits[src, node]
    value_sum[dst, 0] = value_sum[src, node]
    score_sum[dst, 0] = score_sum[src, node]
    # the new root's score centre: its mean score, from its mover's view
    score_center[dst] = -score_sum[src, node] / visits[src, node] if visits[src, node] > 0 else 0.0
    virtual_loss[dst, 0] = 0
    parent[dst, 0] = NO_PARENT
    action[dst, 0] = -1
    status[dst, 0] = status[src, node]
    nn_value[dst, 0] = nn_value[src, node]
    while head < tail:
        s = queue[head]
        d = head
        head += 1
        copy_into(prior[dst, d], prior[src, s], prior.shape[2])
        for a in range(num_actions):
            c = children[src, s, a]
            if c >= 0:
                n = tail
                tail += 1
                queue[n] = c
                children[dst, d, a] = n
                visits[dst, n] = visits[src, c]
                value_sum[dst, n] = value_sum[src, c]
                score_sum[dst, n] = score_sum[src, c]
                virtual_loss[dst, n] = 0
                parent[dst, n] = d
                action[dst, n] = a
                status[dst, n] = status[src, c]
                nn_value[dst, n] = nn_value[src, c]
            else:
                children[dst, d, a] = UNVISITED
    node_count[dst] = tail
    if p.su_weight > 0.0:
        for n in range(1, tail):
            if visits[dst, n] > 0:
                _set_utility(tr, dst, n, _depth(parent, dst, n), p.su_weight, p.su_scale)


@njit(cache=True)
def mix_root_noise(tr, t, fraction):
    """Mix Dirichlet noise into an already expanded root (a reused tree)."""
    prior = tr.prior
    for a in range(prior.shape[2]):
        if prior[t, ROOT, a] >= 0.0:
            prior[t, ROOT, a] = (1.0 - fraction) * prior[t, ROOT, a] + fraction * tr.root_noise[t, a]


@njit(cache=True)
def searchable_mask(core, hist, fill_eyes, out):
    """The moves a search may consider at this position into ``out`` (bool [A]): the legal ones (pass
    included), without the mover's own eyes unless ``fill_eyes`` (what ``expand_and_backup`` masks).
    Returns how many."""
    count = searchable_points(core, hist, fill_eyes, out) + 1
    out[core[M_SIZE] * core[M_SIZE]] = True
    return count
