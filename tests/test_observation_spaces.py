"""Observations of every Gymnasium space (deeprl.observations): the encoding computed by hand, the order of Dict and
Tuple entries, text ignored, the action mask moved to info, policy files that record the env's own space, every
algorithm on a Dict env, raw observations given to a loaded agent, Blackjack learnt, exact resume on MiniGrid, and
observation normalisation of Box entries only (beside one-hots and pictures, which it leaves as they are)."""

from __future__ import annotations

import json
from collections import OrderedDict

import gymnasium as gym
import numpy as np
import pytest

import deeprl
from deeprl import observations, onpolicy
from deeprl.agent import FINAL_POLICY, read_policy_file
from deeprl.envs import make_env, space_from_dict, space_to_dict
from deeprl.errors import DeeprlError
from deeprl.nets import MultiInputEncoder
from deeprl.normalization import ObservationNormalizer
from deeprl.observations import EncodedSpace, ObservationEncoder, as_batch
from tests.conftest import SHORT_PPO_RUN, kill_and_resume, run_deeprl
from tests.custom_envs import DictCorridor, MaskedDictCorridor, PictureAndPosition

BLACKJACK = gym.spaces.Tuple((gym.spaces.Discrete(32), gym.spaces.Discrete(11), gym.spaces.Discrete(2)))


def one_hot(index: int, size: int) -> list[float]:
    return [1.0 if position == index else 0.0 for position in range(size)]


def test_tuple_of_discretes_is_one_hot_per_entry():
    encoder = ObservationEncoder(BLACKJACK)
    # the player's sum 14, the dealer's card 10, no usable ace: one-hot of 32, then of 11, then of 2
    expected = one_hot(14, 32) + one_hot(10, 11) + one_hot(0, 2)
    np.testing.assert_array_equal(encoder.encode((14, 10, 0)), expected)
    assert encoder.size == 45
    assert encoder.space == gym.spaces.Box(0.0, 1.0, shape=(45,), dtype=np.float32)


def test_nested_dict_entries_follow_the_spaces_key_order():
    # Gymnasium sorts a plain dict's keys: 'a' (its own 'x' before 'y') comes before 'b'
    space = gym.spaces.Dict(
        {
            "b": gym.spaces.Discrete(2),
            "a": gym.spaces.Dict(
                {"y": gym.spaces.Box(-5.0, 5.0, shape=(2,), dtype=np.float32), "x": gym.spaces.Discrete(3, start=1)}
            ),
        }
    )
    obs = {"b": 1, "a": {"y": np.array([0.5, -2.0], dtype=np.float32), "x": 2}}
    np.testing.assert_array_equal(ObservationEncoder(space).encode(obs), [0, 1, 0, 0.5, -2.0, 0, 1])
    # an OrderedDict keeps the order it was given
    ordered = gym.spaces.Dict(OrderedDict([("b", gym.spaces.Discrete(2)), ("a", gym.spaces.Discrete(2))]))
    np.testing.assert_array_equal(ObservationEncoder(ordered).encode({"a": 0, "b": 1}), [0, 1, 1, 0])


def test_multidiscrete_is_one_hot_per_dimension_and_multibinary_its_bits():
    encoder = ObservationEncoder(gym.spaces.MultiDiscrete([3, 2], start=[0, 1]))
    np.testing.assert_array_equal(encoder.encode(np.array([2, 1])), [0, 0, 1, 1, 0])
    grid = ObservationEncoder(gym.spaces.MultiDiscrete([[2, 2], [3, 1]]))  # dimensions read row by row
    np.testing.assert_array_equal(grid.encode(np.array([[1, 0], [2, 0]])), [0, 1, 1, 0, 0, 0, 1, 1])
    bits = ObservationEncoder(gym.spaces.MultiBinary(3))
    np.testing.assert_array_equal(bits.encode(np.array([1, 0, 1], dtype=np.int8)), [1, 0, 1])


