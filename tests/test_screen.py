"""CartPole seen through its screen: the NumPy drawing against Gymnasium's own pygame picture, the cart
window, the CartPoleScreen wrapper's two modes, and a small real training run on pictures."""

from __future__ import annotations

import os

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # pygame renders off-screen
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import gymnasium as gym
import numpy as np
import pytest
import torch
import yaml
from PIL import Image

import deeprl
from deeprl.envs import make_env
from deeprl.envs.screen import CartPoleScreen, cart_window, draw_cartpole
from deeprl.errors import DeeprlError

# (cart x, pole angle): centred, both edges of the track (|x| = 2.4, half the cart off the picture),
# near the edges, and the pole leaning ±0.4 rad both ways.
STATES = [
    (0.0, 0.0),
    (0.0, 0.4),
    (0.0, -0.4),
    (-2.4, 0.4),
    (-2.4, -0.4),
    (2.4, 0.4),
    (2.4, -0.4),
    (-2.3, 0.1),
    (2.35, -0.2),
    (1.0, 0.25),
    (-0.7, -0.33),
]
BICUBIC = Image.Resampling.BICUBIC


@pytest.fixture(scope="module")
def pygame_cartpole():
    env = gym.make("CartPole-v1", render_mode="rgb_array")
    env.reset(seed=0)
    yield env
    env.close()


def pygame_picture(env: gym.Env, cart_x: float, pole_angle: float) -> np.ndarray:
    env.unwrapped.state = np.array([cart_x, 0.0, pole_angle, 0.0])
    picture = env.render()
    assert picture.shape == (400, 600, 3)
    return picture


def near_an_edge(picture: np.ndarray, radius: int = 1) -> np.ndarray:
    """Pixels with a differently coloured pixel within `radius` (rows and columns) in `picture`."""
    height, width, _ = picture.shape
    padded = np.pad(picture, ((radius, radius), (radius, radius), (0, 0)), mode="edge")
    near = np.zeros((height, width), dtype=np.bool_)
    for dr in range(-radius, radius + 1):
        for dc in range(-radius, radius + 1):
            shifted = padded[radius + dr : radius + dr + height, radius + dc : radius + dc + width]
            near |= np.any(shifted != picture, axis=2)
    return near


