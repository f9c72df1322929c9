"""Dict and Tuple observations holding a picture the CNN takes (uint8, 0..255, 36x36 or more) beside other entries:
each observation is packed as one row of bytes (the float32 vector of the other entries' values, then each picture's
bytes), which every algorithm stores and replays as bytes, and nets.MultiInputEncoder splits back, bit for bit, into
the vector and each picture for its own Nature CNN. The task (tests/custom_envs.py PictureAndPosition) is PictureSide's
(the lit half of a 36x36 picture names the right action: 10 a perfect return, 5 a blind policy's) beside a
'position' vector that says nothing of the side."""

from __future__ import annotations

import json
from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest
import torch

import deeprl
from deeprl import observations
from deeprl.envs import make_env
from deeprl.errors import DeeprlError
from deeprl.nets import ConvEncoder, MultiInputEncoder, encoder_from, observation_encoder
from deeprl.observations import EncodedSpace, ObservationEncoder, as_batch, observation_dtype
from deeprl.offpolicy import replay_for
from tests.conftest import SHORT_PPO_RUN, kill_and_resume
from tests.custom_envs import PictureAndPosition

ENV, BOX_ENV = "tests.custom_envs:PictureAndPosition", "tests.custom_envs:PictureAndPositionBox"
PICTURE = gym.spaces.Box(0, 255, shape=(36, 36, 3), dtype=np.uint8)
QUICK = {
    "seed": 0,
    "progress": False,
    "eval_every": 10_000,
    "eval_episodes": 2,
    "final_eval_episodes": 2,
    "hidden_sizes": (32,),
}
OFF_POLICY = {"learning_starts": 50, "batch_size": 16, "buffer_size": 1000, "train_freq": 4}


def captured_inputs(module: torch.nn.Module) -> list[torch.Tensor]:
    """What `module` is called with, from now on, one tensor a call."""
    seen: list[torch.Tensor] = []
    module.register_forward_pre_hook(lambda _, inputs: seen.append(inputs[0].clone()))
    return seen


def test_a_dict_with_a_picture_packs_into_bytes_that_the_network_splits_back_exactly():
    space = gym.spaces.Dict(
        {
            "position": gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32),
            "image": PICTURE,
            "gear": gym.spaces.Discrete(3),
        }
    )
    encoder = ObservationEncoder(space)
    image = np.random.default_rng(0).integers(0, 256, size=(36, 36, 3), dtype=np.uint8)
    position = np.array([0.1, -1.0 / 3.0], dtype=np.float32)  # neither holds in fewer bits than float32's
    packed = encoder.encode({"position": position, "image": image, "gear": 1})
    # keys in order: gear (one-hot of 3), image (the CNN's), position (2 floats): 5 floats = 20 bytes, then the pixels
    vector = np.array([0.0, 1.0, 0.0, 0.1, -1.0 / 3.0], dtype=np.float32)
    assert packed.dtype == np.uint8 and packed.shape == (20 + 36 * 36 * 3,)
    assert packed[:20].tobytes() == vector.tobytes() and packed[20:].tobytes() == image.tobytes()
    assert isinstance(encoder.space, EncodedSpace) and encoder.space.dtype == np.uint8
    assert observation_dtype(encoder.space) == np.uint8  # stored as bytes by every algorithm
    description = observation_encoder(encoder.space)
    assert json.loads(json.dumps(description)) == description  # a policy file rebuilds the network from it
    assert description["vector_size"] == 5 and [picture["offset"] for picture in description["pictures"]] == [20]
    network = encoder_from(description)
    assert isinstance(network, MultiInputEncoder) and network.out_dim == 5 + 512
    pictures_seen = captured_inputs(network.cnns[0])
    batch = torch.from_numpy(np.stack([packed, packed]))
    features = network(batch)
    assert torch.equal(pictures_seen[0], torch.from_numpy(np.stack([image, image])))  # HWC, as the env gave it
    assert torch.equal(features[:, :5], torch.from_numpy(np.stack([vector, vector])))  # bit for bit
    # callers that cast the bytes to float (DDPG's replay batches, SAC's actor) get the same features
    assert torch.equal(network(batch.float()), features)


