"""Making environments: registered Gymnasium ids, custom `package.module:ClassName` entry points,
episode-limit overrides, vectorised copies, and seeding of everything random from one seed."""

from __future__ import annotations

import copy
import dataclasses
import difflib
import importlib
import inspect
import os
import random
import sys
import warnings
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import yaml

from deeprl.config_file import read_config_file
from deeprl.envs import atari, partial  # noqa: F401 (partial registers CartPoleNoVel-v1, PendulumNoVel-v1)
from deeprl.envs.screen import CartPoleScreen
from deeprl.errors import DeeprlError
from deeprl.observations import EncodedObservations, EncodedSpace, ObservationEncoder, is_text_space, needs_encoding

MUJOCO_INSTALL = "pip install 'deeprl[mujoco]'"


def is_entry_point(env_id: str) -> bool:
    return ":" in env_id


# How a run records an env it was given as a Python object that no id rebuilds: 'CartPole-v1 (Python object)'.
OBJECT_ENV_SUFFIX = " (Python object)"


def is_object_env(env_id: str) -> bool:
    return str(env_id).endswith(OBJECT_ENV_SUFFIX)


# How a run shapes its env beyond the id; these are RunConfig fields, saved with every policy as its
# `env_spec` so that `deeprl.make_env(run_dir)`, eval and watch rebuild exactly the env it learnt in.
ENV_OPTIONS = (
    "env_kwargs",
    "max_episode_steps",
    "reward",
    "observation",
    "screen_height",
    "frame_stack",
    *atari.ATARI_OPTIONS,
)
REWARDS = ("env", "tip_height")
OBSERVATIONS = ("state", "screen_difference", "screen_frames")


def env_options(config: Any) -> dict[str, Any]:
    """{"env": id, option: value ...} of a RunConfig (or anything with those attributes)."""
    return {"env": config.env, **{name: getattr(config, name) for name in ENV_OPTIONS}}


def make_env(
    env_id: str | os.PathLike,
    *,
    env_kwargs: dict[str, Any] | None = None,
    max_episode_steps: int | None = None,
    reward: str = "env",
    observation: str = "state",
    screen_height: int = 40,
    frame_stack: int = 2,
    render_mode: str | None = None,
    **atari_options: Any,
) -> gym.Env:
    """One environment: a registered id, a `package.module:Class`, or a run directory (the env that run
    trained on, wrappers included).

    `env_kwargs` go to the env's constructor (`gym.make(id, **env_kwargs)`); `max_episode_steps` replaces
    (or adds) the TimeLimit, as the Acrobot lecture does; `reward` "tip_height" is that lecture's shaped
    Acrobot reward; `observation` "screen_difference" / "screen_frames" shows CartPole as pictures (as the
    pixel CartPole tutorial learns from) `screen_height` pixels high. An observation that is not a Box (FrozenLake's
    Discrete square, Blackjack's Tuple, MiniGrid's Dict) becomes one float32 vector (deeprl.observations), so every
    algorithm can read it. An Atari game gets the standard
    preprocessing, set by the `atari_*` options (deeprl.envs.atari.AtariSettings, docs/atari.md); it repeats
    actions itself, so the game is made with frameskip=1, and `max_episode_steps` counts agent steps.
    """
    if os.path.isdir(env_id):
        return spec_factory(run_env_spec(env_id))(render_mode=render_mode)
    env_id, env_kwargs = str(env_id), dict(env_kwargs or {})
    settings = atari.AtariSettings.from_options(atari_options)
    atari.register_ale_envs(env_id)  # before asking whether the id is an Atari game
    if settings.wanted_for(env_id):
        env = _make_base(env_id, settings.game_kwargs(env_id, env_kwargs), None, render_mode)
        return wrap_env(
            env,
            max_episode_steps=max_episode_steps,
            reward=reward,
            observation=observation,
            screen_height=screen_height,
            frame_stack=frame_stack,
            **atari_options,
        )
    env = _make_base(env_id, env_kwargs, max_episode_steps, render_mode)
    return wrap_env(
        env,
        reward=reward,
        observation=observation,
        screen_height=screen_height,
        frame_stack=frame_stack,
        **atari_options,
    )


