"""A tiny trained DQN: its run directory, saved policies, safe loading, reproducibility, evaluation."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import pickle

import gymnasium as gym
import numpy as np
import pytest
import torch

import deeprl
from deeprl.agent import save_policy
from deeprl.algos import dqn, ppo, sac
from deeprl.algos.dqn import DQN
from deeprl.algos.sac import SAC
from deeprl.config import load_presets, read_config_file
from deeprl.errors import DeeprlError
from deeprl.nets import ActorCritic
from deeprl.normalization import ObservationNormalizer
from deeprl.observations import as_batch
from deeprl.policies import PolicyAgent, policy_network
from deeprl.run import TIMING_KEYS
from tests.conftest import PNG_SIGNATURE, final_evaluation_replayed
from tests.continuous_control import CPU
from tests.tensorboard_events import tensorboard_scalars

TINY = {
    "seed": 0,
    "steps": 600,
    "learning_starts": 100,
    "eval_every": 300,
    "eval_episodes": 2,
    "final_eval_episodes": 2,
    "hidden_sizes": (32, 32),
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("agent") / "run"
    agent = deeprl.train("dqn", "CartPole-v1", tensorboard=True, run_dir=run_dir, **TINY)
    return agent, run_dir


@pytest.fixture(scope="module")
def observations():
    """50 CartPole observations from a random walk (with resets), as float32 arrays."""
    env = gym.make("CartPole-v1")
    env.action_space.seed(1)
    obs, _ = env.reset(seed=1)
    collected = []
    while len(collected) < 50:
        collected.append(obs)
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            obs, _ = env.reset()
    env.close()
    return np.stack(collected)


def read_rows(path):
    with open(path, newline="") as stream:
        return list(csv.DictReader(stream))


def without_time(path):
    rows = read_rows(path)
    return [{key: value for key, value in row.items() if key != "time_s"} for row in rows]


def test_run_directory_contents(trained):
    agent, run_dir = trained
    assert agent.run_dir == run_dir
    names = {path.name for path in run_dir.iterdir()}
    assert {
        "config.yaml",
        "metrics.csv",
        "best_policy.pt",
        "policy.pt",
        "eval.json",
        "curve.png",
        "tensorboard",
    } <= names
    assert not [name for name in names if name.endswith(".tmp")]  # no leftovers of atomic writes
    assert (run_dir / "curve.png").read_bytes()[:8] == PNG_SIGNATURE
    assert any(path.name.startswith("events.out.tfevents") for path in (run_dir / "tensorboard").iterdir())


def test_config_yaml_records_the_resolved_config(trained):
    _, run_dir = trained
    algo, settings = read_config_file(run_dir / "config.yaml")
    assert algo == "dqn"
    assert settings["total_steps"] == 600
    assert settings["learning_starts"] == 100
    assert settings["hidden_sizes"] == [32, 32]
    preset = load_presets("dqn")["CartPole-v1"]["default"]
    assert settings["tau"] == preset.get("tau", 1.0)  # the preset's value, else the default
    assert settings["env"] == "CartPole-v1"


def test_metrics_csv(trained):
    _, run_dir = trained
    lines = (run_dir / "metrics.csv").read_text().splitlines()
    assert lines[0] == "kind,step,episode,return,return_std,length,epsilon,loss,time_s"
    rows = read_rows(run_dir / "metrics.csv")
    assert {row["kind"] for row in rows} == {"train", "eval"}
    evals = [row for row in rows if row["kind"] == "eval"]
    assert [int(row["step"]) for row in evals] == [300, 600]
    train = [row for row in rows if row["kind"] == "train"]
    assert [int(row["episode"]) for row in train] == list(range(1, len(train) + 1))
    previous_step = 0
    for row in train:  # each episode's length is the steps since the previous one ended
        assert int(row["step"]) - previous_step == int(row["length"])
        assert float(row["return"]) == int(row["length"])  # CartPole: +1 per step
        previous_step = int(row["step"])
    assert previous_step <= 600
    assert train[0]["loss"] == ""  # the first episode ends before learning starts at step 100
    assert float(train[-1]["loss"]) >= 0
    _, settings = read_config_file(run_dir / "config.yaml")
    start, end, decay = settings["epsilon_start"], settings["epsilon_end"], settings["epsilon_decay_steps"]
    assert settings["epsilon_schedule"] == "linear" and decay > 600
    for row in train:  # epsilon as it was at the episode's last step
        assert float(row["epsilon"]) == pytest.approx(start + (end - start) * int(row["step"]) / decay, rel=1e-5)


def test_tensorboard_scalars_are_the_metrics_rows(trained):
    """Every number of every metrics.csv row is a TensorBoard scalar KIND/COLUMN at the row's step."""
    _, run_dir = trained
    expected: dict[str, list[tuple[int, float]]] = {}
    for row in read_rows(run_dir / "metrics.csv"):
        for column, value in row.items():
            if column not in ("kind", "step", "episode", "time_s") and value != "":
                expected.setdefault(f"{row['kind']}/{column}", []).append((int(row["step"]), float(value)))
    scalars = tensorboard_scalars(run_dir)
    assert sorted(scalars) == sorted(expected)
    assert {"train/return", "train/loss", "train/epsilon", "eval/return"} <= set(expected)
    for tag, points in expected.items():
        assert [step for step, _ in scalars[tag]] == [step for step, _ in points], tag
        # metrics.csv keeps 6 significant digits, TensorBoard a float32
        assert [value for _, value in scalars[tag]] == pytest.approx([value for _, value in points], rel=1e-5), tag


