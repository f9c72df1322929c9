"""Configs: presets, overrides, type coercion from strings, validation errors, YAML round trips."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

import pytest
import yaml

from deeprl import config as config_module
from deeprl.algos import ALGORITHMS, dqn, get_algorithm
from deeprl.config import (
    apply_settings,
    build_config,
    coerce,
    config_to_yaml,
    describe_fields,
    load_presets,
    parse_set_args,
    read_config_file,
)
from deeprl.errors import DeeprlError

Config = dqn.Config
HINTS = typing.get_type_hints(Config)


def test_defaults_for_an_env_without_presets():
    config = build_config(Config, "tests.custom_envs:Corridor")
    assert config == Config(env="tests.custom_envs:Corridor")
    assert config.hidden_sizes == (256, 256)
    assert config.total_steps == 100_000
    with pytest.raises(
        DeeprlError,
        match=r"unknown preset 'turbo' for dqn on tests.custom_envs:Corridor "
        r"\(available: default\)",
    ):
        build_config(Config, "tests.custom_envs:Corridor", preset="turbo")


HAND_PRESETS = {
    "CartPole-v1": {
        "default": {"total_steps": 5000, "hidden_sizes": [32, 16], "tau": 0.25, "max_grad_norm": None},
        "fast": {"lr": 0.01, "gamma": 0.9},
    },
}


def test_preset_applied_then_overrides(monkeypatch):
    monkeypatch.setattr(config_module, "load_presets", lambda algo: HAND_PRESETS if algo == "dqn" else {})
    config = build_config(Config, "CartPole-v1")
    assert (config.total_steps, config.hidden_sizes, config.tau, config.max_grad_norm) == (5000, (32, 16), 0.25, None)
    assert config.lr == 1e-3  # not in the preset: the dataclass default

    config = build_config(Config, "CartPole-v1", settings={"tau": "0.5", "hidden_sizes": "8", "seed": 7})
    assert (config.total_steps, config.hidden_sizes, config.tau, config.seed) == (5000, (8,), 0.5, 7)

    config = build_config(Config, "CartPole-v1", preset="fast", settings={"gamma": 0.5})
    assert (config.lr, config.gamma, config.total_steps, config.tau) == (0.01, 0.5, 100_000, 1.0)

    with pytest.raises(DeeprlError, match=r"unknown preset 'turbo' for dqn on CartPole-v1 \(available: default, fast"):
        build_config(Config, "CartPole-v1", preset="turbo")


def test_bad_preset_value_names_the_preset(monkeypatch):
    presets = {"CartPole-v1": {"default": {"lrr": 0.1}}}
    monkeypatch.setattr(config_module, "load_presets", lambda algo: presets)
    with pytest.raises(DeeprlError, match="unknown setting 'lrr' for dqn in preset 'default'; did you mean 'lr'"):
        build_config(Config, "CartPole-v1")


def test_every_shipped_preset_builds_a_valid_config():
    presets = load_presets("dqn")
    assert "CartPole-v1" in presets
    assert "default" in presets["CartPole-v1"]
    for env_id, by_name in presets.items():
        for name, settings in by_name.items():
            config = build_config(Config, env_id, preset=name)
            for key, value in (settings or {}).items():
                assert getattr(config, key) == (tuple(value) if isinstance(value, list) else value), (env_id, name)


@pytest.mark.parametrize("algo", ALGORITHMS)
def test_every_algorithms_shipped_presets_build_valid_configs(algo):
    config_class = get_algorithm(algo).Config
    for env_id, by_name in load_presets(algo).items():
        for name, settings in by_name.items():
            config = build_config(config_class, env_id, preset=name)
            for key, value in (settings or {}).items():
                assert getattr(config, key) == (tuple(value) if isinstance(value, list) else value), (env_id, name)


@pytest.mark.parametrize("algo", ALGORITHMS)
def test_presets_are_read_once_but_every_caller_gets_its_own_copy(algo):
    """The preset files are parsed once per process (with LibYAML where PyYAML has it): the same data as the
    pure-Python parser gives, and a caller changing its copy changes nobody else's."""
    text = (Path(config_module.__file__).parent / "presets" / f"{algo}.yaml").read_text()
    assert load_presets(algo) == (yaml.safe_load(text) or {})
    mine = load_presets(algo)
    for by_name in mine.values():
        for settings in by_name.values():
            (settings if settings is not None else {}).clear()
        by_name["changed"] = {}
    assert load_presets(algo) == (yaml.safe_load(text) or {})


