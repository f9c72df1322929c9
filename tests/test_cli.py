"""The `deeprl` command, run for real in subprocesses (forked after the imports: see tests/forking_cli.py)."""

from __future__ import annotations

import io
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from PIL import Image

import deeprl
from deeprl.run import TIMING_KEYS
from tests.conftest import (
    PNG_SIGNATURE,
    forker,
    rows_without_time,
    run_deeprl,
    snapshot,
    start_deeprl,
    subprocess_env,
)
from tests.forking_cli import Case, ForkedProcess

TINY_SETTINGS = [
    "--set",
    "learning_starts=100",
    "--set",
    "eval_every=200",
    "--set",
    "eval_episodes=2",
    "--set",
    "final_eval_episodes=2",
    "--set",
    "tensorboard=false",
    "--set",
    "hidden_sizes=32,32",
]


# ------------------------------------------------------------------------------------------- a small run


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cli")


@pytest.fixture(scope="module")
def trained_run(workdir):
    result = run_deeprl(
        "train",
        "dqn",
        "CartPole-v1",
        "--steps",
        400,
        "--seed",
        1,
        "--quiet",
        "--run-dir",
        "run",
        *TINY_SETTINGS,
        cwd=workdir,
    )
    return result, workdir / "run"


def test_train_exits_zero_and_prints_the_run_directory(trained_run, workdir):
    result, run_dir = trained_run
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip() == ""  # --quiet: no progress output
    # --quiet: the results alone (scores, solved or not, time, where the run is), no file list
    assert [line.split(":")[0].split(" (")[0] for line in result.stdout.splitlines()] == [
        "final policy",
        "best policy",
        "not solved",
        "time",
        "run directory",
    ]
    match = re.search(r"^run directory: (.+)$", result.stdout, re.MULTILINE)
    assert match is not None, result.stdout
    assert (workdir / match.group(1)).resolve() == run_dir.resolve()
    assert "final policy: mean return" in result.stdout
    assert "best policy (step " in result.stdout
    assert "not solved (threshold 475)" in result.stdout
    for name in ("config.yaml", "metrics.csv", "best_policy.pt", "policy.pt", "eval.json", "curve.png"):
        assert (run_dir / name).is_file(), name
    assert not (run_dir / "tensorboard").exists()  # --set tensorboard=false
    summary = json.loads((run_dir / "eval.json").read_text())
    assert (summary["steps"], summary["seed"], summary["final"]["episodes"]) == (400, 1, 2)
    assert f"over {summary['final']['episodes']} episodes" in result.stdout


def test_train_from_config_reproduces_metrics(trained_run, workdir):
    _, run_dir = trained_run
    assert run_dir.is_dir()
    result = run_deeprl("train", "--config", run_dir / "config.yaml", "--run-dir", "other", "--quiet", cwd=workdir)
    assert result.returncode == 0, result.stderr
    other = workdir / "other"
    assert (other / "config.yaml").read_text() == (run_dir / "config.yaml").read_text()
    assert rows_without_time(other / "metrics.csv") == rows_without_time(run_dir / "metrics.csv")
    first, second = (json.loads((path / "eval.json").read_text()) for path in (run_dir, other))
    for summary in (first, second):
        for key in TIMING_KEYS:
            summary.pop(key)
    assert first == second


def test_eval_prints_mean_and_writes_nothing(trained_run, workdir):
    _, run_dir = trained_run
    before = snapshot(workdir)
    result = run_deeprl("eval", run_dir, "--episodes", 3, cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert snapshot(workdir) == before
    expected = deeprl.evaluate(deeprl.load(run_dir), "CartPole-v1", episodes=3, seed=10_000)
    assert f"CartPole-v1: mean return {expected.mean:.2f} ± {expected.std:.2f} over 3 episodes" in result.stdout
    assert "seeds 10000..10002" in result.stdout


@pytest.mark.parametrize("command", [("eval", "--episodes", "1"), ("watch", "--video", "w.gif"), ("report",)])
def test_commands_that_only_act_use_one_torch_thread(trained_run, tmp_path, monkeypatch, command):
    """One observation at a time is too little work to split between threads (cli.one_torch_thread)."""
    from deeprl.cli import main

    _, run_dir = trained_run
    monkeypatch.chdir(tmp_path)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        output = "r.html" if command[0] == "report" else None
        assert main([command[0], str(run_dir), *command[1:], *(["-o", output] if output else [])]) == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)


