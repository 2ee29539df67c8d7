"""P3 data: fetched from a mirror or over HTTP with its checksum checked, read as f/g puzzles."""

import functools
import http.server
import shutil
import threading

import pytest

from selfteach import p3


def test_fetch_from_mirror_checks_sha256(p3_dir, tmp_path):
    out = tmp_path / "split.json"
    assert p3.fetch("split.json", out, mirror=p3_dir) == str(p3_dir / "split.json")
    assert p3.sha256(out) == p3.FILES["split.json"][2]


def test_checksum_mismatch_is_an_error_and_leaves_nothing(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "split.json").write_text('{"train": [], "test": []}')
    out = tmp_path / "out" / "split.json"
    with pytest.raises(ValueError, match="does not match the pinned"):
        p3.fetch("split.json", out, mirror=mirror)
    assert not out.exists()
    assert list(out.parent.iterdir()) == []


@pytest.fixture
def upstream(p3_dir, tmp_path):
    """A loopback HTTP server laid out like the upstream repository at the pinned commits."""
    root = tmp_path / "upstream"
    for name, (commit, path, _) in p3.FILES.items():
        target = root / commit / path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(p3_dir / name, target)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=root)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/{{commit}}/{{path}}"
    server.shutdown()


def test_download_when_no_mirror(upstream, tmp_path):
    for name in p3.FILES:
        origin = p3.fetch(name, tmp_path / name, mirror=tmp_path / "absent", url=upstream)
        assert origin.startswith("http://127.0.0.1:")
    assert len(p3.test_puzzles(tmp_path)) == 228


def test_failed_download_says_what_to_do(tmp_path):
    with pytest.raises(ConnectionError, match="set p3.mirror"):
        p3.fetch("split.json", tmp_path / "split.json", url="http://127.0.0.1:9/{commit}/{path}")


def test_puzzles_speak_f_and_g(p3_dir):
    train = p3.train_puzzles(p3_dir)
    test = p3.test_puzzles(p3_dir)
    assert len(train) == 155 and len(test) == 228
    assert not {t["id"] for t in train} & {t["id"] for t in test}
    assert all(puzzle["f"].startswith("def f(") for puzzle in train + test)
    pairs = p3.reference_pairs(p3_dir)
    assert len(pairs) == 1661
    assert all(pair["g"].startswith("def g(") for pair in pairs)


def test_validation_puzzles_are_train_problems_other_instances(p3_dir):
    """Settings are chosen on these: never a test problem, never a generation-prompt puzzle."""
    validation = p3.validation_puzzles(p3_dir)
    assert len(validation) == 109 and all(v["id"].endswith(":1") for v in validation)
    longest_test = max(len(t["f"]) for t in p3.test_puzzles(p3_dir))
    assert longest_test == 740 and max(len(v["f"]) for v in validation) <= longest_test
    assert "BoxVolume:1" not in {v["id"] for v in validation}  # its 8,844-digit literal does not compile
    problems = {v["id"].rsplit(":", 1)[0] for v in validation}
    split = p3.load_split(p3_dir)
    assert problems <= set(split["train"]) and not problems & set(split["test"])
    prompts = {t["f"] for t in p3.train_puzzles(p3_dir)}
    assert not prompts & {v["f"] for v in validation}
    assert p3.EVAL_SPLITS["test"] is p3.test_puzzles