@pytest.mark.parametrize("algo", ["dqn", "ppo", "a2c"])
@pytest.mark.parametrize("env_id", ["PongNoFrameskip-v4", "ALE/Breakout-v5"])
def test_an_atari_game_without_presets_of_its_own_takes_the_atari_ones(algo, env_id):
    atari = load_presets(algo)["atari"]["default"]
    assert env_id not in load_presets(algo)
    config = build_config(get_algorithm(algo).Config, env_id)
    assert (config.total_steps, config.hidden_sizes) == (10_000_000, ())
    for key, value in atari.items():
        assert getattr(config, key) == (tuple(value) if isinstance(value, list) else value), key
    assert build_config(get_algorithm(algo).Config, "Acrobot-v1").total_steps != 10_000_000  # not other envs


def test_shipped_preset_then_overrides():
    preset = load_presets("dqn")["CartPole-v1"]["default"]
    config = build_config(Config, "CartPole-v1", settings={"seed": 3, "lr": "5e-4"})
    assert config.seed == 3
    assert config.lr == 5e-4
    for key, value in preset.items():
        if key != "lr":
            assert getattr(config, key) == (tuple(value) if isinstance(value, list) else value)
    with pytest.raises(DeeprlError) as caught:
        build_config(Config, "CartPole-v1", preset="turbo")
    assert f"(available: {', '.join(sorted(load_presets('dqn')['CartPole-v1']))})" in str(caught.value)


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("lr", "1e-3", 0.001),
        ("lr", "0.0005", 0.0005),
        ("lr", "2", 2.0),
        ("buffer_size", "1e5", 100_000),
        ("buffer_size", "2.5e3", 2500),
        ("buffer_size", "50000", 50_000),
        ("hidden_sizes", "64,64", (64, 64)),
        ("hidden_sizes", "[64, 64]", (64, 64)),
        ("hidden_sizes", "128", (128,)),
        ("hidden_sizes", " 32 , 16 ", (32, 16)),
        ("hidden_sizes", "(64,64)", (64, 64)),  # Python's way of writing it
        ("hidden_sizes", "(64, 32)", (64, 32)),
        ("conv_channels", "()", ()),
        ("conv_channels", "[]", ()),
        ("max_episode_steps", "none", None),
        ("max_episode_steps", "None", None),
        ("max_episode_steps", "1000", 1000),
        ("max_grad_norm", "null", None),
        ("max_grad_norm", "5", 5.0),
        ("lr_end", "none", None),
        ("lr_end", "1e-5", 1e-5),
        ("train_freq_unit", "episodes", "episodes"),
        ("tensorboard", "true", True),
        ("tensorboard", "false", False),
        ("dueling", "True", True),
        ("activation", "tanh", "tanh"),
        ("env", "tests.custom_envs:Corridor", "tests.custom_envs:Corridor"),
    ],
)
def test_coerce_from_strings(name, text, expected):
    value = coerce(name, text, HINTS[name])
    assert value == expected
    assert type(value) is type(expected)


def test_coerce_keeps_python_values():
    assert coerce("hidden_sizes", (64, 32), HINTS["hidden_sizes"]) == (64, 32)
    assert coerce("hidden_sizes", [8], HINTS["hidden_sizes"]) == (8,)
    assert coerce("total_steps", 1000.0, HINTS["total_steps"]) == 1000
    assert coerce("max_episode_steps", None, HINTS["max_episode_steps"]) is None
    assert coerce("lr", 3, HINTS["lr"]) == 3.0


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("batch_size", "abc", "invalid value for batch_size: 'abc' (expected an integer)"),
        ("batch_size", "1.5", "invalid value for batch_size: 1.5 (expected an integer)"),
        ("batch_size", "true", "expected an integer"),
        ("lr", "abc", "invalid value for lr: 'abc' (expected a number)"),
        ("lr", "nan", "expected a finite number"),
        ("lr", "inf", "expected a finite number"),
        ("tensorboard", "maybe", "expected true or false"),
        ("hidden_sizes", "64,x", "invalid value for hidden_sizes: 'x' (expected an integer)"),
        ("max_episode_steps", "lots", "expected an integer"),
    ],
)
def test_coerce_rejects_bad_values(name, text, message):
    with pytest.raises(DeeprlError) as caught:
        coerce(name, text, HINTS[name])
    assert message in str(caught.value)


def test_unknown_key_suggests_closest():
    with pytest.raises(DeeprlError) as caught:
        apply_settings(Config(), {"lrr": "0.1"})
    message = str(caught.value)
    assert "unknown setting 'lrr' for dqn; did you mean 'lr'?" in message
    assert "did you mean 'lr'" in message
    assert "deeprl list --settings dqn" in message
    with pytest.raises(DeeprlError, match="did you mean 'batch_size'"):
        build_config(Config, "CartPole-v1", settings={"batchsize": 32})


