"""Atomic writes: a file or folder appears complete or not at all, and a failure leaves the old one."""

from __future__ import annotations

import os

import pytest

from selfteach.io import atomic_path


@pytest.mark.parametrize("folder", [False, True])
def test_a_failed_write_leaves_the_old_output_and_no_temporary(tmp_path, folder):
    out = tmp_path / "sub" / "out"
    with atomic_path(out, folder=folder) as tmp:
        (tmp / "weights").write_text("old") if folder else tmp.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(out, folder=folder) as tmp:
        (tmp / "weights").write_text("half") if folder else tmp.write_text("half")
        raise RuntimeError("killed")
    assert ((out / "weights") if folder else out).read_text() == "old"
    assert [p.name for p in out.parent.iterdir()] == ["out"]


def test_a_folder_replaces_the_old_one_whole(tmp_path):
    out = tmp_path / "epoch1"
    out.mkdir()
    (out / "stale.bin").write_text("from an older run")
    with atomic_path(out, folder=True) as tmp:
        assert tmp.is_dir() and not list(tmp.iterdir())
        (tmp / "model.safetensors").write_text("new")
    assert sorted(p.name for p in out.iterdir()) == ["model.safetensors"]
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o777 & ~umask  # as a folder made by mkdir, not mkdtemp's 0700