def test_small_picture_in_a_dict_is_flattened_and_a_cnn_sized_one_packed_for_its_cnn():
    picture = gym.spaces.Box(0, 255, shape=(2, 2, 3), dtype=np.uint8)
    space = gym.spaces.Dict({"image": picture, "direction": gym.spaces.Discrete(4)})
    image = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)
    encoded = ObservationEncoder(space).encode({"image": image, "direction": 3})
    np.testing.assert_array_equal(encoded, [0, 0, 0, 1, *range(12)])  # 'direction' first, then the pixels unscaled
    assert encoded.dtype == np.float32
    big = gym.spaces.Dict({"image": gym.spaces.Box(0, 255, shape=(36, 36, 3), dtype=np.uint8)})
    packed = ObservationEncoder(big).encode({"image": np.full((36, 36, 3), 9, dtype=np.uint8)})
    assert packed.dtype == np.uint8 and packed.tolist() == [9] * 36 * 36 * 3  # bytes: tests/test_dict_pictures.py


def test_batches_in_every_form_encode_alike():
    encoder = ObservationEncoder(BLACKJACK)
    hands = [(14, 10, 0), (20, 1, 1)]
    expected = np.array([encoder.encode(hand) for hand in hands])
    as_list, single = encoder.batch(hands)
    assert not single
    np.testing.assert_array_equal(as_list, expected)
    stacked, single = encoder.batch((np.array([14, 20]), np.array([10, 1]), np.array([0, 1])))  # a vector env's form
    assert not single
    np.testing.assert_array_equal(stacked, expected)
    encoded, single = encoder.batch(expected)  # vectors deeprl's envs give
    assert not single
    np.testing.assert_array_equal(encoded, expected)
    one, single = as_batch((14, 10, 0), encoder.space)
    assert single
    np.testing.assert_array_equal(one, expected[:1])


@pytest.mark.parametrize(
    ("obs", "message"),
    [
        ({"player": 14}, r"the observation should be a tuple of 3 entries .* not a dict"),
        ((14, 10), r"should be a tuple of 3 entries .* not a tuple of 2 entries"),
        ((40, 10, 0), r"entry \[0\] holds values outside Discrete\(32\)"),
        ((14.5, 10, 0), r"entry \[0\] is not a whole number"),
        ((np.array([14, 20]), np.array([10]), np.array([0, 1])), "not all single values or batches of one size"),
        (
            ([[1, 2]], 10, 0),
            r"entry \[0\] has shape \(1, 2\), but Discrete\(32\) takes shape \(\) \(or a batch of them: \(1,\)\)",
        ),
    ],
)
def test_an_observation_of_the_wrong_structure_is_one_line(obs, message):
    with pytest.raises(DeeprlError, match=message):
        as_batch(obs, ObservationEncoder(BLACKJACK).space)


def test_a_dict_observation_without_an_entry_is_refused():
    space = ObservationEncoder(gym.spaces.Dict({"a": gym.spaces.Discrete(2), "b": gym.spaces.Discrete(2)})).space
    with pytest.raises(DeeprlError, match=r"the observation has no entry 'b'"):
        as_batch({"a": 1}, space)
    with pytest.raises(DeeprlError, match=r"the observation should be a dict .* not a str"):
        as_batch("a", space)


@pytest.mark.parametrize(
    "space",
    [gym.spaces.Sequence(gym.spaces.Discrete(3)), gym.spaces.Graph(gym.spaces.Discrete(2), None)],
    ids=["Sequence", "Graph"],
)
def test_a_space_nothing_encodes_is_refused_naming_its_entry(space):
    with pytest.raises(DeeprlError, match=rf"entry \['inner'\] is a {type(space).__name__} space, which deeprl cannot"):
        ObservationEncoder(gym.spaces.Dict({"inner": space, "other": gym.spaces.Discrete(2)}))


def test_text_is_ignored_with_one_warning_however_many_copies(capsys, monkeypatch):
    monkeypatch.setattr(observations, "_warned", set())  # as in a fresh process
    env = make_env("tests.custom_envs:DictCorridor")
    make_env("tests.custom_envs:DictCorridor")
    warnings = capsys.readouterr().err.splitlines()
    assert warnings == [
        "deeprl: warning: observation entry ['label'] is text, which deeprl's networks do not read: ignored"
    ]
    obs, _ = env.reset(seed=0)
    # cue side (Discrete 2 + MultiBinary 2), then position (Discrete 5); the label adds nothing
    goal = env.unwrapped.goal
    np.testing.assert_array_equal(obs, one_hot(goal, 2) + one_hot(goal, 2) + one_hot(2, 5))


