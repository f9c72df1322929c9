"""Checkpoints and exact resume: real `deeprl train` processes are killed and resumed, and must end with the
same weights (bit for bit), the same metrics.csv and eval.json (wall-clock aside) and the same TensorBoard
scalars as an uninterrupted run (the harness, and how each kill is placed by an event: tests/conftest.py).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
from pathlib import Path

import pytest
import torch

import deeprl
from deeprl.checkpoint import CHECKPOINT_LAYOUT, load_latest_checkpoint
from deeprl.errors import DeeprlError
from tests.conftest import (
    Trainer,
    assert_resumes_identically,
    assert_same_run,
    checkpoints,
    metrics_without_time,
    newest_step,
    resume,
    run_deeprl,
    stop_after_checkpoint,
    stop_in_write,
    stop_with_rows_past_checkpoint,
    weights,
)
from tests.tensorboard_events import tensorboard_scalars

pytestmark = pytest.mark.resume

STEPS = 2000
CHECKPOINT_EVERY = 400  # checkpoints come at the first episode end at or after each multiple
TRAIN_ARGS = [
    "--seed",
    "0",
    "--steps",
    str(STEPS),
    "--quiet",
    "--set",
    f"checkpoint_every={CHECKPOINT_EVERY}",
    "--set",
    "eval_every=1000",
    "--set",
    "learning_starts=200",
    "--set",
    "train_freq=2",  # halves the updates' time
    "--set",
    "eval_episodes=3",
    "--set",
    "final_eval_episodes=3",
    "--set",
    "tensorboard=true",
]
PICTURE_ARGS = [
    "--seed",
    "1",
    "--steps",
    "600",
    "--quiet",
    "--set",
    "observation=screen_frames",
    "--set",
    "screen_height=16",
    "--set",
    "conv_channels=4,8",
    "--set",
    "conv_kernels=3,3",
    "--set",
    "hidden_sizes=16",
    "--set",
    "max_episode_steps=40",  # truncations put final pictures aside in the replay
    "--set",
    "learning_starts=100",
    "--set",
    "batch_size=16",
    "--set",
    "train_freq=4",  # CNN updates are slow
    "--set",
    "buffer_size=300",  # full before the kill: resume restores a wrapped-around memory
    "--set",
    "checkpoint_every=200",
    "--set",
    "eval_every=300",
    "--set",
    "eval_episodes=2",
    "--set",
    "final_eval_episodes=2",
    "--set",
    "tensorboard=true",
]


@pytest.fixture(scope="module")
def reference(uninterrupted) -> Path:
    return uninterrupted("dqn", "CartPole-v1", TRAIN_ARGS)


def test_sigkill_right_after_a_checkpoint(tmp_path, reference):
    trainer = Trainer(tmp_path / "run", TRAIN_ARGS)
    stop_after_checkpoint(trainer, CHECKPOINT_EVERY)
    trainer.kill()
    assert_resumes_identically(trainer.run_dir, reference)


def test_sigkill_with_rows_written_after_the_checkpoint(tmp_path, reference):
    """metrics.csv and TensorBoard already hold episodes after the checkpoint: they are dropped and redone."""
    trainer = Trainer(tmp_path / "run", TRAIN_ARGS)
    state = stop_with_rows_past_checkpoint(trainer, 2 * CHECKPOINT_EVERY)
    trainer.kill()
    rows_after = metrics_without_time(trainer.run_dir)
    assert int(rows_after[-1].split(",")[1]) > state["step"]  # the last row is past the checkpoint
    assert_resumes_identically(trainer.run_dir, reference)


def test_sigkill_while_a_checkpoint_is_being_written(tmp_path, reference):
    """Killed with the third checkpoint's data half on disk: the half-written file is never used, and the run
    goes on from the second checkpoint."""
    trainer = Trainer(tmp_path / "run", TRAIN_ARGS, pause_at=("step-*.pt", 3))
    stop_in_write(trainer)
    trainer.kill()
    folder = trainer.run_dir / "checkpoints"
    (partial,) = folder.glob(".step-*.pt.*.tmp")
    partial_step = int(partial.name.split(".")[1].split("-")[1])
    assert partial.stat().st_size > 0
    assert [path.stem for path in checkpoints(trainer.run_dir)] == [
        path.stem for path in sorted(folder.glob("step-*.pt"))
    ]  # two complete checkpoints, both older than the partial one
    assert len(checkpoints(trainer.run_dir)) == 2 and newest_step(trainer.run_dir) < partial_step
    result = assert_resumes_identically(trainer.run_dir, reference)
    assert "warning" not in result.stderr  # nothing was damaged: the partial file never became a checkpoint
    assert not partial.exists()  # the resumed run removed the killed writer's temporary file


def test_sigkill_while_the_final_policy_is_being_written(tmp_path, reference):
    """Killed at the very end (training and its last evaluation done, policy.pt half written): the run resumes
    from its last checkpoint and ends as if never stopped."""
    trainer = Trainer(tmp_path / "run", TRAIN_ARGS, pause_at=("policy.pt", 1))
    stop_in_write(trainer)
    trainer.kill()
    (partial,) = trainer.run_dir.glob(".policy.pt.*.tmp")
    assert not (trainer.run_dir / "policy.pt").exists()
    last_row = metrics_without_time(trainer.run_dir)[-1].split(",")
    assert (last_row[0], int(last_row[1])) == ("eval", STEPS)  # everything but the files at the end was written
    assert newest_step(trainer.run_dir) >= STEPS - CHECKPOINT_EVERY
    assert_resumes_identically(trainer.run_dir, reference)
    assert not partial.exists()


def test_a_damaged_newest_checkpoint_is_skipped_with_one_line(tmp_path, reference):
    """A checkpoint whose data does not match its manifest (truncated on disk) is skipped, said in one line."""
    trainer = Trainer(tmp_path / "run", TRAIN_ARGS)
    stop_after_checkpoint(trainer, 3 * CHECKPOINT_EVERY)
    trainer.kill()
    newest = checkpoints(trainer.run_dir)[-1].with_suffix(".pt")
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])
    result = assert_resumes_identically(trainer.run_dir, reference)
    warnings = [line for line in result.stderr.splitlines() if "checksum mismatch" in line]
    assert len(warnings) == 1 and newest.name in warnings[0]


def test_sigint_checkpoints_and_exits_130(tmp_path, reference):
    trainer = Trainer(tmp_path / "run", TRAIN_ARGS)
    trainer.wait_for(lambda: newest_step(trainer.run_dir) >= CHECKPOINT_EVERY, "the first checkpoint")
    trainer.process.send_signal(signal.SIGINT)
    assert trainer.process.wait(timeout=120) == 130
    stderr = trainer.stderr()
    assert "deeprl resume" in stderr and "Traceback" not in stderr
    state = load_latest_checkpoint(trainer.run_dir, "dqn", "CartPole-v1")
    assert state["algo"]["step"] == newest_step(trainer.run_dir)
    assert deeprl.load(trainer.run_dir / "policy.pt").policy_step == state["algo"]["step"]  # usable meanwhile
    assert_resumes_identically(trainer.run_dir, reference)


def test_resume_refuses_finished_and_checkpointless_runs(tmp_path, reference):
    before = sorted((path.name, path.stat().st_mtime_ns) for path in reference.rglob("*"))
    result = resume(reference)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"deeprl: error: run {reference} already finished at step {STEPS} (eval.json exists); "
        f"`deeprl resume {reference} --steps N` continues it to a larger budget N"
    ]
    assert sorted((path.name, path.stat().st_mtime_ns) for path in reference.rglob("*")) == before
    with pytest.raises(DeeprlError, match="already finished"):
        deeprl.train(resume=reference)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DeeprlError, match="not a run directory"):
        deeprl.train(resume=empty)
    (empty / "config.yaml").write_text((reference / "config.yaml").read_text())
    with pytest.raises(DeeprlError, match="no intact checkpoint"):
        deeprl.train(resume=empty)


def test_checkpoint_of_another_env_is_refused(reference):
    assert len(checkpoints(reference)) == 2  # a finished run keeps its newest two
    with pytest.raises(DeeprlError, match=r"no intact checkpoint.*belongs to dqn on CartPole-v1"):
        load_latest_checkpoint(reference, "dqn", "Acrobot-v1")


def test_a_run_in_use_is_not_resumed_twice(tmp_path, reference):
    trainer = Trainer(tmp_path / "run", TRAIN_ARGS)
    run_dir = trainer.run_dir
    try:
        # Frozen, the trainer cannot finish (and remove its lock) while the second process starts up.
        stop_after_checkpoint(trainer, CHECKPOINT_EVERY)
        result = resume(run_dir)
        assert result.returncode == 2
        assert result.stderr.strip().splitlines() == [
            f"deeprl: error: run directory {run_dir} is in use by process {trainer.process.pid} "
            f"(remove {run_dir / '.lock'} if it is not deeprl)"
        ]
    finally:
        trainer.kill()
    assert (run_dir / ".lock").read_text().strip() == str(trainer.process.pid)  # left behind by the killed process
    assert_resumes_identically(run_dir, reference)  # the stale lock is taken over
    assert not (run_dir / ".lock").exists()


def test_checkpoints_without_the_replay_memory_refill_it_after_resume(tmp_path, reference):
    trainer = Trainer(tmp_path / "run", [*TRAIN_ARGS, "--set", "checkpoint_replay=false"])
    run_dir = trainer.run_dir
    stop_after_checkpoint(trainer, CHECKPOINT_EVERY)  # near step 400 episodes are short: several end while refilling
    trainer.kill()
    resumed_from = newest_step(run_dir)
    state = load_latest_checkpoint(run_dir, "dqn", "CartPole-v1")
    assert state["algo"]["replay"] is None and state["algo"]["step"] == resumed_from
    result = resume(run_dir)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"deeprl: warning: the checkpoint at step {resumed_from} holds no replay memory (checkpoint_replay: "
        f"false); it refills until step {resumed_from + 200}, so this run will differ from an uninterrupted one"
    ]
    rows = metrics_without_time(run_dir)
    header = rows[0].split(",")
    train = [dict(zip(header, row.split(","))) for row in rows[1:] if row.startswith("train,")]
    before = [row for row in train if int(row["step"]) <= resumed_from]
    after = [row for row in train if int(row["step"]) > resumed_from]
    reference_rows = metrics_without_time(reference)
    assert [row for row in rows if row.startswith("train,")][: len(before)] == [
        row for row in reference_rows if row.startswith("train,")
    ][: len(before)]  # the same run up to the checkpoint
    # learning_starts is 200: an episode has a loss when it had a gradient round (every 2nd step) after the
    # memory held 200 new steps again
    refilled, previous_end = resumed_from + 200, resumed_from
    for row in after:
        end = int(row["step"])
        learnt = any(step % 2 == 0 for step in range(max(previous_end, refilled) + 1, end + 1))
        assert (row["loss"] != "") == learnt, row
        previous_end = end
    assert {row["loss"] == "" for row in after} == {True, False}  # both kinds of episode are there
    assert (run_dir / "eval.json").is_file()
    # TensorBoard follows the run it belongs to: the resumed losses, not the killed process's
    losses = dict(tensorboard_scalars(run_dir)["train/loss"])
    assert sorted(losses) == [int(row["step"]) for row in train if row["loss"] != ""]
    assert all(
        losses[int(row["step"])] == pytest.approx(float(row["loss"]), rel=1e-5) for row in train if row["loss"] != ""
    )


class Exploit:
    """Unpickling this creates the marker file: what a malicious checkpoint could do."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_malicious_checkpoint_is_refused_and_runs_nothing(tmp_path, reference):
    marker = tmp_path / "pwned"
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text((reference / "config.yaml").read_text())
    checkpoint = run_dir / "checkpoints" / "step-000000000400.pt"
    checkpoint.parent.mkdir()
    torch.save({"run": Exploit(str(marker)), "algo": {}}, checkpoint)  # a valid checksum: only the content is bad
    torch.load(checkpoint, weights_only=False)["run"].close()  # really dangerous: an unsafe load runs the payload
    assert marker.exists()
    marker.unlink()
    data = checkpoint.read_bytes()
    checkpoint.with_suffix(".json").write_text(
        json.dumps(
            {
                "format": "deeprl-checkpoint",
                "deeprl_version": "0.1.0",
                "algo": "dqn",
                "env": "CartPole-v1",
                "step": 400,
                "layout": CHECKPOINT_LAYOUT,
                "sha256": hashlib.sha256(data).hexdigest(),
                "bytes": len(data),
            }
        )
    )
    result = resume(run_dir)
    assert result.returncode == 2
    assert "cannot be loaded" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1  # the refusal is the whole message
    assert not marker.exists()


