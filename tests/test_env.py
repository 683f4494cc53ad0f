"""The gymnasium environment ``specmcts/Go-v0``."""
from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import games
from games import BLACK, EMPTY, WHITE, GoRules, GoState, IllegalMoveError
from native.features import NUM_PLANES


def make(**kwargs):
    kwargs.setdefault("size", 9)
    kwargs.setdefault("komi", 7.5)
    return gym.make("specmcts/Go-v0", **kwargs)


@pytest.mark.parametrize("kwargs", [dict(size=9, komi=7.5), dict(size=5, komi=0.5, render_mode="ansi"),
                                    dict(size=19, komi=6.5)])
def test_check_env_passes_without_warnings(kwargs):
    env = make(**kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # gymnasium's checker reports problems as warnings
        check_env(env.unwrapped)
    env.close()


def test_spaces_and_reset_info():
    env = make(size=9)
    assert env.action_space == gym.spaces.Discrete(82)
    assert env.observation_space.shape == (NUM_PLANES, 9, 9) and env.observation_space.dtype == np.float32
    obs, info = env.reset(seed=0)
    assert obs.shape == (NUM_PLANES, 9, 9) and obs.dtype == np.float32
    np.testing.assert_array_equal(obs, GoState(GoRules(9)).features())
    assert info["action_mask"].dtype == np.int8 and info["action_mask"].shape == (82,)
    assert info["action_mask"].all()
    assert info["to_play"] == BLACK and info["move_number"] == 0
    assert "score" not in info


def play_random_episode(env, seed):
    """Mask-sampled random actions until the end, checked move by move against a GoState."""
    obs, info = env.reset(seed=seed)
    env.action_space.seed(seed)
    rules = env.unwrapped.rules
    shadow = GoState(rules)
    rewards, movers = [], []
    terminated = False
    while not terminated:
        mask = info["action_mask"]
        np.testing.assert_array_equal(mask.astype(bool), shadow.legal_mask())
        assert info["to_play"] == shadow.to_play and info["move_number"] == shadow.move_number
        action = env.action_space.sample(mask=mask)
        assert mask[action] == 1
        movers.append(shadow.to_play)
        shadow.play(action)
        obs, reward, terminated, truncated, info = env.step(action)
        assert truncated is False
        assert terminated == shadow.is_over
        np.testing.assert_array_equal(obs, shadow.features())
        rewards.append(reward)
    return shadow, rewards, movers, info


def test_random_episodes_terminate_with_correct_rewards():
    env = make(size=9, komi=7.5)
    for seed in range(6):
        shadow, rewards, movers, info = play_random_episode(env, seed)
        assert all(r == 0.0 for r in rewards[:-1])
        winner = shadow.winner()
        expected = 0.0 if winner == EMPTY else (1.0 if winner == movers[-1] else -1.0)
        assert rewards[-1] == expected != 0.0  # komi 7.5: no draws
        assert info["winner"] == winner and info["score"] == shadow.score()
        assert info["result"] == shadow.result_string()
        assert not info["action_mask"].any()
        assert shadow.consecutive_passes >= 2 or shadow.move_number == GoRules(9).max_moves
    with pytest.raises(IllegalMoveError, match="reset"):
        env.step(0)


def test_rewards_for_the_mover_in_short_games():
    env = make(size=5, komi=7.5)
    env.reset()
    _, r1, t1, _, _ = env.step(25)  # black passes
    _, r2, t2, _, info = env.step(25)  # white passes: white wins by komi
    assert (r1, t1, r2, t2) == (0.0, False, 1.0, True)
    assert info["winner"] == WHITE and info["result"] == "W+7.5" and info["score"] == -7.5

    env.reset()
    env.step(12)  # black C3, the whole board is black's
    env.step(25)
    _, r, t, _, info = env.step(25)  # black's pass ends it: +1 for black
    assert (r, t) == (1.0, True) and info["winner"] == BLACK and info["to_play"] == WHITE

    draw = make(size=5, komi=0.0)
    draw.reset()
    draw.step(25)
    _, r, t, _, info = draw.step(25)
    assert (r, t) == (0.0, True) and info["winner"] == EMPTY and info["result"] == "0"


def test_illegal_actions_raise_and_leave_the_state_alone():
    env = make(size=9)
    obs, info = env.reset()
    env.step(40)
    before = env.unwrapped.state.copy()
    with pytest.raises(IllegalMoveError, match="occupied"):
        env.step(40)
    with pytest.raises(ValueError, match="outside the action space"):
        env.step(82)  # resign is not an action of the env
    with pytest.raises(ValueError, match="outside the action space"):
        env.step(-1)
    assert env.unwrapped.state.hash == before.hash and env.unwrapped.state.to_play == before.to_play
    _, _, terminated, _, info = env.step(np.int64(41))  # numpy integers are fine
    assert not terminated and info["move_number"] == 2


def test_render_and_reset_options():
    env = make(size=9, render_mode="ansi")
    env.reset(options={"moves": [0, 80]})
    text = env.render()
    assert isinstance(text, str)
    lines = text.splitlines()
    assert lines[1].startswith(" 9 X") and lines[9].rstrip().endswith("O  1")
    assert "B to play, move 2" in text
    assert make(size=9).unwrapped.render() is None
    with pytest.raises(ValueError, match="render_mode"), pytest.warns(UserWarning, match="render_mode"):
        make(render_mode="rgb_array")


def test_reset_seed_reproducibility():
    def trajectory(seed):
        env = make(size=9)
        _, info = env.reset(seed=seed)
        rng = env.unwrapped.np_random
        actions, terminated = [], False
        while not terminated and len(actions) < 60:
            action = int(rng.choice(np.flatnonzero(info["action_mask"])))
            actions.append(action)
            obs, _, terminated, _, info = env.step(action)
        return actions, obs

    a1, o1 = trajectory(123)
    a2, o2 = trajectory(123)
    a3, _ = trajectory(456)
    assert a1 == a2 and np.array_equal(o1, o2)
    assert a1 != a3
    # A second reset without a seed starts a fresh game from the empty board.
    env = make(size=9)
    env.reset(seed=1)
    env.step(40)
    obs, info = env.reset()
    assert info["move_number"] == 0 and not obs[:16].any()


def test_registered_once_and_importable():
    assert "specmcts/Go-v0" in gym.registry
    assert gym.registry["specmcts/Go-v0"].entry_point == "games.env:GoEnv"
    assert games.GoState is GoState
