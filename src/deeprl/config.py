"""Typed configs, YAML presets, `--set key=value` overrides and their validation.

A config is a dataclass whose fields are declared with `knob(default, doc, ...)`: the default, a one-line
meaning and the allowed range live next to each other, and one generic validator enforces them.
Resolution order: dataclass defaults < preset (keyed by env id) < overrides < explicit CLI flags.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import functools
import math
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, ClassVar

import yaml

from deeprl.config_file import read_config_file as read_config_file  # the API's name for it
from deeprl.config_file import read_config_record as read_config_record
from deeprl.envs import OBSERVATIONS, REWARDS
from deeprl.envs.atari import AtariSettings, is_ale_id, register_ale_envs
from deeprl.errors import DeeprlError

DEVICES = ("auto", "cpu", "cuda")


def knob(
    default: Any,
    doc: str,
    *,
    low: float | None = None,
    high: float | None = None,
    above: float | None = None,
    choices: tuple[str, ...] | None = None,
) -> Any:
    """A config field: default, one-line meaning, inclusive bounds `low`/`high`, exclusive bound `above`."""
    metadata = {"doc": doc, "low": low, "high": high, "above": above, "choices": choices}
    if isinstance(default, dict):  # a dataclass field cannot share one mutable default between instances
        return field(default_factory=lambda: dict(default), metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class RunConfig:
    """Settings every algorithm shares: what to train on, for how long, how to evaluate and log."""

    algo: ClassVar[str] = ""

    env: str = knob("CartPole-v1", "Gymnasium env id, or package.module:ClassName for a custom env")
    env_kwargs: dict[str, Any] = knob(  # noqa: RUF009 (knob makes a default_factory for a dict)
        {}, "keyword arguments for the env's constructor, e.g. '{enable_wind: true}' (LunarLander)"
    )
    seed: int = knob(0, "seeds Python, NumPy, torch, the env and its action space", low=0)
    total_steps: int = knob(100_000, "environment steps to train for", low=1)
    max_episode_steps: int | None = knob(None, "episode step limit (TimeLimit); None keeps the env's own", low=1)
    reward: str = knob(
        "env",
        "env's own reward, or tip_height (Acrobot: tip height - 1, as the Acrobot lecture shapes it)",
        choices=REWARDS,
    )
    observation: str = knob(
        "state",
        "state vector, or CartPole's screen: screen_difference (the pixel CartPole "
        "tutorial's), screen_frames (grayscale stack)",
        choices=OBSERVATIONS,
    )
    screen_height: int = knob(40, "screen observations: picture height in pixels (width follows)", low=8, high=160)
    frame_stack: int = knob(2, "screen_frames: pictures stacked per observation", low=1)
    vector: str = knob(
        "sync",
        "env copies stepped in this process (sync), or each in a process of its own (async: for envs whose step is "
        "costly, MuJoCo, Atari; docs/mujoco.md)",
        choices=("sync", "async"),
    )
    atari_preprocessing: bool | None = knob(
        AtariSettings.preprocessing,
        "the standard Atari preprocessing (docs/atari.md, the atari_* settings); None: on for Atari games",
    )
    atari_noop_max: int = knob(
        AtariSettings.noop_max, "Atari: each game starts with a random 1 to N no-op frames; 0: none", low=0
    )
    atari_frame_skip: int = knob(
        AtariSettings.frame_skip,
        "Atari: frames each action is repeated for; the picture is the max of the last two",
        low=1,
    )
    atari_screen_size: int = knob(AtariSettings.screen_size, "Atari: pictures are resized to N x N pixels", low=1)
    atari_grayscale: bool = knob(
        AtariSettings.grayscale, "Atari: grayscale pictures; false: colour (3 channels a frame)"
    )
    atari_terminal_on_life_loss: bool = knob(
        AtariSettings.terminal_on_life_loss,
        "Atari: a lost life ends the episode for learning; evaluations and returns play whole games",
    )
    atari_fire_reset: bool = knob(
        AtariSettings.fire_reset, "Atari: press FIRE when a game or a life starts, in games that have it"
    )
    atari_clip_rewards: bool = knob(
        AtariSettings.clip_rewards, "Atari: learn from the reward's sign; returns reported are the game's own"
    )
    atari_frame_stack: int = knob(
        AtariSettings.frame_stack, "Atari: frames stacked per observation (channels first)", low=1
    )
    device: str = knob("auto", "torch device: auto (cuda when available), cpu, cuda or cuda:N")
    torch_threads: int = knob(
        1, "CPU threads for torch and NumPy's BLAS; 1 is fastest for small nets (too little work to split)", low=1
    )
    eval_every: int = knob(5_000, "environment steps between greedy evaluations", low=1)
    eval_episodes: int = knob(10, "episodes per periodic greedy evaluation", low=1)
    final_eval_episodes: int = knob(20, "episodes for the final evaluation written to eval.json", low=1)
    solve_threshold: float | None = knob(None, "mean eval return that counts as solved; None: env's threshold")
    stop_on_solve: bool = knob(False, "stop training once an evaluation reaches solve_threshold")
    solve_confirm_episodes: int = knob(
        0,
        "episodes on new seeds that must also reach solve_threshold before an "
        "evaluation counts as solved; 0: no second check",
        low=0,
    )
    tensorboard: bool = knob(True, "write TensorBoard scalars to the run directory")
    check_env: bool = knob(False, "run Gymnasium's env checker on the env before training")
    checkpoint_every: int = knob(
        10_000,
        "env steps between full checkpoints (taken at the next episode end, or "
        "rollout end for actor-critics, A2C and PPO); 0: none",
        low=0,
    )

    def validate(self) -> None:
        """Cross-field checks; per-field bounds are checked by `validate_fields`."""
        if not (self.device in DEVICES or self.device.startswith("cuda:")):
            raise DeeprlError(f"device must be one of {', '.join(DEVICES)} or cuda:N (got '{self.device}')")


def config_fields(cls: type[RunConfig]) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls)}


def describe_fields(config: RunConfig) -> list[tuple[str, str, Any, str]]:
    """(name, type, value, meaning) for every setting of a config."""
    hints = typing.get_type_hints(type(config))
    return [
        (f.name, _type_name(hints[f.name]), getattr(config, f.name), f.metadata.get("doc", ""))
        for f in dataclasses.fields(config)
    ]


def _type_name(hint: Any) -> str:
    if isinstance(hint, type):
        return hint.__name__
    return str(hint).replace("typing.", "")


# ---------------------------------------------------------------------------------------------- coercion


def _parse_scalar(text: str) -> Any:
    """Read a command-line value the way YAML would (numbers, bools, lists); fall back to the raw text."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _invalid(name: str, value: Any, expected: str) -> DeeprlError:
    return DeeprlError(f"invalid value for {name}: {value!r} (expected {expected})")