def test_an_action_mask_entry_goes_to_info_not_to_the_features():
    env = make_env("tests.custom_envs:MaskedDictCorridor")
    assert env.observation_space.shape == make_env("tests.custom_envs:DictCorridor").observation_space.shape
    obs, info = env.reset(seed=0)
    np.testing.assert_array_equal(info["action_mask"], [1, 1])
    obs, _, _, _, info = env.step(0)  # to cell 1, where moving left is masked
    np.testing.assert_array_equal(info["action_mask"], [0, 1])
    assert obs.shape == (9,)


@pytest.mark.parametrize(
    ("algo", "settings"),
    [("ppo", {"n_steps": 64, "batch_size": 32, "n_epochs": 2}), ("dqn", {"learning_starts": 100, "batch_size": 32})],
)
def test_an_action_mask_entry_masks_training_and_evaluation(algo, settings, tmp_path, monkeypatch):
    """The mask a Dict observation carries reaches the learner through info: moving left from cell 1, masked there,
    is never taken, in training (exploring) or in sampled evaluation; without the mask the same run takes it."""
    monkeypatch.setattr(DictCorridor, "left_from_second_cell", 0)
    monkeypatch.setattr(MaskedDictCorridor, "left_from_second_cell", 0)
    run = {"seed": 0, "steps": 600, "eval_every": 300, "eval_episodes": 2, "final_eval_episodes": 2, **settings}
    masked = "tests.custom_envs:MaskedDictCorridor"
    agent = deeprl.train(algo, masked, run_dir=tmp_path / "masked", progress=False, **run)
    deeprl.evaluate(agent, masked, episodes=50, deterministic=False)
    assert MaskedDictCorridor.left_from_second_cell == 0
    deeprl.train(algo, "tests.custom_envs:DictCorridor", run_dir=tmp_path / "unmasked", progress=False, **run)
    assert DictCorridor.left_from_second_cell > 0


SPACES = [
    gym.spaces.Discrete(3, start=-1),
    gym.spaces.Box(-1.0, 2.0, shape=(2, 3), dtype=np.float32),
    gym.spaces.MultiDiscrete([[2, 3], [4, 5]], start=[[0, 1], [-1, 0]]),
    gym.spaces.MultiBinary([2, 3]),
    gym.spaces.Text(5, min_length=2, charset="abc"),
    BLACKJACK,
    gym.spaces.Dict(
        OrderedDict(
            [
                ("z", gym.spaces.Tuple((gym.spaces.Discrete(2), gym.spaces.MultiBinary(4)))),
                ("a", gym.spaces.Dict({"deep": gym.spaces.Box(0, 255, shape=(3, 3), dtype=np.uint8)})),
            ]
        )
    ),
]


@pytest.mark.parametrize("space", SPACES, ids=lambda space: type(space).__name__)
def test_every_space_round_trips_through_json(space):
    restored = space_from_dict(json.loads(json.dumps(space_to_dict(space))))
    assert restored == space
    assert type(restored) is type(space)
    assert repr(restored) == repr(space)  # Dict key order and dtypes included


def test_an_encoded_space_is_recorded_as_the_env_space_it_encodes():
    space = ObservationEncoder(SPACES[-1]).space
    data = json.loads(json.dumps(space_to_dict(space)))
    assert data["type"] == "Encoded" and data["source"] == space_to_dict(SPACES[-1])
    restored = space_from_dict(data)
    assert isinstance(restored, EncodedSpace)
    assert restored == space and restored.source == space.source


def test_minigrid_mission_is_recorded_as_text():
    env = make_env("MiniGrid-Empty-5x5-v0")
    restored = space_from_dict(json.loads(json.dumps(space_to_dict(env.observation_space))))
    assert isinstance(restored.source["mission"], gym.spaces.Text)
    assert restored.shape == env.observation_space.shape == (4 + 7 * 7 * 3,)