def test_a_tuple_of_pictures_in_both_layouts_gives_each_its_own_cnn():
    chw = gym.spaces.Box(0, 255, shape=(2, 40, 48), dtype=np.uint8)
    gray = gym.spaces.Box(0, 255, shape=(36, 36), dtype=np.uint8)
    small = gym.spaces.Box(0, 255, shape=(2, 2, 1), dtype=np.uint8)  # smaller than the CNN takes: flattened
    encoder = ObservationEncoder(gym.spaces.Tuple((chw, gym.spaces.Discrete(2), gray, small)))
    pictures = [np.full(chw.shape, 7, np.uint8), np.arange(36 * 36, dtype=np.uint32).reshape(36, 36).astype(np.uint8)]
    tiny = np.array([[[1], [2]], [[3], [255]]], dtype=np.uint8)
    packed = encoder.encode((pictures[0], 1, pictures[1], tiny))
    vector = np.array([0, 1, 1, 2, 3, 255], dtype=np.float32)  # the one-hot, then the small picture's values
    assert packed.shape == (24 + 2 * 40 * 48 + 36 * 36,) and packed[:24].tobytes() == vector.tobytes()
    description = observation_encoder(encoder.space)
    assert [picture["encoder"]["layout"] for picture in description["pictures"]] == ["CHW", "HW"]
    assert [picture["offset"] for picture in description["pictures"]] == [24, 24 + 2 * 40 * 48]
    network = encoder_from(description)
    seen = [captured_inputs(cnn) for cnn in network.cnns]
    features = network(torch.from_numpy(packed[None]))
    for inputs, picture in zip(seen, pictures):
        assert torch.equal(inputs[0], torch.from_numpy(picture[None]))
    assert features.shape == (1, 6 + 512 + 512) and torch.equal(features[0, :6], torch.from_numpy(vector))
    alone = ConvEncoder(**description["pictures"][1]["encoder"])
    alone.load_state_dict(network.cnns[1].state_dict())  # the gray picture's CNN, as if it were the whole observation
    assert torch.equal(features[:, 6 + 512 :], alone(torch.from_numpy(pictures[1][None])))


def test_a_dict_of_a_picture_alone_reads_as_the_picture_would(capsys, monkeypatch):
    monkeypatch.setattr(observations, "_warned", set())  # the text warning comes once a process
    encoder = ObservationEncoder(gym.spaces.Dict({"camera": PICTURE, "note": gym.spaces.Text(8)}))  # text: ignored
    picture = np.random.default_rng(1).integers(0, 256, size=PICTURE.shape, dtype=np.uint8)
    packed = encoder.encode({"camera": picture, "note": "hello"})
    assert packed.tobytes() == picture.tobytes()  # no vector: the picture's bytes alone
    network = encoder_from(observation_encoder(encoder.space))
    alone = ConvEncoder(**observation_encoder(PICTURE))
    alone.load_state_dict(network.cnns[0].state_dict())
    assert torch.equal(network(torch.from_numpy(packed[None])), alone(torch.from_numpy(picture[None])))
    assert "observation entry ['note'] is text" in capsys.readouterr().err


def test_raw_dicts_in_every_batch_form_become_bytes_and_odd_pixels_are_refused():
    env = PictureAndPosition()
    raw, _ = env.reset(seed=0)
    space = ObservationEncoder(env.observation_space).space
    one, single = as_batch(raw, space)
    assert single and one.dtype == np.uint8 and one.shape == (1, 8 + 36 * 36 * 3)
    stacked = {key: np.stack([value, value]) for key, value in raw.items()}
    for batch in ([raw, raw], stacked, np.stack([one[0], one[0]])):
        encoded, single = as_batch(batch, space)
        assert not single and encoded.dtype == np.uint8
        np.testing.assert_array_equal(encoded, np.concatenate([one, one]))
    with pytest.raises(DeeprlError, match=r"observation entry \['image'\] holds values outside Box\(0, 255"):
        as_batch({**raw, "image": raw["image"] * 1.5}, space)


