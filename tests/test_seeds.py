"""Several seeds in one process (deeprl.many_seeds, deeprl.seed_axis): DQN's, TD3's, SAC's, PPO's and A2C's seeds step
together on a stacked seed axis, and each seed's run directory is its single-seed run's, bit for bit: after a seed
solves and leaves the stack, after a SIGKILL and a resume of the seeds directory, with gradient clipping and optimiser
state sliced and stacked."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
import torch

import deeprl
from deeprl.errors import DeeprlError
from deeprl.seed_axis import SeedStack, joined_optimizer_state, per_seed_mean, seed_optimizer_state, step_seeds
from tests.conftest import (
    Trainer,
    assert_same_run,
    checkpoints,
    metrics_without_time,
    newest_step,
    resume,
    run_deeprl,
    weights,
)

SEEDS = (0, 1, 2)
# seed 0 passes the threshold at step 1500 and leaves the stack; seed 2 passes it at 2000, seed 1 never does
ARGS = [
    "--steps",
    "2000",
    "--quiet",
    "--set",
    "eval_every=500",
    "--set",
    "learning_starts=200",
    "--set",
    "train_freq=2",
    "--set",
    "eval_episodes=3",
    "--set",
    "final_eval_episodes=3",
    "--set",
    "checkpoint_every=400",
    "--set",
    "solve_threshold=70",
    "--set",
    "solve_confirm_episodes=0",
    "--set",
    "stop_on_solve=true",
    "--set",
    "tensorboard=true",
]


@pytest.fixture(scope="module")
def single_runs(uninterrupted) -> dict[int, Path]:
    return {seed: uninterrupted("dqn", "CartPole-v1", ["--seed", str(seed), *ARGS]) for seed in SEEDS}


def test_each_seed_of_a_stacked_run_is_its_single_seed_run(tmp_path, single_runs):
    result = run_deeprl("train", "dqn", "CartPole-v1", "--seeds", "0-2", "--run-dir", "seeds", *ARGS, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    seeds_dir = tmp_path / "seeds"
    ended = {}
    for seed in SEEDS:
        assert_same_run(seeds_dir / f"seed-{seed}", single_runs[seed])
        ended[seed] = json.loads((seeds_dir / f"seed-{seed}" / "eval.json").read_text())["steps"]
    assert ended == {0: 1500, 1: 2000, 2: 2000}  # seed 0 left the stack solved; the others went on without it
    assert json.loads((seeds_dir / "seeds.json").read_text())["runs"] == ["seed-0", "seed-1", "seed-2"]
    assert "seed 1: final" in result.stdout and "over 3 seeds" in result.stdout
    report = (seeds_dir / "report.html").read_text()
    assert all(f"seed {seed}" in report for seed in SEEDS) or report.count("seed-") >= len(SEEDS)
    assert (seeds_dir / "curves.png").stat().st_size > 10_000
    plotted = run_deeprl("plot", "seeds", "--x", "time", "-o", "by-time.png", cwd=tmp_path)
    assert plotted.returncode == 0 and (tmp_path / "by-time.png").stat().st_size > 10_000, plotted.stderr


def test_dueling_masked_dict_seeds_are_their_single_seed_runs(tmp_path):
    """The Dict observations of a masked env, a dueling net (its one-unit value head) and 3-step targets."""
    settings = dict(
        steps=1500,
        progress=False,
        eval_every=500,
        eval_episodes=3,
        final_eval_episodes=3,
        tensorboard=False,
        learning_starts=200,
        hidden_sizes=(32, 32),
        dueling=True,
        n_step=3,
    )
    env = "tests.custom_envs:MaskedDictCorridor"
    stacked = deeprl.train("dqn", env, seeds=[0, 1], run_dir=tmp_path / "seeds", **settings)
    for agent in stacked:
        seed = agent.summary["seed"]
        alone = deeprl.train("dqn", env, seed=seed, run_dir=tmp_path / f"alone-{seed}", **settings)
        assert metrics_without_time(agent.run_dir) == metrics_without_time(alone.run_dir)
        expected, actual = weights(alone.run_dir / "policy.pt"), weights(agent.run_dir / "policy.pt")
        assert all(torch.equal(expected[key], actual[key]) for key in expected)


# TD3 and SAC on Pendulum, small networks
CONTINUOUS_ARGS = [
    "--steps",
    "1200",
    "--quiet",
    "--set",
    "hidden_sizes=32,32",
    "--set",
    "learning_starts=200",
    "--set",
    "eval_every=400",
    "--set",
    "eval_episodes=2",
    "--set",
    "final_eval_episodes=2",
    "--set",
    "checkpoint_every=400",
    "--set",
    "tensorboard=true",
]


def kill_and_resume_two_seeds(
    tmp_path: Path, algo: str, env: str, args: list[str], step: int, alone: dict[int, Path]
) -> None:
    """Seeds 0 and 1 trained together, SIGKILLed once both have a checkpoint at `step` or later and resumed as a
    seeds directory: each ends as its single-seed run `alone[seed]`."""
    trainer = Trainer(tmp_path / "killed", ["--seeds", "0,1", *args], algo=algo, env=env)
    runs = [trainer.run_dir / f"seed-{seed}" for seed in (0, 1)]
    trainer.wait_for(lambda: all(newest_step(run) >= step for run in runs), f"both seeds' checkpoints at step {step}")
    trainer.freeze()
    trainer.kill()
    result = resume(trainer.run_dir)
    assert result.returncode == 0, result.stderr
    for seed, run in zip((0, 1), runs, strict=True):
        assert_same_run(run, alone[seed], tags=("train/return", "eval/return"))


@pytest.mark.parametrize("algo", ["td3", "sac"])
def test_continuous_seeds_are_their_single_seed_runs_and_resume_exactly(tmp_path, uninterrupted, algo):
    """TD3 (twin critics, delayed actor, target noise) and SAC (sampled actions, tuned alpha), each seed drawing from
    generators of its own."""
    alone = {seed: uninterrupted(algo, "Pendulum-v1", ["--seed", str(seed), *CONTINUOUS_ARGS]) for seed in (0, 1)}
    together = run_deeprl(
        "train", algo, "Pendulum-v1", "--seeds", "0,1", "--run-dir", "seeds", *CONTINUOUS_ARGS, cwd=tmp_path
    )
    assert together.returncode == 0, together.stderr
    for seed in (0, 1):
        assert_same_run(tmp_path / "seeds" / f"seed-{seed}", alone[seed], tags=("train/return", "eval/return"))
    kill_and_resume_two_seeds(tmp_path, algo, "Pendulum-v1", CONTINUOUS_ARGS, 800, alone)


# PPO and A2C, small: 2 env copies, a checkpoint every 512 steps
ON_POLICY_ARGS = [
    "--steps",
    "1536",
    "--quiet",
    "--set",
    "hidden_sizes=32,32",
    "--set",
    "n_envs=2",
    "--set",
    "eval_every=512",
    "--set",
    "eval_episodes=2",
    "--set",
    "final_eval_episodes=2",
    "--set",
    "checkpoint_every=512",
    "--set",
    "tensorboard=true",
]


@pytest.mark.resume
@pytest.mark.parametrize(
    "algo, env, settings",
    [
        ("ppo", "CartPole-v1", ["n_steps=128", "batch_size=64", "n_epochs=3", "lr_end=0"]),
        ("a2c", "Pendulum-v1", ["n_steps=8", "normalize_observations=true", "normalize_rewards=true"]),
    ],
)
def test_on_policy_seeds_are_their_single_seed_runs_and_resume_exactly(tmp_path, uninterrupted, algo, env, settings):
    """PPO (each seed's own minibatch orders, an annealed lr) and A2C (Box actions: each seed's log std in the stack;
    RMSprop; each seed's normalisers): each seed's run is its single-seed run, and after a SIGKILL the seeds
    directory resumes exactly."""
    args = [*ON_POLICY_ARGS, *(part for setting in settings for part in ("--set", setting))]
    alone = {seed: uninterrupted(algo, env, ["--seed", str(seed), *args]) for seed in (0, 1)}
    together = run_deeprl("train", algo, env, "--seeds", "0,1", "--run-dir", "seeds", *args, cwd=tmp_path)
    assert together.returncode == 0, together.stderr
    assert "one after another" not in together.stderr  # stacked
    for seed in (0, 1):
        assert_same_run(tmp_path / "seeds" / f"seed-{seed}", alone[seed], tags=("train/return", "eval/return"))
    kill_and_resume_two_seeds(tmp_path, algo, env, args, 1024, alone)


def test_a_solved_ppo_seed_leaves_the_stack_and_the_others_go_on_as_alone(tmp_path, uninterrupted):
    """Seed 1 passes 100 at its step-512 evaluation and stops; seeds 0 and 2 stack again without it and train on to
    the budget, each as its single-seed run."""
    args = [
        *("eval_every=256" if arg == "eval_every=512" else arg for arg in ON_POLICY_ARGS),
        *("--set", "n_steps=128", "--set", "batch_size=64", "--set", "n_epochs=3"),
        *("--set", "solve_threshold=100", "--set", "solve_confirm_episodes=0", "--set", "stop_on_solve=true"),
    ]
    alone = {seed: uninterrupted("ppo", "CartPole-v1", ["--seed", str(seed), *args]) for seed in SEEDS}
    together = run_deeprl("train", "ppo", "CartPole-v1", "--seeds", "0-2", "--run-dir", "seeds", *args, cwd=tmp_path)
    assert together.returncode == 0, together.stderr
    ended = {}
    for seed in SEEDS:
        assert_same_run(tmp_path / "seeds" / f"seed-{seed}", alone[seed], tags=("train/return", "eval/return"))
        ended[seed] = json.loads((tmp_path / "seeds" / f"seed-{seed}" / "eval.json").read_text())["steps"]
    assert ended == {0: 1536, 1: 512, 2: 1536}


def test_ppo_seeds_with_target_kl_train_one_after_another_with_one_line(tmp_path, capsys):
    """target_kl ends each seed's epochs at a minibatch of its own: those seeds do not step together."""
    settings = dict(steps=256, n_envs=2, n_steps=128, batch_size=64, n_epochs=2, eval_every=1000, final_eval_episodes=1)
    agents = deeprl.train(
        "ppo", "CartPole-v1", seeds=[0, 1], run_dir=tmp_path / "seeds", progress=False, target_kl=0.01, **settings
    )
    assert [agent.run_dir.name for agent in agents] == ["seed-0", "seed-1"]
    assert (
        "deeprl: warning: the seeds train one after another in this process: target_kl stops each seed's epochs at a "
        "minibatch of its own" in capsys.readouterr().err
    )


def test_a_killed_seeds_run_resumes_each_seed_exactly(tmp_path, single_runs):
    trainer = Trainer(tmp_path / "seeds", ["--seeds", "0-2", *ARGS])
    runs = [trainer.run_dir / f"seed-{seed}" for seed in SEEDS]
    trainer.wait_for(lambda: all(newest_step(run) >= 1200 for run in runs), "every seed's checkpoint at step 1200")
    trainer.freeze()
    trainer.kill()
    # as if killed while writing the seeds' checkpoints: seed 1's newest is lost, so all continue from the one before
    newest = checkpoints(runs[1])[-1]
    newest.unlink()
    newest.with_suffix(".pt").unlink()
    result = resume(trainer.run_dir)
    assert result.returncode == 0, result.stderr
    for seed, run in zip(SEEDS, runs, strict=True):
        assert_same_run(run, single_runs[seed])


def test_ctrl_c_checkpoints_every_seed_and_names_the_seeds_directory(tmp_path, single_runs):
    trainer = Trainer(tmp_path / "seeds", ["--seeds", "0-2", *ARGS])
    runs = [trainer.run_dir / f"seed-{seed}" for seed in SEEDS]
    trainer.wait_for(lambda: all(newest_step(run) >= 400 for run in runs), "every seed's first checkpoint")
    trainer.process.send_signal(signal.SIGINT)
    assert trainer.process.wait(120) == 130
    assert f"continue with: deeprl resume {trainer.run_dir}" in trainer.stderr()
    stopped = {newest_step(run) for run in runs if not (run / "eval.json").exists()}
    assert len(stopped) == 1  # every seed still training checkpointed at the same step
    assert all((run / "policy.pt").is_file() for run in runs)  # eval and watch work on each
    result = resume(trainer.run_dir)
    assert result.returncode == 0, result.stderr
    for seed, run in zip(SEEDS, runs, strict=True):
        assert_same_run(run, single_runs[seed])


def test_a_run_dir_of_one_seed_resumes_alone(tmp_path, single_runs):
    trainer = Trainer(tmp_path / "seeds", ["--seeds", "2", *ARGS])
    run = trainer.run_dir / "seed-2"
    trainer.wait_for(lambda: newest_step(run) >= 800, "a checkpoint at step 800")
    trainer.freeze()
    trainer.kill()
    result = resume(run)  # its checkpoints are a single-seed run's
    assert result.returncode == 0, result.stderr
    assert_same_run(run, single_runs[2])


def test_seeds_that_cannot_stack_train_one_after_another(tmp_path):
    agents = deeprl.train(
        "reinforce",
        "CartPole-v1",
        seeds=[4, 5],
        steps=600,
        run_dir=tmp_path / "seeds",
        progress=False,
        eval_every=300,
        final_eval_episodes=2,
        tensorboard=False,
    )
    assert [agent.summary["seed"] for agent in agents] == [4, 5]
    assert [agent.run_dir.name for agent in agents] == ["seed-4", "seed-5"]
    assert (tmp_path / "seeds" / "report.html").is_file()


def test_a_finished_seeds_directory_continues_to_a_larger_budget(tmp_path):
    settings = dict(progress=False, eval_every=350, eval_episodes=2, final_eval_episodes=2, tensorboard=False)
    deeprl.train("dqn", "CartPole-v1", seeds=[0, 1], steps=700, run_dir=tmp_path / "seeds", **settings)
    with pytest.raises(DeeprlError, match=r"every run of .* has finished; `deeprl resume .* --steps N`"):
        deeprl.train(resume=tmp_path / "seeds")
    agents = deeprl.train(resume=tmp_path / "seeds", steps=1050, progress=False)
    assert [(agent.summary["seed"], agent.summary["steps"]) for agent in agents] == [(0, 1050), (1, 1050)]
    assert (tmp_path / "seeds" / "seed-0" / "eval-step-700.json").is_file()  # the old summary kept beside


def test_seeds_one_after_another_resume_where_they_stopped(tmp_path):
    """Killed during the first of two seeds that train one after another: the seeds directory's resume continues the
    first from its checkpoint and starts the second."""
    args = ["--seeds", "0,1", "--steps", "3000", "--quiet", "--set", "checkpoint_every=500", "--set", "eval_every=1500"]
    trainer = Trainer(tmp_path / "seeds", args, algo="reinforce")
    first = trainer.run_dir / "seed-0"
    trainer.wait_for(lambda: newest_step(first) >= 500, "the first seed's checkpoint")
    trainer.freeze()
    trainer.kill()
    assert not (trainer.run_dir / "seed-1").exists()
    result = resume(trainer.run_dir)
    assert result.returncode == 0, result.stderr
    assert "one after another" in result.stderr
    for seed in (0, 1):
        summary = json.loads((trainer.run_dir / f"seed-{seed}" / "eval.json").read_text())
        assert summary["seed"] == seed and summary["steps"] >= 3000
    assert (trainer.run_dir / "report.html").is_file()


@pytest.mark.parametrize("width", [2, 3, 64, 300])
def test_one_optimiser_steps_every_seed_as_its_own(width):
    """Ten seeds' Adam steps on an annealed lr, through the stack, equal each seed's own optimiser bit for bit, at
    widths that straddle the CPU's vector lanes (a joined step on the (seeds, width) tensor rounds some seeds
    differently)."""
    seeds = 10
    nets = [torch.nn.Linear(4, width) for _ in range(seeds)]
    alone = [torch.nn.Linear(4, width) for _ in range(seeds)]
    for net, copy in zip(nets, alone, strict=True):
        copy.load_state_dict(net.state_dict())
    stack = SeedStack(nets)
    optimizer = torch.optim.Adam([p for net in nets for p in net.parameters()], lr=1e-3, fused=True)
    own = [torch.optim.Adam(copy.parameters(), lr=1e-3, fused=True) for copy in alone]
    generator = torch.Generator().manual_seed(0)
    for step in range(30):
        lr = 1.5e-3 - 1.4e-3 * step / 30
        for each in (optimizer, *own):
            each.param_groups[0]["lr"] = lr
        inputs = torch.randn(seeds, 8, 4, generator=generator) * 10.0 ** (step % 5 - 2)
        losses = per_seed_mean(stack.network(inputs.view(-1, 4)).square(), seeds)
        step_seeds(optimizer, [stack], losses)
        for index, copy in enumerate(alone):
            own[index].zero_grad()
            copy(inputs[index]).square().mean().backward()
            own[index].step()
    for net, copy in zip(nets, alone, strict=True):
        assert all(torch.equal(a, b) for a, b in zip(net.parameters(), copy.parameters(), strict=True))
    state = optimizer.state_dict()
    for index in range(seeds):
        sliced = seed_optimizer_state(state, index, seeds)
        for position, values in own[index].state_dict()["state"].items():
            assert all(torch.equal(sliced["state"][position][key], value) for key, value in values.items())
    rejoined = joined_optimizer_state([seed_optimizer_state(state, index, seeds) for index in range(seeds)])
    assert rejoined["state"].keys() == state["state"].keys()


def test_pictures_seeds_train_one_after_another_with_one_line(tmp_path, capsys):
    agents = deeprl.train(
        "dqn",
        "CartPole-v1",
        seeds=[0, 1],
        steps=120,
        run_dir=tmp_path / "seeds",
        progress=False,
        observation="screen_frames",
        screen_height=16,
        conv_channels=(4,),
        conv_kernels=(3,),
        conv_strides=(2,),
        hidden_sizes=(8,),
        learning_starts=60,
        batch_size=8,
        eval_every=1000,
        final_eval_episodes=1,
        tensorboard=False,
    )
    assert [agent.run_dir.name for agent in agents] == ["seed-0", "seed-1"]
    assert "train one after another in this process: DQN stacks the seeds of MLP Q-networks" in capsys.readouterr().err
    with pytest.raises(ValueError, match="only networks of Linear layers"):
        SeedStack([agent.q_net for agent in agents])
