"""Self-play moves/s against DeepMind's mctx over pgx, the same CPU, the same net size, measured in one run.

The peer: ``mctx.gumbel_muzero_policy`` (Gumbel root, as our go9cpu presets) over ``pgx`` ``go_9x9`` with the
true dynamics (AlphaZero style), B games batched, jit-compiled, a 6-block x 48-channel ResNet written in JAX
(3x3 convolutions, a policy and a value head; random weights: the speed of a forward pass does not depend on
them). Ours: ``specmcts selfplay`` with its defaults (threads included) and the shipped 6x48 net, the same
games at once, simulations and moves per game. Both report moves per second of wall time after warm-up
(mctx's compile time is reported apart; ours compiles nothing at that point: numba caches its kernels).

JAX is not a dependency of specmcts: give a Python that has ``jax mctx pgx`` (``--peer-python``), e.g.

    python -m venv /tmp/jaxenv && /tmp/jaxenv/bin/pip install jax jaxlib mctx pgx
    specmcts bench mctx --peer-python /tmp/jaxenv/bin/python --games 8 --sims 64 --moves 40
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from specmcts.bench.run import json_summary
from specmcts.engine.evaluator import cpu_bf16_native

PEER = r'''
import json, sys, time
import jax, jax.numpy as jnp, mctx, pgx

games, sims, moves, blocks, ch, seed = (int(a) for a in sys.argv[1:7])
env = pgx.make("go_9x9")
A = env.num_actions
init = jax.jit(jax.vmap(env.init))
step = jax.jit(jax.vmap(env.step))

def conv(x, w):
    return jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))

def make_params(key, planes):
    keys = iter(jax.random.split(key, 4 * blocks + 8))
    n = lambda shape: 0.05 * jax.random.normal(next(keys), shape)
    return {"stem": n((3, 3, planes, ch)),
            "blocks": [(n((3, 3, ch, ch)), n((3, 3, ch, ch))) for _ in range(blocks)],
            "p_conv": n((1, 1, ch, 2)), "p_fc": n((2 * 81, A)),
            "v_conv": n((1, 1, ch, 1)), "v_fc1": n((81, 32)), "v_fc2": n((32, 1))}

def forward(p, x):
    h = jax.nn.relu(conv(x, p["stem"]))
    for w1, w2 in p["blocks"]:
        h = jax.nn.relu(h + conv(jax.nn.relu(conv(h, w1)), w2))
    b = x.shape[0]
    logits = jax.nn.relu(conv(h, p["p_conv"])).reshape(b, -1) @ p["p_fc"]
    v = jax.nn.relu(conv(h, p["v_conv"])).reshape(b, -1)
    value = jnp.tanh(jax.nn.relu(v @ p["v_fc1"]) @ p["v_fc2"])[:, 0]
    return logits, value

def recurrent_fn(params, rng, action, state):
    mover = state.current_player
    state = step(state, action)
    logits, value = forward(params, state.observation.astype(jnp.float32))
    logits = jnp.where(state.legal_action_mask, logits, jnp.finfo(logits.dtype).min)
    reward = state.rewards[jnp.arange(state.rewards.shape[0]), mover]
    value = jnp.where(state.terminated, 0.0, value)
    discount = jnp.where(state.terminated, 0.0, -1.0)
    return mctx.RecurrentFnOutput(reward=reward, discount=discount, prior_logits=logits, value=value), state

@jax.jit
def move(params, rng, state):
    logits, value = forward(params, state.observation.astype(jnp.float32))
    root = mctx.RootFnOutput(prior_logits=logits, value=value, embedding=state)
    out = mctx.gumbel_muzero_policy(params, rng, root, recurrent_fn, num_simulations=sims,
                                    invalid_actions=~state.legal_action_mask, max_num_considered_actions=16)
    return step(state, out.action)

key = jax.random.PRNGKey(seed)
state = init(jax.random.split(key, games))
params = make_params(key, state.observation.shape[-1])
started = time.perf_counter()
jax.block_until_ready(move(params, key, state))
compile_s = time.perf_counter() - started
started = time.perf_counter()
for i in range(moves):
    state = move(params, jax.random.fold_in(key, i), state)
jax.block_until_ready(state)
wall = time.perf_counter() - started
print(json.dumps({"moves_per_s": games * moves / wall, "wall_s": wall, "compile_s": compile_s,
                  "jax": jax.__version__, "mctx": mctx.__version__, "pgx": pgx.__version__}))
'''


def peer(python: str, games: int, sims: int, moves: int, seed: int, pin: list[str]) -> dict:
    return json_summary([*pin, python, "-c", PEER, str(games), str(sims), str(moves), "6", "48", str(seed)],
                        "bench mctx: the peer", timeout=3600)


def ours(games: int, sims: int, moves: int, seed: int, pin: list[str], out: Path, *overrides: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS")}
    s = json_summary([*pin, sys.executable, "-m", "specmcts", "selfplay", "--board", "9", "--model", "shipped",
                        "--games", str(games), "--sims", str(sims), "--seed", str(seed), "--out", str(out), "--json",
                        "--set", f"selfplay.concurrent={games}", "--set", f"selfplay.max_moves={moves}",
                        "--set", "search.root=gumbel", "--set", "search.gumbel_considered=16",
                        "--set", "moves.fast_sims=0", "--set", "moves.no_resign_fraction=1.0",
                        *(a for o in overrides for a in ("--set", o))],
                     "bench mctx: specmcts selfplay", timeout=3600, env=env)
    return {"moves_per_s": s["moves"] / s["wall_s"], "wall_s": s["wall_s"], "moves": s["moves"],
            "threads": s.get("threads")}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--peer-python", required=True, help="a Python with jax, mctx and pgx")
    ap.add_argument("--games", type=int, default=8, help="games played at once (default 8)")
    ap.add_argument("--sims", type=int, default=64, help="simulations per move (default 64)")
    ap.add_argument("--moves", type=int, default=40, help="moves per game (default 40)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--pin", action="store_true", help="also run both pinned to one core (taskset)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    rows = []
    pins = [("all cores", [])] + ([("one core", ["taskset", "-c", "0"])] if args.pin else [])
    with tempfile.TemporaryDirectory() as tmp:
        ours(2, 8, 4, args.seed, [], Path(tmp) / "warm")  # numba's kernels into its cache, the net from disk
        for label, pin in pins:
            print(f"bench_mctx: {label}: mctx + pgx ...", file=sys.stderr, flush=True)
            p = peer(args.peer_python, args.games, args.sims, args.moves, args.seed, pin)
            print(f"bench_mctx: {label}: specmcts ...", file=sys.stderr, flush=True)
            o = ours(args.games, args.sims, args.moves, args.seed, pin, Path(tmp) / label.replace(" ", "-"))
            print(f"bench_mctx: {label}: specmcts, float32 on the CPU ...", file=sys.stderr, flush=True)
            f = ours(args.games, args.sims, args.moves, args.seed, pin, Path(tmp) / (label.replace(" ", "-") + "-f32"),
                     "evaluator.cpu_dtype=float32")
            rows.append({"cores": label, "peer": p, "ours": o, "ours_float32": f,
                         "ratio": o["moves_per_s"] / p["moves_per_s"],
                         "ratio_float32": f["moves_per_s"] / p["moves_per_s"]})
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    if args.json:
        print(json.dumps({"games": args.games, "sims": args.sims, "moves": args.moves, "load": load,
                          "cpu_bf16_native": cpu_bf16_native(), "rows": rows}))
        return 0
    print(f"self-play moves/s, 9x9, {args.games} games at once, {args.sims} sims (Gumbel root, 16 considered), "
          f"{args.moves} moves per game, 6x48 net; load average {load:.1f} at the end")
    print()
    print(f"{'cores':10} {'mctx + pgx':>12} {'specmcts':>10} {'ratio':>7} {'specmcts fp32':>14} {'ratio':>7} "
          f"{'peer compile s':>15}")
    for r in rows:
        print(f"{r['cores']:10} {r['peer']['moves_per_s']:12.1f} {r['ours']['moves_per_s']:10.1f} "
              f"{r['ratio']:7.2f} {r['ours_float32']['moves_per_s']:14.1f} {r['ratio_float32']:7.2f} "
              f"{r['peer']['compile_s']:15.1f}")
    print(f"bench_mctx: {len(rows)} comparisons; specmcts at its defaults (bf16 on this CPU: "
          f"{'yes' if cpu_bf16_native() else 'no, float32'}) and with evaluator.cpu_dtype=float32; "
          f"threads: {rows[0]['ours']['threads']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
