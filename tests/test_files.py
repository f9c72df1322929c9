"""Atomic file writing: a finished file appears whole with the usual mode; a failed write leaves no trace."""

from __future__ import annotations

import json
import os
import stat

import pytest
import torch

from deeprl.files import atomic_torch_save, atomic_write, atomic_write_json, atomic_write_text


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_write_text_creates_parents_and_uses_the_usual_mode(tmp_path):
    path = tmp_path / "a" / "b" / "config.yaml"
    atomic_write_text(path, "lr: 0.001\n")
    assert path.read_text() == "lr: 0.001\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~current_umask()
    assert sorted(os.listdir(path.parent)) == ["config.yaml"]


def test_write_replaces_existing_file(tmp_path):
    path = tmp_path / "eval.json"
    atomic_write_json(path, {"mean": 1.5})
    atomic_write_json(path, {"mean": 2.5, "returns": [1, 2]})
    assert json.loads(path.read_text()) == {"mean": 2.5, "returns": [1, 2]}
    assert path.read_text().endswith("\n")


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "policy.pt"
    path.write_bytes(b"old")

    def fail_halfway(stream):
        stream.write(b"half")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        atomic_write(path, fail_halfway)
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["policy.pt"]


def test_interrupted_write_leaves_no_temporary(tmp_path):
    def interrupt(stream):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(tmp_path / "x.bin", interrupt)
    assert os.listdir(tmp_path) == []


def test_torch_save_that_fails_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    """torch.save raises halfway through an object it cannot pickle (a lambda): what was saved before stays, whole
    and loadable, and nothing else is left in the folder; a save that works then replaces it."""
    path = tmp_path / "checkpoint.pt"
    atomic_torch_save({"w": torch.arange(3.0)}, path)
    saved = path.read_bytes()
    with pytest.raises(Exception, match="pickle"):
        atomic_torch_save({"w": torch.ones(1000), "callback": lambda: None}, path)
    assert path.read_bytes() == saved and os.listdir(tmp_path) == ["checkpoint.pt"]
    atomic_torch_save({"w": torch.ones(2)}, path)
    assert torch.equal(torch.load(path, weights_only=True)["w"], torch.ones(2))
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~current_umask()
    assert os.listdir(tmp_path) == ["checkpoint.pt"]
