"""KaTrain 1.20's own engine class (``katrain.core.engine.KataGoEngine``, custom engine via ``altcommand``)
driving ``specmcts analysis``, headless: a game of three moves on the board size given after the command (9 or
19), analysis of its last position and of the position before, one with pondering reports. Prints one JSON line per response KaTrain's callback received,
then a transcript of the queries KaTrain sent. Run by tests/test_katrain.py in a subprocess (KaTrain and Kivy
keep global state and write their config under HOME)."""
import json
import os
import sys
import threading

os.environ.setdefault("KIVY_NO_ARGS", "1")
os.environ.setdefault("KIVY_NO_CONSOLELOG", "1")

from katrain.core.engine import KataGoEngine  # noqa: E402
from katrain.core.game_node import GameNode  # noqa: E402
from pysgf import Move  # noqa: E402


MOVES = {9: ("E5", "C3", "G4"), 19: ("Q16", "D4", "R4")}


class Katrain:
    """What KataGoEngine asks of the application: a log and a callable for popups."""

    def __init__(self):
        self.logs = []

    def log(self, message, level=0):
        self.logs.append(str(message))

    def __call__(self, *args, **kwargs):
        self.logs.append(f"popup {args!r}")


def main() -> int:
    katrain = Katrain()
    config = {"altcommand": sys.argv[1], "max_visits": 48, "fast_visits": 12, "max_time": 60.0,
              "wide_root_noise": 0.0, "_enable_ownership": True}
    engine = KataGoEngine(katrain, config)
    size = int(sys.argv[2]) if len(sys.argv) > 2 else 9
    root = GameNode(properties={"SZ": size, "KM": 7.5, "RU": "chinese"})
    nodes = [root]
    for gtp, player in zip(MOVES[size], "BWB"):
        nodes.append(nodes[-1].play(Move.from_gtp(gtp, player=player)))
    received = []
    finished = threading.Semaphore(0)

    def callback(analysis, partial):
        received.append({"partial": partial, **analysis})
        if not partial:
            finished.release()

    def error(analysis):
        received.append({"error_callback": True, **analysis})
        finished.release()

    engine.request_analysis(nodes[-1], callback, error_callback=error)
    engine.request_analysis(nodes[-2], callback, error_callback=error, visits=24, report_every=1e-5)
    ok = finished.acquire(timeout=240) and finished.acquire(timeout=240)
    for r in received:
        print(json.dumps(r))
    sent = [line for line in katrain.logs if line.startswith("Sending query")]
    print(json.dumps({"transcript": sent, "finished": bool(ok)}))
    engine.shutdown(finish=False)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
