"""The `deeprl` command: argument parsing only; the work is done by the Python API."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, NoReturn, TextIO

from deeprl.errors import DeeprlError, Interrupted, discard_stdout

QUIET_HELP = "results only: no progress and no list of files (a sweep: its results table)"


class Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line on stderr (exit code 2), like every other bad input."""

    def error(self, message: str) -> NoReturn:
        usage_error(message, self.prog)


def usage_error(message: str, prog: str) -> NoReturn:
    print(f"deeprl: error: {message} (see `{prog} --help`)", file=sys.stderr)
    raise SystemExit(2)


def build_parser() -> Parser:
    from deeprl.version import __version__

    parser = Parser(prog="deeprl", description="Deep reinforcement learning for Gymnasium environments.")
    parser.add_argument("--version", action="version", version=f"deeprl {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    train = commands.add_parser("train", help="train an agent; writes a run directory")
    train.add_argument("algo", nargs="?", help="algorithm (deeprl list shows them)")
    train.add_argument("env", nargs="?", help="Gymnasium env id or package.module:ClassName")
    train.add_argument("--preset", help="preset name for this env (default: default; deeprl list shows them)")
    train.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a setting; repeatable (deeprl list --settings ALGO shows them)",
    )
    train.add_argument("--config", help="re-run from a run's config.yaml")
    train.add_argument("--seed", type=int, help="random seed of the run (default 0)")
    train.add_argument(
        "--seeds", help="train a run per seed in one process: 0-9, 0,3,5 (DQN steps them together; docs/seeds.md)"
    )
    train.add_argument("--steps", type=int, help="environment steps to train for")
    train.add_argument("--device", help="auto, cpu, cuda or cuda:N")
    train.add_argument("--run-dir", help="where to write the run (default: runs/ALGO-ENV-sSEED-TIME)")
    train.add_argument("--quiet", action="store_true", help=QUIET_HELP)
    train.set_defaults(handler=cmd_train)

    resume = commands.add_parser(
        "resume", help="continue an interrupted run from its newest checkpoint, or any run to a larger budget (--steps)"
    )
    resume.add_argument("run", help="run directory")
    resume.add_argument("--steps", type=int, help="continue to this many environment steps (a finished run too)")
    resume.add_argument("--quiet", action="store_true", help=QUIET_HELP)
    resume.set_defaults(handler=cmd_resume)

    evaluate = commands.add_parser("eval", help="evaluate a trained agent greedily; writes nothing")
    evaluate.add_argument("path", help="run directory (its best agent) or model file")
    evaluate.add_argument("--episodes", type=int, default=20)
    evaluate.add_argument("--seed", type=int, default=10_000, help="episode i starts from seed + i")
    evaluate.add_argument("--env", help="evaluate on another env id than the one trained on")
    evaluate.set_defaults(handler=cmd_eval)

    watch = commands.add_parser("watch", help="watch a trained agent play (window, or a video file)")
    watch.add_argument("path", help="run directory or model file")
    watch.add_argument("--video", help="write out.mp4, out.gif or out.html (a player) instead of a window")
    watch.add_argument("--episodes", type=int, default=1)
    watch.add_argument("--seed", type=int, default=10_000)
    watch.add_argument("--every", type=int, default=1, help="keep every K-th frame in the video")
    watch.add_argument("--fps", type=int, default=30)
    watch.set_defaults(handler=cmd_watch)

    plot = commands.add_parser("plot", help="plot learning curves of runs, or of a sweep's configurations")
    plot.add_argument("runs", nargs="+", help="run directories, or one sweep directory")
    plot.add_argument(
        "--group-by",
        metavar="KEY",
        help="one mean curve with its 95%% band per value of KEY: a "
        "setting in the runs' config.yaml, or algo, env, preset, seed",
    )
    plot.add_argument(
        "--x",
        choices=("steps", "time"),
        default="steps",
        help="grouped curves against env steps or training wall-clock (default steps)",
    )
    plot.add_argument(
        "-o",
        "--output",
        help="image file, .png, .svg, .pdf, .jpg or .eps (default: RUN/curve.png "
        "for one run, SWEEP/curves.png for a sweep, runs.png)",
    )
    plot.set_defaults(handler=cmd_plot)

    report = commands.add_parser(
        "report", help="a page to open in a browser: a run (with a video of its agent), several runs, or a sweep"
    )
    report.add_argument("runs", nargs="+", help="run directories, or one sweep directory")
    report.add_argument(
        "-o", "--output", help="the HTML file (default: RUN/report.html, SWEEP/report.html, or ./report.html)"
    )
    report.add_argument("--no-video", action="store_true", help="leave out the video of the agent playing")
    report.add_argument("--every", type=int, default=1, help="keep every K-th frame in the video")
    report.add_argument("--fps", type=int, default=30, help="frames per second of the video")
    report.set_defaults(handler=cmd_report)

    sweep = commands.add_parser("sweep", help="many runs at once: seeds × a grid of settings, on Ray Tune")
    sweep.add_argument("algo", nargs="?", help="algorithm (deeprl list shows them)")
    sweep.add_argument("env", nargs="?", help="Gymnasium env id or package.module:ClassName")
    sweep.add_argument("--seeds", default="0-4", help="seeds every configuration runs: 0-9, 0,3,5 (default 0-4)")
    sweep.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="values tried for a setting; repeatable: every combination runs every seed "
        "(list values in brackets: hidden_sizes=[64,64],[128])",
    )
    sweep.add_argument("--preset", help="preset every run starts from (default: default)")
    sweep.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a setting fixed for every run; repeatable",
    )
    sweep.add_argument("--steps", type=int, help="environment steps per run")
    sweep.add_argument("--cpus-per-trial", type=float, default=1.0, help="CPUs Ray reserves per run (default 1)")
    sweep.add_argument("--max-concurrent", type=int, help="runs at once (default: as many as the CPUs allow)")
    sweep.add_argument("--sweep-dir", help="where to write the sweep (default: sweeps/ALGO-ENV-TIME)")
    sweep.add_argument(
        "--address",
        help="join a running Ray cluster: auto, HOST:PORT or ray://HOST:PORT (default: start Ray on this machine)",
    )
    sweep.add_argument("--resume", metavar="SWEEP_DIR", help="continue a stopped sweep, keeping finished runs")
    sweep.add_argument("--quiet", action="store_true", help=QUIET_HELP)
    sweep.set_defaults(handler=cmd_sweep)

    listing = commands.add_parser("list", help="algorithms, presets and envs")
    listing.add_argument("--settings", metavar="ALGO", help="every setting of ALGO with its value and meaning")
    listing.add_argument("--env", help="with --settings: the values a run on ENV would use (its preset applied)")
    listing.add_argument("--preset", help="with --settings and --env: the preset to apply (default: default)")
    listing.add_argument("--envs", action="store_true", help="registered Gymnasium env ids")
    listing.set_defaults(handler=cmd_list)
    return parser


