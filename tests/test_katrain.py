"""KaTrain, the teaching GUI, runs `specmcts analysis` as its engine: KaTrain 1.20 from PyPI (a dev dependency,
installed by CI), its own ``KataGoEngine`` class configured with ``altcommand`` as a user would set it, drives our
engine over its JSON protocol and receives move infos, ownership and policy for the positions it asks about."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

CLIENT = Path(__file__).with_name("clients") / "katrain_client.py"


def test_katrain_engine_class_drives_specmcts_analysis(tmp_path):
    command = (f"{sys.executable} -m specmcts analysis --board 9 --device cpu --set net.blocks=1 "
               f"--set net.channels=16 --set net.value_hidden=16 --model fresh")
    env = dict(os.environ, HOME=str(tmp_path), KIVY_HOME=str(tmp_path / "kivy"), OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, str(CLIENT), command], capture_output=True, text=True, env=env,
                          timeout=600, cwd=tmp_path)
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    *responses, transcript = lines
    assert transcript["finished"] and len(transcript["transcript"]) == 2
    sent = json.loads(transcript["transcript"][0].split(": ", 1)[1])
    assert sent["moves"] == [["B", "E5"], ["W", "C3"], ["B", "G4"]] and sent["includeOwnership"]
    finals = [r for r in responses if not r["partial"]]
    assert len(finals) == 2 and not any("error" in r for r in responses)
    assert any(r["partial"] for r in responses)  # the second query asked for reports during the search
    by_turn = {r["turnNumber"]: r for r in finals}
    assert set(by_turn) == {2, 3}
    last = by_turn[3]
    assert last["rootInfo"]["visits"] >= 48 and last["moveInfos"][0]["order"] == 0
    assert len(last["ownership"]) == 81 and len(last["policy"]) == 82
    assert all({"move", "visits", "winrate", "scoreLead", "prior", "pv"} <= set(m) for m in last["moveInfos"])
    assert by_turn[2]["rootInfo"]["visits"] >= 24
