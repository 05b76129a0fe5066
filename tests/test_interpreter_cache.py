"""The stages' interpreter is probed once, then again only when its packages change."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from dvflow.core._environment import StageInterpreter


def _counting_python(folder: Path) -> Path:
    """A ``python`` on PATH that notes each start in ``starts.txt``, then is the real one."""
    folder.mkdir()
    script = folder / "python"
    script.write_text(f'#!/bin/sh\necho x >> "{folder}/starts.txt"\nexec "{sys.executable}" "$@"\n')
    script.chmod(0o755)
    return folder


def _starts(folder: Path) -> int:
    notes = folder / "starts.txt"
    return len(notes.read_text().splitlines()) if notes.exists() else 0


def test_probe_answer_is_reused_until_a_package_folder_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = _counting_python(tmp_path / "bin")
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.setenv("PYTHONPATH", str(site))
    cache = tmp_path / "state" / "interpreters.json"

    first = StageInterpreter(str(bin_dir), cache=cache).environment()
    again = StageInterpreter(str(bin_dir), cache=cache).environment()

    assert _starts(bin_dir) == 1
    assert again == first and "demo-pkg==1.0" not in first.packages
    (site / "demo_pkg-1.0.dist-info").mkdir()  # a package installed: its folder's time moves
    stamp = site.stat().st_mtime
    os.utime(site, (stamp + 1, stamp + 1))  # past the clock's tick, however coarse

    changed = StageInterpreter(str(bin_dir), cache=cache).environment()

    assert _starts(bin_dir) == 2
    assert "demo-pkg==1.0" in changed.packages
    assert changed.info["packages_sha256"] != first.info["packages_sha256"]


def test_without_a_cache_every_run_probes(tmp_path: Path) -> None:
    bin_dir = _counting_python(tmp_path / "bin")

    StageInterpreter(str(bin_dir)).environment()
    StageInterpreter(str(bin_dir)).environment()

    assert _starts(bin_dir) == 2


def test_an_unreadable_cache_is_probed_and_rewritten(tmp_path: Path) -> None:
    bin_dir = _counting_python(tmp_path / "bin")
    cache = tmp_path / "interpreters.json"
    cache.write_text("not json")

    described = StageInterpreter(str(bin_dir), cache=cache).environment()
    StageInterpreter(str(bin_dir), cache=cache).environment()

    assert described.found and _starts(bin_dir) == 1