def _positive(name: str, value: int) -> int:
    if value < 1:
        raise DeeprlError(f"{name} must be >= 1 (got {value})")
    return value


# Settings that `deeprl train` takes as flags or arguments (not through --set), with the flag to use.
RUN_ARGUMENTS = {
    "env": "the ENV argument (deeprl train ALGO ENV)",
    "algo": "the ALGO argument (deeprl train ALGO ENV)",
    "steps": "--steps N (or --set total_steps=N)",
    "preset": "--preset NAME",
    "config": "--config FILE",
    "run_dir": "--run-dir DIR",
    "progress": "--quiet to hide progress",
    "resume": "deeprl resume RUN",
    "on_evaluation": "the Python API (deeprl.train(..., on_evaluation=fn))",
}
# Settings that are also flags: either way works; both at once must agree.
FLAG_SETTINGS = {"seed": "--seed", "total_steps": "--steps", "device": "--device"}


def cmd_train(args: argparse.Namespace) -> int:
    from deeprl.api import train
    from deeprl.config import parse_seeds, parse_set_args

    settings = parse_set_args(args.settings)
    for name, use in RUN_ARGUMENTS.items():
        if name in settings:
            raise DeeprlError(f"'{name}' is not set with --set: use {use}")
    flags = {"seed": args.seed, "total_steps": args.steps, "device": args.device}
    for name, flag in FLAG_SETTINGS.items():
        if flags[name] is not None and name in settings and str(flags[name]) != settings[name]:
            raise DeeprlError(f"{flag} {flags[name]} and --set {name}={settings[name]} disagree; give one")
        if flags[name] is not None:
            settings[name] = flags[name]
    if args.seeds is not None and args.seed is not None:
        raise DeeprlError("give --seed or --seeds, not both")
    result = train(
        args.algo,
        args.env,
        seeds=None if args.seeds is None else parse_seeds(args.seeds),
        preset=args.preset,
        config=args.config,
        run_dir=args.run_dir,
        progress=not args.quiet,
        **settings,
    )
    _print_result(result, args.quiet)
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    from deeprl.api import resume_run

    _print_result(resume_run(args.run, steps=args.steps, progress=not args.quiet), args.quiet)
    return 0