def test_eval_json(trained):
    agent, run_dir = trained
    summary = json.loads((run_dir / "eval.json").read_text())
    assert summary == agent.summary
    assert (summary["algo"], summary["env"], summary["seed"], summary["steps"]) == ("dqn", "CartPole-v1", 0, 600)
    assert summary["solve_threshold"] == 475.0
    evaluations = [
        (int(row["step"]), float(row["return"])) for row in read_rows(run_dir / "metrics.csv") if row["kind"] == "eval"
    ]
    best = max(evaluations, key=lambda evaluation: evaluation[1])  # the first of equal scores stays
    assert summary["best_policy_step"] == best[0]
    # both policies are scored on the same new episodes, seeded FINAL_EVAL_SEED + 1000 * seed
    for which, policy in (("best", "best_policy.pt"), ("final", "policy.pt")):
        result = summary[which]
        assert result["returns"] == final_evaluation_replayed(run_dir, policy, "CartPole-v1", episodes=2)
        assert result["episodes"] == 2
        assert result["mean_return"] == pytest.approx(np.mean(result["returns"]))


def test_loaded_policies_act_like_the_trained_agent(trained, observations):
    agent, run_dir = trained
    final = deeprl.load(run_dir / "policy.pt")
    best_file = deeprl.load(run_dir / "best_policy.pt")
    best_dir = deeprl.load(run_dir)
    assert best_dir.policy_path == run_dir / "best_policy.pt"
    assert best_dir.env_spec == {
        "env": "CartPole-v1",
        "env_kwargs": {},
        "max_episode_steps": None,
        "reward": "env",
        "observation": "state",
        "screen_height": 40,
        "frame_stack": 2,
        "atari_preprocessing": None,
        "atari_noop_max": 30,
        "atari_frame_skip": 4,
        "atari_screen_size": 84,
        "atari_grayscale": True,
        "atari_terminal_on_life_loss": True,
        "atari_fire_reset": True,
        "atari_clip_rewards": True,
        "atari_frame_stack": 4,
    }
    assert agent.env_spec == best_dir.env_spec

    expected = agent.act(observations)
    assert isinstance(expected, np.ndarray)
    assert np.issubdtype(expected.dtype, np.integer)
    assert expected.shape == (50,)
    with torch.no_grad():  # acting (a NumPy fast path on the CPU) agrees with the torch network
        torch_actions = agent.q_net(torch.from_numpy(observations.astype(np.float32))).argmax(dim=1).numpy()
    np.testing.assert_array_equal(expected, torch_actions)
    np.testing.assert_array_equal(final.act(observations), expected)
    np.testing.assert_array_equal(best_dir.act(observations), best_file.act(observations))
    for name, tensor in agent.q_net.state_dict().items():
        assert torch.equal(final.q_net.state_dict()[name], tensor)

    for loaded in (final, best_dir):
        batch = loaded.act(observations)
        for index, obs in enumerate(observations):
            action = loaded.act(obs)
            assert type(action) is int
            assert action == batch[index]
        assert loaded.act(list(observations[0])) == batch[0]  # anything array-like
    np.testing.assert_array_equal(np.array([final.act(obs) for obs in observations]), expected)