def coerce(name: str, value: Any, hint: Any) -> Any:
    """Convert `value` to the type `hint` of setting `name`, or raise a one-line DeeprlError."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "null", "~")):
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return coerce(name, value, inner)
    if isinstance(value, str) and hint is not str:
        value = _parse_scalar(value)
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise _invalid(name, value, "true or false")
    if hint is int:
        if isinstance(value, bool):
            raise _invalid(name, value, "an integer")
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise _invalid(name, value, "an integer") from None
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, int):
            return value
        raise _invalid(name, value, "an integer")
    if hint is float:
        if isinstance(value, bool):
            raise _invalid(name, value, "a number")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise _invalid(name, value, "a number") from None
        if not math.isfinite(number):
            raise _invalid(name, value, "a finite number")
        return number
    if hint is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise _invalid(name, value, "text")
    if hint is dict or origin is dict:
        if isinstance(value, dict) and all(isinstance(key, str) for key in value):
            return dict(value)
        raise _invalid(name, value, "a mapping such as '{key: value}'")
    if origin is tuple:
        if isinstance(value, str):
            value = [part for part in value.strip().strip("[]()").split(",") if part.strip()]
        elif isinstance(value, int) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise _invalid(name, value, "a list such as 256,256")
        return tuple(coerce(name, item, args[0]) for item in value)
    raise TypeError(f"unsupported config type {hint!r} for {name}")  # a programming error, not user input


def validate_fields(config: RunConfig) -> None:
    """Check every field's bounds and choices, then the config's own cross-field rules."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        meta = f.metadata
        items = value if isinstance(value, tuple) else (value,)
        for item in items:
            if item is None or isinstance(item, bool):
                continue
            if meta.get("choices") and item not in meta["choices"]:
                raise DeeprlError(f"{f.name} must be one of {', '.join(meta['choices'])} (got '{item}')")
            if meta.get("low") is not None and item < meta["low"]:
                raise DeeprlError(f"{f.name} must be >= {meta['low']} (got {item})")
            if meta.get("high") is not None and item > meta["high"]:
                raise DeeprlError(f"{f.name} must be <= {meta['high']} (got {item})")
            if meta.get("above") is not None and item <= meta["above"]:
                raise DeeprlError(f"{f.name} must be > {meta['above']} (got {item})")
    config.validate()


