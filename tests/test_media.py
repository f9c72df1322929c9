"""Videos and HTML animations of a trained agent: real files, decoded back and counted."""

from __future__ import annotations

import base64
import io
import json
import re
import subprocess
import sys

import imageio.v2 as imageio
import pytest
from PIL import Image

import deeprl
from deeprl.errors import DeeprlError
from tests.test_cli import cli_env

FRAME_LIST = re.compile(r"const frames = (\[.*?\]);")
EVERY = 4


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("media") / "run"
    agent = deeprl.train(
        "dqn", "CartPole-v1", seed=3, steps=600, run_dir=run_dir, hidden_sizes=(32, 32), learning_starts=100,
        eval_every=300, eval_episodes=2, final_eval_episodes=2, tensorboard=False,
    )
    return agent, run_dir


def expected_frames(agent, seed: int, episodes: int = 1) -> int:
    """The reset frame, every EVERY-th step, and the last step when it is not a multiple of EVERY."""
    lengths = deeprl.evaluate(agent, "CartPole-v1", episodes=episodes, seed=seed).lengths
    return sum(1 + int(n) // EVERY + (1 if n % EVERY else 0) for n in lengths)


def html_frames(html: str) -> list[Image.Image]:
    """The frames the page's player steps through, decoded from their PNG data URIs."""
    uris = json.loads(FRAME_LIST.search(html).group(1))
    prefix = "data:image/png;base64,"
    assert all(uri.startswith(prefix) for uri in uris)
    return [Image.open(io.BytesIO(base64.b64decode(uri.removeprefix(prefix)))) for uri in uris]


def test_watch_writes_an_mp4_that_decodes(trained, tmp_path):
    _, run_dir = trained
    result = subprocess.run(
        [sys.executable, "-m", "deeprl", "watch", str(run_dir), "--video", "out.mp4", "--every", str(EVERY),
         "--seed", "50"],
        cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    with imageio.get_reader(tmp_path / "out.mp4", format="FFMPEG") as reader:
        frames = [frame for frame in reader.iter_data()]
    assert len(frames) == expected_frames(deeprl.load(run_dir), seed=50)
    assert frames[0].shape == (400, 600, 3)
    # a real picture: the white background and the dark cart are both there after compression
    assert frames[0].max() > 200 and frames[0].min() < 60


def test_watch_writes_an_html_animation(trained, tmp_path):
    _, run_dir = trained
    result = subprocess.run(
        [sys.executable, "-m", "deeprl", "watch", str(run_dir), "--video", "out.html", "--every", str(EVERY),
         "--episodes", "2", "--seed", "60"],
        cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    html = (tmp_path / "out.html").read_text()
    frames = html_frames(html)
    count = expected_frames(deeprl.load(run_dir), seed=60, episodes=2)
    assert len(frames) == count
    assert f"({count} frames, 600x400)" in result.stdout
    assert all(frame.size == (600, 400) and frame.mode == "RGB" for frame in frames)
    assert f'max="{count - 1}"' in html  # the slider spans every frame


def test_animate_api_matches_the_agents_episode(trained, tmp_path):
    agent, _ = trained
    animation = deeprl.animate(agent, every=EVERY, seed=70)
    assert animation.frame_count == expected_frames(agent, seed=70)
    assert (animation.width, animation.height) == (600, 400)
    assert animation._repr_html_() == animation.html  # what a notebook shows
    assert len(html_frames(animation.html)) == animation.frame_count
    # the first frame is the reset state of episode seed 70, as Gymnasium draws it
    env = deeprl.make_env("CartPole-v1", render_mode="rgb_array")
    env.reset(seed=70)
    first = html_frames(animation.html)[0]
    assert first.tobytes() == Image.fromarray(env.render()).tobytes()
    animation.save(tmp_path / "episode.html")
    assert (tmp_path / "episode.html").read_text() == animation.html
    assert animation.returns == [float(expected) for expected in
                                 deeprl.evaluate(agent, "CartPole-v1", episodes=1, seed=70).returns]


def test_animate_rejects_bad_arguments(trained):
    agent, _ = trained
    with pytest.raises(DeeprlError, match="every and episodes must be >= 1"):
        deeprl.animate(agent, every=0)