DISCRETE_TINY = {"seed": 0, "steps": 400, "eval_every": 200, "eval_episodes": 2, "final_eval_episodes": 4}
BOX_TINY = {**DISCRETE_TINY, "learning_starts": 100, "batch_size": 32}
SETTINGS = {
    "dqn": {**DISCRETE_TINY, "learning_starts": 100, "batch_size": 32},
    "ppo": {**DISCRETE_TINY, "n_steps": 64, "batch_size": 32, "n_epochs": 2},
    "a2c": DISCRETE_TINY,
    "reinforce": DISCRETE_TINY,
    "actor-critic": DISCRETE_TINY,
    "ddpg": BOX_TINY,
    "td3": BOX_TINY,
    "sac": BOX_TINY,
}


@pytest.mark.parametrize("algo", list(SETTINGS))
def test_every_algorithm_trains_on_a_dict_env_and_its_agent_takes_raw_dicts(algo, tmp_path):
    env_id = "tests.custom_envs:DictReach" if algo in ("ddpg", "td3", "sac") else "tests.custom_envs:DictCorridor"
    deeprl.train(algo, env_id, run_dir=tmp_path / "run", progress=False, **SETTINGS[algo])
    agent = deeprl.load(tmp_path / "run")
    raw_env = make_env(env_id).unwrapped  # the env's own dict observations
    raw, _ = raw_env.reset(seed=3)
    encoded = ObservationEncoder(raw_env.observation_space).encode(raw)
    action = agent.act(raw)
    assert raw_env.action_space.contains(action)
    np.testing.assert_array_equal(action, agent.act(encoded))
    batch = agent.act([raw, raw])  # a list of dicts is a batch
    np.testing.assert_array_equal(batch, [action, action])
    stacked = {key: np.stack([value, value]) for key, value in raw.items() if key != "cue"}
    if "cue" in raw:
        goal, side = raw["cue"]["side"]
        stacked["cue"] = {"side": (np.array([goal, goal]), np.stack([side, side]))}
        stacked["label"] = ["corridor", "corridor"]
    np.testing.assert_array_equal(agent.act(stacked), [action, action])  # Gymnasium's vector form
    assert len(deeprl.evaluate(agent, episodes=3).returns) == 3


@pytest.mark.parametrize(
    ("env_id", "message"),
    [
        (
            "tests.test_observation_spaces:SequenceObservations",
            "observation entry ['items'] is a Sequence space, which deeprl cannot encode (it reads Box, Discrete, "
            "MultiDiscrete, MultiBinary, Dict, Tuple, nested, and ignores text)",
        ),
    ],
)
def test_cli_refuses_an_observation_it_cannot_encode_in_one_line(env_id, message, tmp_path):
    result = run_deeprl("train", "ppo", env_id, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"deeprl: error: {message}"]
    assert not any(tmp_path.iterdir())