def test_single_action_is_accepted_by_env_step(trained):
    agent = deeprl.load(trained[1])
    env = gym.make("CartPole-v1")
    obs, _ = env.reset(seed=3)
    for _ in range(5):
        action = agent.act(obs)
        assert env.action_space.contains(action)
        obs, *_ = env.step(action)
    env.close()


def test_wrong_observation_shape_is_refused(trained):
    agent = deeprl.load(trained[1])
    with pytest.raises(DeeprlError, match=r"observation of shape \(3,\) does not fit"):
        agent.act(np.zeros(3))
    with pytest.raises(DeeprlError, match="does not fit"):
        agent.act(np.zeros((2, 5)))
    with pytest.raises(DeeprlError, match="does not fit"):
        as_batch(np.float32(1.0), gym.spaces.Box(-1, 1, shape=(4,)))


def test_policy_file_is_plain_data(trained):
    _, run_dir = trained
    blob = torch.load(run_dir / "policy.pt", weights_only=True)
    assert blob["format"] == "deeprl-policy"
    assert blob["algo"] == "dqn"
    meta = json.loads(blob["meta_json"])
    assert meta["network"] == {
        "obs_dim": 4,
        "n_actions": 2,
        "hidden_sizes": [32, 32],
        "activation": "relu",
        "dueling": False,
        "encoder": None,
    }
    assert meta["action_space"] == {"type": "Discrete", "n": 2, "start": 0}
    assert all(isinstance(tensor, torch.Tensor) for tensor in blob["state_dict"].values())