def _print_result(result, quiet: bool) -> None:
    """A run's summary, or a line per seed and the seeds' directory for several seeds' runs."""
    if not isinstance(result, list):
        _print_summary(result, quiet)
        return
    for agent in result:
        summary = agent.summary
        final, best = summary["final"], summary["best"]
        solved = (
            f"solved at step {summary['solved_at_step']}"
            if summary["solved"]
            else "not solved"
            if summary["solve_threshold"] is not None
            else "no threshold"
        )
        print(
            f"seed {summary['seed']}: final {final['mean_return']:.2f} ± {final['std_return']:.2f}, best "
            f"{best['mean_return']:.2f} ± {best['std_return']:.2f} over {final['episodes']} episodes; {solved}; "
            f"run directory: {agent.run_dir}"
        )
    seeds_dir = result[0].run_dir.parent
    finals = [agent.summary["final"]["mean_return"] for agent in result]
    print(f"over {len(result)} seeds: final mean return {sum(finals) / len(finals):.2f}; seeds directory: {seeds_dir}")
    if not quiet:
        print(f"learning curves: {seeds_dir / 'curves.png'}; a page for a browser: {seeds_dir / 'report.html'}")


def _print_summary(agent, quiet: bool) -> None:
    """The run's results (scores, solved or not, its time and directory); unless quiet, also its files."""
    from deeprl.run import timing_text

    summary = agent.summary
    final, best = summary["final"], summary["best"]
    episodes = final["episodes"]
    print(f"final policy: mean return {final['mean_return']:.2f} ± {final['std_return']:.2f} over {episodes} episodes")
    print(
        f"best policy (step {summary['best_policy_step']}): mean return "
        f"{best['mean_return']:.2f} ± {best['std_return']:.2f} over {episodes} episodes"
    )
    if summary["solve_threshold"] is not None:
        if summary["solved"]:
            print(
                f"solved (eval mean >= {summary['solve_threshold']:g}) at step {summary['solved_at_step']} "
                f"after {summary['solved_train_seconds']:.1f} s of training"
            )
        else:
            print(f"not solved (threshold {summary['solve_threshold']:g})")
    print(
        f"time: {summary['steps']} steps in {summary['train_seconds'] + summary['eval_seconds']:.1f} s, "
        f"{timing_text(summary)}"
    )
    run_dir = agent.run_dir
    print(f"run directory: {run_dir}")
    if quiet:
        return
    print(f"learning curve: {run_dir / 'curve.png'}")
    print(f"model: {run_dir / 'best_policy.pt'} (final: {run_dir / 'policy.pt'})")
    print(f"a page for a browser: deeprl report {run_dir}")


def _agent_env(agent, override: str | None):
    """The env id a loaded agent was trained on (or `override`) and a factory for it, checked to fit."""
    from deeprl.envs import spec_factory
    from deeprl.evaluation import check_agent_fits

    spec = getattr(agent, "env_spec", {}) or {}
    env_id = override or spec.get("env")
    if env_id is None:
        raise DeeprlError("the model does not say which env it was trained on; pass --env")
    # --env replaces the env id but keeps the wrappers the agent learnt with (reward, screen observations)
    limit = None if override else spec.get("max_episode_steps")
    make = spec_factory({**spec, "env": env_id, "max_episode_steps": limit})
    check_agent_fits(agent, make, env_id)
    return env_id, make


def _note_unfinished_run(path: str, agent) -> None:
    """Say so when the agent comes from a run that is still training or stopped early, and from which step."""
    from deeprl.run import run_status

    status = run_status(Path(path)) if Path(path).is_dir() else None
    if status is not None:
        which = "best policy so far" if agent.policy_path.name == "best_policy.pt" else "latest policy"
        print(f"note: {status}; using its {which}, from step {agent.policy_step}")


