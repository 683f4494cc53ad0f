"""Evaluators: the contract the search relies on, NetEvaluator == the net, HashEvaluator batch independence."""
import numpy as np
import pytest
import torch

from games.go import GoRules, GoState
from native.features import NUM_PLANES, encode
from specmcts.config import Config, ConfigError, EvaluatorConfig, NetConfig
from specmcts.engine import evaluator as evaluator_module
from specmcts.engine.evaluator import (CPU_BF16_MIN_ROWS, GRAPH_BATCH_SIZES, Evaluator, HashEvaluator, NetEvaluator,
                                       UniformEvaluator, graph_batch_sizes, make_evaluator, padded_batch_size,
                                       torch_device)
from specmcts.engine.network import embedded_model, load_model
from specmcts.limits import EVAL_DTYPES
from specmcts.engine.shared_evaluator import SharedEvaluatorServer
from specmcts.engine.network import build_net

TINY = NetConfig(blocks=2, channels=32)
needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def positions(size: int, count: int, seed: int = 0) -> list[GoState]:
    """Distinct positions from a few random games (each a prefix of a game: distinct histories)."""
    rng = np.random.default_rng(seed)
    states = []
    while len(states) < count:
        state = GoState(GoRules(size))
        for _ in range(int(rng.integers(0, 2 * size))):
            if state.is_over:
                break
            state.play(int(rng.choice(state.legal_actions())))
            states.append(state.copy())
    return states[:count]


def write_leaves(ev: Evaluator, states: list[GoState], start: int = 0) -> None:
    """What the search does: encode each leaf straight into the evaluator's input rows."""
    for i, state in enumerate(states):
        encode(state.core, state.past, ev.inputs[start + i])


# -- padded sizes (pure logic, shared with the CUDA path) ---------------------------------------------------
def test_graph_batch_sizes():
    assert graph_batch_sizes(512) == GRAPH_BATCH_SIZES
    assert graph_batch_sizes(1) == (1,)
    assert graph_batch_sizes(64) == (1, 2, 4, 8, 16, 32, 64)
    assert graph_batch_sizes(300) == (1, 2, 4, 8, 16, 32, 64, 128, 256, 300)
    with pytest.raises(ValueError):
        graph_batch_sizes(0)


@pytest.mark.parametrize("n,padded", [(1, 1), (2, 2), (3, 4), (5, 8), (17, 32), (64, 64), (65, 128), (257, 512),
                                      (512, 512)])
def test_padded_batch_size(n, padded):
    assert padded_batch_size(n, GRAPH_BATCH_SIZES) == padded


def test_padded_batch_size_out_of_range():
    with pytest.raises(ValueError, match="exceeds"):
        padded_batch_size(513, GRAPH_BATCH_SIZES)
    with pytest.raises(ValueError):
        padded_batch_size(0, GRAPH_BATCH_SIZES)
    assert padded_batch_size(290, graph_batch_sizes(300)) == 300


# -- the contract ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [
    lambda: UniformEvaluator(9, max_batch=16),
    lambda: HashEvaluator(9, max_batch=16),
    lambda: NetEvaluator(build_net(9, TINY), max_batch=16),
], ids=["uniform", "hash", "net"])
def test_contract(make):
    ev = make()
    assert ev.inputs.shape == (16, NUM_PLANES, 9, 9) and ev.inputs.dtype == np.uint8
    assert (ev.board_size, ev.num_actions, ev.num_planes, ev.max_batch) == (9, 82, NUM_PLANES, 16)
    write_leaves(ev, positions(9, 16))
    for n in (1, 5, 16):
        policy, value = ev.evaluate(n)
        assert policy.shape == (n, 82) and policy.dtype == np.float32
        assert value.shape == (n,) and value.dtype == np.float32
        np.testing.assert_allclose(policy.sum(axis=1), 1.0, rtol=1e-5)
        assert np.all(policy >= 0) and np.all(np.abs(value) <= 1.0)
    assert (ev.evals, ev.batches) == (22, 3)
    policy, value = ev.evaluate(0)
    assert policy.shape == (0, 82) and value.shape == (0,)
    assert (ev.evals, ev.batches) == (22, 3)
    with pytest.raises(ValueError, match="0..16"):
        ev.evaluate(17)
    with pytest.raises(ValueError):
        ev.evaluate(-1)


