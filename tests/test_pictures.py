"""Picture observations (uint8 Boxes in 0..255, channels last or first) train through a CNN with every algorithm that
takes Box observations: the layout is found once and transposed inside the network, pixels are scaled to [0, 1]
there, storage keeps bytes, a loaded agent acts on the env's own pictures, and a killed picture run resumes exactly.
The task (tests/custom_envs.py PictureSide) shows which half of a 36x36 picture is lit; naming it earns 1 a step, so
a return of 10 is perfect and 5 is what a blind policy scores."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import deeprl
from deeprl.algos import dqn
from deeprl.errors import DeeprlError
from deeprl.nets import NATURE_CNN, ConvEncoder, observation_encoder, smallest_picture
from tests.conftest import kill_and_resume, run_deeprl
from tests.custom_envs import PictureSide
from tests.test_reliability import assert_one_line_error

HWC, CHW, BOX = "tests.custom_envs:PictureSide", "tests.custom_envs:PictureSideCHW", "tests.custom_envs:PictureSideBox"
QUICK = {
    "seed": 0,
    "progress": False,
    "eval_every": 10_000,
    "eval_episodes": 2,
    "final_eval_episodes": 2,
    "hidden_sizes": (32,),
}
OFF_POLICY = {"learning_starts": 50, "batch_size": 16, "buffer_size": 1000, "train_freq": 4}


def picture(side: int, layout: str = "HWC") -> np.ndarray:
    env = PictureSide(layout=layout)
    env.side = side
    return env._obs()


@pytest.mark.parametrize(
    ("shape", "dtype", "high", "layout"),
    [
        ((36, 36, 3), np.uint8, 255, "HWC"),
        ((3, 36, 36), np.uint8, 255, "CHW"),
        ((4, 84, 84), np.uint8, 255, "CHW"),  # four stacked frames
        ((84, 84, 4), np.uint8, 255, "HWC"),
        ((40, 40), np.uint8, 255, "HW"),
        ((3, 36, 36), np.float32, 1.0, None),  # not bytes: read flattened, as every vector
        ((36, 36, 3), np.uint8, 1, None),  # bytes, but not pixels in 0..255
        ((4,), np.uint8, 255, None),
    ],
)
def test_pictures_are_found_by_dtype_bounds_and_rank_and_their_channels_once(shape, dtype, high, layout):
    description = observation_encoder(gym.spaces.Box(0, high, shape=shape, dtype=dtype))
    if layout is None:
        assert description is None
    else:
        assert description["layout"] == layout and description["in_shape"] == list(shape)
        assert description["scale_bytes"] and description["features"] == 512


def test_channels_last_and_first_give_the_network_the_same_input():
    """The same state as HWC and as CHW: the first convolution sees the same [0, 1] CHW tensor, so the same weights
    give the same features."""
    encoders, inputs, outputs = [], [], []
    for layout in ("HWC", "CHW"):
        torch.manual_seed(0)
        encoder = ConvEncoder(**observation_encoder(PictureSide(layout=layout).observation_space))
        encoder.layers[0].register_forward_pre_hook(lambda module, args: inputs.append(args[0]))
        batch = torch.from_numpy(np.stack([picture(0, layout), picture(1, layout)]))
        assert batch.dtype == torch.uint8
        outputs.append(encoder(batch))
        encoders.append(encoder)
    assert encoders[0].layers[0].in_channels == 3 and encoders[0].out_dim == 512
    assert all(torch.equal(a, b) for a, b in zip(encoders[0].state_dict().values(), encoders[1].state_dict().values()))
    expected = torch.from_numpy(np.stack([picture(0, "CHW"), picture(1, "CHW")])).float() / 255
    assert inputs[0].shape == (2, 3, 36, 36) and torch.equal(inputs[0], expected) and torch.equal(inputs[1], expected)
    torch.testing.assert_close(outputs[0], outputs[1])


def test_dqn_conv_settings_read_the_channels_of_a_channels_last_picture():
    config = dqn.Config(env=HWC, conv_channels=(8, 16), conv_kernels=(3, 3), conv_strides=(2, 2), batch_norm=False)
    description = dqn.image_encoder(config, PictureSide().observation_space)
    assert description["layout"] == "HWC" and description["features"] is None
    assert ConvEncoder(**description).layers[0].in_channels == 3


@pytest.fixture(scope="module")
def dqn_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("dqn") / "run"
    settings = {**QUICK, **OFF_POLICY, "train_freq": 2, "final_eval_episodes": 10}
    agent = deeprl.train(
        "dqn", HWC, steps=400, run_dir=run_dir, epsilon_decay_steps=250, target_update_interval=100, **settings
    )
    return agent


def final_return(agent) -> float:
    return agent.summary["final"]["mean_return"]


@pytest.mark.learning
def test_dqn_learns_from_channels_last_pictures(dqn_run):
    assert dqn_run.network["encoder"]["layout"] == "HWC" and dqn_run.numpy_q_values is None  # torch acts for a CNN
    assert final_return(dqn_run) == 10.0  # every side named in 10 fresh episodes; a blind policy averages 5


@pytest.mark.learning
def test_ppo_learns_from_channels_first_pictures(tmp_path):
    agent = deeprl.train(
        "ppo",
        CHW,
        steps=1536,
        run_dir=tmp_path / "run",
        n_steps=128,
        n_envs=2,
        batch_size=64,
        n_epochs=4,
        **{**QUICK, "final_eval_episodes": 10},
    )
    assert agent.network["encoder"]["layout"] == "CHW" and agent.numpy_policy is None  # torch acts for a CNN
    assert final_return(agent) == 10.0


def test_a_cnn_policy_scores_each_action_as_it_acts_and_ppo_uses_those_scores():
    """A CNN acts in torch: the forward pass that draws an action also gives its log-probability and the value, so
    the rollout holds them (`scored`) and PPO does not run the CNN over the rollout a second time. They are what
    scoring the stored actions afterwards gives, up to the rounding of another batch size. A vector policy acts
    in NumPy and leaves the scoring to the update."""
    from deeprl.algos import ppo
    from deeprl.algos.ppo import score_rollout
    from deeprl.buffers import RolloutBuffer
    from deeprl.nets import ActorCritic
    from deeprl.onpolicy import UpdateContext
    from deeprl.policies import PolicyAgent

    torch.manual_seed(0)
    space, action_space = gym.spaces.Box(0, 255, (36, 36, 3), np.uint8), gym.spaces.Discrete(3)
    network = {
        "obs_dim": 36 * 36 * 3,
        "action": {"type": "Discrete", "n": 3},
        "hidden_sizes": [16],
        "encoder": observation_encoder(space),
    }
    agent = PolicyAgent(ActorCritic(**network), space, action_space, network)
    rollout = RolloutBuffer(4, 2, space.shape, np.uint8)
    rng = np.random.default_rng(0)
    for _ in range(4):
        obs = rng.integers(0, 256, (2, *space.shape), dtype=np.uint8)
        actions, log_probs, values = agent.scored_raw_act(obs, False, rng)
        assert log_probs.shape == values.shape == (2,)
        rollout.add(
            obs, actions, np.zeros(2), np.zeros(2, bool), np.zeros(2, bool), np.zeros(2), None, log_probs, values
        )
    assert rollout.scored
    acted = rollout.log_probs.copy(), rollout.values.copy()
    score_rollout(agent.policy, rollout, torch.device("cpu"))
    np.testing.assert_allclose(rollout.log_probs, acted[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(rollout.values, acted[1], rtol=1e-5, atol=1e-6)
    # the update reads the scores the rollout holds: values it did not compute stay as they were
    rollout.values[...] = 7.0
    config = ppo.Config(env="pictures", n_steps=4, n_envs=2, batch_size=8, n_epochs=1)
    optimizer = torch.optim.Adam(agent.policy.parameters())
    context = UpdateContext(config, agent.policy, optimizer, np.random.default_rng(0), torch.device("cpu"))
    ppo.update(context, [rollout], [np.zeros(2, np.float32)], 0.0, 8)
    assert (rollout.values == 7.0).all()

    vector_space = gym.spaces.Box(-1, 1, (4,), np.float32)
    vector_network = {"obs_dim": 4, "action": {"type": "Discrete", "n": 3}, "hidden_sizes": [16]}
    vector_agent = PolicyAgent(ActorCritic(**vector_network), vector_space, action_space, vector_network)
    _, log_probs, values = vector_agent.scored_raw_act(np.zeros((2, 4), np.float32), False, rng)
    assert log_probs is None and values is None
    rollout.reset()
    rollout.add(obs, actions, np.zeros(2), np.zeros(2, bool), np.zeros(2, bool), np.zeros(2))
    assert not rollout.scored  # the update scores it


@pytest.mark.parametrize(
    ("algo", "env", "settings"),
    [
        ("a2c", HWC, {"n_envs": 2}),
        ("reinforce", CHW, {}),
        ("actor-critic", HWC, {"critic": "advantage"}),  # its Q head reads the actor's CNN
        ("ddpg", BOX, OFF_POLICY),
        ("td3", BOX, OFF_POLICY),
        ("sac", BOX, OFF_POLICY),
    ],
)
def test_every_box_observation_algorithm_trains_on_pictures(tmp_path, algo, env, settings):
    agent = deeprl.train(algo, env, steps=200, run_dir=tmp_path / "run", **QUICK, **settings)
    loaded = deeprl.load(tmp_path / "run" / "policy.pt")
    batch = np.stack([picture(side, "HWC" if env != CHW else "CHW") for side in (0, 1, 1)])
    actions = loaded.act(batch)
    assert len(actions) == 3 and loaded.action_space.contains(loaded.act(batch[0]))
    np.testing.assert_array_equal(actions, agent.act(batch))  # the policy file rebuilt the CNN and its weights
    assert np.isfinite(final_return(agent))


@pytest.mark.learning  # on the learnt run
def test_a_loaded_agent_acts_on_the_envs_own_pictures(dqn_run):
    agent = deeprl.load(dqn_run.run_dir / "policy.pt")
    assert agent.act(picture(0)) == 0 and agent.act(picture(1)) == 1
    np.testing.assert_array_equal(agent.act(np.stack([picture(1), picture(0), picture(1)])), [1, 0, 1])


def test_a_picture_smaller_than_the_cnn_takes_is_refused_in_one_line(tmp_path):
    # each layer's input spans its kernel: 3 for the last, (3 - 1) * 2 + 4 = 8 before it, (8 - 1) * 4 + 8 = 36 first
    assert smallest_picture(NATURE_CNN["kernels"], NATURE_CNN["strides"]) == 36
    result = run_deeprl("train", "dqn", "tests.custom_envs:TinyPicture", "--run-dir", "run", "--quiet", cwd=tmp_path)
    assert assert_one_line_error(result) == (
        "deeprl: error: observations of shape (20, 20, 3) are 20x20 pictures (HWC), smaller than the CNN takes "
        "(kernels [8, 4, 3], strides [4, 2, 1]: at least 36x36); enlarge them, e.g. with "
        "gymnasium.wrappers.ResizeObservation"
    )
    assert not (tmp_path / "run").exists()
    for algo in ("ppo", "reinforce", "actor-critic", "sac"):
        env = "tests.custom_envs:TinyPicture" if algo != "sac" else BOX
        settings = {"env_kwargs": {"size": 20}} if algo == "sac" else {}
        with pytest.raises(DeeprlError, match="at least 36x36"):
            deeprl.train(algo, env, run_dir=tmp_path / algo, progress=False, **settings)
        assert not (tmp_path / algo).exists()


def test_observation_normalisation_of_pictures_is_refused(tmp_path):
    result = run_deeprl("train", "ppo", HWC, "--run-dir", "run", "--set", "normalize_observations=true", cwd=tmp_path)
    assert assert_one_line_error(result) == (
        "deeprl: error: normalize_observations standardises observation vectors, but tests.custom_envs:PictureSide "
        "gives pictures (36, 36, 3), which the CNN scales to [0, 1] itself: drop normalize_observations"
    )
    assert not (tmp_path / "run").exists()


PICTURE_RUN = [
    "--seed",
    "0",
    "--steps",
    "300",
    "--quiet",
    "--set",
    "hidden_sizes=32",
    "--set",
    "learning_starts=50",
    "--set",
    "batch_size=16",
    "--set",
    "train_freq=4",
    "--set",
    "buffer_size=80",  # full before the kill: resume restores a wrapped-around memory of bytes
    "--set",
    "checkpoint_every=100",
    "--set",
    "eval_every=150",
    "--set",
    "eval_episodes=2",
    "--set",
    "final_eval_episodes=2",
    "--set",
    "tensorboard=true",
]


@pytest.mark.resume
def test_a_killed_picture_run_resumes_identically(tmp_path, uninterrupted):
    kill_and_resume(tmp_path, uninterrupted("dqn", HWC, PICTURE_RUN), PICTURE_RUN, 100, env=HWC)