def test_unknown_key_without_close_match_has_no_suggestion():
    with pytest.raises(DeeprlError) as caught:
        apply_settings(Config(), {"zzzzzz": 1})
    assert "did you mean" not in str(caught.value)


@pytest.mark.parametrize(
    ("algo", "name", "message"),
    [
        # Stable-Baselines3's and the RL Zoo's names: deeprl's name for each in this algorithm
        ("dqn", "learning_rate", "unknown setting 'learning_rate' for dqn: deeprl calls it 'lr' ("),
        ("ppo", "n_timesteps", "for ppo: deeprl calls it 'total_steps' (the --steps flag)"),
        ("sac", "net_arch", "for sac: deeprl calls it 'hidden_sizes' (layer widths such as 64,64)"),
        (
            "ppo",
            "policy_kwargs",
            "for ppo: deeprl's settings for it are 'hidden_sizes', 'activation', 'orthogonal_init', 'log_std_init'",
        ),
        ("a2c", "normalize", "for a2c: deeprl's settings for it are 'normalize_observations', 'normalize_rewards'"),
        (
            "dqn",
            "exploration_fraction",
            "for dqn: deeprl calls it 'epsilon_decay_steps' (a number of steps, not a fraction of the run)",
        ),
        ("dqn", "exploration_final_eps", "for dqn: deeprl calls it 'epsilon_end'"),
        ("ppo", "ent_coef", "for ppo: deeprl calls it 'entropy_coef'"),
        ("sac", "ent_coef", "for sac: deeprl calls it 'alpha' (a fixed value, or none to tune it as 'auto' does)"),
        ("a2c", "vf_coef", "for a2c: deeprl calls it 'value_coef'"),
        ("dqn", "n_steps", "for dqn: deeprl calls it 'n_step' (n-step returns)"),
        ("ppo", "use_sde", "for ppo: deeprl has no state-dependent exploration (gSDE)"),
        # names deeprl uses in other algorithms only: which ones, rather than a look-alike
        (
            "dqn",
            "normalize",
            "for dqn: dqn has no equivalent (deeprl has 'normalize_observations' of a2c, ppo; "
            "'normalize_rewards' of a2c, ppo)",
        ),
        ("reinforce", "n_steps", "for reinforce: 'n_steps' is a setting of a2c, ppo, actor-critic, not reinforce"),
        ("a2c", "n_epochs", "for a2c: 'n_epochs' is a setting of ppo, not a2c"),
        ("ppo", "buffer_size", "for ppo: 'buffer_size' is a setting of dqn, ddpg, td3, sac, not ppo"),
        ("td3", "target_update_interval", "for td3: 'target_update_interval' is a setting of dqn, sac, not td3"),
    ],
)
def test_stable_baselines_names_are_translated(algo, name, message):
    from deeprl.algos import get_algorithm

    with pytest.raises(DeeprlError) as caught:
        build_config(get_algorithm(algo).Config, "CartPole-v1", settings={name: "1"})
    assert message in str(caught.value)
    assert "did you mean" not in str(caught.value)


def test_the_python_api_names_no_command_line_flag_for_its_keywords(tmp_path):
    import deeprl

    with pytest.raises(DeeprlError) as caught:
        deeprl.train("ppo", "CartPole-v1", run_dir=tmp_path / "run", learning_rate=1e-3)
    assert str(caught.value) == (
        "unknown setting 'learning_rate' for ppo: deeprl calls it 'lr' (`deeprl list --settings ppo` shows them all)"
    )
    assert not (tmp_path / "run").exists()


