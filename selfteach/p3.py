"""The P3 puzzle data: fetched checksummed into `resources/`, and read in the form every step speaks.

Upstream names the puzzle `sat` and the solution `sol`; everything here is renamed to `f` and `g`.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import urllib.request
from pathlib import Path

from selfteach.io import atomic_path
from selfteach.terms import P3_PREFIX, P3_PUZZLES, P3_SPLIT, P3_TEST

PUZZLES_COMMIT = "017f488b8f6320b8220cda38e78f2f72a36eab20"
ICLR_COMMIT = "3ef1e1165b8bce0854c14dd2551962c4d0221199"  # pull request #81, not merged upstream
RAW_URL = "https://raw.githubusercontent.com/microsoft/PythonProgrammingPuzzles/{commit}/{path}"

# file -> (commit, upstream path, sha256)
FILES = {
    P3_PUZZLES: (
        PUZZLES_COMMIT,
        "puzzles/puzzles.json",
        "d3b61141ea0d935c389d602867ba2c154db1854df9ff4402daaa947ad880d8bb",
    ),
    P3_SPLIT: (
        PUZZLES_COMMIT,
        "puzzles/split.json",
        "1f3d55c30dcb23036a0008763a21fe3da1765879523a33585593f9daa5f2e824",
    ),
    P3_TEST: (
        ICLR_COMMIT,
        "ICLR2023/data/test_228.json",
        "038019dcbb6efb332346c20debd9707b03c048d4fec628ef8dc9056377bad320",
    ),
    P3_PREFIX: (
        ICLR_COMMIT,
        "ICLR2023/data/train_prefix.txt",
        "9c7c59555bc84173ed4a5d57f4a7dabbf08847800745118fe6d326eddbd4c1ed",
    ),
}


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def fetch(name: str, out: str | Path, mirror: str | Path | None = None, url: str = RAW_URL) -> str:
    """Copy `name` from the mirror folder when it has it, else download it; check its sha256.

    Returns where the file came from. A checksum mismatch is an error and leaves no file behind.
    `url` is the download pattern, with {commit} and {path} filled in.
    """
    commit, upstream_path, expected = FILES[name]
    source = Path(mirror) / name if mirror else None
    with atomic_path(out) as tmp:
        if source is not None and source.exists():
            shutil.copyfile(source, tmp)
            origin = str(source)
        else:
            origin = url.format(commit=commit, path=upstream_path)
            try:
                with urllib.request.urlopen(origin, timeout=60) as response, open(tmp, "wb") as dest:
                    shutil.copyfileobj(response, dest)
            except OSError as err:  # URLError and socket errors
                raise ConnectionError(
                    f"{origin}: download failed ({getattr(err, 'reason', err)}); "
                    "set p3.mirror in the config to a local folder with the P3 files"
                ) from None
        actual = sha256(tmp)
        if actual != expected:
            raise ValueError(f"{origin}: sha256 {actual} does not match the pinned {expected}")
    return origin


def sat_to_f(source: str) -> str:
    return source.replace("def sat(", "def f(", 1)


def sol_to_g(header: str, body: str) -> str:
    return header.replace("def sol(", "def g(", 1) + "\n" + body.rstrip() + "\n"


def load_instances(p3_dir: str | Path) -> list[dict]:
    return json.loads((Path(p3_dir) / P3_PUZZLES).read_text())


def load_split(p3_dir: str | Path) -> dict[str, list[str]]:
    return json.loads((Path(p3_dir) / P3_SPLIT).read_text())


def train_puzzles(p3_dir: str | Path) -> list[dict]:
    """The 155 generation-prompt puzzles: instance `:0` of each train problem, as `{"id", "f"}`."""
    by_name = {instance["name"]: instance for instance in load_instances(p3_dir)}
    return [
        {"id": f"{problem}:0", "f": sat_to_f(by_name[f"{problem}:0"]["sat"])}
        for problem in load_split(p3_dir)["train"]
    ]


def test_puzzles(p3_dir: str | Path) -> list[dict]:
    """The 228 evaluation puzzles of the paper, as `{"id", "f"}`, in split.json's order."""
    sats = json.loads((Path(p3_dir) / P3_TEST).read_text())
    names = load_split(p3_dir)["test"]
    if len(sats) != len(names):
        raise ValueError(f"{p3_dir}: test_228.json has {len(sats)} puzzles, split.json {len(names)}")
    return [{"id": f"{name}:0", "f": sat_to_f(sat)} for name, sat in zip(names, sats)]


def validation_puzzles(p3_dir: str | Path) -> list[dict]:
    """Instance `:1` of each train problem that has one, no longer than the longest test puzzle (109),
    as `{"id", "f"}`: for choosing settings.

    They are train problems, never test ones, and not the `:0` instances that the generation prompts
    show, so a study can be tuned on them and evaluated once on the test puzzles. The length bound
    keeps them like the test puzzles (at most 740 characters); the 12 longer ones (up to 3,339
    characters, one with an 8,844-digit integer literal Python cannot even compile) would also make
    every sampling batch they join several times slower.
    """
    by_name = {instance["name"]: instance for instance in load_instances(p3_dir)}
    longest_test = max(len(puzzle["f"]) for puzzle in test_puzzles(p3_dir))
    puzzles = (
        {"id": f"{problem}:1", "f": sat_to_f(by_name[f"{problem}:1"]["sat"])}
        for problem in load_split(p3_dir)["train"]
        if f"{problem}:1" in by_name
    )
    return [puzzle for puzzle in puzzles if len(puzzle["f"]) <= longest_test]



EVAL_SPLITS = {"test": test_puzzles, "validation": validation_puzzles}


def reference_pairs(p3_dir: str | Path) -> list[dict]:
    """Every instance that has a reference solution, as `{"id", "f", "g"}` (its first solution body)."""
    return [
        {
            "id": instance["name"],
            "f": sat_to_f(instance["sat"]),
            "g": sol_to_g(instance["sol_header"], instance["sol_bodies"][0]),
        }
        for instance in load_instances(p3_dir)
        if instance["sol_bodies"]
    ]


def train_prefix(p3_dir: str | Path) -> str:
    return (Path(p3_dir) / P3_PREFIX).read_text()