def wrap_env(
    env: gym.Env,
    *,
    max_episode_steps: int | None = None,
    reward: str = "env",
    observation: str = "state",
    screen_height: int = 40,
    frame_stack: int = 2,
    **atari_options: Any,
) -> gym.Env:
    """deeprl's wrappers over a base env (make_env's options): an Atari game's preprocessing, a TimeLimit where
    `max_episode_steps` is given (make_env gives it to other base envs instead), observations of any space but a
    Box encoded as one vector (deeprl.observations), the reward and the observation."""
    settings = atari.AtariSettings.from_options(atari_options)
    if settings.wanted_for_env(env, _env_name(env)):
        env = atari.preprocess(env, settings, _env_name(env))
    if max_episode_steps is not None:
        env = gym.wrappers.TimeLimit(env, max_episode_steps=max_episode_steps)
    if needs_encoding(env.observation_space):
        env = EncodedObservations(env)
    if reward == "tip_height":
        env = TipHeightReward(env)
    elif reward != "env":
        raise DeeprlError(f"unknown reward {reward!r} (choose from {', '.join(REWARDS)})")
    if observation in ("screen_difference", "screen_frames"):
        mode = observation.removeprefix("screen_")
        env = CartPoleScreen(env, mode, height=screen_height, frames=frame_stack)
    elif observation != "state":
        raise DeeprlError(f"unknown observation {observation!r} (choose from {', '.join(OBSERVATIONS)})")
    return env