def shrink(picture: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return np.asarray(Image.fromarray(picture).resize(size, BICUBIC), dtype=np.float32)


# --------------------------------------------------------------------------------- draw_cartpole vs pygame


@pytest.mark.parametrize(("cart_x", "pole_angle"), STATES)
def test_draw_cartpole_matches_gymnasiums_pygame_picture(pygame_cartpole, cart_x, pole_angle):
    full = pygame_picture(pygame_cartpole, cart_x, pole_angle)
    assert np.all(full[:160] == 255) and np.all(full[320:] == 255)  # everything is drawn in rows 160:320
    reference = full[160:320]
    drawn = draw_cartpole(cart_x, pole_angle)
    assert drawn.shape == reference.shape == (160, 600, 3)
    assert drawn.dtype == np.uint8

    differs = np.any(drawn != reference, axis=2)
    # Measured over STATES: 99.72% to 99.98% of the pixels identical (16 to 269 of 96,000 differ), the rest
    # being pygame's anti-aliased outlines. A cart 2.5 px off (x + 0.02) gives 99.0-99.4%.
    assert differs.mean() <= 0.005
    # Measured: every differing pixel lies next to (within 1 px of) a colour edge of the drawn picture.
    assert not np.any(differs & ~near_an_edge(drawn, radius=1))
    # Shrunk as the wrapper shrinks (bicubic to 80x40): measured mean |difference| 0.01-0.18 of 255 levels;
    # a cart 2.5 px off gives 0.7-1.2.
    assert np.abs(shrink(drawn, (80, 40)) - shrink(reference, (80, 40))).mean() < 1.0


def test_the_comparison_notices_a_cart_drawn_in_the_wrong_place(pygame_cartpole):
    """The criteria above are not loose enough to accept a picture of another state."""
    reference = pygame_picture(pygame_cartpole, 1.0, 0.25)[160:320]
    moved = draw_cartpole(1.05, 0.25)  # cart 6 px to the right
    differs = np.any(moved != reference, axis=2)
    assert differs.mean() > 0.005
    assert np.any(differs & ~near_an_edge(moved, radius=1))
    tilted = draw_cartpole(1.0, 0.35)
    assert np.any(tilted != reference, axis=2).mean() > 0.005


def test_draw_cartpole_draws_only_the_requested_band_and_columns():
    whole = draw_cartpole(0.5, -0.2)
    part = draw_cartpole(0.5, -0.2, band=(200, 300), columns=(140, 460))
    assert part.shape == (100, 320, 3)
    np.testing.assert_array_equal(part, whole[40:140, 140:460])
    # the track line is black across the whole width: drawing row 100 is picture row 399 - 100 = 299
    np.testing.assert_array_equal(whole[299 - 160], np.zeros((600, 3), dtype=np.uint8))


# --------------------------------------------------------------------------------------------- cart_window


@pytest.mark.parametrize(
    ("cart_x", "window"),
    [
        (0.0, (140, 460)),  # centre pixel 0 * 125 + 300 = 300; 300 - 160 = 140
        (-0.4, (90, 410)),  # -0.4 * 125 + 300 = 250; 250 - 160 = 90
        (0.9, (252, 572)),  # 0.9 * 125 + 300 = 412.5 -> 412; 412 - 160 = 252
        (-2.4, (0, 320)),  # centre 0: start -160 clamps to 0
        (-1.0, (15, 335)),  # centre 175: start 15
        (2.4, (280, 600)),  # centre 600: start 440 clamps to 600 - 320 = 280
        (1.7, (280, 600)),  # centre 512.5 -> 512: start 352 clamps to 280
    ],
)
def test_cart_window(cart_x, window):
    assert cart_window(cart_x) == window


def test_cart_window_scales_with_the_track_half_width():
    # x_threshold 4.8: 600 / 9.6 = 62.5 px per unit
    assert cart_window(2.0, x_threshold=4.8) == (265, 585)  # centre 125 + 300 = 425, start 265
    assert cart_window(1.0, x_threshold=4.8) == (202, 522)  # centre 362.5 -> 362
    assert cart_window(3.0, x_threshold=4.8) == (280, 600)  # centre 487.5 -> 487, start 327 clamps to 280


# ----------------------------------------------------------------------------------- the wrapper: difference


def test_difference_mode_spaces():
    env = make_env("CartPole-v1", observation="screen_difference")
    small = make_env("CartPole-v1", observation="screen_difference", screen_height=20)
    try:
        assert isinstance(env, CartPoleScreen)
        assert env.observation_space == gym.spaces.Box(-1.0, 1.0, (3, 40, 80), dtype=np.float32)
        assert small.observation_space == gym.spaces.Box(-1.0, 1.0, (3, 20, 40), dtype=np.float32)
        obs, _ = small.reset(seed=3)
        assert obs.shape == (3, 20, 40)
        assert env.action_space == gym.spaces.Discrete(2)
        assert env.spec.max_episode_steps == 500
    finally:
        env.close()
        small.close()


def test_difference_mode_observations_are_patch_differences():
    env = make_env("CartPole-v1", observation="screen_difference")
    try:
        obs, _ = env.reset(seed=0)
        assert obs.dtype == np.float32
        np.testing.assert_array_equal(obs, np.zeros((3, 40, 80), dtype=np.float32))  # a still picture
        before = env.patch()
        moved = False
        for _ in range(12):  # push right: the cart speeds up and moves pixels within a few steps
            obs, reward, terminated, truncated, _ = env.step(1)
            now = env.patch()
            assert obs.shape == (3, 40, 80) and obs.dtype == np.float32
            np.testing.assert_array_equal(obs, now - before)
            assert env.observation_space.contains(obs)
            assert obs.min() >= -1.0 and obs.max() <= 1.0
            assert reward == 1.0
            moved = moved or bool(np.any(obs != 0))
            before = now
            if terminated or truncated:
                break
        assert moved
    finally:
        env.close()


def test_difference_patch_is_the_cart_window_of_the_drawing_shrunk_bicubically(pygame_cartpole):
    env = make_env("CartPole-v1", observation="screen_difference")
    try:
        env.reset(seed=0)
        for cart_x, pole_angle in [(0.0, 0.0), (-2.4, 0.4), (2.4, -0.4), (1.0, 0.25), (-1.1, -0.3)]:
            env.unwrapped.state = np.array([cart_x, 0.0, pole_angle, 0.0])
            patch = env.patch()
            assert patch.shape == (3, 40, 80) and patch.dtype == np.float32
            start, stop = cart_window(cart_x)
            expected = shrink(draw_cartpole(cart_x, pole_angle, columns=(start, stop)), (80, 40))
            np.testing.assert_allclose(patch, expected.transpose(2, 0, 1) / 255.0, atol=1e-7)
            # What seed 000 computes from Gymnasium's own picture (rows 160:320, the cart's window, bicubic):
            # measured mean |difference| 0.02-0.36 of 255 levels.
            band = pygame_picture(pygame_cartpole, cart_x, pole_angle)[160:320, start:stop]
            from_pygame = shrink(band, (80, 40)).transpose(2, 0, 1) / 255.0
            assert np.abs(patch - from_pygame).mean() < 1.5 / 255
    finally:
        env.close()


# --------------------------------------------------------------------------------------- the wrapper: frames


def test_frames_mode_space_and_stack():
    env = make_env("CartPole-v1", observation="screen_frames", screen_height=32, frame_stack=3)
    try:
        # 600 * 32 / 160 = 120 = 3.75 * 32 columns
        assert env.observation_space == gym.spaces.Box(0, 255, (3, 32, 120), dtype=np.uint8)
        obs, _ = env.reset(seed=1)
        assert obs.shape == (3, 32, 120) and obs.dtype == np.uint8
        np.testing.assert_array_equal(obs[0], obs[1])
        np.testing.assert_array_equal(obs[1], obs[2])
        assert obs.min() == 0 and obs.max() == 255  # the black track and cart on white
        previous = obs
        for _ in range(8):
            obs, _, terminated, _, _ = env.step(0)
            assert env.observation_space.contains(obs)
            np.testing.assert_array_equal(obs[0], previous[1])
            np.testing.assert_array_equal(obs[1], previous[2])  # the old last frame is now second-to-last
            np.testing.assert_array_equal(obs[2], env.patch())
            previous = obs
            assert not terminated
        assert np.any(obs[2] != obs[0])  # the cart moved within three steps of pushing left
    finally:
        env.close()


def test_frames_mode_default_and_grayscale_of_gymnasiums_picture(pygame_cartpole):
    env = make_env("CartPole-v1", observation="screen_frames")
    try:
        assert env.observation_space == gym.spaces.Box(0, 255, (2, 40, 150), dtype=np.uint8)
        env.reset(seed=0)
        for cart_x, pole_angle in [(0.0, 0.0), (-2.4, 0.4), (1.0, 0.25)]:
            env.unwrapped.state = np.array([cart_x, 0.0, pole_angle, 0.0])
            patch = env.patch()
            assert patch.shape == (40, 150) and patch.dtype == np.uint8
            band = pygame_picture(pygame_cartpole, cart_x, pole_angle)[160:320]
            gray = np.asarray(Image.fromarray(band).convert("L").resize((150, 40), BICUBIC), dtype=np.float32)
            # measured mean |difference| 0.004-0.18 gray levels
            assert np.abs(patch.astype(np.float32) - gray).mean() < 1.0
    finally:
        env.close()


def test_screen_observations_only_for_cartpole():
    with pytest.raises(DeeprlError, match="CartPole") as caught:
        make_env("Acrobot-v1", observation="screen_difference")
    assert "Acrobot-v1" in str(caught.value)
    with pytest.raises(DeeprlError, match="unknown observation 'pixels'"):
        make_env("CartPole-v1", observation="pixels")


# --------------------------------------------------------------------------------- a small real training run


@pytest.fixture(scope="module")
def pixel_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("screen") / "run"
    agent = deeprl.train(
        "dqn",
        "CartPole-v1",
        steps=300,
        run_dir=run_dir,
        observation="screen_frames",
        screen_height=20,
        conv_channels=(8, 16),
        conv_kernels=(3, 3),
        conv_strides=(2, 2),
        hidden_sizes=(32,),
        learning_starts=50,
        batch_size=16,
        buffer_size=500,
        eval_every=150,
        eval_episodes=2,
        final_eval_episodes=2,
        tensorboard=False,
    )
    return agent, run_dir


def batch_norms(net: torch.nn.Module) -> list[torch.nn.BatchNorm2d]:
    return [module for module in net.modules() if isinstance(module, torch.nn.BatchNorm2d)]


def rollout_observations(env: gym.Env, count: int, seed: int) -> np.ndarray:
    env.action_space.seed(seed)
    observations = []
    obs, _ = env.reset(seed=seed)
    while len(observations) < count:
        observations.append(obs)
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            obs, _ = env.reset()
    return np.stack(observations)


def test_training_on_pictures_records_the_env(pixel_run):
    agent, run_dir = pixel_run
    expected_space = gym.spaces.Box(0, 255, (2, 20, 75), dtype=np.uint8)  # 600 * 20 / 160 = 75
    assert agent.observation_space == expected_space
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert (config["observation"], config["screen_height"], config["frame_stack"]) == ("screen_frames", 20, 2)
    assert agent.env_spec["observation"] == "screen_frames"
    env = deeprl.make_env(run_dir)  # wrappers rebuilt from config.yaml
    try:
        assert isinstance(env, CartPoleScreen)
        assert (env.mode, env.height, env.frames) == ("frames", 20, 2)
        assert env.observation_space == agent.observation_space
        obs, _ = env.reset(seed=0)
        assert obs.shape == (2, 20, 75) and obs.dtype == np.uint8
    finally:
        env.close()


def test_loaded_picture_policy_acts_like_the_trained_agent(pixel_run):
    agent, run_dir = pixel_run
    final = deeprl.load(run_dir / "policy.pt")  # train returns the final policy; the run dir means the best
    assert final.observation_space == agent.observation_space
    env = deeprl.make_env(run_dir)
    try:
        observations = rollout_observations(env, 40, seed=5)
    finally:
        env.close()
    assert observations.dtype == np.uint8
    np.testing.assert_array_equal(final.act(observations), agent.act(observations))
    assert [final.act(obs) for obs in observations[:10]] == [agent.act(obs) for obs in observations[:10]]
    with torch.no_grad():
        batch = torch.from_numpy(observations)
        torch.testing.assert_close(final.q_net(batch), agent.q_net(batch), rtol=0, atol=0)


def test_picture_q_networks_act_in_eval_mode(pixel_run):
    agent, run_dir = pixel_run
    loaded = deeprl.load(run_dir)  # the best-evaluated policy
    best_step = agent.summary["best_policy_step"]
    assert best_step in (150, 300)
    # One gradient step per env step after learning_starts (50); Double DQN runs the online net in train mode
    # twice per step (the batch and the next observations); ConvEncoder's shape probe may add one more.
    for net, gradient_steps in ((agent.q_net, 300 - 50), (loaded.q_net, best_step - 50)):
        assert not any(module.training for module in net.modules())
        norms = batch_norms(net)
        assert len(norms) == 2
        for norm in norms:
            assert 2 * gradient_steps <= norm.num_batches_tracked.item() <= 2 * gradient_steps + 1
    env = deeprl.make_env(run_dir)
    try:
        observations = rollout_observations(env, 30, seed=9)
    finally:
        env.close()
    before = [(norm.running_mean.clone(), norm.running_var.clone()) for norm in batch_norms(loaded.q_net)]
    for obs in observations:
        loaded.act(obs)
    loaded.act(observations)
    for norm, (mean, var) in zip(batch_norms(loaded.q_net), before):
        torch.testing.assert_close(norm.running_mean, mean, rtol=0, atol=0)
        torch.testing.assert_close(norm.running_var, var, rtol=0, atol=0)
    # eval mode: an observation's Q-values do not depend on the rest of the batch
    with torch.no_grad():
        together = loaded.q_net(torch.from_numpy(observations))
        alone = torch.cat([loaded.q_net(torch.from_numpy(obs[None])) for obs in observations])
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-5)


def test_evaluate_takes_the_env_from_the_loaded_agent(pixel_run):
    _, run_dir = pixel_run
    loaded = deeprl.load(run_dir)
    assert loaded.env_spec["observation"] == "screen_frames"
    result = deeprl.evaluate(loaded, None, episodes=2)
    assert len(result.returns) == 2
    assert np.all(result.lengths >= 1)
    np.testing.assert_array_equal(result.returns, result.lengths)  # CartPole pays 1 per step
    # the same env given by its run directory: same seeds, same greedy policy, same episodes
    again = deeprl.evaluate(loaded, str(run_dir), episodes=2)
    np.testing.assert_array_equal(again.returns, result.returns)
