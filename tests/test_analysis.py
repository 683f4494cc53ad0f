"""`specmcts analysis`: KataGo's JSON analysis protocol (the subset KaTrain sends), field by field, in process
and as a subprocess; bad queries answered, never dropped; queries in flight share one batch and one cache."""
from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest

from specmcts.play.analysis_engine import AnalysisEngine
from specmcts.config import load_config

TINY = ["net.blocks=1", "net.channels=16", "net.value_hidden=16", "evaluator.device=cpu", "evaluator.torch_threads=1",
        "search.leaves_per_tree=4"]


def engine(slots: int = 4) -> AnalysisEngine:
    return AnalysisEngine(load_config(None, TINY), "fresh", slots=slots, capacity=2000, out=io.StringIO(),
                          log=io.StringIO())


def run(e: AnalysisEngine, *queries) -> list[dict]:
    """Feed queries (dicts or raw lines), search until idle, return every response written."""
    start = e.out.tell()
    for q in queries:
        e.handle(q if isinstance(q, str) else json.dumps(q))
    guard = 0
    while e.busy():
        e.step()
        guard += 1
        assert guard < 100_000
    e.out.seek(start)
    lines = e.out.read().splitlines()
    return [json.loads(line) for line in lines]


def query(**fields) -> dict:
    q = {"id": "q", "moves": [["B", "E5"], ["W", "C3"]], "rules": "tromp-taylor", "komi": 7.5, "boardXSize": 9,
         "boardYSize": 9, "maxVisits": 40}
    q.update(fields)
    return q


def test_a_query_answers_every_turn_with_the_fields_katrain_reads():
    e = engine()
    out = run(e, query(analyzeTurns=[0, 1, 2], includeOwnership=True, includeMovesOwnership=True,
                       includePolicy=True, includePVVisits=True))
    finals = [r for r in out if not r["isDuringSearch"]]
    assert sorted(r["turnNumber"] for r in finals) == [0, 1, 2] and all(r["id"] == "q" for r in finals)
    for r in finals:
        infos = r["moveInfos"]
        assert [m["order"] for m in infos] == list(range(len(infos))) and infos
        assert infos[0]["visits"] == max(m["visits"] for m in infos)
        assert sum(m["visits"] for m in infos) == r["rootInfo"]["visits"] >= 40
        for m in infos:
            assert {"move", "visits", "winrate", "scoreLead", "scoreMean", "prior", "utility", "lcb", "order",
                    "pv", "pvVisits", "ownership"} <= set(m)
            assert 0.0 <= m["winrate"] <= 1.0 and m["pv"][0] == m["move"] and len(m["ownership"]) == 81
            assert len(m["pvVisits"]) == len(m["pv"]) and m["pvVisits"][0] == m["visits"]
        assert {"winrate", "scoreLead", "visits", "utility", "thisHash"} <= set(r["rootInfo"])
        assert len(r["ownership"]) == 81 and all(-1.0 <= v <= 1.0 for v in r["ownership"])
        policy = r["policy"]
        assert len(policy) == 82 and abs(sum(p for p in policy if p >= 0) - 1.0) < 1e-4
    turn2 = next(r for r in finals if r["turnNumber"] == 2)
    occupied = [i for i, v in enumerate(turn2["policy"][:81]) if v == -1.0]
    assert {4 * 9 + 4, 6 * 9 + 2} <= set(occupied)  # E5 and C3 are taken: -1 in the policy


def test_values_are_from_blacks_view_unless_asked_otherwise():
    """White to move (turn 1): BLACK flips the side to move's numbers; SIDETOMOVE keeps them."""
    e = engine()
    black = run(e, query(analyzeTurns=[1], overrideSettings={"reportAnalysisWinratesAs": "BLACK"}))[-1]
    e2 = engine()
    side = run(e2, query(analyzeTurns=[1], overrideSettings={"reportAnalysisWinratesAs": "SIDETOMOVE"}))[-1]
    assert black["rootInfo"]["winrate"] == pytest.approx(1.0 - side["rootInfo"]["winrate"])
    assert black["rootInfo"]["scoreLead"] == pytest.approx(-side["rootInfo"]["scoreLead"])
    assert black["moveInfos"][0]["move"] == side["moveInfos"][0]["move"]  # the same search
    default = run(engine(), query(analyzeTurns=[1]))[-1]
    assert default["rootInfo"]["winrate"] == pytest.approx(black["rootInfo"]["winrate"])  # KataGo's default


@pytest.mark.parametrize("bad, field", [
    ({"moves": [["B", "Z9"]]}, "moves"), ({"moves": [["B", "E5"], ["W", "E5"]]}, "moves"),
    ({"boardXSize": 9, "boardYSize": 13}, "boardYSize"), ({"boardXSize": 25, "boardYSize": 25}, "boardXSize"),
    ({"analyzeTurns": [5]}, "analyzeTurns"), ({"komi": 7.3}, "komi"), ({"maxVisits": -3}, "maxVisits"),
    ({"initialStones": [["X", "D4"]]}, "initialStones"), ({"includeOwnership": "yes"}, "includeOwnership"),
    ({"overrideSettings": {"reportAnalysisWinratesAs": "RED"}}, "overrideSettings"),
])
def test_a_bad_query_gets_an_error_naming_its_field_and_the_engine_goes_on(bad, field):
    e = engine()
    out = run(e, query(id="bad", **bad), query(id="good"))
    assert out[0]["id"] == "bad" and out[0]["field"] == field and out[0]["error"]
    assert out[-1]["id"] == "good" and not out[-1]["isDuringSearch"]