def test_picture_run_resumes_identically(tmp_path, uninterrupted):
    """Screen observations, a BatchNorm CNN and the replay that stores pictures once survive a SIGKILL too:
    the resumed run ends with the same weights (BatchNorm statistics included), metrics and scalars."""
    reference_dir = uninterrupted("dqn", "CartPole-v1", PICTURE_ARGS)
    trainer = Trainer(tmp_path / "run", PICTURE_ARGS)
    stop_after_checkpoint(trainer, 400)
    trainer.kill()
    assert_resumes_identically(trainer.run_dir, reference_dir)
    assert any("running_mean" in key for key in weights(trainer.run_dir / "policy.pt"))


def test_checkpoints_of_an_older_layout_are_refused(tmp_path, reference):
    """Checkpoints from before env copies were replayed on resume cannot continue a run: said in one line."""
    run_dir = tmp_path / "run"
    shutil.copytree(reference, run_dir)
    (run_dir / "eval.json").unlink()
    for manifest_path in checkpoints(run_dir):
        manifest = json.loads(manifest_path.read_text())
        del manifest["layout"]  # as deeprl wrote them before layout 2
        manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(
        DeeprlError,
        match=r"has no intact checkpoint to resume from \(checkpoint step-\d+\.pt comes "
        r"from an older deeprl \(layout 1\) and cannot be resumed by this one",
    ):
        deeprl.train(resume=run_dir)


