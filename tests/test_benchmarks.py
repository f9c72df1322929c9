"""The benchmark harnesses: seeds.py scores agents in the environment their run trained on; compare.py reads
RL Zoo entries into Stable-Baselines3 settings as the Zoo does (tested without SB3 or rl_zoo3 installed)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import yaml

from tests.conftest import PNG_SIGNATURE, rows_without_time, run_deeprl

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SEEDS_SCRIPT = BENCHMARKS / "seeds.py"


def load_benchmark(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"benchmarks_{name}", BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


compare = load_benchmark("compare")

# Shaped like the entries of rl_zoo3 2.9's hyperparams/*.yml, as yaml.safe_load returns them.
PPO_CARTPOLE = {
    "n_envs": 8,
    "n_timesteps": 1e5,
    "policy": "MlpPolicy",
    "n_steps": 32,
    "batch_size": 256,
    "gae_lambda": 0.8,
    "gamma": 0.98,
    "n_epochs": 20,
    "ent_coef": 0.0,
    "learning_rate": "lin_0.001",
    "clip_range": "lin_0.2",
}
TD3_PENDULUM = {
    "n_timesteps": 20000,
    "policy": "MlpPolicy",
    "gamma": 0.98,
    "buffer_size": 200000,
    "learning_starts": 10000,
    "noise_type": "normal",
    "noise_std": 0.1,
    "gradient_steps": 1,
    "train_freq": 1,
    "learning_rate": "1e-3",
    "policy_kwargs": "dict(net_arch=[400, 300])",
}


@pytest.mark.learning
def test_seeds_harness_evaluates_in_the_runs_shaped_env(tmp_path: Path) -> None:
    # tutorial-shaped pays tip height - 1 (at most 1, about -3 hanging down) for up to 1 000 steps; plain
    # Acrobot-v1 pays -1 for at most 500 steps, so no return there falls below -500.
    # the harness runs forked after the imports (tests/forking_cli.py); it starts `python -m deeprl train` itself
    arguments = [
        "--env",
        "Acrobot-v1",
        "--preset",
        "tutorial-shaped",
        "--seeds",
        "0",
        "--episodes",
        "2",
        "--out",
        str(tmp_path),
        "--set",
        "total_steps=1000",
        "--set",
        "eval_every=500",
        "--set",
        "eval_episodes=1",
        "--set",
        "final_eval_episodes=1",
    ]
    done = run_deeprl(*arguments, cwd=tmp_path, script=SEEDS_SCRIPT, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert len(rows) == 1 and rows[0]["seed"] == 0
    assert rows[0]["loaded_mean"] < -500 and rows[0]["final_mean"] < -500
    assert "| 0 |" in done.stdout


def test_zoo_ppo_entry_becomes_sb3_settings_with_linear_schedules() -> None:
    setup = compare.sb3_setup(PPO_CARTPOLE)
    assert (setup.budget, setup.policy, setup.n_envs) == (100_000, "MlpPolicy", 8)
    assert setup.normalize is None and setup.noise is None
    kwargs = setup.kwargs
    # lin_X is X * progress_remaining: X when training starts, a quarter of X with a quarter left.
    assert kwargs["learning_rate"](1.0) == pytest.approx(0.001)
    assert kwargs["learning_rate"](0.25) == pytest.approx(0.00025)
    assert kwargs["clip_range"](1.0) == pytest.approx(0.2)
    assert kwargs["clip_range"](0.25) == pytest.approx(0.05)
    assert repr(kwargs["clip_range"]) == "lin_0.2"  # as the JSON records it
    rest = {key: value for key, value in kwargs.items() if key not in ("learning_rate", "clip_range")}
    assert rest == {"n_steps": 32, "batch_size": 256, "gae_lambda": 0.8, "gamma": 0.98, "n_epochs": 20, "ent_coef": 0.0}


# rl_zoo3 2.9's hyperparams/dqn.yml `atari` entry, as yaml.safe_load returns it.
DQN_ATARI = {
    "env_wrapper": ["stable_baselines3.common.atari_wrappers.AtariWrapper"],
    "frame_stack": 4,
    "policy": "CnnPolicy",
    "n_timesteps": 1e7,
    "buffer_size": 100000,
    "learning_rate": 1e-4,
    "batch_size": 32,
    "learning_starts": 100000,
    "target_update_interval": 1000,
    "train_freq": 4,
    "gradient_steps": 1,
    "exploration_fraction": 0.1,
    "exploration_final_eps": 0.01,
    "optimize_memory_usage": False,
}


def test_the_zoos_atari_entry_becomes_its_wrapper_and_frame_stack() -> None:
    setup = compare.sb3_setup(DQN_ATARI)
    assert (setup.atari_frame_stack, setup.policy, setup.budget) == (4, "CnnPolicy", 10_000_000)
    assert not {"env_wrapper", "frame_stack", "optimize_memory_usage"} & set(setup.kwargs)
    assert setup.kwargs["learning_starts"] == 100_000
    assert compare.sb3_setup(PPO_CARTPOLE).atari_frame_stack is None
    with pytest.raises(SystemExit, match="env_wrapper"):  # another wrapper beside Atari's is still refused
        compare.sb3_setup({**DQN_ATARI, "env_wrapper": [DQN_ATARI["env_wrapper"][0], "my.Wrapper"]})


@pytest.mark.parametrize(
    ("env_id", "key"),
    [
        ("CartPole-v1", "CartPole-v1"),  # an env's own entry first
        ("PongNoFrameskip-v4", "atari"),
        ("ALE/Breakout-v5", "atari"),
        ("Hopper-v5", "Hopper-v4"),  # the Zoo tuned the v4 MuJoCo ids
        ("Hopper-v3", None),
        ("Acrobot-v1", None),
    ],
)
def test_zoo_entries_for_atari_games_and_mujoco_v5_ids(env_id: str, key: str | None) -> None:
    table = {"atari": {}, "CartPole-v1": {}, "Hopper-v4": {}}
    assert compare.zoo_key(env_id, table) == key


def test_zoo_off_policy_entry_reads_noise_numbers_and_policy_kwargs() -> None:
    setup = compare.sb3_setup(TD3_PENDULUM)
    assert setup.noise == {"kind": "normal", "sigma": 0.1}
    assert setup.n_envs == 1 and setup.budget == 20_000
    assert setup.kwargs["learning_rate"] == 0.001 and isinstance(setup.kwargs["learning_rate"], float)
    assert setup.kwargs["policy_kwargs"] == {"net_arch": [400, 300]}
    assert not {"noise_type", "noise_std", "n_timesteps", "policy"} & set(setup.kwargs)
    ou = compare.sb3_setup({**TD3_PENDULUM, "noise_type": "ornstein-uhlenbeck", "noise_std": 0.5})
    assert ou.noise == {"kind": "ornstein-uhlenbeck", "sigma": 0.5}
    sac = compare.sb3_setup(
        {"n_timesteps": 20000, "policy": "MlpPolicy", "ent_coef": "auto", "train_freq": [1, "episode"]}
    )
    assert sac.noise is None and sac.kwargs == {"ent_coef": "auto", "train_freq": (1, "episode")}


@pytest.mark.parametrize(
    ("normalize", "gamma", "expected"),
    [
        (True, None, {}),  # A2C Acrobot-v1: VecNormalize's defaults
        (True, 0.99, {"gamma": 0.99}),  # PPO Acrobot-v1: the reward is discounted with the algorithm's gamma
        ("{'norm_obs': True, 'norm_reward': False}", 0.98, {"norm_obs": True, "norm_reward": False, "gamma": 0.98}),
        ("dict(norm_obs=False, norm_reward=True)", None, {"norm_obs": False, "norm_reward": True}),
        (False, 0.99, None),
    ],
)
def test_zoo_normalize_becomes_vecnormalize_options(
    normalize: object, gamma: float | None, expected: dict | None
) -> None:
    entry = {"n_envs": 16, "n_timesteps": 5e5, "policy": "MlpPolicy", "normalize": normalize}
    if gamma is not None:
        entry["gamma"] = gamma
    setup = compare.sb3_setup(entry)
    assert setup.normalize == expected
    assert "normalize" not in setup.kwargs


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"frame_stack": 4}, "frame_stack"),
        ({"env_wrapper": "sb3_contrib.common.wrappers.TimeFeatureWrapper"}, "env_wrapper"),
        ({"noise_type": "uniform", "noise_std": 0.1}, "uniform"),
        ({"gamma": "lin_0.99"}, "gamma"),
    ],
)
def test_zoo_entries_compare_does_not_reproduce_are_refused_by_name(extra: dict, named: str) -> None:
    with pytest.raises(SystemExit, match=named):
        compare.sb3_setup({**PPO_CARTPOLE, **extra})


def test_evaluation_fires_when_a_step_boundary_is_crossed() -> None:
    # 24 envs and evaluations every 1000 steps: the step count lands on a multiple only at 3000.
    last, fired = 0, []
    for steps in range(24, 5000, 24):
        if compare.crosses_eval_boundary(last, steps, 1000):
            last = steps
            fired.append(steps)
    assert fired == [1008, 2016, 3000, 4008]


def test_sb3s_whole_games_start_each_life_with_fire_as_its_training_did() -> None:
    """SB3's agent learns with every life started by FIRE (life loss ends its episodes); its evaluation games must
    do the same, as deeprl's do, or an agent that never presses FIRE waits out the frame cap after its first life
    (27 000 agent steps of Breakout) and scores that life alone."""

    class NeverFires:  # the SB3 model's predict, holding the paddle still
        def predict(self, obs, deterministic: bool):
            return [0] * len(obs), None

    compare.is_atari_id("BreakoutNoFrameskip-v4")  # registers the Atari ids, as compare.py's main does
    result = compare.sb3_atari_games(NeverFires(), "BreakoutNoFrameskip-v4", 2, 5, 4)
    # Monitor, beneath the frame skip, counts frames: five lives launched by FIRE and lost within a few hundred
    # frames each (1 434 and 537 here), where lives left waiting for FIRE run to the 108 000-frame cap
    assert len(result.returns) == 2 and all(length < 5000 for length in result.lengths), result.lengths
    assert all(points >= 0 for points in result.returns)


def test_checkpoint_cost_saves_a_dqn_checkpoint_with_its_replay(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setattr(
        sys, "argv", ["checkpoint_cost.py", "--env", "CartPole-v1", "--buffer", "500", "--repeats", "1"]
    )
    load_benchmark("checkpoint_cost").main()
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("CartPole-v1, buffer 500 transitions of 4 floats, ")
    assert lines[1].startswith("checkpoint: ") and "(median of 1)" in lines[1]


def test_stacked_seed_networks_compute_what_the_separate_ones_do() -> None:
    """seed_axis.py's claim, on this machine: K networks stacked on a leading axis give the separate networks'
    Q-values and, after ten Adam updates each way, their weights, bit for bit."""
    import torch

    seed_axis = load_benchmark("seed_axis")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        times = seed_axis.measure(seeds=3, repeats=1)
    finally:
        torch.set_num_threads(threads)
    assert times["difference"] == 0.0 and times["drift"] == 0.0
    assert all(times[key] > 0 for key in ("update_sequential", "update_stacked", "act_sequential", "act_stacked"))


def test_a_cut_off_deeprl_run_carries_on_from_its_checkpoint_and_a_finished_one_is_read(tmp_path: Path) -> None:
    """compare.py keeps deeprl's run directory: a run cut off after a checkpoint resumes from it (its evaluations
    those of the run never cut off), and a run that finished before its report is read, not trained again."""

    run_dir = tmp_path / "deeprl-s0"
    # a kept run checkpoints at each evaluation (the preset's every 10 000 steps would leave nothing to resume from)
    first = compare.run_deeprl("dqn", "CartPole-v1", 0, 300, 600, None, 2, run_dir)
    assert (
        first["resumed_from_step"] is None
        and yaml.safe_load((run_dir / "config.yaml").read_text())["checkpoint_every"] == 300
    )
    saved = [json.loads(path.read_text())["step"] for path in sorted((run_dir / "checkpoints").glob("*.json"))]
    assert len(saved) == 2 and 300 <= saved[0] < 600 and saved[1] == 600  # at the first episode end from 300
    whole = rows_without_time(run_dir / "metrics.csv")
    finished = compare.run_deeprl("dqn", "CartPole-v1", 0, 300, 600, None, 2, run_dir)
    assert finished["resumed_from_step"] is None and finished["steps"] == 600
    assert finished["evals"] == first["evals"] and finished["final"] == first["final"]
    assert [evaluation["step"] for evaluation in finished["evals"]] == [300, 600]

    # cut off after the checkpoint before the last: what a SIGKILL leaves (metrics rows past it included)
    checkpoints = sorted((run_dir / "checkpoints").glob("step-*.json"))
    for path in (checkpoints[-1], checkpoints[-1].with_suffix(".pt"), run_dir / "eval.json", run_dir / "policy.pt"):
        path.unlink()
    resumed = compare.run_deeprl("dqn", "CartPole-v1", 0, 300, 600, None, 2, run_dir)
    assert resumed["resumed_from_step"] == json.loads(checkpoints[-2].read_text())["step"]
    assert rows_without_time(run_dir / "metrics.csv") == whole
    assert [(row["step"], row["mean"], row["std"]) for row in resumed["evals"]] == [
        (row["step"], row["mean"], row["std"]) for row in finished["evals"]
    ]
    assert resumed["final"] == finished["final"]


def test_deeprl_seeds_trains_every_seed_in_one_process_as_each_alone(tmp_path: Path) -> None:
    """compare.py's deeprl-seeds: every seed in one process (their DQN updates stacked), each seed's result that of
    its run alone, and the time a person waits for every seed: the one process's, not a sum."""
    together = compare.run_deeprl_seeds("dqn", "CartPole-v1", [0, 1], 300, 600, None, 2, tmp_path / "seeds")
    alone = [
        compare.run_deeprl("dqn", "CartPole-v1", seed, 300, 600, None, 2, tmp_path / f"s{seed}") for seed in (0, 1)
    ]
    for stacked, single in zip(together, alone, strict=True):
        assert [(row["step"], row["mean"]) for row in stacked["evals"]] == [
            (row["step"], row["mean"]) for row in single["evals"]
        ]
        assert stacked["final"] == single["final"]
    assert together[0]["wall_seconds"] == together[1]["wall_seconds"]
    runs = [{**run, "framework": "deeprl-seeds", "steps_per_second": 1.0} for run in together]
    assert compare.summarise(runs, 475.0)["all_seeds_wall_seconds"] == together[0]["wall_seconds"]
    runs = [{**run, "framework": "deeprl", "steps_per_second": 1.0} for run in alone]
    assert compare.summarise(runs, 475.0)["all_seeds_wall_seconds"] == pytest.approx(
        alone[0]["wall_seconds"] + alone[1]["wall_seconds"]
    )