def test_non_model_torch_file_is_refused(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save({"weight": torch.zeros(3)}, path)
    with pytest.raises(DeeprlError, match="is not a deeprl model file"):
        deeprl.load(path)


@pytest.mark.parametrize(
    "content",
    [
        b"hello\n",  # 'h' is pickle's BINGET: the weights-only unpickler raises KeyError
        b"\x80\x02.",  # a pickle that stops before pushing anything: IndexError
        b"",
        b'{"format": "deeprl-policy"}',
        b"PK\x03\x04 not really a zip",
        "truncated policy",
    ],
    ids=["text", "empty-pickle", "empty-file", "json", "fake-zip", "truncated-policy"],
)
def test_unreadable_files_are_refused(tmp_path, trained, content):
    if content == "truncated policy":
        content = (trained[1] / "policy.pt").read_bytes()[:2000]
    path = tmp_path / "model.pt"
    path.write_bytes(content)
    with pytest.raises(DeeprlError, match="is not a readable deeprl model file"):
        deeprl.load(path)


def test_missing_paths_are_refused(tmp_path):
    with pytest.raises(DeeprlError, match="no such run directory or model file"):
        deeprl.load(tmp_path / "missing")
    with pytest.raises(DeeprlError, match=r"is neither a run directory \(no config.yaml\) nor a model file"):
        deeprl.load(tmp_path)
    (tmp_path / "config.yaml").write_text("algo: dqn\n")
    with pytest.raises(DeeprlError, match="holds no policy"):
        deeprl.load(tmp_path)


def test_damaged_model_is_refused(tmp_path):
    damaged = tmp_path / "damaged.pt"
    torch.save({"format": "deeprl-policy", "algo": "dqn", "meta_json": "{not json", "state_dict": {}}, damaged)
    with pytest.raises(DeeprlError, match="damaged deeprl model file"):
        deeprl.load(damaged)
    mismatched = tmp_path / "mismatched.pt"
    meta = {
        "network": {"obs_dim": 4, "n_actions": 2, "hidden_sizes": [8]},
        "observation_space": {"type": "Discrete", "n": 2, "start": 0},
        "action_space": {"type": "Discrete", "n": 2, "start": 0},
    }
    torch.save(
        {
            "format": "deeprl-policy",
            "algo": "dqn",
            "meta_json": json.dumps(meta),
            "state_dict": {"body.0.weight": torch.zeros(3, 3)},
        },
        mismatched,
    )
    with pytest.raises(DeeprlError, match="does not match its algorithm 'dqn'"):
        deeprl.load(mismatched)
    for algo, meta_json in ((5, "{}"), ("dqn", "[1]")):  # JSON of the wrong shape
        torch.save({"format": "deeprl-policy", "algo": algo, "meta_json": meta_json, "state_dict": {}}, damaged)
        with pytest.raises(DeeprlError, match="damaged deeprl model file"):
            deeprl.load(damaged)


def agent_of_kind(kind: str):
    """(algorithm, agent, env id): a freshly built agent of each kind deeprl saves, as DQN, PPO (with normalised
    observations) and SAC make them."""
    torch.manual_seed(0)
    if kind == "q":
        env = gym.make("CartPole-v1")
        return "dqn", DQN(dqn.Config(hidden_sizes=(8,)), env.observation_space, env.action_space, CPU).agent, env
    env = gym.make("Pendulum-v1")
    if kind == "scaled_actor":
        return "sac", SAC(sac.Config(hidden_sizes=(8,)), env.observation_space, env.action_space, CPU).agent, env
    network = policy_network(env.observation_space, env.action_space, ppo.Config(hidden_sizes=(8,)), "separate")
    normalizer = ObservationNormalizer(env.observation_space.shape)
    normalizer.update(np.random.default_rng(0).normal(3.0, 2.0, size=(50, 3)))  # statistics that change the input
    agent = PolicyAgent(ActorCritic(**network), env.observation_space, env.action_space, network, normalizer)
    return "ppo", agent, env


@pytest.mark.parametrize("kind", ["q", "policy", "scaled_actor"])
def test_a_policy_file_names_its_agent_and_files_from_before_load_by_their_algorithm(tmp_path, kind):
    algo, agent, env = agent_of_kind(kind)
    env.observation_space.seed(0)
    obs = np.stack([env.observation_space.sample() for _ in range(20)])
    save_policy(tmp_path / "policy.pt", algo, agent, {"env": env.spec.id})
    blob = torch.load(tmp_path / "policy.pt", weights_only=True)
    meta = json.loads(blob["meta_json"])
    assert meta["agent"] == kind
    # the description alone rebuilds the agent: the algorithm's name plays no part
    torch.save({**blob, "algo": "not-an-algorithm"}, tmp_path / "renamed.pt")
    # a file written before policy files named their agent: its algorithm's agent kind
    del meta["agent"]
    torch.save({**blob, "meta_json": json.dumps(meta)}, tmp_path / "before.pt")
    for name in ("policy.pt", "renamed.pt", "before.pt"):
        loaded = deeprl.load(tmp_path / name)
        assert type(loaded) is type(agent)
        np.testing.assert_array_equal(loaded.act(obs), agent.act(obs))


def test_an_agent_deeprl_cannot_rebuild_is_refused_in_one_line(tmp_path):
    path = tmp_path / "policy.pt"
    torch.save(
        {"format": "deeprl-policy", "algo": "dqn", "meta_json": json.dumps({"agent": "recurrent"}), "state_dict": {}},
        path,
    )
    with pytest.raises(
        DeeprlError,
        match=r"holds an agent of kind 'recurrent', which this deeprl cannot rebuild "
        r"\(it knows q, policy, scaled_actor, recurrent_policy\)",
    ):
        deeprl.load(path)
    torch.save({"format": "deeprl-policy", "algo": "dqn9", "meta_json": "{}", "state_dict": {}}, path)
    with pytest.raises(DeeprlError, match="names no agent kind and comes from an unknown algorithm 'dqn9'"):
        deeprl.load(path)


@pytest.mark.parametrize("length", [4096, 16, 4])
def test_random_bytes_are_refused_in_one_line(tmp_path, length):
    """Whatever torch's weights-only loader raises on garbage (an IndexError for 4096 of these bytes, an
    UnpicklingError for 16 or 4), deeprl says it in one line that names the file and the loader's error, with none
    of the loader's traceback chained to it."""
    path = tmp_path / "random.pt"
    path.write_bytes(np.random.default_rng(length).bytes(length))
    with pytest.raises(Exception) as loader_error:  # whichever the loader raises
        torch.load(path, weights_only=True)
    with pytest.raises(DeeprlError) as refused:
        deeprl.load(path)
    assert str(refused.value) == (f"{path} is not a readable deeprl model file ({type(loader_error.value).__name__})")
    assert refused.value.__cause__ is None and refused.value.__suppress_context__


class Exploit:
    """Unpickling this creates the marker file: what a malicious model file could do."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def assert_payload_runs_when_loaded_unsafely(path, marker) -> None:
    """The file is really dangerous (so refusing it safely means something): an unsafe load runs its payload."""
    with contextlib.suppress(Exception):  # the payload runs while unpickling, before anything can fail
        torch.load(path, weights_only=False)
    assert marker.exists()
    marker.unlink()


@pytest.mark.parametrize("writer", ["pickle", "torch.save", "torch.save legacy", "inside a policy"])
def test_malicious_pickle_is_refused_without_running_it(tmp_path, writer):
    marker = tmp_path / "pwned"
    path = tmp_path / "model.pt"
    payload = Exploit(str(marker))
    if writer == "pickle":
        path.write_bytes(pickle.dumps(payload, protocol=2))
    elif writer == "torch.save":
        torch.save(payload, path)
    elif writer == "torch.save legacy":
        buffer = io.BytesIO()
        torch.save(payload, buffer, _use_new_zipfile_serialization=False)
        path.write_bytes(buffer.getvalue())
    else:
        torch.save({"format": "deeprl-policy", "algo": "dqn", "meta_json": "{}", "state_dict": payload}, path)
    assert_payload_runs_when_loaded_unsafely(path, marker)
    with pytest.raises(DeeprlError, match="not a readable deeprl model file"):
        deeprl.load(path)
    assert not marker.exists()
    # and a run directory holding such a file is refused the same way
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    os.replace(path, run_dir / "best_policy.pt")
    with pytest.raises(DeeprlError, match="not a readable deeprl model file"):
        deeprl.load(run_dir)
    assert not marker.exists()


def test_same_seed_same_metrics(trained, tmp_path):
    _, run_dir = trained
    again = deeprl.train("dqn", "CartPole-v1", tensorboard=False, run_dir=tmp_path / "again", **TINY)
    assert not (again.run_dir / "tensorboard").exists()
    assert without_time(again.run_dir / "metrics.csv") == without_time(run_dir / "metrics.csv")
    first = json.loads((run_dir / "eval.json").read_text())
    second = json.loads((again.run_dir / "eval.json").read_text())
    for summary in (first, second):
        for key in TIMING_KEYS:
            summary.pop(key)
    assert first == second


def test_existing_run_directory_is_refused(trained):
    with pytest.raises(DeeprlError, match="already exists and is not empty"):
        deeprl.train("dqn", "CartPole-v1", run_dir=trained[1], **TINY)


def test_evaluate_seed_convention(trained):
    agent = deeprl.load(trained[1])
    together = deeprl.evaluate(agent, "CartPole-v1", episodes=3, seed=5)
    separate = [deeprl.evaluate(agent, "CartPole-v1", episodes=1, seed=seed) for seed in (5, 6, 7)]
    np.testing.assert_array_equal(together.returns, [result.returns[0] for result in separate])
    np.testing.assert_array_equal(together.lengths, [result.lengths[0] for result in separate])
    one_at_a_time = deeprl.evaluate(agent, "CartPole-v1", episodes=3, seed=5, parallel=1)
    np.testing.assert_array_equal(one_at_a_time.returns, together.returns)
    np.testing.assert_array_equal(together.returns, together.lengths)  # CartPole: +1 per step
    assert together.seed == 5
    result = together.to_dict()
    assert result["episodes"] == 3
    assert result["mean_return"] == pytest.approx(np.mean(together.returns))
    assert result["min_return"] == min(together.returns)


def test_evaluate_matches_a_hand_played_episode(trained):
    agent = deeprl.load(trained[1])
    env = gym.make("CartPole-v1")
    obs, _ = env.reset(seed=42)
    total, done = 0.0, False
    while not done:
        obs, reward, terminated, truncated, _ = env.step(agent.act(obs))
        total += reward
        done = terminated or truncated
    env.close()
    assert deeprl.evaluate(agent, "CartPole-v1", episodes=1, seed=42).returns[0] == total


def test_evaluate_respects_max_episode_steps(trained):
    agent = deeprl.load(trained[1])
    result = deeprl.evaluate(agent, "CartPole-v1", episodes=4, seed=0, max_episode_steps=5)
    np.testing.assert_array_equal(result.lengths, [5, 5, 5, 5])


def test_custom_env_end_to_end(tmp_path):
    trained = deeprl.train(
        "dqn",
        "tests.custom_envs:Corridor",
        max_episode_steps=20,
        steps=300,
        learning_starts=50,
        eval_every=100,
        eval_episodes=2,
        final_eval_episodes=2,
        hidden_sizes=(16,),
        tensorboard=False,
        run_dir=tmp_path / "run",
    )
    assert trained.summary["solve_threshold"] is None  # the env declares none
    assert trained.summary["final"]["mean_length"] <= 20
    loaded = deeprl.load(tmp_path / "run")
    assert loaded.env_spec["env"] == "tests.custom_envs:Corridor"
    assert loaded.env_spec["max_episode_steps"] == 20
    result = deeprl.evaluate(loaded, "tests.custom_envs:Corridor", episodes=2, seed=0, max_episode_steps=20)
    # -1 per step: the return is minus the length
    np.testing.assert_array_equal(result.returns, -result.lengths)


def test_env_with_discrete_observations_learns_from_one_hot_vectors(tmp_path):
    """FrozenLake's observations are squares 0-15 (a Discrete space): the agent reads them as one-hot vectors,
    and its policy file says so, so loading and evaluating it rebuild the same encoding; the loaded agent takes the
    square numbers as well as their vectors."""
    run_dir = tmp_path / "run"
    agent = deeprl.train(
        "dqn",
        "FrozenLake-v1",
        steps=300,
        learning_starts=50,
        eval_every=150,
        eval_episodes=2,
        final_eval_episodes=2,
        hidden_sizes=(16,),
        tensorboard=False,
        run_dir=run_dir,
    )
    one_hot = gym.spaces.Box(0.0, 1.0, shape=(16,), dtype=np.float32)
    loaded = deeprl.load(run_dir / "policy.pt")
    assert agent.observation_space == loaded.observation_space == one_hot
    assert json.loads(torch.load(run_dir / "policy.pt", weights_only=True)["meta_json"])["network"]["obs_dim"] == 16
    squares = np.eye(16, dtype=np.float32)
    with torch.no_grad():
        expected = agent.q_net(torch.from_numpy(squares)).argmax(dim=1).numpy()
    np.testing.assert_array_equal(loaded.act(squares), expected)
    env = deeprl.make_env(run_dir)  # the run's env: squares come as one-hot vectors
    obs, _ = env.reset(seed=0)
    np.testing.assert_array_equal(obs, squares[0])
    assert loaded.act(obs) == expected[0]
    assert loaded.act(0) == expected[0]  # the env's own square numbers, encoded as in training
    np.testing.assert_array_equal(loaded.act(np.arange(16)), expected)
    result = deeprl.evaluate(loaded, run_dir, episodes=2, seed=0)
    assert set(result.returns) <= {0.0, 1.0}


def test_evaluation_of_an_endless_episode_stops_with_an_error():
    class StandStill:
        observation_space = gym.spaces.Box(0.0, 5.0, shape=(1,), dtype=np.float32)
        action_space = gym.spaces.Discrete(2)

        def act(self, obs, deterministic=True):
            return np.zeros(len(obs), dtype=np.int64)  # never walks: Corridor without a limit never ends

    with pytest.raises(DeeprlError, match="has not ended after 50 steps; give the env a limit"):
        deeprl.evaluate(StandStill(), "tests.custom_envs:Corridor", episodes=2, seed=0, step_cap=50)
    bounded = deeprl.evaluate(
        StandStill(), "tests.custom_envs:Corridor", episodes=2, seed=0, step_cap=50, max_episode_steps=30
    )
    assert list(bounded.lengths) == [30, 30]