# ------------------------------------------------------------------------ continuing to a larger budget

# DQN with nothing annealed over total_steps (lr_end: null), so a budget's end changes nothing before it
CONTINUED = {
    "seed": 0,
    "learning_starts": 100,
    "train_freq": 2,
    "lr_end": None,
    "checkpoint_every": 200,
    "eval_every": 300,
    "eval_episodes": 2,
    "final_eval_episodes": 2,
    "progress": False,
}


def test_a_finished_run_continues_to_a_larger_budget_as_if_started_with_it(tmp_path, capsys):
    """600 steps, then resumed to 900, end as the 900-step run: the 600-step run checkpointed its last step (mid-
    episode: the episode's gradient steps so far are in the checkpoint), and from there the run goes on exactly
    as the longer run does."""
    deeprl.train("dqn", "CartPole-v1", steps=600, run_dir=tmp_path / "run", **CONTINUED)
    finished = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert newest_step(tmp_path / "run") == 600
    capsys.readouterr()
    continued = deeprl.train(resume=tmp_path / "run", steps=900, progress=False)
    assert "deeprl: warning" not in capsys.readouterr().err  # nothing differs: nothing to say
    deeprl.train("dqn", "CartPole-v1", steps=900, run_dir=tmp_path / "straight", **CONTINUED)
    assert continued.summary["steps"] == 900
    assert_same_run(tmp_path / "run", tmp_path / "straight")
    assert json.loads((tmp_path / "run" / "eval-step-600.json").read_text()) == finished  # the old end, set aside
    assert "total_steps: 900\n" in (tmp_path / "run" / "config.yaml").read_text()


def test_continuing_says_where_annealing_differs_and_refuses_a_smaller_budget(tmp_path, reference):
    run_dir = tmp_path / "run"
    shutil.copytree(reference, run_dir)
    result = run_deeprl("resume", run_dir, "--steps", STEPS, "--quiet", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == (
        f"deeprl: error: run {run_dir} finished at step {STEPS}: steps must be larger to continue it (got {STEPS})\n"
    )
    assert (run_dir / "eval.json").is_file()  # refused: nothing changed
    result = run_deeprl("resume", run_dir, "--steps", STEPS + 400, "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    # the DQN preset anneals lr to lr_end over total_steps: the continued run followed the shorter schedule
    assert (
        f"deeprl: warning: lr_end anneals over total_steps: up to step {newest_step(reference)} this run "
        f"followed the {STEPS}-step schedule, so it differs from a run started with {STEPS + 400} steps"
    ) in result.stderr
    assert json.loads((run_dir / "eval.json").read_text())["steps"] == STEPS + 400