def test_deeprl_settings_given_with_set_reach_its_runs_and_the_report(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    done = run_deeprl(
        *("--algo", "dqn", "--env", "CartPole-v1", "--seeds", "0", "--frameworks", "deeprl", "--steps", "600"),
        *("--eval-every", "300", "--eval-episodes", "1", "--set", "epsilon_decay_steps=300", "--set", "lr=2e-3"),
        *("--out", str(out)),
        cwd=tmp_path,
        script=BENCHMARKS / "compare.py",
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    assert report["deeprl_settings"] == {"epsilon_decay_steps": "300", "lr": "2e-3"}
    assert "- deeprl settings over its preset `default` (--set): epsilon_decay_steps=300, lr=2e-3" in done.stdout
    config = yaml.safe_load((tmp_path / "report-runs" / "deeprl-s0" / "config.yaml").read_text())
    assert (config["epsilon_decay_steps"], config["lr"], config["total_steps"]) == (300, 0.002, 600)
    assert "--set epsilon_decay_steps=300 --set lr=2e-3" in report["command"]  # what --resume carries on
    assert (tmp_path / "report.png").read_bytes().startswith(PNG_SIGNATURE)  # the learning curves beside it


def test_jobs_train_workers_at_once_and_record_what_each_run_alone_records(tmp_path: Path) -> None:
    """--jobs 2 runs two workers side by side (a core each); the report holds every run in seed order, each the
    run that the seed's worker makes alone."""
    out = tmp_path / "jobs.json"
    done = run_deeprl(
        *("--algo", "dqn", "--env", "CartPole-v1", "--seeds", "0-1", "--frameworks", "deeprl", "--steps", "400"),
        *("--eval-every", "200", "--eval-episodes", "1", "--set", "learning_starts=100"),
        *("--jobs", "2", "--out", str(out)),
        cwd=tmp_path,
        script=BENCHMARKS / "compare.py",
    )
    assert done.returncode == 0, done.stderr
    assert sorted(line for line in done.stderr.splitlines() if line.endswith("training ...")) == [
        "[deeprl seed 0] training ...",
        "[deeprl seed 1] training ...",
    ]
    runs = json.loads(out.read_text())["runs"]
    assert [run["seed"] for run in runs] == [0, 1]
    for run in runs:
        seed = run["seed"]
        alone = compare.run_deeprl(
            "dqn", "CartPole-v1", seed, 200, 400, None, 1, tmp_path / f"alone{seed}", {"learning_starts": "100"}
        )
        assert [(row["step"], row["mean"]) for row in run["evals"]] == [
            (row["step"], row["mean"]) for row in alone["evals"]
        ]  # the seconds differ
        assert run["final"] == alone["final"]


@pytest.mark.parametrize(
    "pairs, message",
    [
        (["eval_every=5"], "--set eval_every: the harness sets it for both frameworks (see its --help)"),
        (["learning_rate=1e-3"], "unknown setting 'learning_rate' for dqn: deeprl calls it 'lr'"),
        (["lr=fast"], "invalid value for lr: 'fast' (expected a number)"),
        (["lr"], "--set expects key=value (got 'lr')"),
    ],
)
def test_a_bad_deeprl_setting_is_refused_in_one_line(pairs: list[str], message: str) -> None:
    with pytest.raises(SystemExit) as refused:
        compare.deeprl_overrides(pairs, "dqn", "CartPole-v1")
    assert str(refused.value).startswith(message)


def test_compare_resume_keeps_finished_runs_and_a_second_run_into_its_file_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    command = f"python benchmarks/compare.py --algo dqn --env CartPole-v1 --seeds 0 --frameworks deeprl --out {out}"
    run = {
        "framework": "deeprl",
        "seed": 0,
        "env": "CartPole-v1",
        "algo": "dqn",
        "budget_steps": 30000,
        "steps": 30000,
        "threshold": 475.0,
        "solved_at_step": 8000,
        "solved_train_seconds": 9.5,
        "train_seconds": 35.0,
        "wall_seconds": 40.0,
        "steps_per_second": 857.1,
        "final": {"mean_return": 500.0, "std_return": 0.0, "returns": [500.0], "episodes": 1, "seed": 2000000},
        "best": {"mean_return": 500.0, "std_return": 0.0},
        "evals": [{"step": 8000, "mean": 500.0, "std": 0.0, "train_seconds": 9.5}],
        "resumed_from_step": None,
    }
    report = {
        "command": command,
        "date": "2026-12-07 02:00 UTC",
        "machine": {"cpu": "test", "cores": 2, "load_average_at_start": 0.5},
        "versions": {"python": "3"},
        "algo": "dqn",
        "env": "CartPole-v1",
        "threshold": 475.0,
        "eval_every": 1000,
        "eval_episodes": 20,
        "seeds": [0],
        "frameworks": ["deeprl"],
        "steps_override": {"deeprl": None, "sb3": None},
        "zoo_hyperparams": {},
        "runs": [run],
    }
    out.write_text(json.dumps(report))
    done = run_deeprl("--resume", out, cwd=tmp_path, script=BENCHMARKS / "compare.py")
    assert done.returncode == 0, done.stderr
    assert "training ..." not in done.stderr  # nothing left to run
    carried = json.loads(out.read_text())
    assert carried["runs"] == [run] and len(carried["resumed"]) == 1
    assert "Carried on with --resume" in done.stdout and "| 0 | deeprl | 8,000 |" in done.stdout

    mixed = run_deeprl("--resume", out, "--seeds", "0-4", cwd=tmp_path, script=BENCHMARKS / "compare.py")
    assert mixed.returncode != 0
    assert mixed.stderr.strip() == "--resume carries on the command its report records: give it no other options"

    again = run_deeprl(*command.split()[2:], cwd=tmp_path, script=BENCHMARKS / "compare.py")
    assert again.returncode != 0
    assert again.stderr.strip().splitlines()[-1] == (
        f"{out} or {tmp_path / 'report-runs'} exists: choose another --out, or carry it on with --resume {out}"
    )
    assert json.loads(out.read_text()) == carried  # untouched


def test_a_cut_off_sb3_run_carries_on_from_its_newest_evaluation(tmp_path: Path, monkeypatch) -> None:
    """SB3's side saves at each evaluation; run again in the same folder (as after a cut), it loads that save and
    trains the budget left, its evaluations before the save kept. (The Zoo's CartPole entry as the test holds it:
    rl_zoo3 is the benchmarks' extra, not the tests'.)"""
    monkeypatch.setattr(compare, "zoo_hyperparams", lambda algo, env_id: dict(PPO_CARTPOLE))
    whole = compare.run_sb3("ppo", "CartPole-v1", 0, 512, 1024, 475.0, 2, tmp_path / "sb3-s0")
    saved = json.loads((tmp_path / "sb3-s0" / compare.SB3_PROGRESS).read_text())
    assert whole["resumed_from_step"] is None and saved["num_timesteps"] == 512
    assert sorted(path.name for path in (tmp_path / "sb3-s0").iterdir()) == ["model-512.zip", "progress.json"]
    carried = compare.run_sb3("ppo", "CartPole-v1", 0, 512, 1024, 475.0, 2, tmp_path / "sb3-s0")
    assert carried["resumed_from_step"] == 512 and carried["steps"] >= 1024
    assert carried["evals"][0] == whole["evals"][0] and [row["step"] for row in carried["evals"]][-1] >= 1024
    assert carried["train_seconds"] > saved["train_seconds"]


def test_the_learning_curves_are_each_frameworks_mean_over_seeds_with_a_band_of_one_std(tmp_path: Path) -> None:
    def run(framework: str, seed: int, means: list[float]) -> dict:
        return {
            "framework": framework,
            "seed": seed,
            "evals": [{"step": 1000 * (i + 1), "mean": m} for i, m in enumerate(means)],
        }

    report = {
        "algo": "ppo",
        "env": "CartPole-v1",
        "threshold": 475.0,
        "frameworks": ["deeprl", "sb3"],
        # SB3's seed 1 was cut off after its first evaluation: its mean covers the steps both seeds reached
        "runs": [
            run("deeprl", 0, [10, 200, 500]),
            run("deeprl", 1, [30, 100, 300]),
            run("sb3", 0, [20, 40, 60]),
            run("sb3", 1, [40]),
        ],
    }
    axes = compare.report_figure(report).axes[0]
    labelled = {line.get_label(): line for line in axes.lines if not line.get_label().startswith("_")}
    assert set(labelled) == {"deeprl (2 seeds)", "SB3 + Zoo (2 seeds)", "threshold 475"}
    assert list(labelled["deeprl (2 seeds)"].get_ydata()) == [20.0, 150.0, 400.0]
    assert list(labelled["SB3 + Zoo (2 seeds)"].get_xdata()) == [1000] and list(
        labelled["SB3 + Zoo (2 seeds)"].get_ydata()
    ) == [30.0]
    band = axes.collections[0].get_paths()[0].vertices[:, 1]  # the deeprl band: mean ± population std
    assert {10.0, 100.0, 300.0, 30.0, 200.0, 500.0} == set(np.round(band, 6))
    assert sum(1 for line in axes.lines if line.get_label().startswith("_")) == 4  # each seed's own curve

    out = tmp_path / "report.json"
    out.write_text(json.dumps(report))
    drawn = run_deeprl("--plot", out, cwd=tmp_path, script=BENCHMARKS / "compare.py")
    assert drawn.returncode == 0, drawn.stderr
    assert (tmp_path / "report.png").read_bytes().startswith(PNG_SIGNATURE)
    out.write_text("{}")
    refused = run_deeprl("--plot", out, cwd=tmp_path, script=BENCHMARKS / "compare.py")
    assert (
        refused.returncode != 0
        and refused.stderr.strip() == f"cannot plot {out}: not a report of this harness ('frameworks')"
    )
