"""Go rules and the gymnasium environment. Pure game logic: no search, no torch.

Importing this package registers ``specmcts/Go-v0`` with gymnasium.
"""
from games.go import BLACK, EMPTY, WHITE, GoRules, GoState, IllegalMoveError, action_to_gtp, gtp_to_action

__all__ = ["BLACK", "WHITE", "EMPTY", "GoRules", "GoState", "IllegalMoveError", "action_to_gtp", "gtp_to_action"]


def _register_env():
    from gymnasium.envs.registration import register, registry

    if "specmcts/Go-v0" not in registry:
        register(id="specmcts/Go-v0", entry_point="games.env:GoEnv")


_register_env()
