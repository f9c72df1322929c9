"""Reading a run's `config.yaml` (or a hand-written one): a leaf module, so that making envs from a run directory
(deeprl.envs) and building typed configs (deeprl.config, which imports deeprl.envs) both read it without a cycle."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import yaml

from deeprl.errors import DeeprlError


class ConfigFile(NamedTuple):
    algo: str
    preset: str | None  # None in a hand-written file that does not say
    settings: dict[str, Any]


def read_config_file(path: str | Path) -> tuple[str, dict[str, Any]]:
    """(algo, settings) of a `config.yaml` written by a run (or by hand)."""
    record = read_config_record(path)
    return record.algo, record.settings


def read_config_record(path: str | Path) -> ConfigFile:
    """The algorithm, preset and settings of a `config.yaml` written by a run (or by hand)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise DeeprlError(f"config file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise DeeprlError(f"cannot read config file {path}: {error}") from None
    except yaml.YAMLError as error:
        raise DeeprlError(f"config file {path} is not valid YAML: {str(error).splitlines()[0]}") from None
    if not isinstance(data, dict) or not isinstance(data.get("algo"), str):
        raise DeeprlError(f"config file {path} must be a mapping with an 'algo' key (a run's config.yaml)")
    settings = dict(data)
    algo, preset = settings.pop("algo"), settings.pop("preset", None)
    return ConfigFile(algo, None if preset is None else str(preset), settings)