def apply_settings(config: RunConfig, settings: dict[str, Any], source: str | None = None) -> RunConfig:
    """A copy of `config` with `settings` applied, each type-checked; an unknown key is named with what to write
    instead, and with its `source` (a preset, a file; None for the user's own settings, from --set or Python)."""
    known = config_fields(type(config))
    hints = typing.get_type_hints(type(config))
    changes = {}
    for name, value in settings.items():
        if name not in known:
            where = f" in {source}" if source else ""
            raise DeeprlError(
                f"unknown setting '{name}' for {config.algo}{where}{unknown_setting_hint(name, type(config))} "
                f"(`deeprl list --settings {config.algo}` shows them all)"
            )
        changes[name] = coerce(name, value, hints[name])
        choices = known[name].metadata.get("choices")
        if choices and isinstance(changes[name], str):  # choices read like algorithm names: any case
            changes[name] = next(
                (choice for choice in choices if choice.lower() == changes[name].lower()), changes[name]
            )
    return dataclasses.replace(config, **changes)


# Stable-Baselines3's and the RL Zoo's names for what deeprl calls otherwise: their users type these first.
# Each maps to deeprl's settings for it (with a note on how it differs), or to a note alone where deeprl has none.
FOREIGN_NAMES: dict[str, dict[str, str] | str] = {
    "learning_rate": {"lr": ""},
    "n_timesteps": {"total_steps": "the --steps flag"},
    "total_timesteps": {"total_steps": "the --steps flag"},
    "net_arch": {"hidden_sizes": "layer widths such as 64,64"},
    "policy_kwargs": {"hidden_sizes": "", "activation": "", "orthogonal_init": "", "log_std_init": ""},
    "activation_fn": {"activation": ""},
    "ortho_init": {"orthogonal_init": ""},
    "normalize": {"normalize_observations": "", "normalize_rewards": ""},
    "normalize_advantage": {"normalize_advantages": ""},
    "exploration_fraction": {"epsilon_decay_steps": "a number of steps, not a fraction of the run"},
    "exploration_initial_eps": {"epsilon_start": ""},
    "exploration_final_eps": {"epsilon_end": ""},
    "ent_coef": {"entropy_coef": "", "alpha": "a fixed value, or none to tune it as 'auto' does"},
    "vf_coef": {"value_coef": ""},
    "use_rms_prop": {"optimizer": "rmsprop or adam"},
    "rms_prop_eps": {"optimizer_eps": ""},
    "noise_type": {"noise": "gaussian, ou or none"},
    "noise_std": {"noise_sigma": ""},
    "n_steps": {"n_step": "n-step returns"},
    "tensorboard_log": {"tensorboard": "true or false; the events go to the run directory"},
    "policy": "deeprl builds its networks from the observation space (an MLP for vectors, a CNN for pictures)",
    "use_sde": "deeprl has no state-dependent exploration (gSDE)",
    "sde_sample_freq": "deeprl has no state-dependent exploration (gSDE)",
    "target_kl": "deeprl's PPO has no KL early stop (n_epochs and clip_range bound each update)",
    "verbose": "progress shows by default; --quiet (progress=False in Python) hides it",
}


def unknown_setting_hint(name: str, config_class: type[RunConfig]) -> str:
    """What to write instead of an unknown setting `name`: deeprl's name for an SB3 / RL Zoo one, the
    algorithms that have it, or the closest name; '' when nothing comes close."""
    from deeprl.algos import ALGORITHMS, get_algorithm

    known = config_fields(config_class)
    algo = config_class.algo

    def owners(setting: str) -> str:
        return ", ".join(other for other in ALGORITHMS if setting in config_fields(get_algorithm(other).Config))

    foreign = FOREIGN_NAMES.get(name, {})
    if isinstance(foreign, str):
        return f": {foreign}"
    ours = [f"'{setting}'" + (f" ({note})" if note else "") for setting, note in foreign.items() if setting in known]
    if len(ours) == 1:
        return f": deeprl calls it {ours[0]}"
    if ours:
        return f": deeprl's settings for it are {', '.join(ours)}"
    if owners(name):
        return f": '{name}' is a setting of {owners(name)}, not {algo}"
    if foreign:
        elsewhere = "; ".join(f"'{setting}' of {owners(setting)}" for setting in foreign if owners(setting))
        return f": {algo} has no equivalent" + (f" (deeprl has {elsewhere})" if elsewhere else "")
    close = difflib.get_close_matches(name, known, n=1)
    return f"; did you mean '{close[0]}'?" if close else ""