def test_garbage_lines_are_answered_not_dropped():
    out = run(engine(), "not json", "[1, 2]", json.dumps({"moves": []}), "")
    assert [set(r) for r in out] == [{"error"}, {"error"}, {"error", "field"}]
    assert out[2]["field"] == "id"


def test_unused_fields_and_other_rules_are_warnings_and_the_query_proceeds():
    out = run(engine(), query(rules="japanese", frobnicate=1, overrideSettings={"cpuctExploration": 2}))
    warned = {r["field"] for r in out if "warning" in r}
    assert warned == {"rules", "frobnicate", "overrideSettings"}
    assert not out[-1]["isDuringSearch"] and out[-1]["moveInfos"]


def test_reports_during_search_then_exactly_one_final():
    out = run(engine(), query(maxVisits=300, reportDuringSearchEvery=0.0001))
    during = [r for r in out if r["isDuringSearch"]]
    finals = [r for r in out if not r["isDuringSearch"]]
    assert during and len(finals) == 1 and out[-1] is finals[0]
    visits = [r["rootInfo"]["visits"] for r in out]
    assert visits == sorted(visits) and visits[-1] >= 300


def test_terminate_answers_queued_turns_with_no_results_and_running_ones_with_what_they_have():
    e = engine(slots=1)
    e.handle(json.dumps(query(id="long", maxVisits=1500, analyzeTurns=[0, 1, 2])))
    e.step()  # turn 0 starts; 1 and 2 wait for the slot
    e.step()
    out = run(e, {"id": "t", "action": "terminate", "terminateId": "long", "turnNumbers": [0, 2]})
    assert out[0] == {"id": "t", "action": "terminate", "terminateId": "long", "turnNumbers": [0, 2]}
    by_turn = {r["turnNumber"]: r for r in out[1:] if not r["isDuringSearch"]}
    assert by_turn[2] == {"id": "long", "isDuringSearch": False, "noResults": True, "turnNumber": 2}
    assert 0 < by_turn[0]["rootInfo"]["visits"] < 1500  # stopped early, with what it had
    assert by_turn[1]["rootInfo"]["visits"] >= 1500  # not named: analysed in full


def test_avoid_moves_are_never_searched():
    avoid = ["E5", "D5", "F5", "E4", "E6", "D4", "F6"]
    out = run(engine(), query(moves=[], maxVisits=60,
                              avoidMoves=[{"player": "B", "moves": avoid, "untilDepth": 1}]))
    assert not {m["move"] for m in out[-1]["moveInfos"]} & set(avoid)


def test_queries_in_flight_share_one_batch_and_one_cache():
    e = engine(slots=4)
    openings = ("E5", "C3", "G7", "D4")  # four positions: their leaves are distinct network inputs
    run(e, *[query(id=f"q{i}", maxVisits=64, moves=[["B", a]]) for i, a in enumerate(openings)])
    stats = e.boards[9].search.stats
    rows = [r for r, n in enumerate(stats.batch_rows) if n]
    assert max(rows) > e.boards[9].search.leaves_per_tree  # one forward held leaves of several queries
    before = stats.shared_rows
    run(e, *[query(id=f"same{i}", maxVisits=64, moves=[["B", "F6"]]) for i in range(4)])
    assert stats.shared_rows > before  # the same position asked four times: its leaves evaluated once a batch
    hits = stats.cache_hits
    run(e, query(id="again", maxVisits=64, moves=[["B", "E5"]]))
    assert stats.cache_hits - hits >= 32  # a repeated query (q0's) is mostly answered from the cache


def test_query_version_and_clear_cache():
    e = engine()
    run(e, query())
    assert len(e.boards[9].cache) > 0
    out = run(e, {"id": "v", "action": "query_version"}, {"id": "c", "action": "clear_cache"},
              {"id": "x", "action": "launch"})
    assert out[0]["version"] and out[1] == {"id": "c", "action": "clear_cache"}
    assert out[2]["field"] == "action" and len(e.boards[9].cache) == 0


def test_subprocess_finishes_the_queued_queries_when_input_ends():
    lines = "\n".join(json.dumps(query(id=f"s{i}", maxVisits=20, boardXSize=5, boardYSize=5, moves=[["B", "C3"]]))
                      for i in range(3)) + "\n"
    done = subprocess.run([sys.executable, "-m", "specmcts", "analysis", "--model", "fresh", "--board", "5",
                           "--device", "cpu", "--set", "net.blocks=1", "--set", "net.channels=8", "--slots", "2"],
                          input=lines, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    out = [json.loads(line) for line in done.stdout.splitlines()]
    assert sorted(r["id"] for r in out) == ["s0", "s1", "s2"] and all(not r["isDuringSearch"] for r in out)
    assert "ready" in done.stderr


def test_allow_moves_searches_only_those():
    allow = ["C3", "G7", "pass"]
    out = run(engine(), query(moves=[], maxVisits=40, allowMoves=[{"player": "B", "moves": allow, "untilDepth": 1}]))
    assert {m["move"] for m in out[-1]["moveInfos"]} <= set(allow)
    assert "allowMoves" not in json.dumps(out[-1].get("warnings", []))  # a field the engine reads


def test_root_info_has_the_raw_net_evaluation():
    """rawWinrate / rawLead: the net's own view of the position before search (KataGo's rootInfo keys), in
    the query's perspective like the rest."""
    out = run(engine(), query(moves=[["B", "E5"]], maxVisits=20))
    root = out[-1]["rootInfo"]
    assert 0.0 <= root["rawWinrate"] <= 1.0 and isinstance(root["rawLead"], float)
    assert root["rawWinrate"] != root["winrate"] or root["visits"] <= 1