def test_outputs_are_views_of_preallocated_buffers():
    ev = HashEvaluator(9, max_batch=8)
    p1, v1 = ev.evaluate(8)
    p2, v2 = ev.evaluate(3)
    assert np.shares_memory(p1, p2) and np.shares_memory(v1, v2)


def test_uniform_evaluator():
    ev = UniformEvaluator(9, value=0.25, max_batch=4)
    policy, value = ev.evaluate(4)
    assert np.all(policy == np.float32(1 / 82)) and np.all(value == np.float32(0.25))
    policy += 1.0  # a caller mixing noise in place must not change the next answer
    policy, _ = ev.evaluate(2)
    assert np.all(policy == np.float32(1 / 82))
    with pytest.raises(ValueError):
        UniformEvaluator(9, value=2.0)


# -- NetEvaluator on CPU -----------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 3, 32])
def test_net_evaluator_equals_direct_forward(n):
    net = build_net(9, TINY)
    ev = NetEvaluator(net, device="cpu", max_batch=32)
    states = positions(9, n, seed=n)
    write_leaves(ev, states)
    policy, value, score = ev.forward(n)

    x = torch.from_numpy(np.stack([s.features() for s in states]))
    with torch.no_grad():
        out = net.eval().heads(x)
    np.testing.assert_allclose(policy, torch.softmax(out["policy"], 1).numpy(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(value, out["value"].numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(score, out["score"].numpy(), rtol=1e-5, atol=1e-5)  # the score head, for search


def test_net_evaluator_without_a_score_head_scores_zero():
    ev = NetEvaluator(build_net(9, NetConfig(blocks=1, channels=16, heads="fc")), max_batch=4)
    write_leaves(ev, positions(9, 3, seed=4))
    assert (ev.forward(3).score == 0).all()


def test_net_evaluator_sees_what_callers_write_into_inputs():
    ev = NetEvaluator(build_net(9, TINY), max_batch=4)
    states = positions(9, 2, seed=3)
    write_leaves(ev, states[:1])
    first = ev.evaluate(1)[0].copy()
    write_leaves(ev, states[1:])
    assert not np.array_equal(ev.evaluate(1)[0], first)
    write_leaves(ev, states[:1])
    np.testing.assert_array_equal(ev.evaluate(1)[0], first)  # deterministic for the same rows


def test_net_evaluator_load_state_dict_changes_outputs_and_id():
    ev = NetEvaluator(build_net(9, TINY), max_batch=4)
    write_leaves(ev, positions(9, 2))
    before = ev.evaluate(2)[1].copy()
    other = build_net(9, TINY)
    ev.load_state_dict(other.state_dict(), model_id="other")
    assert ev.model_id == "other"
    with torch.no_grad():
        _, expected = other.eval()(torch.from_numpy(ev.inputs[:2].astype(np.float32)))
    after = ev.evaluate(2)[1]
    assert not np.array_equal(after, before)
    np.testing.assert_allclose(after, expected.numpy(), rtol=1e-5, atol=1e-6)


# -- HashEvaluator: exactness reference --------------------------------------------------------------------
def test_hash_evaluator_is_deterministic_and_batch_independent():
    states = positions(9, 12, seed=5)
    ev = HashEvaluator(9, seed=3, max_batch=16)
    write_leaves(ev, states)
    policy, value = (a.copy() for a in ev.evaluate(12))
    assert len({row.tobytes() for row in policy}) == 12  # different inputs, different outputs

    single = HashEvaluator(9, seed=3, max_batch=16)
    rng = np.random.default_rng(0)
    for i, state in enumerate(states):
        # the same row alone, or at another place among other rows, or in another instance: bit-identical
        n = int(rng.integers(1, 17))
        where = int(rng.integers(0, n))
        single.inputs[:n] = rng.integers(0, 2, single.inputs[:n].shape, dtype=np.uint8)
        write_leaves(single, [state], start=where)
        p, v = single.evaluate(n)
        assert p[where].tobytes() == policy[i].tobytes() and v[where] == value[i]

    other_seed = HashEvaluator(9, seed=4, max_batch=16)
    write_leaves(other_seed, states)
    assert not np.array_equal(other_seed.evaluate(12)[0], policy)


def test_hash_evaluator_outputs_look_like_a_net():
    ev = HashEvaluator(19, max_batch=64)
    write_leaves(ev, positions(19, 64, seed=2))
    policy, value = ev.evaluate(64)
    np.testing.assert_allclose(policy.sum(axis=1), 1.0, rtol=1e-5)
    assert np.all(policy.max(axis=1) > 2.0 / 362)  # not uniform: argmax is meaningful
    assert value.min() < -0.3 and value.max() > 0.3


# -- bf16 on CPU -------------------------------------------------------------------------------------------
def test_cpu_bfloat16_plays_like_float32_on_the_shipped_net():
    """bf16 autocast on the CPU (``evaluator.cpu_dtype``) gives the shipped net's outputs within bf16's
    precision of float32's on real positions, and the same best move almost everywhere. Runs on any CPU
    (without native bf16 it is emulated: slower, same numbers)."""
    net = load_model(embedded_model(9))[0]
    f32 = NetEvaluator(net, max_batch=96, cpu_dtype="float32")
    bf16 = NetEvaluator(net, max_batch=96, cpu_dtype="bfloat16")
    assert (f32.cpu_mode, bf16.cpu_mode) == ("float32", "bfloat16")
    states = positions(9, 96, seed=11)
    write_leaves(f32, states)
    write_leaves(bf16, states)
    p32, v32, s32 = (a.copy() for a in f32.forward(96))
    p16, v16, s16 = bf16.forward(96)
    assert np.abs(p16 - p32).max() < 0.05 and np.abs(p16 - p32).sum(1).mean() < 0.05
    assert np.abs(v16 - v32).max() < 0.1 and np.abs(v16 - v32).mean() < 0.02
    assert np.abs(s16 - s32).mean() < 0.5
    assert (p16.argmax(1) == p32.argmax(1)).mean() >= 0.9
    assert not np.array_equal(p16, p32)  # it did compute in bf16


@pytest.mark.parametrize("native", [True, False])
def test_cpu_dtype_auto_takes_bf16_for_big_batches_where_the_cpu_has_it(monkeypatch, native):
    monkeypatch.setattr(evaluator_module, "cpu_bf16_native", lambda: native)
    net = build_net(9, TINY)
    auto = NetEvaluator(net, max_batch=64, cpu_dtype="auto")
    f32 = NetEvaluator(net, max_batch=64, cpu_dtype="float32")
    bf16 = NetEvaluator(net, max_batch=64, cpu_dtype="bfloat16")
    assert auto.cpu_mode == (f"bfloat16 from {CPU_BF16_MIN_ROWS} rows" if native else "float32")
    assert auto.twin().cpu_mode == auto.cpu_mode and "eager" in repr(auto)
    states = positions(9, 64, seed=3)
    for ev in (auto, f32, bf16):
        write_leaves(ev, states)
    for n in (1, CPU_BF16_MIN_ROWS - 1, CPU_BF16_MIN_ROWS, 64):
        expected = bf16 if native and n >= CPU_BF16_MIN_ROWS else f32
        np.testing.assert_array_equal(auto.forward(n).policy, expected.forward(n).policy)


def test_cpu_dtype_is_checked():
    with pytest.raises(ConfigError, match="evaluator.cpu_dtype must be one of auto, "):
        Config().override("evaluator.cpu_dtype=int8")
    with pytest.raises(ConfigError, match="evaluator.dtype must be one of"):
        Config().override("evaluator.dtype=int8")
    with pytest.raises(ValueError, match="cpu_dtype must be one of"):
        NetEvaluator(build_net(9, TINY), max_batch=2, cpu_dtype="float16")
    assert set(EVAL_DTYPES) == set(evaluator_module._AUTOCAST_DTYPES)  # the config's list is the evaluator's
    ev = make_evaluator(Config().override("evaluator.cpu_dtype=bf16", "net.blocks=1", "net.channels=8"), 9)
    assert ev.cpu_mode == "bfloat16"


# -- factory -----------------------------------------------------------------------------------------------
def test_make_evaluator_on_cpu():
    ev = make_evaluator(EvaluatorConfig(device="cpu", max_batch=8), 9, net=build_net(9, TINY))
    assert isinstance(ev, NetEvaluator) and ev.device.type == "cpu" and ev.max_batch == 8

    cfg = Config().override("net.blocks=1", "net.channels=8", "evaluator.max_batch=4")
    ev = make_evaluator(cfg, 9, device="cpu")  # a fresh net shaped by cfg.net
    assert ev.net.net_cfg == cfg.net and ev.net.board_size == 9

    assert isinstance(make_evaluator(cfg, 9, net="uniform"), UniformEvaluator)
    assert isinstance(make_evaluator(cfg, 19, net="hash"), HashEvaluator)
    with pytest.raises(ValueError, match="19x19, asked for 9x9"):
        make_evaluator(cfg, 9, net=build_net(19, NetConfig(blocks=1, channels=8)))
    with pytest.raises(ValueError):
        make_evaluator(cfg, 9, net="random")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU path")
def test_auto_picks_cpu_and_cuda_without_gpu_is_an_error():
    assert torch_device("auto").type == "cpu"
    ev = make_evaluator(EvaluatorConfig(device="auto", max_batch=2), 9, net=build_net(9, TINY))
    assert ev.device.type == "cpu"
    with pytest.raises(ValueError, match="no CUDA GPU"):
        make_evaluator(EvaluatorConfig(device="cuda"), 9, net=build_net(9, TINY))
    with pytest.raises(ValueError, match="no CUDA GPU"):
        make_evaluator(EvaluatorConfig(device="cpu"), 9, net=build_net(9, TINY), device="cuda")


# -- CUDA (the CPU tests above cover the same logic) -------------------------------------------------------
@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("dtype,atol", [("float32", 1e-4), ("bfloat16", 0.03)])
def test_cuda_graph_evaluator_matches_cpu(dtype, atol):
    net = build_net(9, TINY)
    cpu = NetEvaluator(build_net(9, TINY), device="cpu", max_batch=64)
    cpu.load_state_dict(net.state_dict())
    gpu = NetEvaluator(net, device="cuda", max_batch=64, cuda_graphs=True, dtype=dtype)
    assert gpu.graph_sizes == (1, 2, 4, 8, 16, 32, 64)
    states = positions(9, 64, seed=7)
    write_leaves(cpu, states)
    write_leaves(gpu, states)
    for n in (1, 3, 17, 64):
        p_ref, v_ref = (a.copy() for a in cpu.evaluate(n))
        p, v = gpu.evaluate(n)
        np.testing.assert_allclose(p, p_ref, atol=atol)
        np.testing.assert_allclose(v, v_ref, atol=atol)
    assert gpu.padded_size(17) == 32 and (gpu.evals, gpu.batches) == (85, 4)


@pytest.mark.gpu
@needs_gpu
def test_cuda_graphs_match_eager_and_follow_weight_updates():
    graphs = NetEvaluator(build_net(9, TINY), device="cuda", max_batch=32, cuda_graphs=True, dtype="float32")
    eager = NetEvaluator(build_net(9, TINY), device="cuda", max_batch=32, cuda_graphs=False, dtype="float32")
    eager.load_state_dict(graphs.net.state_dict())
    states = positions(9, 32, seed=8)
    write_leaves(graphs, states)
    write_leaves(eager, states)
    for n in (1, 5, 32):
        np.testing.assert_allclose(graphs.evaluate(n)[0], eager.evaluate(n)[0], atol=1e-5)
    new = build_net(9, TINY).state_dict()
    graphs.load_state_dict(new, model_id="new")
    eager.load_state_dict(new, model_id="new")
    np.testing.assert_allclose(graphs.evaluate(7)[1], eager.evaluate(7)[1], atol=1e-5)
    assert graphs.inputs.shape == (32, NUM_PLANES, 9, 9)


@pytest.mark.gpu
@needs_gpu
def test_cuda_launch_queues_and_result_waits():
    """A CUDA evaluator launches (returns at once; ``result()`` waits on its stream's event) and its twin has
    buffers and a stream of its own: two batches in flight at once each get their own rows' answers, the
    same as ``forward``. The pipeline's use of launch/result is tested on the CPU with the emulated device
    (tests/test_emulate.py, tests/test_speculation.py)."""
    first = NetEvaluator(build_net(9, TINY), device="cuda", max_batch=32, dtype="float32")
    second = first.twin()
    assert first.launches and second.launches and not NetEvaluator(build_net(9, TINY), "cpu").launches
    states = positions(9, 40, seed=9)
    write_leaves(first, states[:20])
    write_leaves(second, states[20:])
    expected = [first.forward(20).policy.copy(), second.forward(20).policy.copy()]
    a, b = first.launch(20), second.launch(20)
    assert np.array_equal(b.result().policy, expected[1]) and np.array_equal(a.result().policy, expected[0])
    assert a.result() is a.result() and (first.evals, first.batches) == (40, 2)
    with pytest.raises(ValueError, match="launch"):
        first.launch(33)


# -- shared-memory server (one evaluator, several workers) ---------------------------------------------------
def _worker(handle, seed, rounds, failures):
    """A worker process: random rows, checked bit for bit against its own HashEvaluator."""
    ev = handle.connect()
    reference = HashEvaluator(ev.board_size, seed=0, max_batch=ev.max_batch)
    rng = np.random.default_rng(seed)
    pool = np.random.default_rng(99).integers(0, 2, (12, *ev.inputs.shape[1:]), dtype=np.uint8)
    try:
        for _ in range(rounds):
            n = int(rng.integers(0, ev.max_batch + 1))
            rows = pool[rng.integers(0, len(pool), n)]  # rows the workers share, and repeat
            ev.inputs[:n] = rows
            policy, value, score = ev.forward(n)
            reference.inputs[:n] = rows
            ref_policy, ref_value, ref_score = reference.forward(n)
            if (policy.tobytes() != ref_policy.tobytes() or value.tobytes() != ref_value.tobytes()
                    or score.tobytes() != ref_score.tobytes()):
                failures.put(f"worker {seed}: wrong answer for {n} rows")
                return
    finally:
        ev.close()
    failures.put(None)


@pytest.mark.parametrize("cache", [0, 8, None], ids=["dedup-only", "small-cache", "no-cache"])
@pytest.mark.parametrize("server_batch", [24, 12], ids=["fits", "overflows"])
def test_shared_evaluator_serves_worker_processes(cache, server_batch):
    """Three processes asking at random for rows from a shared pool: every answer is bit-identical to a
    direct evaluation, whether the server's batch holds all requests at once or must be split, with a cache
    that evicts, one that only deduplicates within a batch, or none."""
    import multiprocessing

    from specmcts.engine.nncache import NNCache

    ctx = multiprocessing.get_context("fork")
    server = SharedEvaluatorServer(HashEvaluator(9, seed=0, max_batch=server_batch), clients=3, rows=8, mp_context=ctx,
                                   cache=None if cache is None else NNCache.for_board(cache, 9))
    failures = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(server.handle(i), i, 30, failures)) for i in range(3)]
    for p in procs:
        p.start()
    with server:
        results = [failures.get(timeout=60) for _ in procs]
        for p in procs:
            p.join(timeout=30)
    assert results == [None, None, None]
    assert all(p.exitcode == 0 for p in procs)
    assert 0 < server.batches <= server.requests <= 90 and server.evaluator.evals > 0
    counters = server.counters()
    assert counters["rows"] == counters["forwarded"] + counters["cache_hits"] + counters["shared_rows"]
    if cache is not None:
        assert counters["forwarded"] < counters["rows"]  # repeated rows were not all sent to the evaluator


def run_in_threads(work, n: int) -> None:
    """``work(0)``, ..., ``work(n - 1)`` at once, each in a thread; returns when all have."""
    import threading

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)