def run_env_spec(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The env options a run directory's config.yaml records."""
    path = os.path.join(run_dir, "config.yaml")
    if not os.path.isfile(path):
        raise DeeprlError(f"{run_dir} is not a run directory (no config.yaml)")
    _, settings = read_config_file(path)
    return {"env": settings["env"], **{name: settings[name] for name in ENV_OPTIONS if name in settings}}


def _make_base(
    env_id: str, env_kwargs: dict[str, Any], max_episode_steps: int | None, render_mode: str | None
) -> gym.Env:
    if render_mode is not None and not os.environ.get("DISPLAY"):
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # pygame renders off-screen without a display
        os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    if is_object_env(env_id):
        raise DeeprlError(
            f"env '{env_id}' was given to deeprl.train as a Python object, which deeprl cannot rebuild from its "
            "name: pass the same env again (deeprl.evaluate(agent, env), deeprl.train(resume=RUN, env=env), "
            "deeprl.train(config=FILE, env=env)), or on the command line an env id with --env"
        )
    if is_entry_point(env_id):
        return _make_custom(env_id, env_kwargs, max_episode_steps, render_mode)
    kwargs = dict(env_kwargs)
    if max_episode_steps is not None:
        kwargs["max_episode_steps"] = max_episode_steps
    if render_mode is not None:
        kwargs["render_mode"] = render_mode
    atari.register_ale_envs(env_id)
    register_minigrid_envs(env_id)
    if _is_mujoco_id(env_id):
        _quiet_mujoco_model_warnings()
    try:
        with warnings.catch_warnings():
            # Gymnasium's nudge towards an id's newer version, in raw colour codes: noise where the id works, and
            # a deprecated one is named below
            warnings.filterwarnings("ignore", message=".*is out of date", category=DeprecationWarning)
            return gym.make(env_id, **kwargs)
    except gym.error.DependencyNotInstalled as error:
        if _is_mujoco_id(env_id):
            raise DeeprlError(f"environment '{env_id}' needs MuJoCo, which is missing: {MUJOCO_INSTALL}") from None
        raise DeeprlError(f"environment '{env_id}' needs a missing dependency: {error}") from None
    except ImportError as error:  # Gymnasium's v2 and v3 MuJoCo ids, whose mujoco-py it no longer supports
        namespace, name, _ = gym.envs.registration.parse_env_id(env_id)
        newest = gym.envs.registration.get_env_id(
            namespace, name, gym.envs.registration.find_highest_version(namespace, name)
        )
        instead = f"; use {newest}" if newest != env_id else ""
        raise DeeprlError(f"environment '{env_id}' cannot be made: {str(error).rstrip('.')}{instead}") from None
    except gym.error.DeprecatedEnv:
        namespace, name, _ = gym.envs.registration.parse_env_id(env_id)
        newest = gym.envs.registration.find_highest_version(namespace, name)
        raise DeeprlError(
            f"{env_id} is deprecated: use {gym.envs.registration.get_env_id(namespace, name, newest)}"
        ) from None
    except gym.error.Error as error:
        raise DeeprlError(
            f"unknown environment '{env_id}'{_suggest(env_id)} ({error}){atari.missing_atari_hint(env_id)}"
        ) from None
    except TypeError as error:  # a keyword argument the env's constructor does not take
        if not env_kwargs:
            raise
        raise DeeprlError(f"environment '{env_id}' does not accept env_kwargs {env_kwargs}: {error}") from None


MINIGRID_PREFIXES = ("MiniGrid-", "BabyAI-")


def register_minigrid_envs(env_id: str) -> None:
    """MiniGrid's ids exist once the `minigrid` package is imported: import it for one of them."""
    if env_id.startswith(MINIGRID_PREFIXES) and env_id not in gym.registry and not register_installed_minigrid_envs():
        raise DeeprlError(f"environment '{env_id}' needs the minigrid package: pip install minigrid")


def register_installed_minigrid_envs() -> bool:
    """Register MiniGrid's ids if the package is installed; whether it is."""
    try:
        importlib.import_module("minigrid")
    except ImportError:
        return False
    return True


def _is_mujoco_id(env_id: str) -> bool:
    return str(getattr(gym.registry.get(env_id), "entry_point", "")).startswith("gymnasium.envs.mujoco")


def _quiet_mujoco_model_warnings() -> None:
    """Keep MuJoCo's warning about Gymnasium's own model files (HalfCheetah's `settotalmass`, which no user can act on)
    off stderr, where it would come before every line a run prints; other warnings print as MuJoCo prints them. A
    handler the user set stays."""
    try:
        import mujoco
    except ImportError:  # gym.make names the missing package
        return
    if mujoco.get_mju_user_warning() is None:
        mujoco.set_mju_user_warning(
            lambda message: None if "settotalmass" in message else print(f"WARNING: {message}", file=sys.stderr)
        )


def _suggest(env_id: str) -> str:
    close = difflib.get_close_matches(env_id, list(gym.registry), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else "; `deeprl list --envs` shows the registered ids"


def _make_custom(
    entry_point: str, env_kwargs: dict[str, Any], max_episode_steps: int | None, render_mode: str | None
) -> gym.Env:
    module_name, _, attribute = entry_point.partition(":")
    if "" not in sys.path and os.getcwd() not in sys.path:
        # `python -m` finds packages in the current directory; the `deeprl` command should too
        sys.path.append(os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # any failure while importing user code is a user-facing error
        raise DeeprlError(f"cannot import '{module_name}' for env '{entry_point}': {error}") from None
    factory = getattr(module, attribute, None)
    if not callable(factory):
        raise DeeprlError(f"'{module_name}' has no class or function '{attribute}' (env '{entry_point}')")
    if render_mode is not None and not _takes_render_mode(factory):
        raise DeeprlError(
            f"env '{entry_point}' cannot be drawn: its constructor takes no render_mode; give it a "
            "render_mode='rgb_array' argument and a render() that returns the frame as a (height, width, "
            "3) array"
        )
    try:
        env = factory(**env_kwargs, render_mode=render_mode) if render_mode is not None else factory(**env_kwargs)
    except Exception as error:
        raise DeeprlError(f"creating env '{entry_point}' failed: {type(error).__name__}: {error}") from None
    if not isinstance(env, gym.Env):
        raise DeeprlError(f"'{entry_point}' returned {type(env).__name__}, not a gymnasium.Env")
    if max_episode_steps is not None:
        env = gym.wrappers.TimeLimit(env, max_episode_steps=max_episode_steps)
    return ObservationCheck(env, entry_point)


def _takes_render_mode(factory: Callable[..., Any]) -> bool:
    """Whether a custom env's class or function accepts `render_mode` (by name or through **kwargs)."""
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):  # no signature to read (a builtin): let the call tell
        return True
    return any(parameter.name == "render_mode" or parameter.kind is parameter.VAR_KEYWORD for parameter in parameters)


class ObservationCheck(gym.Wrapper):
    """Stops with a clear error when a custom env returns an observation that does not fit its declared
    observation_space (wrong shape, or outside its bounds), instead of failing somewhere deep in training."""

    def __init__(self, env: gym.Env, env_id: str) -> None:
        super().__init__(env)
        self.env_id = env_id

    def _checked(self, obs: Any, source: str) -> Any:
        space = self.observation_space
        if isinstance(space, gym.spaces.Box):
            array = np.asarray(obs)
            fits = array.shape == space.shape and bool(np.all(array >= space.low) and np.all(array <= space.high))
        else:
            fits = space.contains(obs)
        if not fits:
            shown = np.array2string(np.asarray(obs), threshold=8, precision=4).replace("\n", " ")
            raise DeeprlError(
                f"env '{self.env_id}' {source} returned an observation outside its observation_space: "
                f"{shown} (shape {np.shape(obs)}; declared {space})"
            )
        return obs

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        return self._checked(obs, "reset()"), info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        return self._checked(obs, "step()"), reward, terminated, truncated, info


class TipHeightReward(gym.RewardWrapper):
    """Seed 001's shaped Acrobot reward: the height of the arm's tip above the pivot, minus 1.

    With both links 1 long (as Gymnasium's Acrobot has them), the tip is at -cos(a) - cos(a + b) for
    joint angles a, b, so the reward runs from -3 (hanging down) to 0 at the goal line (height 1),
    where the episode terminates. Every step below the line still costs, so faster swings score more.
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        if not hasattr(env.unwrapped, "LINK_LENGTH_1"):
            raise DeeprlError(f"reward 'tip_height' is defined for Acrobot only, not {_env_name(env)}")

    def reward(self, reward: float) -> float:
        return tip_height(self.env.unwrapped.state) - 1.0


def tip_height(state: np.ndarray) -> float:
    """Height of Acrobot's tip above the pivot for internal state (angle 1, angle 2, velocities)."""
    return float(-np.cos(state[0]) - np.cos(state[0] + state[1]))


def _env_name(env: gym.Env) -> str:
    return env.spec.id if env.spec is not None else type(env.unwrapped).__name__


def run_env_checker(spec: dict[str, Any], make_base: Callable[[str | None], gym.Env] | None = None) -> None:
    """Gymnasium's env checker on a fresh instance of a run's env (`--set check_env=true`); a failure is one
    line. The checker sees the env as the user built it, before deeprl's observation wrappers."""
    from gymnasium.utils.env_checker import check_env

    env_id = spec["env"]
    env = (
        make_base(None)
        if make_base is not None
        else _make_base(env_id, dict(spec.get("env_kwargs") or {}), spec.get("max_episode_steps"), None)
    )
    try:
        check_env(env.unwrapped, skip_render_check=True)
    except Exception as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DeeprlError(f"env '{env_id}' fails Gymnasium's env checker: {message}") from None
    finally:
        env.close()


def env_factory(env_id: str, **options: Any) -> Callable[..., gym.Env]:
    """A function making fresh copies of the same environment (for evaluation and vector envs);
    `options` are make_env's keyword arguments."""

    def make(render_mode: str | None = None) -> gym.Env:
        return make_env(env_id, **options, render_mode=render_mode)

    return make


def spec_factory(
    spec: dict[str, Any], make_base: Callable[[str | None], gym.Env] | None = None
) -> Callable[..., gym.Env]:
    """env_factory for an `env_spec` ({"env": id, option: value, ...}) as policies and runs record it; with
    `make_base` (an env given as a Python object, see env_source) its copies get the spec's wrappers."""
    options = {name: spec[name] for name in ENV_OPTIONS if spec.get(name) is not None}
    if make_base is None:
        return env_factory(spec["env"], **options)
    if options.pop("env_kwargs", None):
        raise DeeprlError(
            "env_kwargs go to the constructor of an env made from its id; make the env object with "
            "those arguments instead"
        )

    def make(render_mode: str | None = None) -> gym.Env:
        return wrap_env(make_base(render_mode), **options)

    return make


@dataclasses.dataclass(frozen=True)
class EnvSource:
    """An env as `deeprl.train` was given it: the settings config.yaml records (`env`, and for an env object that a
    registered id rebuilds, its `env_kwargs` and `max_episode_steps`), and for an env only the object can make,
    `make_base(render_mode)`, making a fresh copy each call (None: the settings make it)."""

    settings: dict[str, Any]
    make_base: Callable[[str | None], gym.Env] | None = None


def env_source(env: str | os.PathLike | gym.Env | Callable[..., gym.Env]) -> EnvSource:
    """What a run makes its envs from: an env id or entry point, as it is. A gymnasium.Env whose spec its id and
    keyword arguments rebuild exactly (gym.make's own wrappers, none added): that id and those arguments, so the
    run is the run of the id (changes made to the object after gym.make are not seen). Any other env object:
    deep copies of it as it was given (a run needs several envs: training copies, evaluation episodes). A function
    making envs: called for every copy. The last two are recorded as 'NAME (Python object)', which no later process
    can rebuild: resume, evaluation and re-runs need the object again."""
    if isinstance(env, (str, os.PathLike)):
        return EnvSource({"env": str(env)})
    if isinstance(env, gym.Env):
        settings = registered_settings(env)
        if settings is not None:
            return EnvSource(settings)
        try:
            template = copy.deepcopy(env)
        except Exception as error:  # whatever the object holds (a socket, a simulator handle) may refuse copying
            raise DeeprlError(
                f"cannot copy the env object {_env_name(env)} ({type(error).__name__}: {error}); pass "
                "a function that makes it instead: deeprl.train(algo, lambda: MyEnv())"
            ) from None

        def copy_of(render_mode: str | None) -> gym.Env:
            if render_mode is not None and render_mode != template.render_mode:
                raise DeeprlError(
                    f"the env object renders as {template.render_mode!r}, not {render_mode!r}: pass a "
                    "function that makes it (deeprl calls it with render_mode=...)"
                )
            return copy.deepcopy(template)

        return EnvSource({"env": _env_name(env) + OBJECT_ENV_SUFFIX}, copy_of)
    if callable(env):
        sample = _call_env_function(env, None)
        name = _env_name(sample)
        sample.close()
        return EnvSource({"env": name + OBJECT_ENV_SUFFIX}, lambda render_mode: _call_env_function(env, render_mode))
    raise DeeprlError(f"env must be an env id, a gymnasium.Env or a function making one (got {type(env).__name__})")


def registered_settings(env: gym.Env) -> dict[str, Any] | None:
    """{"env": id, "env_kwargs": ..., "max_episode_steps": ...} from which make_env builds an env of exactly `env`'s
    spec (its render_mode aside: training does not render), or None when none does."""
    spec = env.spec
    if spec is None or spec.id not in gym.registry:
        return None
    registered = gym.registry[spec.id]
    kwargs = {key: value for key, value in spec.kwargs.items() if key != "render_mode"}
    try:
        env_kwargs = {
            key: value
            for key, value in kwargs.items()
            if key not in registered.kwargs or bool(registered.kwargs[key] != value)
        }
        limit = None if spec.max_episode_steps == registered.max_episode_steps else spec.max_episode_steps
        settings = {"env": spec.id, "env_kwargs": env_kwargs, "max_episode_steps": limit}
        yaml.safe_dump(settings)  # config.yaml must be able to hold them
        rebuilt = _make_base(spec.id, env_kwargs, limit, None)
        same = rebuilt.spec == dataclasses.replace(spec, kwargs=kwargs)
        rebuilt.close()
    except Exception:  # arguments YAML cannot hold, or that do not compare or rebuild: copy the object instead
        return None
    return settings if same else None


def _call_env_function(make: Callable[..., gym.Env], render_mode: str | None) -> gym.Env:
    name = getattr(make, "__qualname__", type(make).__name__)
    try:
        env = make() if render_mode is None else make(render_mode=render_mode)
    except DeeprlError:
        raise
    except Exception as error:  # any failure in user code is a user-facing error
        raise DeeprlError(f"the env function {name} failed: {type(error).__name__}: {error}") from None
    if not isinstance(env, gym.Env):
        raise DeeprlError(f"the env function {name} returned {type(env).__name__}, not a gymnasium.Env")
    return env


def has_time_limit(env: gym.Env) -> bool:
    """Whether a TimeLimit wrapper, or an Atari game's own frame limit, cuts `env`'s episodes."""
    if atari.has_frame_limit(env) or _is_minigrid(env):
        return True
    while isinstance(env, gym.Wrapper):
        if isinstance(env, gym.wrappers.TimeLimit):
            return True
        env = env.env
    return False


def _is_minigrid(env: gym.Env) -> bool:
    """MiniGrid's envs end their own episodes after `max_steps` (their spec declares no limit)."""
    minigrid = sys.modules.get("minigrid.minigrid_env")  # loaded by `import minigrid`, which registers the ids
    return minigrid is not None and isinstance(env.unwrapped, minigrid.MiniGridEnv)


def check_time_limit(env: gym.Env, env_name: str) -> None:
    """Refuse a registered env without a time limit (CliffWalking's): an episode the policy never ends would never
    finish, and evaluations would stop the run late. Custom envs without a spec often end their own episodes."""
    if env.spec is not None and not has_time_limit(env):
        raise DeeprlError(
            f"{env_name} has no time limit (its spec's max_episode_steps is None), so an episode the "
            "policy never ends would run forever: set max_episode_steps=N (e.g. 200)"
        )


def factory_for(
    env: str | os.PathLike | gym.Env | Callable[..., gym.Env] | None, agent: Any = None, **options: Any
) -> Callable[..., gym.Env]:
    """A function making envs from an env id or run directory (with make_env's `options`), an env object (copies
    of it, see env_source), a function making envs (returned as is), or None: the env `agent` was trained on, as
    its `env_spec` records it."""
    if env is None:
        spec = getattr(agent, "env_spec", None)
        if not spec:
            raise DeeprlError("this agent does not say which env it was trained on: pass env")
        return spec_factory(spec)
    if isinstance(env, (str, os.PathLike)):
        return env_factory(env, **options)
    if isinstance(env, gym.Env):
        source = env_source(env)
        given = {name: value for name, value in options.items() if value is not None}
        return spec_factory({**source.settings, **given}, source.make_base)
    return env


def make_vec_env(env_id: str, num_envs: int, *, seed: int | None = None, **options: Any) -> gym.vector.SyncVectorEnv:
    """`num_envs` copies stepped in one process (cheap envs gain nothing from subprocesses on 2 cores)."""
    make = env_factory(env_id, **options)
    vec_env = gym.vector.SyncVectorEnv([make for _ in range(num_envs)])
    if seed is not None:
        vec_env.reset(seed=seed)
        vec_env.action_space.seed(seed)
    return vec_env


def learning_signals(
    rewards: np.ndarray, terminated: np.ndarray, infos: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray]:
    """The rewards and terminations a learner takes from a vector env step: the env's own, except where a wrapper
    gives them for learning only in `infos` (the Atari preprocessing's clipped reward and lost life); the env's
    rewards and episodes stay what is reported."""
    if atari.LEARNING_REWARD in infos:
        rewards = np.where(infos[f"_{atari.LEARNING_REWARD}"], infos[atari.LEARNING_REWARD], rewards)
    if atari.LEARNING_TERMINAL in infos:
        terminated = terminated | (infos[f"_{atari.LEARNING_TERMINAL}"] & infos[atari.LEARNING_TERMINAL])
    return rewards, terminated


def reward_threshold(env: gym.Env) -> float | None:
    """The env's own "solved" return (CartPole-v1: 475, Acrobot-v1: -100), if it declares one."""
    spec = env.spec
    return None if spec is None or spec.reward_threshold is None else float(spec.reward_threshold)


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python, NumPy's global state and torch; return a fresh NumPy Generator for the caller's draws."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


def space_to_dict(space: gym.Space) -> dict[str, Any]:
    """A JSON description of a space, enough to rebuild it for a loaded agent (nested Dict and Tuple included; an
    encoded observation space as the env's own space it encodes)."""
    if isinstance(space, EncodedSpace):
        return {"type": "Encoded", "source": space_to_dict(space.source)}
    if isinstance(space, gym.spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, gym.spaces.Box):
        return {
            "type": "Box",
            "low": space.low.tolist(),
            "high": space.high.tolist(),
            "shape": list(space.shape),
            "dtype": str(space.dtype),
        }
    if isinstance(space, gym.spaces.MultiDiscrete):
        return {
            "type": "MultiDiscrete",
            "nvec": space.nvec.tolist(),
            "start": space.start.tolist(),
            "dtype": str(space.dtype),
        }
    if isinstance(space, gym.spaces.MultiBinary):
        return {"type": "MultiBinary", "n": np.asarray(space.n).tolist()}
    if isinstance(space, gym.spaces.Dict):
        return {"type": "Dict", "spaces": [[key, space_to_dict(entry)] for key, entry in space.spaces.items()]}
    if isinstance(space, gym.spaces.Tuple):
        return {"type": "Tuple", "spaces": [space_to_dict(entry) for entry in space.spaces]}
    if isinstance(space, gym.spaces.Text):
        charset = "".join(sorted(space.character_set))
        return {"type": "Text", "min_length": space.min_length, "max_length": space.max_length, "charset": charset}
    if is_text_space(space):  # another kind of text (MiniGrid's mission): rebuilt as Gymnasium's Text
        return {"type": "Text", "was": type(space).__name__}
    raise DeeprlError(
        f"unsupported space {space} (deeprl handles Box, Discrete, MultiDiscrete, MultiBinary, Dict, Tuple and Text)"
    )


def space_from_dict(data: dict[str, Any]) -> gym.Space:
    """The space `space_to_dict` described (key order of a Dict kept)."""
    kind = data["type"]
    if kind == "Encoded":
        return ObservationEncoder(space_from_dict(data["source"])).space
    if kind == "Discrete":
        return gym.spaces.Discrete(data["n"], start=data["start"])
    if kind == "Box":
        dtype = np.dtype(data["dtype"])
        low = np.array(data["low"], dtype=dtype).reshape(data["shape"])
        high = np.array(data["high"], dtype=dtype).reshape(data["shape"])
        return gym.spaces.Box(low=low, high=high, dtype=dtype)
    if kind == "MultiDiscrete":
        return gym.spaces.MultiDiscrete(data["nvec"], dtype=np.dtype(data["dtype"]), start=data["start"])
    if kind == "MultiBinary":
        return gym.spaces.MultiBinary(data["n"])
    if kind == "Dict":
        return gym.spaces.Dict(OrderedDict((key, space_from_dict(entry)) for key, entry in data["spaces"]))
    if kind == "Tuple":
        return gym.spaces.Tuple([space_from_dict(entry) for entry in data["spaces"]])
    if kind == "Text":
        if "max_length" not in data:
            return gym.spaces.Text(max_length=4096)
        return gym.spaces.Text(data["max_length"], min_length=data["min_length"], charset=data["charset"])
    raise DeeprlError(f"unsupported space type {kind!r}")
