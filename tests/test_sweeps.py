"""Sweeps: the grid and the statistics by hand, bad input in subprocesses, and real Ray Tune sweeps (a local
one killed and resumed, a trial's process killed and recovered exactly, a two-node cluster on loopback)."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from deeprl.config import parse_seeds
from deeprl.errors import DeeprlError
from deeprl.media import mean_band
from deeprl.stats import bootstrap_ci, interquartile_mean, mean_ci_iqm
from deeprl.sweeps import (
    ERROR_FILE,
    SweepSpec,
    best_configuration,
    check_spec,
    format_table,
    parse_grid,
    summarize,
)
from tests.conftest import PNG_SIGNATURE, forker, rows_without_time, run_deeprl, snapshot, start_deeprl, subprocess_env
from tests.forking_cli import Case

# A DQN run of a few seconds, evaluated and checkpointed every 400 steps.
TINY = {
    "learning_starts": "100",
    "eval_every": "400",
    "eval_episodes": "2",
    "final_eval_episodes": "2",
    "hidden_sizes": "[32,32]",
    "checkpoint_every": "400",
}
TINY_SET = [arg for key, value in TINY.items() for arg in ("--set", f"{key}={value}")]
RAY_SERVERS = ("gcs_server", "raylet")


# ------------------------------------------------------------------------------------- grid and statistics


def test_grid_values_split_on_commas_outside_brackets():
    assert parse_grid(["lr=1e-3, 3e-4", "hidden_sizes=[64,64],[128]"]) == {
        "lr": ["1e-3", "3e-4"],
        "hidden_sizes": ["[64,64]", "[128]"],
    }
    assert parse_grid(["hidden_sizes=(64,64),(128)"]) == {"hidden_sizes": ["(64,64)", "(128)"]}


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        (["lr="], "--grid lr= has no values"),
        (["lr"], "--grid expects key=value1,value2 (got 'lr')"),
        (["lr=1,2", "lr=3"], "--grid lr is given twice"),
        (["lr=1,1"], "--grid lr lists a value twice"),
    ],
)
def test_bad_grids_are_refused(pairs, message):
    with pytest.raises(DeeprlError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        parse_grid(pairs)


def test_trials_are_every_combination_times_every_seed(tmp_path):
    spec = SweepSpec(
        "dqn",
        "CartPole-v1",
        seeds=[0, 1],
        grid={"lr": ["1e-3", "2e-3"], "batch_size": ["32"]},
        settings={"gamma": "0.9"},
        steps=500,
    )
    trials = spec.trials(tmp_path)
    assert [trial["name"] for trial in trials] == [
        "lr=1e-3_batch_size=32-s0",
        "lr=1e-3_batch_size=32-s1",
        "lr=2e-3_batch_size=32-s0",
        "lr=2e-3_batch_size=32-s1",
    ]
    assert trials[2]["settings"] == {"gamma": "0.9", "lr": "2e-3", "batch_size": "32", "seed": 0, "total_steps": 500}
    assert trials[2]["label"] == "lr=2e-3 batch_size=32"
    assert Path(trials[0]["run_dir"]) == (tmp_path / "runs" / "lr=1e-3_batch_size=32-s0").resolve()


def test_check_spec_refuses_the_whole_sweep_or_marks_single_combinations():
    with pytest.raises(DeeprlError, match="unknown grid key 'lrr' for dqn; did you mean 'lr'"):
        check_spec(SweepSpec("dqn", "CartPole-v1", seeds=[0], grid={"lrr": ["1"]}))
    with pytest.raises(DeeprlError, match="unknown grid key 'learning_rate' for dqn: deeprl calls it 'lr'"):
        check_spec(SweepSpec("dqn", "CartPole-v1", seeds=[0], grid={"learning_rate": ["1e-3"]}))
    with pytest.raises(DeeprlError, match=r"--grid lr: invalid value for lr: 'abc' \(expected a number\)"):
        check_spec(SweepSpec("dqn", "CartPole-v1", seeds=[0], grid={"lr": ["1e-3", "abc"]}))
    with pytest.raises(DeeprlError, match="'seed' cannot be a grid key: a sweep sets it with --seeds"):
        check_spec(SweepSpec("dqn", "CartPole-v1", seeds=[0], grid={"seed": ["1", "2"]}))
    checked = check_spec(SweepSpec("dqn", "CartPole-v1", seeds=[0], grid={"lr": ["-1", "1e-3"]}))
    assert checked[0][1] is not None and "lr must be > 0.0" in checked[0][1]
    assert checked[1] == ({"lr": "1e-3"}, None)


def test_seeds_parse_ranges_and_lists():
    assert parse_seeds("0-2,5") == [0, 1, 2, 5]
    for text in ("", "a", "1,1", "-1"):
        with pytest.raises(DeeprlError):
            parse_seeds(text)


def test_interquartile_mean_drops_a_quarter_from_each_end():
    # 8 values: drop 2 from each end, mean of 3, 4, 5, 100 = 28
    assert interquartile_mean([1, 2, 3, 4, 5, 100, 200, 300]) == 28.0
    assert interquartile_mean([1, 2, 9]) == 4.0  # fewer than 4: nothing dropped
    assert math.isnan(interquartile_mean([]))


def test_bootstrap_interval_brackets_the_mean_and_shrinks_with_agreement():
    low, high = bootstrap_ci([0.0, 10.0])
    # resampling two values gives means 0, 5 or 10; 95% of draws span all three
    assert (float(low), float(high)) == (0.0, 10.0)
    low, high = bootstrap_ci([3.0, 3.0, 3.0])
    assert (float(low), float(high)) == (3.0, 3.0)
    stats = mean_ci_iqm(list(np.random.default_rng(0).normal(100, 10, size=50)))
    assert stats["ci_low"] < stats["mean"] < stats["ci_high"]
    assert stats["ci_high"] - stats["ci_low"] < 8  # ≈ 2 × 1.96 × 10 / √50 = 5.5


def trial_row(label, seed, solved_at=None, seconds=None, final=0.0, best=0.0, status="finished", error=None):
    return {
        "configuration": label,
        "seed": seed,
        "status": status,
        "solved": solved_at is not None,
        "solved_at_step": solved_at,
        "solved_train_seconds": seconds,
        "final_return": final,
        "best_return": best,
        **({"error": error} if error else {}),
    }


def test_summary_per_configuration_by_hand():
    rows = summarize(
        [
            trial_row("a", 0, 1000, 10.0, final=500, best=500),
            trial_row("a", 1, 3000, 30.0, final=400, best=480),
            trial_row("a", 2, final=100, best=200),
            trial_row("b", 0, status="failed", error="lr must be > 0.0 (got -1)"),
        ]
    )
    a, b = rows
    assert (a["seeds"], a["finished"], a["solved"], a["success_rate"]) == (3, 3, 2, 2 / 3)
    assert (a["median_steps_to_solve"], a["median_seconds_to_solve"]) == (2000.0, 20.0)
    assert a["final_mean"] == pytest.approx(1000 / 3) and a["final_iqm"] == pytest.approx(1000 / 3)
    assert a["best_mean"] == pytest.approx(1180 / 3)
    assert (b["finished"], b["failed"], b["success_rate"], b["error"]) == (0, 1, 0.0, "lr must be > 0.0 (got -1)")
    assert math.isnan(b["final_mean"])
    assert best_configuration(rows)["configuration"] == "a"
    table = format_table(rows)
    assert "| a | 2/3 | 2,000 | 20.0 | 333.3 [" in table
    assert "| b | 0/1 (1 failed) | — | — | — | — |" in table


def test_best_configuration_ranks_success_then_scores_then_speed():
    rows = summarize(
        [
            trial_row("slow", 0, 5000, 50.0, final=500, best=500),
            trial_row("fast", 0, 1000, 10.0, final=500, best=500),
            trial_row("unsolved-high", 0, final=470, best=470),
        ]
    )
    assert best_configuration(rows)["configuration"] == "fast"


def test_mean_band_holds_a_finished_runs_last_evaluation():
    curves = [
        (np.array([100.0, 200.0, 300.0]), np.array([1.0, 2.0, 3.0])),
        (np.array([100.0, 200.0]), np.array([3.0, 6.0])),
    ]  # stopped at 200 (solved)
    grid, mean, low, high = mean_band(curves)
    assert grid.tolist() == [100.0, 200.0, 300.0]
    assert mean.tolist() == [2.0, 4.0, 4.5]  # the second run keeps 6.0 at step 300
    assert low.tolist() == [1.0, 2.0, 3.0] and high.tolist() == [3.0, 6.0, 6.0]


# ----------------------------------------------------------------------------------------------- bad input


def sweep_cli(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    """`deeprl sweep ARGS` run to its end as a process forked after the imports (tests/forking_cli.py)."""
    return run_deeprl("sweep", *args, cwd=cwd, timeout=timeout)


def command_line(pid: int | str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:  # gone meanwhile
        return ""


def processes_tagged(tag: str) -> list[int]:
    """PIDs of the processes whose environment holds DEEPRL_TEST_TAG=tag (Ray's processes inherit it)."""
    found = []
    needle = f"DEEPRL_TEST_TAG={tag}".encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if needle in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def ray_servers(tag: str) -> list[str]:
    """Command lines of the Ray servers (GCS, raylet) started by processes tagged `tag` (see processes_tagged)."""
    lines = (command_line(pid) for pid in processes_tagged(tag))
    return [line for line in lines if any(server in line for server in RAY_SERVERS)]


BAD_SWEEPS = [
    (
        "unknown-grid-key",
        ("dqn", "CartPole-v1", "--grid", "lrr=1e-3,1e-4"),
        "unknown grid key 'lrr' for dqn; did you mean 'lr'?",
    ),
    ("empty-grid", ("dqn", "CartPole-v1", "--grid", "lr="), "--grid lr= has no values"),
    (
        "grid-value-of-another-type",
        ("dqn", "CartPole-v1", "--grid", "lr=1e-3,abc"),
        "--grid lr: invalid value for lr: 'abc' (expected a number)",
    ),
    (
        "seed-as-grid-key",
        ("dqn", "CartPole-v1", "--grid", "seed=1,2"),
        "'seed' cannot be a grid key: a sweep sets it with --seeds",
    ),
    (
        "every-combination-invalid",
        ("dqn", "CartPole-v1", "--grid", "lr=-1,-2"),
        "every combination is invalid; the first: lr must be > 0.0",
    ),
    (
        "unreachable-address",
        ("dqn", "CartPole-v1", "--address", "127.0.0.1:9"),
        "no Ray cluster answers at 127.0.0.1:9: Connection refused",
    ),
    (
        "malformed-address",
        ("dqn", "CartPole-v1", "--address", "nowhere"),
        "--address must be auto, HOST:PORT or ray://HOST:PORT (got 'nowhere')",
    ),
    ("resume-not-a-sweep", ("--resume", "."), ". is not a sweep directory (no sweep.yaml)"),
    ("resume-with-settings", ("dqn", "--resume", "."), "--resume continues the sweep as it was asked; drop ALGO"),
    ("bad-seeds", ("dqn", "CartPole-v1", "--seeds", "3-x"), "seeds must look like 0-4 or 0,2,5 (got '3-x')"),
    (
        "ray-missing",
        ("dqn", "CartPole-v1"),
        "deeprl sweep needs Ray Tune, which is not installed: pip install 'deeprl[sweep]'",
    ),
]


@pytest.fixture(scope="module")
def bad_sweep_results(tmp_path_factory):
    """Each bad sweep as its own process in its own empty folder (forked after the imports: see forking_cli);
    `ray-missing` runs where `import ray` fails. Also the Ray servers any of them left running (found by a tag in
    their environment, which Ray's processes inherit: other tests may run Ray meanwhile)."""
    no_ray = tmp_path_factory.mktemp("no-ray")
    (no_ray / "ray").mkdir()
    (no_ray / "ray" / "__init__.py").write_text("raise ImportError(\"No module named 'ray'\")\n")
    folders = {case_id: tmp_path_factory.mktemp(case_id) for case_id, _, _ in BAD_SWEEPS}
    tag = str(no_ray)
    results = forker().run(
        [
            Case(
                ["sweep", *args],
                folders[case_id],
                [str(no_ray)] if case_id == "ray-missing" else [],
                env={"DEEPRL_TEST_TAG": tag},
            )
            for case_id, args, _ in BAD_SWEEPS
        ]
    )
    return (
        {case[0]: (result, snapshot(folders[case[0]])) for case, result in zip(BAD_SWEEPS, results, strict=True)},
        ray_servers(tag),
    )


@pytest.mark.parametrize(
    ("case_id", "message"), [(case[0], case[2]) for case in BAD_SWEEPS], ids=[case[0] for case in BAD_SWEEPS]
)
def test_bad_sweep_is_one_line_exit_2_and_leaves_nothing(bad_sweep_results, case_id, message):
    results, servers_left = bad_sweep_results
    result, files = results[case_id]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("deeprl: error: "), result.stderr
    assert message in lines[0]
    assert files == {}  # no sweep directory
    # an unreachable address is refused by deeprl's own probe ("no Ray cluster answers"), before Ray's connect,
    # which would retry for about 20 s: the message proves it, whatever the machine's speed
    assert servers_left == []


# -------------------------------------------------------------------------------------------- real sweeps


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as stream:
        return list(csv.DictReader(stream))


@dataclasses.dataclass
class LoopbackCluster:
    address: str
    node_ids: set[str]


@pytest.fixture(scope="module")
def two_node_cluster():
    """A Ray cluster of a head and a worker node (one CPU each) on this machine, listening on loopback only, that
    the module's sweeps join by address or run beside. Its workers import deeprl and this checkout's tests."""
    from ray.cluster_utils import Cluster

    from deeprl.sweeps import RAY_QUIET_ENVIRONMENT

    with pytest.MonkeyPatch.context() as environment:  # inherited by the cluster's processes
        for name, value in RAY_QUIET_ENVIRONMENT.items():
            environment.setenv(name, value)
        environment.setenv("PYTHONPATH", subprocess_env()["PYTHONPATH"])
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
        try:
            cluster.add_node(num_cpus=1)
            cluster.wait_for_nodes()
            yield LoopbackCluster(cluster.address, {node.node_id for node in cluster.list_all_nodes()})
        finally:
            cluster.shutdown()


def trial_nodes(sweep_dir: Path) -> set[str]:
    """The Ray nodes that the sweep's trials last reported from (each a finished trial)."""
    nodes = set()
    for result in (sweep_dir / "tune").glob("*/result.json"):
        last = json.loads(result.read_text().splitlines()[-1])
        assert last["done"] is True
        nodes.add(last["node_id"])
    return nodes


@pytest.mark.ray
def test_two_node_cluster_on_loopback_runs_trials_on_both_nodes(tmp_path, two_node_cluster):
    """A sweep joins the two-node cluster by address through the Python API, and its two one-CPU trials run at
    once, one on each node."""
    import ray

    import deeprl

    sweep_dir = tmp_path / "sweep"
    rows = deeprl.sweep(
        "dqn",
        "CartPole-v1",
        seeds="0-1",
        steps=800,
        sweep_dir=sweep_dir,
        address=two_node_cluster.address,
        settings=TINY,
        progress=False,
    )
    assert [(row["configuration"], row["finished"]) for row in rows] == [("default", 2)]
    assert trial_nodes(sweep_dir) == two_node_cluster.node_ids
    assert not ray.is_initialized()  # the sweep disconnected; the cluster is still the test's


@pytest.mark.ray
def test_trial_killed_mid_run_recovers_to_identical_metrics(tmp_path, two_node_cluster):
    """Two trials train the same seed (tensorboard on and off changes nothing learnt), one after the other, on
    the two-node cluster (joined by address); the first one's process is SIGKILLed after its first checkpoint.
    Tune restarts it, it resumes from that checkpoint, and both runs end with the same metrics, row for row."""
    sweep_dir = tmp_path / "sweep"
    driver = start_deeprl(
        [
            "sweep",
            "dqn",
            "CartPole-v1",
            "--seeds",
            "0",
            "--steps",
            "1200",
            "--max-concurrent",
            "1",
            "--grid",
            "tensorboard=true,false",
            "--sweep-dir",
            str(sweep_dir),
            "--address",
            two_node_cluster.address,
            *TINY_SET,
        ],
        tmp_path,
    )
    killed = sweep_dir / "runs" / "tensorboard=true-s0"
    try:
        wait_for(lambda: any((killed / "checkpoints").glob("step-*.json")), 300, "the first checkpoint")
        pid = int((killed / ".lock").read_text())
        assert "ray::" in command_line(pid)  # a Ray worker, not the driver
        os.kill(pid, signal.SIGKILL)
        driver.wait(timeout=300)
    finally:
        if driver.poll() is None:
            driver.kill()
    stdout = driver.stdout()
    assert driver.returncode == 0, driver.stderr()
    assert "tensorboard=true-s0: its process died; it resumes from its newest checkpoint" in stdout
    reference = sweep_dir / "runs" / "tensorboard=false-s0"
    assert rows_without_time(killed / "metrics.csv") == rows_without_time(reference / "metrics.csv")
    summaries = [json.loads((run / "eval.json").read_text()) for run in (killed, reference)]
    for key in ("final", "best", "solved_at_step", "best_policy_step", "episodes"):
        assert summaries[0][key] == summaries[1][key]


@pytest.mark.ray
def test_killed_driver_resumes_without_rerunning_finished_trials(tmp_path, two_node_cluster):
    """A local sweep (2 seeds, one run at a time) whose driver is SIGKILLed after its first run finished;
    `--resume` finishes the other, leaves the first untouched, and writes the table, curves and preset.
    A configuration with a bad setting fails with its reason; the others go on. Both drivers, given no address,
    start a Ray instance of their own beside the running two-node cluster (ray.init alone would join the
    cluster, the newest instance on this machine, and refuse the sweep's CPU count)."""
    sweep_dir = tmp_path / "sweep"
    args = (
        "dqn",
        "CartPole-v1",
        "--seeds",
        "0-1",
        "--steps",
        "800",
        "--max-concurrent",
        "1",
        "--grid",
        "lr=-1,1e-3",
        "--sweep-dir",
        str(sweep_dir),
        *TINY_SET,
    )
    tag = str(tmp_path)
    driver = start_deeprl(["sweep", *args], tmp_path, env={"DEEPRL_TEST_TAG": tag})
    first = sweep_dir / "runs" / "lr=1e-3-s0"
    try:
        wait_for(lambda: (first / "eval.json").is_file(), 300, "the first run to finish")
    finally:
        driver.kill()
    # The killed driver's Ray servers stop within seconds and its run ends itself (sweeps._exit_with_raylet);
    # two of Ray's agents linger for a minute or so before they notice: this test does not wait for them.
    wait_for(lambda: not ray_servers(tag), 60, "the killed sweep's Ray servers to stop")
    wait_for(
        lambda: not any("ray::ImplicitFunc" in command_line(pid) for pid in processes_tagged(tag)),
        60,
        "the killed sweep's run to end itself",
    )
    for pid in processes_tagged(tag):
        os.kill(pid, signal.SIGKILL)
    finished_before = snapshot(first)
    result = sweep_cli("--resume", str(sweep_dir), "--quiet", cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    assert snapshot(first) == finished_before  # not re-run: not a file of it was touched
    # --quiet: the results (the table, the configurations not run and why, the best one), no progress
    assert "lr=-1: not run: lr must be > 0.0" in result.stdout
    assert "| lr=-1 | 0/2 (2 failed) |" in result.stdout
    assert "sweep finished in" not in result.stdout and f"sweep {sweep_dir}: " not in result.stdout
    assert "[1/" not in result.stdout
    rows = read_csv(sweep_dir / "trials.csv")
    assert [(row["configuration"], row["seed"], row["status"]) for row in rows] == [
        ("lr=-1", "0", "failed"),
        ("lr=-1", "1", "failed"),
        ("lr=1e-3", "0", "finished"),
        ("lr=1e-3", "1", "finished"),
    ]
    assert (sweep_dir / "runs" / "lr=-1-s0" / ERROR_FILE).read_text().startswith("lr must be > 0.0")
    trials = rows[2:]
    assert not trial_nodes(sweep_dir) & two_node_cluster.node_ids
    for row in trials:  # every trial is an ordinary, finished run directory
        summary = json.loads((Path(row["run_dir"]) / "eval.json").read_text())
        assert summary["steps"] == 800 and summary["seed"] == int(row["seed"])
        assert float(row["final_return"]) == summary["final"]["mean_return"]
    failed, table = read_csv(sweep_dir / "sweep.csv")
    assert (failed["configuration"], failed["failed"], failed["success_rate"]) == ("lr=-1", "2", "0")
    assert failed["error"].startswith("lr must be > 0.0")
    assert (table["configuration"], table["seeds"], table["finished"]) == ("lr=1e-3", "2", "2")
    finals = [float(row["final_return"]) for row in trials]
    assert float(table["final_mean"]) == pytest.approx(np.mean(finals), rel=1e-5)
    assert float(table["final_ci_low"]) <= float(table["final_mean"]) <= float(table["final_ci_high"])
    assert "| lr=1e-3 | " in result.stdout and "best configuration:" in result.stdout
    assert (sweep_dir / "curves.png").read_bytes().startswith(PNG_SIGNATURE)
    # the page for a browser: every run, the failed ones with their reason (tests/test_report.py reads it closely)
    report = (sweep_dir / "report.html").read_text()
    assert f"report: {sweep_dir / 'report.html'} (open it in a browser)" in result.stdout
    assert "<h1>sweep: dqn on CartPole-v1</h1>" in report and report.count("failed: lr must be &gt; 0.0") == 2
    from deeprl.api import resolve_config

    _module, config, preset = resolve_config(None, None, config_file=sweep_dir / "best.yaml")
    assert (config.algo, config.lr, config.total_steps, config.eval_every, preset) == ("dqn", 1e-3, 800, 400, "default")


@pytest.mark.ray
def test_an_address_where_something_else_answers_is_refused_within_seconds(tmp_path):
    """A web server (not Ray) on the address: Ray's own connect would retry for about 20 s and log each try."""
    import http.server
    import threading

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        address = f"127.0.0.1:{server.server_address[1]}"
        result = sweep_cli("dqn", "CartPole-v1", "--address", address, cwd=tmp_path)
    finally:
        server.shutdown()
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    # refused by deeprl's deadline-bound probe (the message says so), not after Ray's own retries: one line only
    assert lines[0].startswith(f"deeprl: error: no Ray cluster answers at {address}: ")
    assert list(tmp_path.iterdir()) == []


def write_run(path: Path, lr: float, seed: int, evals: list[tuple[int, float, float]]) -> Path:
    """A run directory as deeprl writes one, reduced to what a plot reads: config.yaml and eval rows."""
    path.mkdir(parents=True)
    (path / "config.yaml").write_text(f"algo: dqn\npreset: default\nenv: CartPole-v1\nseed: {seed}\nlr: {lr}\n")
    lines = ["kind,step,episode,return,return_std,length,time_s"]
    lines += [f"eval,{step},{step // 100},{value},0,{value},{seconds}" for step, value, seconds in evals]
    (path / "metrics.csv").write_text("\n".join(lines) + "\n")
    return path


def test_plot_group_by_draws_one_mean_curve_per_value(tmp_path):
    from deeprl.cli import main
    from deeprl.media import group_runs

    runs = [
        write_run(tmp_path / f"r{lr}-{seed}", lr, seed, [(1000, 100.0 * seed, 1.0), (2000, 200.0, 2.5)])
        for lr in (1e-3, 3e-4)
        for seed in (0, 1)
    ]
    groups = group_runs(runs, "lr")
    assert {label: [path.name for path in paths] for label, paths in groups.items()} == {
        "lr=0.001": ["r0.001-0", "r0.001-1"],
        "lr=0.0003": ["r0.0003-0", "r0.0003-1"],
    }
    for x in ("steps", "time"):
        output = tmp_path / f"grouped-{x}.png"
        assert main(["plot", *map(str, runs), "--group-by", "lr", "--x", x, "-o", str(output)]) == 0
        assert output.read_bytes().startswith(PNG_SIGNATURE)