def test_shared_evaluator_client_contract_in_threads():
    server = SharedEvaluatorServer(NetEvaluator(build_net(9, TINY), max_batch=8), clients=2, rows=4)
    with server:
        clients = [server.handle(i).connect() for i in range(2)]
        assert clients[0].inputs.shape == (4, NUM_PLANES, 9, 9) and clients[0].max_batch == 4
        assert clients[0].model_id == server.evaluator.model_id
        states = positions(9, 4, seed=11)
        answers = {}

        def work(i):
            write_leaves(clients[i], states[2 * i:2 * i + 2])
            answers[i] = tuple(a.copy() for a in clients[i].evaluate(2))

        run_in_threads(work, 2)
        with pytest.raises(ValueError):
            clients[0].evaluate(5)
        assert clients[1].evaluate(0)[0].shape == (0, 82)

    direct = NetEvaluator(server.evaluator.net, max_batch=4)
    write_leaves(direct, states)
    policy, value = direct.evaluate(4)
    for i in range(2):
        np.testing.assert_allclose(answers[i][0], policy[2 * i:2 * i + 2], rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(answers[i][1], value[2 * i:2 * i + 2], rtol=1e-5, atol=1e-6)
    with pytest.raises(RuntimeError, match="not running"):
        clients[0].evaluate(1)
    for c in clients:
        c.close()


def test_shared_evaluator_cache_answers_repeats_and_sends_each_new_row_once():
    """With a cache the server keys rows by their bytes: two clients asking for the same rows at once cost
    one evaluation each row (bit-identical answers to a direct evaluation), asking again costs none, and a
    new model empties the cache and is what clients read as ``model_id``."""
    import threading

    from specmcts.engine.nncache import NNCache

    cache = NNCache.for_board(1024, 9)
    direct = HashEvaluator(9, seed=0, max_batch=16)
    server = SharedEvaluatorServer(HashEvaluator(9, seed=0, max_batch=16), clients=2, rows=8, cache=cache)
    states = positions(9, 8, seed=5)
    write_leaves(direct, states)
    want_policy, want_value = (a.copy() for a in direct.evaluate(8))
    with server:
        clients = [server.handle(i).connect() for i in range(2)]
        for c in clients:
            write_leaves(c, states)
        barrier = threading.Barrier(2)
        answers = {}

        def work(i):
            barrier.wait()
            answers[i] = tuple(a.copy() for a in clients[i].evaluate(8))

        run_in_threads(work, 2)
        for i in range(2):
            assert answers[i][0].tobytes() == want_policy.tobytes() and answers[i][1].tobytes() == want_value.tobytes()
        first = server.counters()
        assert first["rows"] == 16 and first["forwarded"] == 8  # each distinct row evaluated once
        assert first["cache_hits"] + first["shared_rows"] == 8
        policy, value = clients[0].evaluate(8)
        assert policy.tobytes() == want_policy.tobytes() and value.tobytes() == want_value.tobytes()
        again = server.counters()
        assert again["forwarded"] == 8 and again["cache_hits"] == first["cache_hits"] + 8
        server.set_model("hash(seed=0)-v2")
        assert clients[1].model_id == "hash(seed=0)-v2" and len(cache) == 0
        clients[1].evaluate(8)
        assert server.counters()["forwarded"] == 16  # nothing cached from the old model answers the new one
        for c in clients:
            c.close()


def _serve_in_own_process(spec, ready):
    from specmcts.engine.nncache import NNCache

    server = SharedEvaluatorServer(HashEvaluator(9, seed=0, max_batch=8), spec=spec, cache=NNCache.for_board(64, 9))
    ready.set()
    server.serve(lambda s: None, 0.1)


def test_a_client_fails_at_once_when_the_evaluator_process_dies():
    """The server in a process of its own (as ``specmcts run`` starts it): it answers; killed (-9), a
    client waiting for it raises a one-line error naming the dead process instead of hanging."""
    import multiprocessing
    import os
    import signal

    from specmcts.engine.shared_evaluator import EvaluatorChannel

    ctx = multiprocessing.get_context("spawn")
    channel = EvaluatorChannel(1, 4, 9, NUM_PLANES, ctx)
    ready = ctx.Event()
    proc = ctx.Process(target=_serve_in_own_process, args=(channel.spec, ready), daemon=True)
    proc.start()
    try:
        assert ready.wait(60)
        client = channel.handle(0).connect()
        client.poll_s = 0.1
        write_leaves(client, positions(9, 2, seed=1))
        policy, _value = client.evaluate(2)
        assert policy.shape == (2, 82) and client.model_id == "hash(seed=0)"
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(timeout=10)
        with pytest.raises(RuntimeError, match=rf"shared evaluator process \(pid {proc.pid}\) exited"):
            client.evaluate(2)
        client.close()
    finally:
        if proc.is_alive():
            proc.kill()
        channel.close()
