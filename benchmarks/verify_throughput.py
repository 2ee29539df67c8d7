"""Verifier throughput: one fresh python per candidate (no sandbox) vs our sandboxed worker pool.

Both sides get the same candidates, timeout and parallelism. Prints candidates/s and the ratio
ours/baseline per corpus (the model-like corpus last), and how long a looping candidate takes to get
its timeout verdict. Run from the repository root: `python benchmarks/verify_throughput.py`.
"""

from __future__ import annotations

import argparse
import ast
import random
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from selfteach.p3 import reference_pairs
from selfteach.sandbox import auto_python
from selfteach.sandbox_screen import shareable
from selfteach.verify import Verifier

P3_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "p3"
SEED = 0
SHORT_SOLUTION_CHARS = 300  # a model's solution is at most 150 tokens
# Wrong answers a model might give, per annotated type: (source of the value, what it exercises)
WRONG = {
    "int": ["0", "-1", "'3'", "None", "1 / 0"],
    "str": ["''", "'abc'", "0", "None", "[][1]"],
    "float": ["0.0", "1.5", "1", "None", "int('x')"],
    "bool": ["False", "True", "0", "None", "1 / 0"],
    "list": ["[]", "[0, 1]", "(0,)", "None", "{}['k']"],
}

# The baseline's whole program: P3's type check, then f(g()) must be True.
BASELINE_PROGRAM = """import sys
from typing import List
sys.set_int_max_str_digits(0)
{f}
{g}
def _matches(value, depth, base):
    if depth == 0:
        return type(value) is base
    return type(value) is list and all(_matches(item, depth - 1, base) for item in value)
_answer = g()
_annotation = f.__annotations__[f.__code__.co_varnames[0]]
_depth = str(_annotation).count("List")
_name = _annotation.__name__ if isinstance(_annotation, type) else (
    str(_annotation).replace("typing.", "").replace("List[", "").rstrip("]"))
_base = {{"int": int, "str": str, "float": float, "bool": bool}}[_name]
sys.exit(0 if _matches(_answer, _depth, _base) and f(_answer) is True else 1)
"""


def model_like(pairs: list[dict], count: int, seed: int) -> list[dict]:
    """Small candidates: short correct solutions, wrong answers, wrong types, exceptions."""
    rng = random.Random(seed)
    short = [pair for pair in pairs if len(pair["g"]) < SHORT_SOLUTION_CHARS]
    records = []
    for number in range(count):
        pair = rng.choice(short)
        header = pair["g"].split("\n", 1)[0]
        kind = "list" if "List[" in pair["f"].split(")", 1)[0] else next(
            (name for name in ("int", "str", "float", "bool") if f": {name}" in pair["f"].split("\n", 1)[0]), "int"
        )
        g = pair["g"] if rng.random() < 0.3 else f"{header}\n    return {rng.choice(WRONG[kind])}\n"
        records.append({"id": f"m{number}", "f": pair["f"], "g": g})
    return records


def screened(records: list[dict]) -> int:
    """How many candidates pass the screen, so that their steps run in lanes rather than fresh children."""
    def passes(source: str) -> bool:
        try:
            return shareable(ast.parse(source))
        except SyntaxError:
            return False
    return sum(passes(record["f"]) and passes(record["g"]) for record in records)


def baseline_one(record: dict, python: str, timeout: float) -> bool:
    program = BASELINE_PROGRAM.format(f=record["f"], g=record["g"])
    try:
        done = subprocess.run([python, "-c", program], capture_output=True, timeout=timeout,
                              env={"PYTHONHASHSEED": "0"})
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0


def baseline(records: list[dict], python: str, timeout: float, workers: int) -> tuple[float, int]:
    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        passed = sum(pool.map(lambda record: baseline_one(record, python, timeout), records))
    return time.perf_counter() - start, passed


def ours(verifier: Verifier, records: list[dict]) -> tuple[float, int]:
    start = time.perf_counter()
    passed = sum(verdict["ok"] for verdict in verifier.run(records))
    return time.perf_counter() - start, passed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--p3-dir", default=str(P3_DIR))
    parser.add_argument("--timeout", type=float, default=1.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--model-like", type=int, default=2000, help="size of the model-like corpus")
    parser.add_argument("--references", type=int, default=None, help="use only the first N references")
    args = parser.parse_args()

    pairs = reference_pairs(args.p3_dir)
    corpora = {
        "reference solutions": pairs[: args.references],
        "model-like": model_like(pairs, args.model_like, SEED),
    }
    python = auto_python(sandboxed=True)
    print(f"baseline: one `{python} -c` per candidate, no sandbox; ours: bwrap workers; "
          f"timeout {args.timeout} s, {args.workers} workers each", flush=True)
    with Verifier(timeout=args.timeout, workers=args.workers, imports="any") as verifier:
        loop = {"id": "loop", "f": "def f(x: int):\n    return True\n", "g": "def g():\n    while True:\n        pass\n"}
        start = time.perf_counter()
        [verdict] = verifier.run([loop])
        print(f"a looping candidate: status {verdict['status']} after {verdict['seconds']:.3f} s "
              f"(limit {args.timeout} s; {time.perf_counter() - start:.3f} s wall in the parent)", flush=True)
        lines = []
        for name, records in corpora.items():
            base_s, base_ok = baseline(records, python, args.timeout, args.workers)
            our_s, our_ok = ours(verifier, records)
            base_rate, our_rate = len(records) / base_s, len(records) / our_s
            lines.append(
                f"{name}: {len(records)} candidates ({screened(records)} screened); "
                f"baseline {base_rate:.1f}/s ({base_ok} ok), ours {our_rate:.1f}/s ({our_ok} ok); "
                f"ratio {our_rate / base_rate:.2f}"
            )
            print(lines[-1], file=sys.stderr, flush=True)  # progress; the summary follows on stdout
    print("\n".join(lines))


if __name__ == "__main__":
    main()