def test_choices_take_any_case():
    config = build_config(
        Config, "CartPole-v1", settings={"activation": "ReLU", "optimizer": "RMSprop", "train_freq_unit": "Episodes"}
    )
    assert (config.activation, config.optimizer, config.train_freq_unit) == ("relu", "rmsprop", "episodes")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"lr": "-1"}, "lr must be > 0.0 (got -1.0)"),
        ({"lr": "0"}, "lr must be > 0.0 (got 0.0)"),
        ({"gamma": "1.5"}, "gamma must be <= 1.0 (got 1.5)"),
        ({"gamma": "-0.1"}, "gamma must be >= 0.0 (got -0.1)"),
        ({"batch_size": "1000", "buffer_size": "10"}, "batch_size (1000) must not exceed buffer_size (10)"),
        ({"lr": "abc"}, "invalid value for lr: 'abc'"),
        ({"batch_size": "abc"}, "invalid value for batch_size: 'abc'"),
        ({"total_steps": "0"}, "total_steps must be >= 1 (got 0)"),
        ({"seed": "-1"}, "seed must be >= 0 (got -1)"),
        ({"hidden_sizes": "64,0"}, "hidden_sizes must be >= 1 (got 0)"),
        ({"activation": "sigmoid"}, "activation must be one of relu, tanh, elu (got 'sigmoid')"),
        ({"optimizer": "sgd"}, "optimizer must be one of adam, rmsprop (got 'sgd')"),
        ({"train_freq_unit": "hours"}, "train_freq_unit must be one of steps, episodes (got 'hours')"),
        ({"target_update_unit": "hours"}, "target_update_unit must be one of steps, episodes (got 'hours')"),
        ({"epsilon_schedule": "cosine"}, "epsilon_schedule must be one of linear, exponential, episodic, constant"),
        ({"lr_end": "-1e-4"}, "lr_end must be >= 0.0"),
        ({"tau": "0"}, "tau must be > 0.0"),
        ({"tau": "1.5"}, "tau must be <= 1.0"),
        ({"epsilon_end": "2"}, "epsilon_end must be <= 1.0"),
        ({"device": "tpu"}, "device must be one of auto, cpu, cuda or cuda:N (got 'tpu')"),
        ({"max_episode_steps": "0"}, "max_episode_steps must be >= 1 (got 0)"),
    ],
)
def test_validation_errors(settings, message):
    with pytest.raises(DeeprlError) as caught:
        build_config(Config, "CartPole-v1", settings=settings)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_valid_edge_values_pass():
    config = build_config(
        Config,
        "CartPole-v1",
        settings={"gamma": "1", "batch_size": "10", "buffer_size": "10", "device": "cuda:1", "learning_starts": 0},
    )
    assert (config.gamma, config.batch_size, config.buffer_size, config.device) == (1.0, 10, 10, "cuda:1")


def test_parse_set_args():
    assert parse_set_args(["lr=1e-3", " hidden_sizes = 64,64 ", "env=pkg.mod:Env"]) == {
        "lr": "1e-3",
        "hidden_sizes": "64,64",
        "env": "pkg.mod:Env",
    }
    assert parse_set_args(["activation=a=b"]) == {"activation": "a=b"}  # only the first '=' splits
    for bad in ["lr", "=3", " =3"]:
        with pytest.raises(DeeprlError, match="--set expects key=value"):
            parse_set_args([bad])
    # the same key twice is a clash, as --seed against --set seed is: which one was meant?
    with pytest.raises(DeeprlError) as caught:
        parse_set_args(["gamma=0.9", "lr=1e-3", " gamma = 0.99"])
    assert str(caught.value) == "--set gamma is given twice (gamma=0.9 and gamma=0.99); give it once"


def test_yaml_round_trip(tmp_path):
    config = build_config(
        Config,
        "CartPole-v1",
        settings={
            "seed": 4,
            "hidden_sizes": "32,16",
            "max_episode_steps": "300",
            "max_grad_norm": "none",
            "lr": "3e-4",
            "dueling": "true",
            "solve_threshold": "195.5",
            "device": "cpu",
        },
    )
    path = tmp_path / "config.yaml"
    path.write_text(config_to_yaml(config))
    algo, settings = read_config_file(path)
    assert algo == "dqn"
    assert set(settings) == {field.name for field in dataclasses.fields(Config)}
    restored = apply_settings(Config(), settings, str(path))
    assert restored == config
    assert restored.hidden_sizes == (32, 16)
    assert restored.max_grad_norm is None


def test_read_config_file_errors(tmp_path):
    with pytest.raises(DeeprlError, match="config file not found"):
        read_config_file(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("algo: dqn\nlr: [1, 2\n")
    with pytest.raises(DeeprlError, match="is not valid YAML"):
        read_config_file(broken)
    listing = tmp_path / "list.yaml"
    listing.write_text("- 1\n- 2\n")
    with pytest.raises(DeeprlError, match="must be a mapping with an 'algo' key"):
        read_config_file(listing)
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(bytes(range(128, 256)))
    with pytest.raises(DeeprlError, match="cannot read config file"):
        read_config_file(binary)
    with pytest.raises(DeeprlError, match="cannot read config file"):
        read_config_file(tmp_path)  # a directory


def test_describe_fields_covers_every_setting():
    rows = {name: (type_name, default, doc) for name, type_name, default, doc in describe_fields(Config())}
    assert set(rows) == {field.name for field in dataclasses.fields(Config)}
    assert rows["lr"] == ("float", 1e-3, "learning rate")
    assert rows["max_episode_steps"][0] == "int | None"
    assert all(doc for _, _, doc in rows.values())