def one_torch_thread() -> None:
    """Acting on one observation at a time is too little work to split: a second thread only waits for a core
    (measured: PPO's Pong CNN played 455-575 steps/s on one thread, 48-51 on two, with both cores busy)."""
    import torch

    torch.set_num_threads(1)


def cmd_eval(args: argparse.Namespace) -> int:
    from deeprl.agent import load
    from deeprl.evaluation import evaluate

    one_torch_thread()
    episodes = _positive("--episodes", args.episodes)
    agent = load(args.path)
    env_id, make = _agent_env(agent, args.env)
    _note_unfinished_run(args.path, agent)
    result = evaluate(agent, make, episodes, seed=args.seed)
    last_seed = args.seed + episodes - 1
    print(
        f"{env_id}: mean return {result.mean:.2f} ± {result.std:.2f} over {episodes} episodes "
        f"(min {result.returns.min():.2f}, max {result.returns.max():.2f}; seeds {args.seed}..{last_seed})"
    )
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    from deeprl.agent import load
    from deeprl.files import check_writable
    from deeprl.media import VIDEO_SUFFIXES, play_frames, write_video

    episodes = _positive("--episodes", args.episodes)
    every = _positive("--every", args.every)
    fps = _positive("--fps", args.fps)
    if args.video and Path(args.video).suffix.lower() not in VIDEO_SUFFIXES:
        raise DeeprlError(f"--video must end in {', '.join(VIDEO_SUFFIXES)} (got '{args.video}')")
    one_torch_thread()
    agent = load(args.path)
    env_id, make = _agent_env(agent, None)
    if not args.video and os.environ.get("DISPLAY"):
        from deeprl.evaluation import evaluate

        _note_unfinished_run(args.path, agent)
        result = evaluate(agent, lambda: make(render_mode="human"), episodes, seed=args.seed, parallel=1)
        print(f"{env_id}: returns {', '.join(f'{r:.1f}' for r in result.returns)}")
        return 0
    output = Path(args.video) if args.video else _default_video_path(Path(args.path))
    check_writable(output, "video")
    _note_unfinished_run(args.path, agent)
    frames, returns = play_frames(agent, make, episodes, seed=args.seed, every=every)
    write_video(frames, output, fps=fps)
    height, width = frames[0].shape[:2]
    print(f"{env_id}: returns {', '.join(f'{r:.1f}' for r in returns)}")
    if not args.video:
        print(
            "no display here (DISPLAY is not set), so the episodes went to a video file instead of a window "
            "(choose it with --video PATH: .mp4, .gif or .html)"
        )
    print(f"video: {output} ({len(frames)} frames, {width}x{height})")
    return 0


def _default_video_path(path: Path) -> Path:
    if path.is_dir():
        return path / "videos" / "watch.mp4"
    return path.with_suffix(".mp4")


