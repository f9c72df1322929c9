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


def test_torch_save_round_trip(tmp_path):
    path = tmp_path / "blob.pt"
    atomic_torch_save({"w": torch.arange(3.0), "meta": "{}"}, path)
    loaded = torch.load(path, weights_only=True)
    assert torch.equal(loaded["w"], torch.tensor([0.0, 1.0, 2.0]))
    assert loaded["meta"] == "{}"
