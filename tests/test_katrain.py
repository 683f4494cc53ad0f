"""KaTrain, the teaching GUI, runs `specmcts analysis` as its engine: KaTrain 1.20 from PyPI (a dev dependency,
installed by CI), its own ``KataGoEngine`` class configured with ``altcommand`` as a user would set it, drives our
engine over its JSON protocol and receives move infos, ownership and policy for the positions it asks about."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

CLIENT = Path(__file__).with_name("clients") / "katrain_client.py"


MOVES = {9: [["B", "E5"], ["W", "C3"], ["B", "G4"]], 19: [["B", "Q16"], ["W", "D4"], ["B", "R4"]]}


@pytest.mark.parametrize("size", sorted(MOVES))
def test_katrain_engine_class_drives_specmcts_analysis(tmp_path, size):
    command = (f"{sys.executable} -m specmcts analysis --board {size} --device cpu --set net.blocks=1 "
               f"--set net.channels=16 --set net.value_hidden=16 --model fresh")
    env = dict(os.environ, HOME=str(tmp_path), KIVY_HOME=str(tmp_path / "kivy"), OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, str(CLIENT), command, str(size)], capture_output=True, text=True,
                          env=env, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    *responses, transcript = lines
    assert transcript["finished"] and len(transcript["transcript"]) == 2
    sent = json.loads(transcript["transcript"][0].split(": ", 1)[1])
    assert sent["moves"] == MOVES[size] and sent["includeOwnership"] and sent["boardXSize"] == size
    finals = [r for r in responses if not r["partial"]]
    assert len(finals) == 2 and not any("error" in r for r in responses)
    # the second query asked for a report every 10 us: a search step (a forward pass) takes longer than that
    assert any(r["partial"] for r in responses)
    by_turn = {r["turnNumber"]: r for r in finals}
    assert set(by_turn) == {2, 3}
    last = by_turn[3]
    assert last["rootInfo"]["visits"] >= 48 and last["moveInfos"][0]["order"] == 0
    assert len(last["ownership"]) == size * size and len(last["policy"]) == size * size + 1
    assert all({"move", "visits", "winrate", "scoreLead", "prior", "pv"} <= set(m) for m in last["moveInfos"])
    assert by_turn[2]["rootInfo"]["visits"] >= 24