def cmd_plot(args: argparse.Namespace) -> int:
    from deeprl.files import check_writable
    from deeprl.many_seeds import is_seeds_dir, plot_seeds
    from deeprl.media import group_runs, image_format, plot_groups, plot_runs
    from deeprl.sweeps import is_sweep_dir, sweep_groups

    if args.output:
        image_format(args.output)

    seeds_dirs = [run for run in args.runs if is_seeds_dir(Path(run))]
    if seeds_dirs:  # its seeds' mean curve and 95% CI
        if len(args.runs) > 1 or args.group_by:
            raise DeeprlError(f"{seeds_dirs[0]} is a seeds directory: plot it alone (its seeds' mean and 95% CI)")
        output = Path(args.output) if args.output else Path(seeds_dirs[0]) / "curves.png"
        check_writable(output, "plot")
        plot_seeds(Path(seeds_dirs[0]), output, x=args.x)
        print(f"plot: {output}")
        return 0
    sweeps = [run for run in args.runs if is_sweep_dir(Path(run))]
    if sweeps:
        if len(args.runs) > 1:
            raise DeeprlError(f"{sweeps[0]} is a sweep directory: plot it alone")
        if args.group_by:
            raise DeeprlError("a sweep is grouped by its configurations; --group-by is for run directories")
        output = Path(args.output) if args.output else Path(sweeps[0]) / "curves.png"
        check_writable(output, "plot")
        groups, title = sweep_groups(Path(sweeps[0]))
        plot_groups(groups, output, x=args.x, title=title)
        print(f"plot: {output}")
        return 0
    for run in args.runs:
        if not (Path(run) / "metrics.csv").is_file():
            raise DeeprlError(f"{run} is not a run directory (no metrics.csv)")
    output = (
        Path(args.output)
        if args.output
        else (Path(args.runs[0]) / "curve.png" if len(args.runs) == 1 and not args.group_by else Path("runs.png"))
    )
    check_writable(output, "plot")
    if args.group_by:
        plot_groups(
            group_runs(args.runs, args.group_by), output, x=args.x, title=f"mean over runs by {args.group_by}, 95% CI"
        )
    elif args.x != "steps":
        raise DeeprlError("--x time goes with --group-by or a sweep (single runs are drawn against steps)")
    else:
        plot_runs(args.runs, output)
    print(f"plot: {output}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from deeprl.report import write_report

    every = _positive("--every", args.every)
    fps = _positive("--fps", args.fps)
    one_torch_thread()
    output = write_report(args.runs, args.output, video=not args.no_video, every=every, fps=fps, on_progress=print)
    print(f"report: {output} (open it in a browser)")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from deeprl.config import parse_set_args
    from deeprl.sweeps import parse_grid, sweep

    if args.resume:
        given = [
            flag
            for flag, value in (
                ("ALGO", args.algo),
                ("ENV", args.env),
                ("--grid", args.grid),
                ("--set", args.settings),
                ("--preset", args.preset),
                ("--steps", args.steps),
                ("--sweep-dir", args.sweep_dir),
            )
            if value
        ]
        if given:
            raise DeeprlError(f"--resume continues the sweep as it was asked; drop {', '.join(given)}")
    sweep(
        args.algo,
        args.env,
        seeds=args.seeds,
        grid=parse_grid(args.grid),
        preset=args.preset,
        settings=parse_set_args(args.settings),
        steps=args.steps,
        cpus_per_trial=args.cpus_per_trial,
        max_concurrent=args.max_concurrent,
        sweep_dir=args.sweep_dir,
        address=args.address,
        resume=args.resume,
        progress=not args.quiet,
        results=True,
    )
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from deeprl.algos import ALGORITHMS, get_algorithm
    from deeprl.config import build_config, describe_fields, load_presets

    if args.settings:
        module = get_algorithm(args.settings)
        if args.env:
            preset = args.preset or "default"
            config = build_config(module.Config, args.env, preset)
            print(f"# the settings a run of {config.algo} on {args.env} with preset '{preset}' uses")
        else:
            if args.preset:
                raise DeeprlError("--preset needs --env: presets belong to an env")
            config = module.Config()
            print(
                f"# {config.algo}'s defaults; a preset for the env overrides many of them: "
                f"`deeprl list --settings {config.algo} --env ENV [--preset P]` shows what a run would use"
            )
        rows = [
            (name, type_name, str(list(value) if isinstance(value, tuple) else value), doc)
            for name, type_name, value, doc in describe_fields(config)
        ]
        print_columns(rows)
        return 0
    if args.envs:
        import gymnasium as gym

        from deeprl.envs import register_installed_minigrid_envs
        from deeprl.envs.atari import register_installed_ale_envs

        register_installed_ale_envs()  # Gymnasium registers the Atari ids only on request
        register_installed_minigrid_envs()  # and MiniGrid's when its package is imported
        print("\n".join(sorted(gym.registry)))
        return 0
    if args.env or args.preset:
        raise DeeprlError("--env and --preset go with --settings ALGO")
    print("algorithms, with the envs that have tuned presets (any other Gymnasium env trains with the defaults);")
    print("tutorial presets reproduce the tutorials deeprl is built from (docs/tutorials/)")
    presets = {name: load_presets(name) for name in ALGORITHMS}
    width = max(len(env_id) for by_env in presets.values() for env_id in by_env)
    for name in ALGORITHMS:
        module = get_algorithm(name)
        observations = ", ".join(space.__name__ for space in module.OBSERVATION_SPACES)
        spaces = ", ".join(space.__name__ for space in module.ACTION_SPACES)
        print(f"{name}  (observation spaces: {observations}; action spaces: {spaces})")
        for env_id, names in presets[name].items():
            print(f"  {env_id:{width}}  presets: {', '.join(names)}")
    return 0


def print_columns(rows: list[tuple[str, ...]]) -> None:
    """Rows of text as aligned columns, each as wide as its widest entry (the last column runs on)."""
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join([*(text.ljust(width) for text, width in zip(row, widths, strict=False)), row[-1]]))


