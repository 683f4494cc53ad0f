"""A normal (non-editable) install works on its own: the presets and the shipped net travel as package data.

The wheel is built from this checkout and installed into a fresh venv without network: its dependencies are
this interpreter's (a ``.pth`` line puts their folder on the path, after the venv's own site-packages, so
the installed specmcts is the wheel's, not this checkout's). The commands run from an empty folder."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_wheel_install_finds_presets_and_the_shipped_net(tmp_path):
    wheels = tmp_path / "wheels"
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                            "-w", str(wheels), str(ROOT)], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr[-2000:]
    wheel = next(wheels.glob("specmcts-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    installed = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
                                "--no-index", str(wheel)], capture_output=True, text=True)
    assert installed.returncode == 0, installed.stderr[-2000:]

    work = tmp_path / "work"
    work.mkdir()
    env = dict(os.environ, OMP_NUM_THREADS="1", NUMBA_CACHE_DIR=str(tmp_path / "numba"))
    where = subprocess.run([str(python), "-c", "import specmcts, specmcts.config as c; print(specmcts.__file__); "
                            "print(sorted(p.name for p in c.CONFIG_DIR.glob('*.yaml')))"],
                           capture_output=True, text=True, cwd=work, env=env, check=True).stdout.splitlines()
    assert where[0].startswith(str(site)), where  # the wheel's package, not this checkout
    shipped_presets = sorted(p.name for p in (ROOT / "specmcts" / "configs").glob("*.yaml"))
    assert "go9.yaml" in shipped_presets and where[1] == str(shipped_presets)  # every preset of the source tree

    play = subprocess.run([str(venv / "bin" / "specmcts"), "selfplay", "--board", "9", "--games", "1", "--config",
                           "go9cpu", "--sims", "16", "--set", "selfplay.max_moves=6", "--device", "cpu", "--out",
                           str(work / "run"), "--quiet", "--json"], capture_output=True, text=True, cwd=work, env=env)
    assert play.returncode == 0, play.stderr[-2000:]
    summary = json.loads(play.stdout)
    assert summary["games"] == 1 and summary["moves"] == 6
    assert len(list((work / "run" / "sgf").glob("*.sgf"))) == 1
    preset = subprocess.run([str(python), "-c", "from specmcts.config import load_config; c = load_config('go9cpu'); "
                             "print(c.name, c.search.root, c.net.blocks)"],
                            capture_output=True, text=True, cwd=work, env=env, check=True).stdout.split()
    assert preset == ["go9cpu", "gumbel", "3"]  # the preset, not the defaults

    info = subprocess.run([str(venv / "bin" / "specmcts"), "model", "info", "shipped", "--json"],
                          capture_output=True, text=True, cwd=work, env=env)
    assert info.returncode == 0, info.stderr[-2000:]
    assert json.loads(info.stdout)["board_size"] == 9

    bench = subprocess.run([str(venv / "bin" / "specmcts"), "bench", "rules", "--seconds", "0.2", "--sizes", "5",
                            "--repeats", "1", "--no-openspiel"], capture_output=True, text=True, cwd=work, env=env)
    assert bench.returncode == 0, bench.stderr[-2000:]  # the benchmarks ship in the package (specmcts.bench)


def test_a_kernel_change_is_never_hidden_by_a_cached_kernel_that_inlined_it(tmp_path):
    """numba checks a cached function against its own file only: ``tree.searchable_mask`` compiles
    ``board.searchable_points`` into itself, so after ``board.py`` changes numba alone would load the old
    compiled ``searchable_mask``. The kernels' cache folder is per version of all their sources."""
    import shutil

    import native

    pkg = tmp_path / "src" / "native"
    shutil.copytree(ROOT / "native", pkg, ignore=shutil.ignore_patterns("__pycache__"))
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba"), PYTHONPATH=str(tmp_path / "src"))
    count = ("import numpy as np, native, numba; from games.go import GoRules, GoState; from native import tree; "
             "s = GoState(GoRules(9)); print(tree.searchable_mask(s.core, s.hist, False, np.zeros(82, np.bool_)), "
             "numba.config.CACHE_DIR)")

    def run():
        out = subprocess.run([sys.executable, "-c", count], capture_output=True, text=True, env=env, cwd=tmp_path)
        assert out.returncode == 0, out.stderr[-2000:]
        return out.stdout.split()

    first, first_dir = run()
    assert first == "82" and first_dir.startswith(str(tmp_path / "numba")), "not the copy of the kernels"
    assert run() == [first, first_dir]  # the same sources: the same folder (the cached kernels are used)
    board = pkg / "board.py"
    source = board.read_text()
    tail = "            out[a] = 1\n            count += 1\n    return count\n"
    assert source.count(tail) == 1
    board.write_text(source.replace(tail, tail.replace("return count", "return count + 1000")))
    changed, changed_dir = run()
    assert changed == "1082" and changed_dir != first_dir  # the new rules, compiled anew
    name = os.path.basename
    assert name(native.cache_dir(pkg)) == name(changed_dir) and name(native.cache_dir()) == name(first_dir)


def _kernels():
    """Every numba dispatcher defined in the native package's modules, by ``module.name``."""
    import importlib
    import pkgutil

    import native
    from numba.core.registry import CPUDispatcher

    found = {}
    for info in pkgutil.iter_modules(native.__path__):
        module = importlib.import_module(f"native.{info.name}")
        for name, value in vars(module).items():
            if isinstance(value, CPUDispatcher) and value.__module__ == module.__name__:
                found[f"{module.__name__}.{name}"] = value
    return found


def test_every_kernel_has_a_cache_entry_of_its_own():
    """numba keys a cached kernel by its Python function's name, line and signature, not by its options: a
    serial and a parallel kernel made from one function would load each other's compiled code (the parallel
    one running on one thread, or the serial one starting threads)."""
    paths = {}
    for name, kernel in _kernels().items():
        paths.setdefault(kernel._cache._cache_file._index_path, []).append(name)
    shared = [names for names in paths.values() if len(names) > 1]
    assert not shared, f"kernels sharing one cache entry: {shared}"


def test_a_parallel_kernel_never_loads_its_serial_twins_cached_code(tmp_path):
    """A process that ran the serial ``encode_leaves`` caches it; the next process's ``encode_leaves_parallel``
    must compile its own (numba's cache counts a hit if it loaded one)."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba"), NUMBA_NUM_THREADS="2")
    code = ("import sys, numpy as np; from games.go import GoRules, GoState; from native import tree; "
            "from native.tree import States; s = GoState(GoRules(9)); "
            "rows = States(s.core[None].copy(), s.hist[None].copy(), s.past[None].copy()); "
            "kernel = getattr(tree, sys.argv[1]); "
            "from native.features import NUM_PLANES; kernel(rows, np.zeros(1, np.int64), np.zeros((1, NUM_PLANES, 9, 9), np.uint8)); "
            "print(sum(kernel.stats.cache_hits.values()))")

    def run(name):
        out = subprocess.run([sys.executable, "-c", code, name], capture_output=True, text=True, env=env, cwd=ROOT)
        assert out.returncode == 0, out.stderr[-2000:]
        return int(out.stdout.split()[-1])

    assert run("encode_leaves") == 0  # compiled and cached
    assert run("encode_leaves") == 1  # the cache works
    assert run("encode_leaves_parallel") == 0  # its own code, not the serial one's
