"""The H100 forward table ships with the package (specmcts/emulate.py)."""
from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pytest

from specmcts.emulate import DATA_DIR, forward_cost, forward_table


def test_the_h100_table_ships_with_the_package():
    table = forward_table("h100")
    assert Path(DATA_DIR).parent == Path(__import__("specmcts").__file__).parent  # inside the package
    assert table["measured"] == "2026-11-22" and "H100" in table["what"]
    nets = {(r["board"], r["blocks"], r["ch"]) for r in table["rows"] if r["dtype"] == "bf16" and r["mode"] == "cudagraph"}
    assert {(9, 6, 64), (19, 20, 256)} <= nets
    data = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())
    assert "data/*.json" in data["tool"]["setuptools"]["package-data"]["specmcts"]  # an installed package has it
    with pytest.raises(ValueError, match="no forward table for device 'tpu'.*h100"):
        forward_table("tpu")


def test_forward_cost_takes_the_nearest_net_and_says_so():
    cost = forward_cost(9, 6, 48)  # the shipped net: the table has 6x64 and 10x128 on 9x9
    assert (cost.board, cost.blocks, cost.channels) == (9, 6, 64)
    assert "no 9x9 6x48" in cost.note and "6x64" in cost.note
    assert forward_cost(9, 6, 64).note == ""
    assert (forward_cost(19, 20, 256).blocks, forward_cost(19, 20, 256).channels) == (20, 256)
    assert forward_cost(19, 2, 32).blocks == 10  # the smaller 19x19 net
    assert cost.ms_at(8) == pytest.approx(0.2215) and cost.ms_at(0) == 0.0
    between = cost.ms_at(np.array([8, 16, 32]))
    assert between[0] <= between[1] <= between[2]  # interpolated in log(rows)
    assert cost.ms_at(4096) == pytest.approx(2 * cost.ms_at(2048))  # saturated: proportional to rows