# The RL Zoo's train.py / enjoy.py flags and deeprl's way to do the same: their users type these first.
ZOO_FLAGS = {
    flag: way
    for flags, way in (
        (("-n", "--n-timesteps"), "--steps N"),
        (("--algo",), "the ALGO argument (deeprl train ALGO ENV)"),
        (("--env",), "the ENV argument (deeprl train ALGO ENV)"),
        (("--n-envs",), "--set n_envs=N (a2c, ppo, reinforce, actor-critic)"),
        (("--vec-env",), "--set n_envs=N (deeprl steps its env copies in one process)"),
        (("--eval-freq",), "--set eval_every=N"),
        (("--eval-episodes",), "--set eval_episodes=N"),
        (("--save-freq",), "--set checkpoint_every=N"),
        (("--hyperparams", "-params"), "--set KEY=VALUE, repeated (deeprl list --settings ALGO shows the names)"),
        (("--env-kwargs",), "--set 'env_kwargs={key: value}'"),
        (("-conf", "--conf-file"), "--config FILE (a run's config.yaml)"),
        (("-f", "--log-folder"), "--run-dir DIR"),
        (
            ("-tb", "--tensorboard-log"),
            "TensorBoard events always go to RUN/tensorboard (--set tensorboard=false turns them off)",
        ),
        (
            ("-optimize", "--optimize", "--optimize-hyperparameters"),
            "deeprl sweep ALGO ENV --grid KEY=V1,V2 --seeds 0-4 (Ray Tune)",
        ),
        (("--n-trials",), "deeprl sweep ALGO ENV --grid KEY=V1,V2 (every combination runs)"),
        (("-i", "--trained-agent"), "deeprl resume RUN (it continues an interrupted run)"),
        (("--num-threads",), "--set torch_threads=N"),
        (("--verbose",), "progress shows by default (--quiet hides it)"),
        (("--save-replay-buffer",), "checkpoints hold the replay memory (--set checkpoint_replay=false leaves it out)"),
        (("--no-render",), "deeprl eval RUN (it never renders)"),
        (("--deterministic",), "deeprl eval and watch always act greedily"),
    )
    for flag in flags
}
# Where an evaluating command does it differently
ZOO_FLAGS_WHEN_WATCHING = {"-n": "--episodes N", "-f": "the RUN argument", "--folder": "the RUN argument"}


def unrecognized_message(command: str, extras: list[str]) -> str:
    """argparse's complaint about `extras`, or, for an RL Zoo flag among them, deeprl's way to do it."""
    flags = {**ZOO_FLAGS, **(ZOO_FLAGS_WHEN_WATCHING if command in ("eval", "watch") else {})}
    for extra in extras:
        flag = extra.partition("=")[0]
        if flag in flags:
            return f"{flag} is an RL Zoo flag; in deeprl: {flags[flag]}"
    return f"unrecognized arguments: {' '.join(extras)}"


class ReaderSafeStdout:
    """The command's stdout: when its reader goes away (`deeprl train ... | head -1`), later output is dropped
    instead of raising BrokenPipeError, so a run goes on to its end and no traceback is printed."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        try:
            return self.stream.write(text)
        except BrokenPipeError:
            discard_stdout()
            return len(text)

    def flush(self) -> None:
        try:
            self.stream.flush()
        except BrokenPipeError:
            discard_stdout()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    if extras:
        usage_error(unrecognized_message(args.command, extras), f"deeprl {args.command}")
    console = sys.stdout
    sys.stdout = ReaderSafeStdout(console)
    try:
        return run_command(args)
    finally:
        sys.stdout.flush()
        sys.stdout = console


def run_command(args: argparse.Namespace) -> int:
    """The command's handler; a user's mistake or an interruption becomes one line on stderr and an exit code."""
    try:
        return args.handler(args)
    except DeeprlError as error:
        print(f"deeprl: error: {error}", file=sys.stderr)
        return 2
    except Interrupted as stop:
        print(f"deeprl: {stop}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("deeprl: interrupted; the last checkpoint (if any) is intact", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