def test_deeprl_list_names_the_observation_spaces_and_the_minigrid_ids(tmp_path):
    listed = run_deeprl("list", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    lines = [line for line in listed.stdout.splitlines() if "observation spaces:" in line]
    assert sorted(line.split()[0] for line in lines) == sorted(SETTINGS)  # every algorithm
    assert all("(observation spaces: Box, Discrete, MultiDiscrete, MultiBinary, Dict, Tuple;" in line for line in lines)
    envs = run_deeprl("list", "--envs", cwd=tmp_path)  # a fresh process: MiniGrid registers on request
    assert {"MiniGrid-Empty-8x8-v0", "MiniGrid-DoorKey-5x5-v0", "Blackjack-v1"} <= set(envs.stdout.splitlines())


class SequenceObservations(gym.Env):
    """A Dict observation holding a variable-length Sequence, which no network input fits."""

    def __init__(self) -> None:
        items = gym.spaces.Sequence(gym.spaces.Discrete(3))
        self.observation_space = gym.spaces.Dict({"items": items, "count": gym.spaces.Discrete(4)})
        self.action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        return {"items": (1, 2), "count": 2}, {}

    def step(self, action):
        return {"items": (1,), "count": 1}, 0.0, True, False, {}


@pytest.mark.learning
def test_ppo_learns_blackjack_far_beyond_random(tmp_path):
    """Blackjack-v1's Tuple observations with the PPO preset at a third of its budget: a random policy loses about
    0.40 a hand, the basic strategy 0.047; this run: 0.104 over these 2000 hands."""
    agent = deeprl.train("ppo", "Blackjack-v1", seed=0, steps=30_000, run_dir=tmp_path / "run", progress=False)
    result = deeprl.evaluate(agent, "Blackjack-v1", episodes=2000, seed=7)
    assert result.mean > -0.15
    # the same hands from envs that give the agent Blackjack's own tuples, not deeprl's encoded vectors
    raw = deeprl.evaluate(agent, lambda: gym.make("Blackjack-v1"), episodes=2000, seed=7)
    np.testing.assert_array_equal(raw.returns, result.returns)


MINIGRID = "MiniGrid-Empty-5x5-v0"
MINIGRID_RUN = [
    "--seed",
    "0",
    "--steps",
    "1536",
    "--quiet",
    "--set",
    "n_envs=2",
    "--set",
    "n_steps=64",
    "--set",
    "batch_size=32",
    "--set",
    "n_epochs=2",
    "--set",
    "normalize_observations=true",
    "--set",
    "checkpoint_every=384",
    "--set",
    "eval_every=768",
    "--set",
    "eval_episodes=2",
    "--set",
    "final_eval_episodes=2",
    "--set",
    "tensorboard=true",
]


@pytest.mark.resume
def test_ppo_on_a_dict_env_resumes_exactly_after_sigkill(tmp_path, uninterrupted):
    """MiniGrid's Dict observations, normalised after encoding: a run killed with rows past its checkpoint resumes
    to the uninterrupted run's metrics, weights, eval.json and TensorBoard scalars."""
    kill_and_resume(
        tmp_path,
        uninterrupted("ppo", MINIGRID, MINIGRID_RUN),
        MINIGRID_RUN,
        768,
        algo="ppo",
        env=MINIGRID,
        tags=("train/return", "update/policy_loss", "update/value_loss", "eval/return"),
    )
    run_dir = tmp_path / "run"
    evaluated = run_deeprl("eval", run_dir, "--episodes", "3", cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    assert evaluated.stdout.startswith(f"{MINIGRID}: mean return ")
    mission_ignored = (
        "deeprl: warning: observation entry ['mission'] is text, which deeprl's networks do not read: ignored"
    )
    assert evaluated.stderr.splitlines() == [mission_ignored]
    watched = run_deeprl("watch", run_dir, "--video", "episode.gif", cwd=tmp_path)
    assert watched.returncode == 0, watched.stderr
    assert (tmp_path / "episode.gif").read_bytes()[:6] == b"GIF89a"


GEAR_AND_POSITION = gym.spaces.Dict(
    {"gear": gym.spaces.Discrete(3), "position": gym.spaces.Box(-5.0, 5.0, shape=(2,), dtype=np.float32)}
)
PICTURE_36 = gym.spaces.Box(0, 255, shape=(36, 36, 3), dtype=np.uint8)
POSITIONS = np.array([[1.0, 4.0], [3.0, 0.0], [5.0, 2.0]], dtype=np.float32)


def statistics_of_three(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of three samples merged into RunningMeanStd's prior (mean 0, variance 1, weight 1e-4)."""
    prior, count = 1e-4, 3 + 1e-4
    mean = values.mean(axis=0) * 3 / count
    var = (prior * 1.0 + 3 * values.var(axis=0) + values.mean(axis=0) ** 2 * prior * 3 / count) / count
    return mean, var


def gear_observations(gears: list[int], images: np.ndarray | None = None) -> list[dict]:
    return [
        {"gear": gear, "position": position, **({} if images is None else {"image": image})}
        for gear, position, image in zip(gears, POSITIONS, images if images is not None else [None] * 3)
    ]


def test_normalisation_of_a_dict_standardises_its_box_entries_and_leaves_one_hots_as_they_are():
    encoder = ObservationEncoder(GEAR_AND_POSITION)  # gear's one-hot of 3 in columns 0-2, position in 3-4
    assert encoder.box_columns == [(3, 5)]
    normalizer = ObservationNormalizer.for_space(encoder.space)
    batch, _ = encoder.batch(gear_observations([0, 2, 2]))
    normalizer.update(batch)
    # positions [1, 4], [3, 0], [5, 2]: mean [3, 2], variance [8/3, 8/3] (the prior moves them by 1e-4)
    mean, var = statistics_of_three(POSITIONS.astype(np.float64))
    np.testing.assert_allclose(normalizer.stats.mean, mean, rtol=1e-12)
    np.testing.assert_allclose(normalizer.stats.var, var, rtol=1e-12)
    np.testing.assert_allclose(mean, [3.0, 2.0], rtol=1e-4)
    np.testing.assert_allclose(var, [8 / 3, 8 / 3], rtol=1e-4)
    normalized = normalizer(batch)
    assert normalized.dtype == np.float32
    np.testing.assert_array_equal(normalized[:, :3], [one_hot(0, 3), one_hot(2, 3), one_hot(2, 3)])  # as they were
    np.testing.assert_allclose(normalized[:, 3:], (POSITIONS - mean) / np.sqrt(var + 1e-8), rtol=1e-6)
    # statistics saved before only Box entries were standardised are of every column, and are applied so
    legacy = ObservationNormalizer.from_state_dict({"mean": [0.5] * 5, "var": [0.25] * 5, "count": 3.0, "clip": 10.0})
    np.testing.assert_allclose(legacy(batch)[0], [1.0, -1.0, -1.0, 1.0, 7.0], rtol=1e-6)
    resumed = ObservationNormalizer.for_space(encoder.space)  # a run resumed from such a checkpoint goes on so
    resumed.load_state_dict(legacy.state_dict())
    np.testing.assert_array_equal(resumed(batch), legacy(batch))


def test_normalisation_of_a_dict_with_a_picture_standardises_the_vector_bytes_only():
    space = gym.spaces.Dict({**GEAR_AND_POSITION.spaces, "image": PICTURE_36})
    encoder = ObservationEncoder(space)  # bytes: gear's 3 and position's 2 float32 values (20 bytes), then pixels
    images = np.random.default_rng(0).integers(0, 256, size=(3, 36, 36, 3), dtype=np.uint8)
    batch, _ = encoder.batch(gear_observations([1, 0, 2], images))
    normalizer = ObservationNormalizer.for_space(encoder.space)
    normalizer.update(batch)
    mean, var = statistics_of_three(POSITIONS.astype(np.float64))
    np.testing.assert_allclose(normalizer.stats.mean, mean, rtol=1e-12)  # of the positions alone
    np.testing.assert_allclose(normalizer.stats.var, var, rtol=1e-12)
    normalized = normalizer(batch)
    assert normalized.dtype == np.uint8 and normalized.shape == batch.shape == (3, 20 + 36 * 36 * 3)
    assert normalized[:, 20:].tobytes() == images.tobytes()  # the pictures' bytes untouched, for the CNN
    vectors = normalized[:, :20].copy().view(np.float32)
    np.testing.assert_array_equal(vectors[:, :3], [one_hot(1, 3), one_hot(0, 3), one_hot(2, 3)])
    np.testing.assert_allclose(vectors[:, 3:], (POSITIONS - mean) / np.sqrt(var + 1e-8), rtol=1e-6)
    np.testing.assert_array_equal(batch[:, :20].copy().view(np.float32)[:, 3:], POSITIONS)  # the input kept


@pytest.mark.parametrize("algo", ["ppo", "a2c"])
def test_normalisation_without_a_box_entry_is_refused(algo, tmp_path):
    message = (
        "normalize_observations standardises the Box entries of an observation, but Blackjack-v1 gives "
        "Tuple(Discrete(32), Discrete(11), Discrete(2)), which holds none (one-hot and 0/1 entries are read as they "
        "are, pictures for the CNN are scaled to [0, 1] by it): drop normalize_observations"
    )
    with pytest.raises(DeeprlError) as refused:  # the command line prints it as one line (docs/reliability.md)
        deeprl.train(algo, "Blackjack-v1", run_dir=tmp_path / "run", normalize_observations=True, max_episode_steps=100)
    assert str(refused.value) == message
    assert not (tmp_path / "run").exists()


def test_dqn_conv_settings_on_a_dict_with_a_picture_are_refused_in_one_line(tmp_path):
    message = (
        "conv_channels sets the CNN of a whole-observation picture, but tests.custom_envs:PictureAndPosition gives "
        "Dict('image': Box(0, 255, (36, 36, 3), uint8), 'position': Box(-1.0, 1.0, (2,), float32)), which deeprl's "
        "encoder reads (a Nature CNN for each picture of 36x36 or more inside it, the rest as a vector): drop "
        "conv_channels (conv_channels=[])"
    )
    with pytest.raises(DeeprlError) as refused:
        deeprl.train("dqn", "tests.custom_envs:PictureAndPosition", run_dir=tmp_path / "run", conv_channels=(16, 32))
    assert str(refused.value) == message
    assert not (tmp_path / "run").exists()


PICTURE_ENV = "tests.custom_envs:PictureAndPosition"
NORMALIZED_PICTURE_RUNS = {
    "ppo": {"steps": 128, "n_steps": 64, "batch_size": 32, "n_epochs": 1},
    "recurrent ppo": {"steps": 128, "n_steps": 64, "batch_size": 32, "n_epochs": 1, "recurrent": "lstm"},
    "a2c": {"steps": 80, "n_envs": 2, "n_steps": 8},
}


@pytest.mark.parametrize("name", list(NORMALIZED_PICTURE_RUNS))
def test_a_loaded_agent_normalises_the_vector_of_a_dict_with_a_picture(name, tmp_path, monkeypatch):
    """Trained with normalize_observations on a Dict of a 36x36 picture and a position: the rollout stores rows of
    bytes, and the loaded agent gives its CNNs the env's own picture bytes beside the position standardised with
    the statistics its policy file holds."""
    stored = []
    add = onpolicy.RolloutBuffer.add
    monkeypatch.setattr(
        onpolicy.RolloutBuffer, "add", lambda self, obs, *rest: stored.append(obs) or add(self, obs, *rest)
    )
    settings = {"seed": 0, "hidden_sizes": (16,), "eval_every": 10_000, "eval_episodes": 1, "final_eval_episodes": 1}
    algo = name.split()[-1]
    deeprl.train(
        algo,
        PICTURE_ENV,
        run_dir=tmp_path / "run",
        normalize_observations=True,
        progress=False,
        **settings,
        **NORMALIZED_PICTURE_RUNS[name],
    )
    assert stored and all(obs.dtype == np.uint8 and obs.shape[1:] == (8 + 36 * 36 * 3,) for obs in stored)
    _, meta, _ = read_policy_file(tmp_path / "run" / FINAL_POLICY)
    statistics = meta["obs_normalization"]
    assert statistics["columns"] == [[0, 2]] and statistics["vector_size"] == 2
    mean, var = np.array(statistics["mean"]), np.array(statistics["var"])
    assert np.all(np.abs(mean) > 0.01)  # the statistics moved: standardising is not the identity

    agent = deeprl.load(tmp_path / "run" / FINAL_POLICY)
    encoder = next(module for module in agent.policy.modules() if isinstance(module, MultiInputEncoder))
    seen = []
    encoder.register_forward_pre_hook(lambda _, inputs: seen.append(inputs[0].numpy().copy()))
    raw, _ = PictureAndPosition().reset(seed=4)
    action = agent.act(raw)
    assert action in (0, 1)
    row = seen[0][0]
    assert row.dtype == np.uint8 and row[8:].tobytes() == raw["image"].tobytes()
    expected = ((raw["position"] - mean) / np.sqrt(var + 1e-8)).astype(np.float32)
    np.testing.assert_array_equal(row[:8].copy().view(np.float32), expected)


PICTURE_RUN = [*SHORT_PPO_RUN, "--set", "normalize_observations=true"]


@pytest.mark.resume
def test_ppo_normalising_a_dict_with_a_picture_resumes_exactly_after_sigkill(tmp_path, uninterrupted):
    """The position's statistics are part of the checkpoint: a run killed with rows past its checkpoint resumes to
    the uninterrupted run's metrics, weights, eval.json and TensorBoard scalars, and its policy files' statistics."""
    reference = uninterrupted("ppo", PICTURE_ENV, PICTURE_RUN)
    kill_and_resume(
        tmp_path,
        reference,
        PICTURE_RUN,
        256,
        algo="ppo",
        env=PICTURE_ENV,
        tags=("train/return", "update/policy_loss", "update/value_loss", "eval/return"),
    )
    resumed = read_policy_file(tmp_path / "run" / FINAL_POLICY)[1]["obs_normalization"]
    assert resumed == read_policy_file(reference / FINAL_POLICY)[1]["obs_normalization"]
    assert resumed["count"] == pytest.approx(768 + 2)  # every observation acted on, the two first ones too