SETTINGS = {
    "dqn": OFF_POLICY,
    "ppo": {"n_steps": 64, "batch_size": 32, "n_epochs": 2},
    "a2c": {"n_envs": 2},
    "reinforce": {},
    "actor-critic": {"critic": "advantage"},  # its Q head reads the actor's encoder
    "ddpg": OFF_POLICY,
    "td3": OFF_POLICY,
    "sac": OFF_POLICY,
}


@pytest.mark.parametrize("algo", list(SETTINGS))
def test_every_algorithm_trains_on_a_dict_with_a_picture_and_its_loaded_agent_takes_raw_dicts(algo, tmp_path):
    env_id = BOX_ENV if algo in ("ddpg", "td3", "sac") else ENV
    agent = deeprl.train(algo, env_id, steps=200, run_dir=tmp_path / "run", **QUICK, **SETTINGS[algo])
    assert np.isfinite(agent.summary["final"]["mean_return"])
    loaded = deeprl.load(tmp_path / "run")
    assert isinstance(loaded.observation_space, EncodedSpace) and loaded.observation_space.dtype == np.uint8
    raw_env = make_env(env_id).unwrapped  # the env's own dict observations
    raws = [raw_env.reset(seed=seed)[0] for seed in (1, 2, 3)]
    actions = loaded.act(raws)
    assert len(actions) == 3 and raw_env.action_space.contains(loaded.act(raws[0]))
    np.testing.assert_array_equal(actions, agent.act(raws))  # the policy file rebuilt the CNN and its weights
    packed = ObservationEncoder(raw_env.observation_space).batch(raws)[0]
    np.testing.assert_array_equal(loaded.act(packed), actions)  # deeprl's envs give the bytes


@pytest.mark.learning
def test_ppo_reads_the_picture_beside_the_vector(tmp_path):
    agent = deeprl.train(
        "ppo",
        ENV,
        steps=1536,
        run_dir=tmp_path / "run",
        n_steps=128,
        n_envs=2,
        batch_size=64,
        n_epochs=4,
        **{**QUICK, "final_eval_episodes": 10},
    )
    assert agent.network["encoder"]["pictures"][0]["encoder"]["layout"] == "HWC" and agent.numpy_policy is None
    assert agent.summary["final"]["mean_return"] == 10.0  # every side named in 10 fresh episodes; blind: 5


def test_replay_stores_a_transition_of_the_test_env_in_bytes():
    space = ObservationEncoder(PictureAndPosition().observation_space).space
    replay = replay_for(SimpleNamespace(buffer_size=100), space, gym.spaces.Discrete(2))
    per_transition = sum(getattr(replay, name).nbytes for name in replay.arrays) / replay.capacity
    # the observation once (the next one is the next slot's): 2 floats (8 bytes) + 36*36*3 pixels; an int64
    # action, a float32 reward, 2 flags
    assert replay.obs.dtype == np.uint8 and replay.shared_next_obs
    assert per_transition == (8 + 3888) + 8 + 4 + 1 + 1 == 3910
    # the same pictures as float32 vectors, stored with their next observations, would take 2 * 4 * (2 + 3888) + 14


RUN = SHORT_PPO_RUN


@pytest.mark.resume
def test_ppo_on_a_dict_with_a_picture_resumes_exactly_after_sigkill(tmp_path, uninterrupted):
    kill_and_resume(
        tmp_path,
        uninterrupted("ppo", ENV, RUN),
        RUN,
        256,
        algo="ppo",
        env=ENV,
        tags=("train/return", "update/policy_loss", "update/value_loss", "eval/return"),
    )