def test_watch_writes_a_gif(trained_run, workdir):
    _, run_dir = trained_run
    before = snapshot(run_dir)
    result = run_deeprl("watch", run_dir, "--video", "x.gif", "--episodes", 1, "--every", 5, cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert snapshot(run_dir) == before
    length = int(deeprl.evaluate(deeprl.load(run_dir), "CartPole-v1", episodes=1, seed=10_000).lengths[0])
    # the reset frame, every 5th step, and the last step when it is not a multiple of 5
    expected_frames = 1 + length // 5 + (1 if length % 5 else 0)
    assert f"({expected_frames} frames, 600x400)" in result.stdout
    with Image.open(workdir / "x.gif") as gif:
        assert gif.format == "GIF"
        assert gif.size == (600, 400)
        assert gif.n_frames == expected_frames


def test_plot_writes_a_png(trained_run, workdir):
    _, run_dir = trained_run
    result = run_deeprl("plot", run_dir, "-o", "p.png", cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "plot: p.png"
    data = (workdir / "p.png").read_bytes()
    assert data[:8] == PNG_SIGNATURE
    with Image.open(workdir / "p.png") as image:
        assert image.size == (900, 500)


def test_list_through_the_installed_entry_point(tmp_path):
    script = Path(sys.executable).with_name("deeprl")
    assert script.is_file(), f"no deeprl entry point beside {sys.executable}"
    result = subprocess.run(
        [str(script), "list"], cwd=tmp_path, env=subprocess_env(), capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert re.search(r"^dqn\s", result.stdout, re.MULTILINE)
    assert "CartPole-v1" in result.stdout
    assert "Discrete" in result.stdout


def test_list_columns_line_up_whatever_their_widest_entry(tmp_path):
    """Env ids longer than the rest (MountainCarContinuous-v0) and values longer than the rest (an env id as the
    env setting's value) keep every column aligned."""
    from deeprl.algos import get_algorithm
    from deeprl.config import build_config, describe_fields

    listing = run_deeprl("list", cwd=tmp_path)
    assert listing.returncode == 0, listing.stderr
    env_lines = [line for line in listing.stdout.splitlines() if line.startswith("  ") and "presets: " in line]
    assert any("MountainCarContinuous-v0" in line for line in env_lines)
    assert len({line.index("presets: ") for line in env_lines}) == 1
    settings = run_deeprl("list", "--settings", "sac", "--env", "LunarLanderContinuous-v3", cwd=tmp_path)
    assert settings.returncode == 0, settings.stderr
    rows = describe_fields(build_config(get_algorithm("sac").Config, "LunarLanderContinuous-v3"))
    lines = settings.stdout.splitlines()[1:]
    assert len(lines) == len(rows)
    # columns are set apart by two spaces or more (an entry holds single spaces at most: 'float | None'), and
    # each column starts at the same place on every line
    starts = {tuple(match.end() for match in re.finditer(" {2,}", line))[:3] for line in lines}
    assert len(starts) == 1
    ((_, _, meaning_starts),) = starts
    assert all(line[meaning_starts:] == doc for line, (_, _, _, doc) in zip(lines, rows, strict=True))


def test_list_settings(tmp_path):
    result = run_deeprl("list", "--settings", "dqn", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert re.search(r"^lr\s+float\s+0\.001\s+learning rate$", result.stdout, re.MULTILINE)
    assert re.search(r"^hidden_sizes\s", result.stdout, re.MULTILINE)


def test_list_settings_shows_what_a_run_would_use(tmp_path):
    defaults = run_deeprl("list", "--settings", "dqn", cwd=tmp_path)
    assert defaults.stdout.splitlines()[0].startswith("# dqn's defaults; a preset for the env overrides many")
    assert re.search(r"^total_steps\s+int\s+100000\s", defaults.stdout, re.MULTILINE)
    resolved = run_deeprl("list", "--settings", "dqn", "--env", "CartPole-v1", cwd=tmp_path)
    assert resolved.returncode == 0, resolved.stderr
    assert resolved.stdout.splitlines()[0] == "# the settings a run of dqn on CartPole-v1 with preset 'default' uses"
    assert re.search(r"^total_steps\s+int\s+30000\s", resolved.stdout, re.MULTILINE)
    assert re.search(r"^hidden_sizes\s+tuple\[int, ...\]\s+\[64, 64\]\s", resolved.stdout, re.MULTILINE)
    tutorial = run_deeprl("list", "--settings", "DQN", "--env", "CartPole-v1", "--preset", "tutorial", cwd=tmp_path)
    assert re.search(r"^lr\s+float\s+0\.01\s", tutorial.stdout, re.MULTILINE)
    assert re.search(r"^optimizer\s+str\s+rmsprop\s", tutorial.stdout, re.MULTILINE)
    assert "seed 00" not in defaults.stdout  # the tutorials are named in words, not by their file numbers


def test_version(tmp_path):
    result = run_deeprl("--version", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.strip() == f"deeprl {deeprl.__version__}"


def test_run_level_settings_through_set_any_case_and_the_preset_in_the_name(tmp_path):
    result = run_deeprl(
        "train",
        "DQN",
        "CartPole-v1",
        "--preset",
        "tutorial",
        "--set",
        "seed=3",
        "--set",
        "device=cpu",
        "--set",
        "total_steps=300",
        "--quiet",
        *TINY_SETTINGS,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert re.fullmatch(r"dqn-CartPole-v1-tutorial-s3-\d{8}-\d{6}", run_dir.name)
    config = (run_dir / "config.yaml").read_text().splitlines()
    assert config[:2] == ["algo: dqn", "preset: tutorial"]
    assert {"seed: 3", "device: cpu", "total_steps: 300", "optimizer: rmsprop"} <= set(config)
    assert json.loads((run_dir / "eval.json").read_text())["steps"] == 300


def test_summary_and_eval_json_say_where_the_time_went(trained_run):
    result, run_dir = trained_run
    summary = json.loads((run_dir / "eval.json").read_text())
    train_s, eval_s = summary["train_seconds"], summary["eval_seconds"]
    assert train_s > 0 and eval_s > 0
    # eval.json rounds seconds to 3 decimals, steps/s to 1 and the fraction to 4: each ratio is checked over every
    # pair of true seconds those rounded ones allow, so that no machine is too fast (short times) for the check
    train_low, train_high, eval_low, eval_high = train_s - 5e-4, train_s + 5e-4, eval_s - 5e-4, eval_s + 5e-4
    assert 400 / train_high - 0.05 <= summary["train_steps_per_second"] <= 400 / max(train_low, 1e-9) + 0.05
    assert 400 / (train_high + eval_high) - 0.05 <= summary["steps_per_second"] <= 400 / (train_low + eval_low) + 0.05
    fraction_low, fraction_high = eval_low / (train_high + eval_low), eval_high / (train_low + eval_high)
    assert fraction_low - 5e-5 <= summary["eval_fraction"] <= fraction_high + 5e-5
    assert (
        f"time: 400 steps in {train_s + eval_s:.1f} s, {summary['train_steps_per_second']:.0f} training "
        f"steps/s, evaluating {100 * summary['eval_fraction']:.0f}% of the time: "
        f"{summary['steps_per_second']:.0f} steps/s"
    ) in result.stdout


def named_pipe(folder: Path) -> Path:
    """A pipe with a name (`folder/stdout`), for a forked process's stdout: the child's open waits for the reader."""
    os.mkfifo(folder / "stdout")
    return folder / "stdout"


def first_line_then_leave(process: ForkedProcess, pipe: Path) -> str:
    """The first line `process` writes into `pipe`, read as `| head -1` reads it: the reader then leaves. The
    process is frozen (SIGSTOP) from the moment its output arrives until the reader is gone, so that whatever it
    writes after its first line meets a pipe without a reader, however fast it runs."""
    reader = os.open(pipe, os.O_RDONLY)
    received = b""
    try:
        while b"\n" not in received:
            if not select.select([reader], [], [], 300)[0]:
                raise AssertionError(f"no line from {process.args} within 300 s")
            process.send_signal(signal.SIGSTOP)
            chunk = os.read(reader, 1 << 16)
            if not chunk:  # the writer has gone
                break
            received += chunk
            if b"\n" not in received:  # a line written in pieces: let it finish
                process.send_signal(signal.SIGCONT)
    finally:
        os.close(reader)
        process.send_signal(signal.SIGCONT)
    return received.decode().split("\n")[0]


def test_a_closed_stdout_does_not_stop_or_damage_a_run(tmp_path):
    """`deeprl train ... | head -1`: the reader leaves after the first progress line; the run goes on to its end
    (an evaluation and the final one later) and writes everything, and nothing is said about the pipe."""
    process = start_deeprl(
        [
            "train",
            "dqn",
            "CartPole-v1",
            "--steps",
            "600",
            "--run-dir",
            "run",
            "--set",
            "eval_every=300",
            "--set",
            "learning_starts=100",
            "--set",
            "eval_episodes=2",
            "--set",
            "final_eval_episodes=2",
            "--set",
            "tensorboard=false",
            "--set",
            "hidden_sizes=32,32",
        ],
        tmp_path,
        stdout=named_pipe(tmp_path),
    )
    first = first_line_then_leave(process, tmp_path / "stdout")
    assert process.wait(timeout=300) == 0, process.stderr()
    stderr = process.stderr()
    assert first.startswith("step      300 |"), first
    assert stderr == ""
    summary = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert summary["steps"] == 600
    assert (tmp_path / "run" / "curve.png").is_file() and (tmp_path / "run" / "policy.pt").is_file()


def test_a_closed_stdout_stops_a_listing_without_a_traceback(tmp_path):
    process = start_deeprl(["list", "--envs"], tmp_path, stdout=named_pipe(tmp_path))
    open(tmp_path / "stdout").close()  # the reader is gone before the first line
    assert process.wait(timeout=120) == 0
    assert process.stderr() == ""


def test_the_python_api_trains_on_when_its_stdout_closes(tmp_path):
    """A script printing deeprl's progress into a pipe whose reader left: the run finishes all the same."""
    script = tmp_path / "script.py"
    script.write_text(
        "import deeprl; deeprl.train('dqn', 'CartPole-v1', steps=600, run_dir='run', progress=True, "
        "eval_every=300, learning_starts=100, eval_episodes=2, final_eval_episodes=2, tensorboard=False, "
        "hidden_sizes=(32, 32))"
    )
    process = start_deeprl([], tmp_path, script=script, stdout=named_pipe(tmp_path))
    first = first_line_then_leave(process, tmp_path / "stdout")
    assert process.wait(timeout=300) == 0, process.stderr()
    assert first.startswith("step      300 |") and process.stderr() == ""
    assert json.loads((tmp_path / "run" / "eval.json").read_text())["steps"] == 600


def test_an_old_env_id_that_still_works_evaluates_without_gymnasiums_warning(trained_run, workdir):
    """The pixel preset trains on CartPole-v0; Gymnasium warns (in raw colour codes) that v1 exists."""
    _, run_dir = trained_run
    result = run_deeprl("eval", run_dir, "--env", "CartPole-v0", "--episodes", 2, cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.startswith("CartPole-v0: mean return ")


def test_watch_without_a_display_says_where_the_video_went(trained_run, tmp_path):
    _, run_dir = trained_run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    result = run_deeprl("watch", copy, cwd=tmp_path)  # subprocess_env() removes DISPLAY
    assert result.returncode == 0, result.stderr
    assert "no display here (DISPLAY is not set), so the episodes went to a video file" in result.stdout
    assert f"video: {copy / 'videos' / 'watch.mp4'} (" in result.stdout
    assert (copy / "videos" / "watch.mp4").stat().st_size > 0


# ------------------------------------------------------------------------------------------ bad input

BAD_TRAIN = ("train", "dqn", "CartPole-v1", "--run-dir", "x", "--steps", "50")

# (id, arguments, files to create first, text the one-line message must contain); "{run}" is the trained run
BAD_INPUTS = [
    (
        "unknown-algorithm",
        ("train", "foo", "CartPole-v1", "--run-dir", "x"),
        {},
        "unknown algorithm 'foo' (available: dqn, reinforce, a2c, ppo, actor-critic, ddpg, td3, sac)",
    ),
    ("unknown-env", ("train", "dqn", "CartPol-v1", "--run-dir", "x"), {}, "did you mean 'CartPole-v1'"),
    (
        "unimportable-module",
        ("train", "dqn", "no_such_module_xyz:Env", "--run-dir", "x"),
        {},
        "cannot import 'no_such_module_xyz'",
    ),
    (
        "module-without-class",
        ("train", "dqn", "tests.custom_envs:Nope", "--run-dir", "x"),
        {},
        "'tests.custom_envs' has no class or function 'Nope'",
    ),
    ("continuous-actions", ("train", "dqn", "Pendulum-v1", "--run-dir", "x"), {}, "dqn cannot act in Pendulum-v1"),
    ("unknown-set-key", (*BAD_TRAIN, "--set", "lrr=0.1"), {}, "did you mean 'lr'"),
    ("negative-lr", (*BAD_TRAIN, "--set", "lr=-1"), {}, "lr must be > 0.0"),
    (
        "batch-over-buffer",
        (*BAD_TRAIN, "--set", "batch_size=1000", "--set", "buffer_size=10"),
        {},
        "batch_size (1000) must not exceed buffer_size (10)",
    ),
    ("gamma-above-one", (*BAD_TRAIN, "--set", "gamma=1.5"), {}, "gamma must be <= 1.0"),
    ("lr-not-a-number", (*BAD_TRAIN, "--set", "lr=abc"), {}, "invalid value for lr: 'abc'"),
    ("malformed-set", (*BAD_TRAIN, "--set", "lr"), {}, "--set expects key=value (got 'lr')"),
    ("unknown-preset", (*BAD_TRAIN, "--preset", "turbo"), {}, "unknown preset 'turbo'"),
    ("config-missing", ("train", "--config", "missing.yaml", "--run-dir", "x"), {}, "config file not found"),
    (
        "config-not-yaml",
        ("train", "--config", "bad.yaml", "--run-dir", "x"),
        {"bad.yaml": b"algo: dqn\nlr: [1, 2\n"},
        "is not valid YAML",
    ),
    ("eval-missing-path", ("eval", "nowhere"), {}, "no such run directory or model file: nowhere"),
    (
        "eval-random-bytes",
        ("eval", "garbage.pt"),
        {"garbage.pt": np.random.default_rng(0).bytes(4096)},
        "garbage.pt is not a readable deeprl model file",
    ),
    (
        "eval-text-file",
        ("eval", "notes.txt"),
        {"notes.txt": b"hello\n"},
        "notes.txt is not a readable deeprl model file",
    ),
    ("eval-zero-episodes", ("eval", "{run}", "--episodes", "0"), {}, "--episodes must be >= 1 (got 0)"),
    ("watch-avi", ("watch", "{run}", "--video", "out.avi"), {}, "--video must end in .mp4, .gif, .html"),
    ("plot-not-a-run", ("plot", "."), {}, "is not a run directory (no metrics.csv)"),
    (
        "plot-output-gif",
        ("plot", "{run}", "-o", "curve.gif"),
        {},
        "a plot is written as .png, .svg, .pdf, .jpg, .jpeg, .eps: name the file with one of them (got 'curve.gif')",
    ),
    (
        "plot-group-by-unknown",
        ("plot", "{run}", "--group-by", "lrr"),
        {},
        "unknown --group-by key 'lrr': no run has it; did you mean 'lr'? (algo, env, preset, seed, or a setting in the "
        "runs' config.yaml)",
    ),
    (
        "set-twice",
        (*BAD_TRAIN, "--set", "gamma=0.9", "--set", "gamma=0.99"),
        {},
        "--set gamma is given twice (gamma=0.9 and gamma=0.99); give it once",
    ),
    (
        "set-stable-baselines-name",
        (*BAD_TRAIN, "--set", "learning_rate=1e-3"),
        {},
        "unknown setting 'learning_rate' for dqn: deeprl calls it 'lr' (`deeprl list --settings dqn` shows them all)",
    ),
    (
        "deprecated-env",
        ("train", "dqn", "LunarLander-v2", "--run-dir", "x"),
        {},
        "LunarLander-v2 is deprecated: use LunarLander-v3",
    ),
    ("deprecated-env-taxi", ("train", "dqn", "Taxi-v3", "--run-dir", "x"), {}, "Taxi-v3 is deprecated: use Taxi-v4"),
    # an old id that still exists: Gymnasium's out-of-date warning would print before the one line
    ("old-env-id", ("train", "dqn", "Hopper-v4", "--run-dir", "x"), {}, "Hopper-v4"),
    (
        "watch-env-without-render-mode",
        ("watch", "{undrawn}", "--video", "out.gif"),
        {},
        "env 'tests.custom_envs:UndrawnCorridor' cannot be drawn: its constructor takes no render_mode; give it a "
        "render_mode='rgb_array' argument and a render() that returns the frame as a (height, width, 3) array",
    ),
    (
        "watch-env-drawing-nothing",
        ("watch", "{blank}", "--video", "out.gif"),
        {},
        "env BlankCorridor's render() returned None, not a picture: made with render_mode='rgb_array', it must return "
        "the frame as a (height, width, 3) array",
    ),
]

# The RL Zoo's train.py flags: each names deeprl's way to do the same
ZOO_FLAG_CASES = [
    ("-n", ("-n", "1000"), "--steps N"),
    ("--n-timesteps", ("--n-timesteps", "1000"), "--steps N"),
    ("--n-envs", ("--n-envs=8",), "--set n_envs=N"),
    ("--eval-freq", ("--eval-freq", "500"), "--set eval_every=N"),
    ("--hyperparams", ("--hyperparams", "learning_rate:0.001"), "--set KEY=VALUE, repeated"),
    ("--tensorboard-log", ("--tensorboard-log", "tb"), "TensorBoard events always go to RUN/tensorboard"),
    ("-optimize", ("-optimize",), "deeprl sweep ALGO ENV --grid KEY=V1,V2"),
    ("--optimize", ("--optimize",), "deeprl sweep ALGO ENV --grid KEY=V1,V2"),
    ("-f", ("-f", "logs"), "--run-dir DIR"),
    ("--log-folder", ("--log-folder", "logs"), "--run-dir DIR"),
    ("--env-kwargs", ("--env-kwargs", "gravity:9"), "--set 'env_kwargs={key: value}'"),
    ("--algo", ("--algo", "ppo"), "the ALGO argument (deeprl train ALGO ENV)"),
]
ZOO_FLAGS = [
    (
        f"zoo-flag{flag}",
        ("train", "ppo", "CartPole-v1", "--run-dir", "x", *args),
        {},
        f"deeprl: error: {flag} is an RL Zoo flag; in deeprl: {use}",
    )
    for flag, args, use in ZOO_FLAG_CASES
]


def policy_file(algo: str, meta: dict) -> bytes:
    """The bytes of a deeprl policy file with this description and no weights."""
    buffer = io.BytesIO()
    torch.save({"format": "deeprl-policy", "algo": algo, "meta_json": json.dumps(meta), "state_dict": {}}, buffer)
    return buffer.getvalue()


# More bad input: every case runs as a real subprocess too
MORE_BAD_INPUTS = [
    (
        "env-constructor-fails",
        ("train", "dqn", "tests.custom_envs:Broken", "--run-dir", "x"),
        {},
        "creating env 'tests.custom_envs:Broken' failed: RuntimeError: the warehouse is on fire",
    ),
    (
        "env-not-an-env",
        ("train", "dqn", "tests.custom_envs:not_an_env", "--run-dir", "x"),
        {},
        "returned object, not a gymnasium.Env",
    ),
    ("zero-steps", ("train", "dqn", "CartPole-v1", "--run-dir", "x", "--steps", "0"), {}, "total_steps must be >= 1"),
    (
        "seeds-malformed",
        ("train", "dqn", "CartPole-v1", "--run-dir", "x", "--seeds", "0-x"),
        {},
        "seeds must look like 0-4 or 0,2,5 (got '0-x')",
    ),
    (
        "seeds-repeated",
        ("train", "dqn", "CartPole-v1", "--run-dir", "x", "--seeds", "1,1"),
        {},
        "seeds must be distinct, non-negative and at least one",
    ),
    (
        "seed-and-seeds",
        ("train", "dqn", "CartPole-v1", "--run-dir", "x", "--seed", "1", "--seeds", "0-2"),
        {},
        "give --seed or --seeds, not both",
    ),
    (
        "seeds-env-fails",
        ("train", "dqn", "tests.custom_envs:Broken", "--run-dir", "x", "--seeds", "0-1"),
        {},
        "creating env 'tests.custom_envs:Broken' failed",
    ),
    (
        "seeds-dir-eval",
        ("eval", "s"),
        {"s/seeds.json": b'{"runs": ["seed-0"]}'},
        "s holds the runs of several seeds: name one of them, such as s/seed-N",
    ),
    (
        "seeds-file-corrupt",
        ("resume", "s"),
        {"s/seeds.json": b"{not json"},
        "s/seeds.json is unreadable",
    ),
    ("negative-seed", ("train", "dqn", "CartPole-v1", "--run-dir", "x", "--seed", "-1"), {}, "seed must be >= 0"),
    (
        "steps-not-an-integer",
        ("train", "dqn", "CartPole-v1", "--run-dir", "x", "--steps", "many"),
        {},
        "invalid int value: 'many'",
    ),
    ("train-without-env", ("train", "dqn", "--run-dir", "x"), {}, "train needs an algorithm and an env"),
    ("unknown-command", ("fly",), {}, "invalid choice: 'fly'"),
    (
        "reward-for-another-env",
        ("train", "dqn", "CartPole-v1", "--run-dir", "x", "--set", "reward=tip_height"),
        {},
        "reward 'tip_height' is defined for Acrobot only, not CartPole-v1",
    ),
    (
        "screen-of-another-env",
        ("train", "dqn", "Acrobot-v1", "--run-dir", "x", "--set", "observation=screen_frames"),
        {},
        "screen observations are drawn for CartPole only, not Acrobot-v1",
    ),
    (
        "cnn-on-a-state-vector",
        ("train", "dqn", "CartPole-v1", "--run-dir", "x", "--set", "conv_channels=16,32"),
        {},
        "conv_channels needs image observations (channels, height, width), but CartPole-v1 gives shape (4,)",
    ),
    (
        "cnn-layers-mismatch",
        ("train", "dqn", "CartPole-v1", "--run-dir", "x", "--set", "conv_channels=16,32", "--set", "conv_kernels=3"),
        {},
        "conv_kernels and conv_strides need a value for each of the 2 conv_channels layers",
    ),
    ("no-command", (), {}, "required: command"),
    (
        "unknown-flag",
        ("train", "dqn", "CartPole-v1", "--run-dir", "x", "--bogus", "3"),
        {},
        "deeprl: error: unrecognized arguments: --bogus 3 (see `deeprl train --help`)",
    ),
    (
        "eval-zoo-flag",
        ("eval", "{run}", "-n", "10"),
        {},
        "deeprl: error: -n is an RL Zoo flag; in deeprl: --episodes N (see `deeprl eval --help`)",
    ),
    (
        "run-dir-not-empty",
        ("train", "dqn", "CartPole-v1", "--run-dir", "taken"),
        {"taken/keep.txt": b"mine"},
        "run directory taken already exists and is not empty",
    ),
    (
        "run-dir-is-a-file",
        ("train", "dqn", "CartPole-v1", "--run-dir", "taken"),
        {"taken": b"mine"},
        "run directory taken is an existing file",
    ),
    (
        "config-binary",
        ("train", "--config", "bad.yaml", "--run-dir", "x"),
        {"bad.yaml": bytes(range(128, 256))},
        "cannot read config file",
    ),
    (
        "config-not-a-mapping",
        ("train", "--config", "list.yaml", "--run-dir", "x"),
        {"list.yaml": b"- 1\n- 2\n"},
        "must be a mapping with an 'algo' key",
    ),
    (
        "config-unknown-key",
        ("train", "--config", "c.yaml", "--run-dir", "x"),
        {"c.yaml": b"algo: dqn\nenv: CartPole-v1\ngamm: 0.9\n"},
        "did you mean 'gamma'",
    ),
    (
        "config-other-algo",
        ("train", "ppo", "--config", "c.yaml", "--run-dir", "x"),
        {"c.yaml": b"algo: dqn\nenv: CartPole-v1\n"},
        "c.yaml is a dqn config, not ppo",
    ),
    (
        "config-bad-value",
        ("train", "--config", "c.yaml", "--run-dir", "x"),
        {"c.yaml": b"algo: dqn\nenv: CartPole-v1\ngamma: 2\n"},
        "gamma must be <= 1.0",
    ),
    ("eval-empty-file", ("eval", "empty.pt"), {"empty.pt": b""}, "empty.pt is not a readable deeprl model file"),
    ("eval-empty-pickle", ("eval", "p.pt"), {"p.pt": b"\x80\x02."}, "p.pt is not a readable deeprl model file"),
    ("eval-not-a-run-directory", ("eval", "."), {}, ". is neither a run directory (no config.yaml) nor a model file"),
    ("eval-directory-without-policy", ("eval", "."), {"config.yaml": b"algo: dqn\n"}, "holds no policy"),
    (
        "eval-unknown-agent-kind",
        ("eval", "future.pt"),
        {"future.pt": policy_file("dqn", {"agent": "recurrent"})},
        "future.pt holds an agent of kind 'recurrent', which this deeprl cannot rebuild (it knows q, policy, "
        "scaled_actor, recurrent_policy)",
    ),
    (
        "eval-unknown-algorithm-file",
        ("eval", "old.pt"),
        {"old.pt": policy_file("dqn9", {})},
        "old.pt names no agent kind and comes from an unknown algorithm 'dqn9'",
    ),
    ("eval-other-env", ("eval", "{run}", "--env", "Acrobot-v1"), {}, "Acrobot-v1 has Discrete(3)"),
    ("watch-zero-every", ("watch", "{run}", "--video", "out.gif", "--every", "0"), {}, "--every must be >= 1"),
    ("watch-zero-episodes", ("watch", "{run}", "--video", "out.gif", "--episodes", "0"), {}, "--episodes must be >= 1"),
    ("watch-missing", ("watch", "nowhere", "--video", "out.gif"), {}, "no such run directory or model file"),
    ("plot-one-of-two-not-a-run", ("plot", "{run}", "."), {}, ". is not a run directory"),
    (
        "list-unknown-algorithm",
        ("list", "--settings", "ppo9"),
        {},
        "unknown algorithm 'ppo9' (available: dqn, reinforce, a2c, ppo, actor-critic, ddpg, td3, sac)",
    ),
    (
        "list-preset-without-env",
        ("list", "--settings", "dqn", "--preset", "tutorial"),
        {},
        "--preset needs --env: presets belong to an env",
    ),
    (
        "list-unknown-preset",
        ("list", "--settings", "dqn", "--env", "CartPole-v1", "--preset", "nope"),
        {},
        "unknown preset 'nope' for dqn on CartPole-v1",
    ),
    # run-level settings through --set: either they work (seed, device, total_steps) or the flag is named
    (
        "set-seed-against-flag",
        ("train", "dqn", "CartPole-v1", "--run-dir", "x", "--seed", "2", "--set", "seed=3"),
        {},
        "--seed 2 and --set seed=3 disagree; give one",
    ),
    (
        "set-steps",
        ("train", "dqn", "CartPole-v1", "--run-dir", "x", "--set", "steps=100"),
        {},
        "'steps' is not set with --set: use --steps N (or --set total_steps=N)",
    ),
    (
        "set-env",
        ("train", "dqn", "CartPole-v1", "--run-dir", "x", "--set", "env=Acrobot-v1"),
        {},
        "'env' is not set with --set: use the ENV argument",
    ),
    (
        "set-preset",
        ("train", "dqn", "CartPole-v1", "--run-dir", "x", "--set", "preset=tutorial"),
        {},
        "'preset' is not set with --set: use --preset NAME",
    ),
    (
        "set-config",
        ("train", "dqn", "CartPole-v1", "--run-dir", "x", "--set", "config=c.yaml"),
        {},
        "'config' is not set with --set: use --config FILE",
    ),
    (
        "preset-with-config",
        ("train", "--config", "c.yaml", "--preset", "tutorial", "--run-dir", "x"),
        {"c.yaml": b"algo: dqn\nenv: CartPole-v1\n"},
        "--preset does not apply with --config",
    ),
    (
        "env-kwargs-unknown",
        ("train", "dqn", "CartPole-v1", "--run-dir", "x", "--set", "env_kwargs={wind: 3}"),
        {},
        "environment 'CartPole-v1' does not accept env_kwargs {'wind': 3}",
    ),
    (
        "env-kwargs-not-a-mapping",
        ("train", "dqn", "CartPole-v1", "--run-dir", "x", "--set", "env_kwargs=3"),
        {},
        "invalid value for env_kwargs: 3 (expected a mapping such as '{key: value}')",
    ),
    # continuous control: spaces that do not fit, settings that contradict each other
    (
        "ddpg-on-discrete-actions",
        ("train", "ddpg", "CartPole-v1", "--run-dir", "x"),
        {},
        "ddpg cannot act in CartPole-v1: its action space is Discrete(2) "
        "(algorithms for it: dqn, reinforce, a2c, ppo, actor-critic)",
    ),
    (
        "sac-unbounded-actions",
        ("train", "sac", "tests.custom_envs:UnboundedActions", "--run-dir", "x"),
        {},
        "sac scales its actions to the env's bounds, but tests.custom_envs:UnboundedActions's action space "
        "Box(-inf, inf, (1,), float32) is unbounded; give its action_space finite low and high (the actor's "
        "[-1, 1] is scaled to them)",
    ),
    (
        "td3-unknown-noise",
        ("train", "td3", "Pendulum-v1", "--run-dir", "x", "--set", "noise=pink"),
        {},
        "noise must be one of ou, gaussian, none (got 'pink')",
    ),
    (
        "sac-log-std-range",
        ("train", "sac", "Pendulum-v1", "--run-dir", "x", "--set", "log_std_min=3", "--set", "log_std_max=2"),
        {},
        "log_std_min (3.0) must be below log_std_max (2.0)",
    ),
    (
        "ddpg-action-layer-too-deep",
        (
            "train",
            "ddpg",
            "Pendulum-v1",
            "--run-dir",
            "x",
            "--set",
            "critic_action_layer=5",
            "--set",
            "hidden_sizes=[64,64]",
        ),
        {},
        "critic_action_layer 5 needs at least that many hidden layers; hidden_sizes is [64, 64]",
    ),
    # outputs that cannot be written: a virtual file system, a file where a folder should be
    (
        "watch-video-unwritable",
        ("watch", "{run}", "--video", "/proc/deeprl/out.mp4"),
        {},
        "cannot write video /proc/deeprl/out.mp4: ",
    ),
    (
        "watch-gif-under-a-file",
        ("watch", "{run}", "--video", "blocker/out.gif"),
        {"blocker": b"x"},
        "cannot write video blocker/out.gif: blocker is a file, not a folder",
    ),
    (
        "plot-output-unwritable",
        ("plot", "{run}", "-o", "/proc/deeprl/curve.png"),
        {},
        "cannot write plot /proc/deeprl/curve.png: ",
    ),
    (
        "plot-output-under-a-file",
        ("plot", "{run}", "-o", "blocker/curve.png"),
        {"blocker": b"x"},
        "cannot write plot blocker/curve.png: blocker is a file, not a folder",
    ),
    (
        "run-dir-unwritable",
        ("train", "dqn", "CartPole-v1", "--run-dir", "/proc/deeprl/run"),
        {},
        "cannot create run directory /proc/deeprl/run: ",
    ),
    (
        "run-dir-under-a-file",
        ("train", "dqn", "CartPole-v1", "--run-dir", "blocker/run"),
        {"blocker": b"x"},
        "cannot create run directory blocker/run: blocker is a file, not a folder",
    ),
    ("report-missing-path", ("report", "nowhere"), {}, "nowhere is not a run directory (it needs config.yaml and"),
    ("report-not-a-run", ("report", "."), {}, ". is not a run directory (it needs config.yaml and metrics.csv)"),
    (
        "report-output-not-html",
        ("report", "{run}", "-o", "report.pdf"),
        {},
        "a report is an HTML file: name it with .html (got 'report.pdf')",
    ),
    (
        "report-output-under-a-file",
        ("report", "{run}", "-o", "blocker/report.html"),
        {"blocker": b"x"},
        "cannot write report blocker/report.html: blocker is a file, not a folder",
    ),
    ("report-every-zero", ("report", "{run}", "--every", "0"), {}, "--every must be >= 1 (got 0)"),
    (
        "report-corrupt-summary",
        ("report", "r"),
        {
            "r/config.yaml": b"algo: dqn\nenv: CartPole-v1\nseed: 0\n",
            "r/metrics.csv": b"kind,step,return\n",
            "r/eval.json": b"{",
        },
        "r/eval.json is not readable JSON",
    ),
    (
        "report-sweep-and-a-run",
        ("report", "sw", "{run}"),
        {"sw/sweep.yaml": b"algo: dqn\nenv: CartPole-v1\nseeds: [0]\n"},
        "sw is a sweep directory: report on it alone",
    ),
]


def prepare_case(cwd: Path, files: dict[str, bytes]) -> None:
    for name, content in files.items():
        (cwd / name).parent.mkdir(parents=True, exist_ok=True)
        (cwd / name).write_bytes(content)


@pytest.fixture(scope="module")
def corridor_runs(tmp_path_factory) -> dict[str, Path]:
    """Short runs on custom envs that cannot be watched: one whose constructor takes no render_mode, one whose
    render() returns nothing."""
    root = tmp_path_factory.mktemp("corridors")
    settings = dict(
        steps=300,
        learning_starts=50,
        max_episode_steps=50,
        eval_every=1000,
        final_eval_episodes=2,
        tensorboard=False,
        progress=False,
    )
    return {
        name: deeprl.train("dqn", f"tests.custom_envs:{env}", run_dir=root / name, **settings).run_dir.resolve()
        for name, env in (("undrawn", "UndrawnCorridor"), ("blank", "BlankCorridor"))
    }


@pytest.fixture(scope="module")
def bad_input_results(trained_run, corridor_runs, tmp_path_factory):
    """Every bad input as its own process in its own empty folder (forked after the imports: see forking_cli)."""
    run_dir = trained_run[1].resolve()
    places = {"{run}": str(run_dir), **{f"{{{name}}}": str(path) for name, path in corridor_runs.items()}}
    folders = {}
    for case_id, _, files, _ in ALL_BAD_INPUTS:
        folders[case_id] = tmp_path_factory.mktemp(case_id)
        prepare_case(folders[case_id], files)
    before = {case_id: snapshot(cwd) for case_id, cwd in folders.items()}
    run_before = snapshot(run_dir)
    results = forker().run(
        [Case([places.get(arg, arg) for arg in args], folders[case_id]) for case_id, args, _, _ in ALL_BAD_INPUTS]
    )
    run_after = snapshot(run_dir)
    return {
        case[0]: (result, before[case[0]], snapshot(folders[case[0]]), run_before, run_after)
        for case, result in zip(ALL_BAD_INPUTS, results, strict=True)
    }


ALL_BAD_INPUTS = BAD_INPUTS + MORE_BAD_INPUTS + ZOO_FLAGS


@pytest.mark.parametrize(
    ("case_id", "message"), [(case[0], case[3]) for case in ALL_BAD_INPUTS], ids=[case[0] for case in ALL_BAD_INPUTS]
)
def test_bad_input_is_one_line_and_exit_code_2(bad_input_results, case_id, message):
    result, before, after, run_before, run_after = bad_input_results[case_id]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("deeprl: error: ")
    assert message in lines[0]
    assert after == before  # no run directory (--run-dir x), nothing half-written
    assert run_after == run_before


def test_continuous_action_space_message_names_allowed_algorithms(bad_input_results):
    from deeprl.algos import algorithms_for

    result = bad_input_results["continuous-actions"][0]
    fitting = algorithms_for(gym.make("Pendulum-v1").action_space)
    assert "dqn" not in fitting
    assert "its action space is Box(" in result.stderr
    assert f"(algorithms for it: {', '.join(fitting) if fitting else 'none yet'})" in result.stderr


def test_unbounded_action_space_message_gives_advice_that_works(bad_input_results):
    """gymnasium.wrappers.ClipAction declares Box(-inf, inf) itself: wrapping an env in it gives exactly the
    unbounded action space this message refuses, so it must not be the advice."""
    line = bad_input_results["sac-unbounded-actions"][0].stderr.strip()
    assert "is unbounded; give its action_space finite low and high" in line
    clipped = gym.wrappers.ClipAction(gym.make("Pendulum-v1"))
    assert np.isinf(clipped.action_space.low).all()  # why the advice cannot work
    assert "ClipAction" not in line, line
