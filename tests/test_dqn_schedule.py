"""When DQN's loop learns: gradient rounds and target updates counted in steps or episodes, several gradient
steps per round, lr annealing, and acting with exploration (deterministic=False).

Real short DQN runs on CartPole-v1 with DQN's methods wrapped (and called through): each call is
recorded with the env step it came at (the loop adds one transition to the replay per step). What the
calls should be is computed by hand from the episode ends the run wrote to metrics.csv.
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import deeprl
from deeprl.algos.dqn import DQN
from deeprl.buffers import ReplayBuffer
from deeprl.config import read_config_file
from deeprl.nets import QNetwork, SoftUpdate
from deeprl.policies import QAgent

COMMON = {
    "hidden_sizes": (16,),
    "eval_episodes": 1,
    "final_eval_episodes": 1,
    "tensorboard": False,
    "checkpoint_every": 0,
}
# Rounds after every 2nd episode, 3 gradient steps each; a target copy after every 3rd episode; lr annealed.
EPISODES_RUN = {
    "seed": 0,
    "steps": 700,
    "eval_every": 700,
    "learning_starts": 150,
    "batch_size": 32,
    "train_freq_unit": "episodes",
    "train_freq": 2,
    "gradient_steps": 3,
    "target_update_unit": "episodes",
    "target_update_interval": 3,
    "lr": 1e-3,
    "lr_end": 2e-4,
}
# Rounds every 4th step, 2 gradient steps each; the replay reaches batch_size (48) after learning_starts (10),
# so the first round is at step 48. A target copy every 50 steps; a constant lr.
STEPS_RUN = {
    "seed": 1,
    "steps": 500,
    "eval_every": 500,
    "learning_starts": 10,
    "batch_size": 48,
    "train_freq_unit": "steps",
    "train_freq": 4,
    "gradient_steps": 2,
    "target_update_unit": "steps",
    "target_update_interval": 50,
    "lr": 1e-3,
    "lr_end": None,
}


@dataclass
class Calls:
    """What the learner was asked to do, each entry tagged with the env step it happened at."""

    step: int = 0
    updates: list[int] = field(default_factory=list)
    lr_at_update: list[float] = field(default_factory=list)  # the optimiser's lr during each gradient step
    target_updates: list[int] = field(default_factory=list)
    lr_set: list[tuple[int, float]] = field(default_factory=list)  # (step, the optimiser's lr after set_lr)


@dataclass
class RecordedRun:
    run_dir: Path
    calls: Calls
    settings: dict

    def episode_ends(self) -> list[tuple[int, int, str]]:
        """(episode, step, loss column) of each finished episode, as metrics.csv has them."""
        with open(self.run_dir / "metrics.csv") as metrics:
            return [
                (int(row["episode"]), int(row["step"]), row["loss"])
                for row in csv.DictReader(metrics)
                if row["kind"] == "train"
            ]


def recorded_run(tmp_path_factory: pytest.TempPathFactory, name: str, settings: dict) -> RecordedRun:
    calls = Calls()
    add, learn, update_target, set_lr = ReplayBuffer.add, DQN.learn, SoftUpdate.__call__, DQN.set_lr

    def counting_add(self, *args, **kwargs):
        calls.step += 1
        return add(self, *args, **kwargs)

    def recording_learn(self, batch, step):
        calls.updates.append(calls.step)
        calls.lr_at_update.append(self.optimizer.param_groups[0]["lr"])
        return learn(self, batch, step)

    def recording_update_target(self):
        calls.target_updates.append(calls.step)
        return update_target(self)

    def recording_set_lr(self, lr):
        set_lr(self, lr)
        calls.lr_set.append((calls.step, self.optimizer.param_groups[0]["lr"]))

    run_dir = tmp_path_factory.mktemp(name) / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ReplayBuffer, "add", counting_add)
        patch.setattr(DQN, "learn", recording_learn)
        patch.setattr(SoftUpdate, "__call__", recording_update_target)  # DQN's only soft update: its target's
        patch.setattr(DQN, "set_lr", recording_set_lr)
        deeprl.train("dqn", "CartPole-v1", run_dir=run_dir, **COMMON, **settings)
    assert calls.step == settings["steps"]  # every step went through the replay once
    return RecordedRun(run_dir, calls, settings)


@pytest.fixture(scope="module")
def episodes_run(tmp_path_factory) -> RecordedRun:
    return recorded_run(tmp_path_factory, "episodes", EPISODES_RUN)


@pytest.fixture(scope="module")
def steps_run(tmp_path_factory) -> RecordedRun:
    return recorded_run(tmp_path_factory, "steps", STEPS_RUN)


def test_episode_rounds_come_after_every_second_episode_once_learning_started(episodes_run):
    settings = episodes_run.settings
    ends = episodes_run.episode_ends()
    rounds = [
        step
        for episode, step, _ in ends
        if episode % settings["train_freq"] == 0
        and step > settings["learning_starts"]
        and step >= settings["batch_size"]
    ]
    assert len(rounds) >= 5  # the run is long enough to tell the rule apart from others
    expected = Counter({step: settings["gradient_steps"] for step in rounds})
    assert Counter(episodes_run.calls.updates) == expected
    # an episode's loss column is its round's mean loss: empty exactly when no round ended it
    assert [loss != "" for _, step, loss in ends] == [step in rounds for _, step, _ in ends]


def test_step_rounds_come_every_train_freq_steps_once_the_replay_holds_a_batch(steps_run):
    settings = steps_run.settings
    rounds = [
        step
        for step in range(1, settings["steps"] + 1)
        if step % settings["train_freq"] == 0 and step > settings["learning_starts"] and step >= settings["batch_size"]
    ]
    assert rounds[0] == 48
    assert steps_run.calls.updates == [step for step in rounds for _ in range(settings["gradient_steps"])]
    # an episode has a loss exactly when a round happened during it
    previous_end = 0
    for _, step, loss in steps_run.episode_ends():
        assert (loss != "") == any(previous_end < round_step <= step for round_step in rounds), step
        previous_end = step


def test_target_updates_after_every_third_episode(episodes_run):
    interval = episodes_run.settings["target_update_interval"]
    expected = [step for episode, step, _ in episodes_run.episode_ends() if episode % interval == 0]
    assert len(expected) >= 5
    # counted from the first episode, learning or not
    assert expected[0] <= episodes_run.settings["learning_starts"]
    assert episodes_run.calls.target_updates == expected


def test_target_updates_every_interval_steps(steps_run):
    interval = steps_run.settings["target_update_interval"]
    assert steps_run.calls.target_updates == list(range(interval, steps_run.settings["steps"] + 1, interval))


def test_lr_anneals_linearly_to_lr_end_over_the_run(episodes_run):
    settings = episodes_run.settings
    lr, lr_end, total = settings["lr"], settings["lr_end"], settings["steps"]
    calls = episodes_run.calls
    assert [step for step, _ in calls.lr_set] == list(range(1, total + 1))  # set at every step
    for step, value in calls.lr_set:
        assert value == pytest.approx(lr + (lr_end - lr) * step / total, rel=1e-12), step
    assert calls.lr_set[-1][1] == pytest.approx(lr_end, rel=1e-12)
    assert calls.lr_set[total // 2 - 1][1] == pytest.approx(6e-4, rel=1e-12)  # halfway: (1e-3 + 2e-4) / 2
    # each gradient step ran with the lr of its own step
    assert calls.lr_at_update == pytest.approx([lr + (lr_end - lr) * step / total for step in calls.updates], rel=1e-12)


def test_without_lr_end_the_lr_stays_put(steps_run):
    assert steps_run.calls.lr_set == []
    assert set(steps_run.calls.lr_at_update) == {STEPS_RUN["lr"]}


# ------------------------------------------------------------------------------ acting with exploration


@pytest.fixture(scope="module")
def observations() -> np.ndarray:
    """2 000 CartPole observations from random play (with resets)."""
    env = gym.make("CartPole-v1")
    env.action_space.seed(4)
    obs, _ = env.reset(seed=4)
    collected = []
    while len(collected) < 2000:
        collected.append(obs)
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            obs, _ = env.reset()
    env.close()
    return np.stack(collected)


def replayed_actions(greedy: np.ndarray, epsilon: float, n_actions: int, seed: int) -> np.ndarray:
    """act(batch, deterministic=False) by hand: a uniform draw per observation decides, then random actions."""
    rng = np.random.default_rng(seed)
    explore = rng.random(len(greedy)) < epsilon
    return np.where(explore, rng.integers(n_actions, size=len(greedy)), greedy)


def test_a_loaded_agent_explores_with_the_runs_final_epsilon(episodes_run, observations):
    agent = deeprl.load(episodes_run.run_dir)
    _, settings = read_config_file(episodes_run.run_dir / "config.yaml")
    assert agent.epsilon == settings["epsilon_end"] == 0.02  # the CartPole preset's epsilon_end
    greedy = agent.act(observations)
    assert len(set(greedy)) == 2  # both actions are greedy somewhere, so random ones can differ from them
    for epsilon, seed in ((agent.epsilon, 3), (0.3, 5), (1.0, 6)):
        agent.epsilon = epsilon
        agent.rng = np.random.default_rng(seed)
        np.testing.assert_array_equal(
            agent.act(observations, deterministic=False), replayed_actions(greedy, epsilon, 2, seed)
        )
    agent.epsilon = 0.0
    np.testing.assert_array_equal(agent.act(observations, deterministic=False), greedy)
    assert np.array_equal(agent.act(observations), greedy)  # deterministic acting draws nothing


def test_single_observations_explore_one_draw_at_a_time(episodes_run, observations):
    agent = deeprl.load(episodes_run.run_dir)
    agent.epsilon, agent.rng = 0.5, np.random.default_rng(11)
    replay = np.random.default_rng(11)
    chosen = []
    for obs in observations[:300]:
        action = agent.act(obs, deterministic=False)
        assert type(action) is int
        explore = replay.random(1)[0] < 0.5
        random_action = int(replay.integers(2, size=1)[0])
        assert action == (random_action if explore else agent.act(obs))
        chosen.append(explore)
    assert 0.4 < np.mean(chosen) < 0.6


@pytest.mark.parametrize("epsilon", [0.1, 0.5, 1.0])
def test_random_actions_come_with_frequency_epsilon(epsilon):
    """Over 20 000 observations a random action replaces the greedy one with probability epsilon, and is
    uniform over the action space (numbered from its start)."""
    torch.manual_seed(0)
    network = {"obs_dim": 2, "n_actions": 3, "hidden_sizes": [8], "activation": "relu", "dueling": False}
    agent = QAgent(
        QNetwork(**network),
        gym.spaces.Box(-1.0, 1.0, shape=(2,)),
        gym.spaces.Discrete(3, start=-1),
        network,
        epsilon=epsilon,
    )
    agent.rng = np.random.default_rng(0)
    observations = np.zeros((20_000, 2), dtype=np.float32)  # one observation: one greedy action
    greedy = agent.act(observations[0])
    actions = agent.act(observations, deterministic=False)
    assert set(actions) <= {-1, 0, 1}
    counts = np.array([np.mean(actions == action) for action in (-1, 0, 1)])
    expected = np.full(3, epsilon / 3)
    expected[greedy + 1] += 1 - epsilon
    # binomial standard deviation at most 0.0036 for 20 000 draws: 0.015 is over 4 of them
    np.testing.assert_allclose(counts, expected, atol=0.015)