def parse_set_args(pairs: list[str]) -> dict[str, str]:
    """`["lr=1e-3", "hidden_sizes=64,64"]` -> {"lr": "1e-3", "hidden_sizes": "64,64"}."""
    settings: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise DeeprlError(f"--set expects key=value (got '{pair}')")
        if key in settings:
            raise DeeprlError(
                f"--set {key} is given twice ({key}={settings[key]} and {key}={value.strip()}); give it once"
            )
        settings[key] = value.strip()
    return settings


def parse_seeds(text: str) -> list[int]:
    """`0-4` -> [0, 1, 2, 3, 4]; `0,3,7-8` -> [0, 3, 7, 8]; distinct and non-negative."""
    seeds: list[int] = []
    try:
        for part in filter(None, (piece.strip() for piece in str(text).split(","))):
            low, _, high = part.partition("-")
            seeds += list(range(int(low), int(high or low) + 1))
    except ValueError:
        raise DeeprlError(f"seeds must look like 0-4 or 0,2,5 (got '{text}')") from None
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise DeeprlError(f"seeds must be distinct, non-negative and at least one (got '{text}')")
    return seeds


# ----------------------------------------------------------------------------------------------- presets


def load_presets(algo: str) -> dict[str, dict[str, dict[str, Any]]]:
    """All presets of an algorithm: {env id: {preset name: {setting: value}}}, the caller's own copy."""
    return copy.deepcopy(parsed_presets(algo))


@functools.cache
def parsed_presets(algo: str) -> dict[str, dict[str, dict[str, Any]]]:
    """An algorithm's preset file, read once per process: a run asks several times, and the pure-Python YAML parser
    takes about 14 ms for ppo.yaml (LibYAML's, where PyYAML has it, about 1.6 ms)."""
    resource = resources.files("deeprl.presets").joinpath(f"{algo}.yaml")
    if not resource.is_file():
        return {}
    return yaml.load(resource.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}


ATARI_PRESETS = "atari"  # the presets every Atari game shares (the RL Zoo keys its Atari settings so too)


def env_presets(algo: str, env: str) -> dict[str, dict[str, Any]]:
    """An env's presets {name: settings}: those keyed by its id, else for an Atari game those keyed `atari`."""
    presets = load_presets(algo)
    if env in presets:
        return presets[env]
    if ATARI_PRESETS in presets:
        register_ale_envs(env)
        if is_ale_id(env):
            return presets[ATARI_PRESETS]
    return {}


def preset_settings(algo: str, env: str, preset: str) -> dict[str, Any]:
    """The settings of one preset; `default` for an env without presets means the dataclass defaults."""
    by_env = env_presets(algo, env)
    if preset in by_env:
        return dict(by_env[preset] or {})
    if preset == "default":
        return {}
    available = ", ".join(sorted(by_env)) or "default"
    raise DeeprlError(f"unknown preset '{preset}' for {algo} on {env} (available: {available})")


def build_config(
    config_class: type[RunConfig],
    env: str,
    preset: str = "default",
    settings: dict[str, Any] | None = None,
) -> RunConfig:
    """Defaults < preset < settings, validated."""
    config = config_class(env=env)
    config = apply_settings(config, preset_settings(config.algo, env, preset), f"preset '{preset}'")
    config = apply_settings(config, settings or {})
    validate_fields(config)
    return config


# ------------------------------------------------------------------------------------------ config files


def config_to_dict(config: RunConfig, preset: str | None = None) -> dict[str, Any]:
    """The settings as plain data, after `algo` and the `preset` they started from (a record: re-running
    the file applies its settings, not the preset again)."""
    values = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    record = {"algo": config.algo, **({"preset": preset} if preset is not None else {})}
    return {**record, **{k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}}


def config_to_yaml(config: RunConfig, preset: str | None = None) -> str:
    return yaml.safe_dump(config_to_dict(config, preset), sort_keys=False)
