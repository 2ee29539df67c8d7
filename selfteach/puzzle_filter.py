"""Step 2: which generated puzzles are worth solving, rule by rule as in the paper.

The paper's filter (ICLR2023/src/gen.py, `good_puzzles`) keeps a puzzle when:
  - it is one `def f(...)` with a `return`, and it compiles;
  - it has exactly one required argument (the answer), annotated, and no `*args`, `**kwargs` or
    keyword-only arguments;
  - its definition runs: defaults and annotations evaluate (the paper ran f with `return True`
    inserted first);
  - unless the puzzle is in the seeded 5% that skip this part: the answer is mentioned in the body,
    is not a `bool`, is an `int`, `str`, `float` or a nested `List` of those, and no trivial answer
    satisfies the puzzle.
Each rule is a function `rejects_<what>`; a rejected record's "reason" is the first rule that
rejected it, without the prefix, checking the cheap syntax rules before the sandboxed runs. Kept
puzzles that repeat an earlier kept one (normalised syntax tree, see `dedup`) get the reason
"duplicate", and those that repeat a held-out test puzzle get "test_puzzle": a model may have seen P3's
test puzzles in pre-training and write one back, and training on it would leak the test into the study.

Everything that runs the model's code (the signature check and the trivial answers) runs in the
verifier's sandbox; the rest reads the syntax tree only.
"""

from __future__ import annotations

import ast
import itertools
import random
import re
from collections import Counter
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from selfteach import config, dedup
from selfteach.io import read_jsonl, write_json, write_jsonl

PROBE_TIMEOUT = 1.0  # seconds per sandboxed probe, the paper's judge limit
PROBE_IMPORTS = "paper"  # the paper's judge refused imports outside its allowlist here too

# Trivial answers, exactly the paper's (get_trivial_tests).
TRIVIAL_SCALARS = {
    "int": list(range(-10, 101)),
    "str": ["cat", "dog", "aa", "ab", "foo", "bar", "baz", ""],
    "float": [-100.0, -10.0, -2.0, -1.0, -0.5, -0.1, 0.0, 0.1, 0.5, 1.0, 2.0, 10.0, 100.0],
}
TRIVIAL_LIST_ITEMS = {
    "int": list(range(-3, 4)),
    "str": ["a", "b", "foo", "bar", "baz"],
    "bool": [True, False],
    "float": [-1.0, -0.1, 0.0, 0.1, 0.5, 1.0, 2.0],
}
MAX_TRIVIAL_LIST_LENGTH = 2
BASE_TYPES = ("int", "str", "float", "bool")


@dataclass(frozen=True)
class Candidate:
    """A generated puzzle's source and, once it parses, its syntax tree."""

    source: str
    tree: ast.Module | None

    @property
    def func(self) -> ast.FunctionDef:
        return self.tree.body[0]

    @property
    def params(self) -> list[ast.arg]:
        return self.func.args.posonlyargs + self.func.args.args

    @property
    def answer(self) -> ast.arg:
        return self.params[0]


def parse(source: str) -> Candidate:
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        tree = None
    return Candidate(source, tree)


# --- the rules that read the syntax tree; each assumes the ones before it passed ---


def rejects_unparsable(puzzle: Candidate) -> bool:
    return puzzle.tree is None


def rejects_not_one_def_f(puzzle: Candidate) -> bool:
    """Anything but exactly one plain `def f(...)` (the paper: the text starts with `def f(`)."""
    body = puzzle.tree.body
    return not (
        len(body) == 1
        and isinstance(body[0], ast.FunctionDef)
        and body[0].name == "f"
        and not body[0].decorator_list
    )


def rejects_no_return(puzzle: Candidate) -> bool:
    return not any(isinstance(node, ast.Return) for node in ast.walk(puzzle.func))


def rejects_uncompilable(puzzle: Candidate) -> bool:
    """Errors that parsing misses (`return` outside a function's scope rules, `nonlocal` misuse)."""
    try:
        compile(puzzle.tree, "<puzzle>", "exec")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return True
    return False


def rejects_var_args(puzzle: Candidate) -> bool:
    return puzzle.func.args.vararg is not None or puzzle.func.args.kwarg is not None


def rejects_keyword_only_args(puzzle: Candidate) -> bool:
    return bool(puzzle.func.args.kwonlyargs)


def rejects_not_one_required_arg(puzzle: Candidate) -> bool:
    return len(puzzle.params) - len(puzzle.func.args.defaults) != 1


def rejects_unannotated_answer(puzzle: Candidate) -> bool:
    """The paper read the answer's type from the annotation and dropped puzzles without one."""
    return puzzle.answer.annotation is None


SYNTAX_RULES = (
    rejects_unparsable,
    rejects_not_one_def_f,
    rejects_no_return,
    rejects_uncompilable,
    rejects_var_args,
    rejects_keyword_only_args,
    rejects_not_one_required_arg,
    rejects_unannotated_answer,
)

# --- the rules on the answer, skipped for a seeded fraction of puzzles ---


def answer_type(puzzle: Candidate) -> str | None:
    """The answer's annotation as `int` or `List[List[str]]`; None for any other form.

    The paper evaluated the annotation with only `List` defined and compared `str(type)`; reading it
    from the tree accepts the same spellings (`typing.List`, `list[...]` and strings are refused).
    """
    node = puzzle.answer.annotation
    depth = 0
    while isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
        if node.value.id != "List":
            return None
        node, depth = node.slice, depth + 1
    if not isinstance(node, ast.Name):
        return None
    return "List[" * depth + node.id + "]" * depth


def rejects_unused_answer(puzzle: Candidate) -> bool:
    """The answer's name appears once at most in the text, i.e. only in the signature (the paper
    counted whole-word mentions in the source)."""
    name = re.escape(puzzle.answer.arg)
    return len(re.findall(rf"\b{name}\b", puzzle.source)) <= 1


def rejects_bool_answer(puzzle: Candidate) -> bool:
    """A bool answer has two values to try: the paper found such puzzles all trivial."""
    return answer_type(puzzle) == "bool"


def rejects_unsupported_answer_type(puzzle: Candidate) -> bool:
    typ = answer_type(puzzle)
    return typ is None or typ.replace("List[", "").replace("]", "") not in BASE_TYPES


ANSWER_RULES = (rejects_unused_answer, rejects_bool_answer, rejects_unsupported_answer_type)

# --- the rules that run the puzzle, in the sandbox ---


def rejects_refused_code(verdict: dict) -> bool:
    """The verifier's policy refused the code before running it (a banned import)."""
    return verdict["status"] == "rejected"


def rejects_bad_signature(verdict: dict) -> bool:
    """The definition itself failed: a default or an annotation raised or ran too long."""
    return not verdict["ok"]


def rejects_trivial_answer(verdicts: list[dict]) -> bool:
    return any(verdict["ok"] for verdict in verdicts)


def _answer_g(value) -> str:
    return f"def g():\n    return {value!r}\n"


def signature_probe(puzzle: Candidate) -> dict:
    """f with `return True` first, so running it only evaluates the definition (the paper's
    `make_true`). The answer is annotated `int` and g returns 0, so the verifier's type check always
    passes; the original annotations move to the return annotation, still evaluated at `def` time."""
    func = _copy(puzzle.func)
    answer = (func.args.posonlyargs + func.args.args)[0]
    annotations = [answer.annotation] + ([func.returns] if func.returns else [])
    answer.annotation = ast.Name("int")
    func.returns = ast.Tuple(annotations) if len(annotations) > 1 else annotations[0]
    func.body = [ast.Return(ast.Constant(True))] + func.body
    return {"f": _unparse(func), "g": _answer_g(0)}


class _TruthyReturns(ast.NodeTransformer):
    """`return x` -> `return bool(x)` in f's own body (not in nested functions or classes)."""

    def _skip(self, node):
        return node

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = visit_ClassDef = _skip

    def visit_Return(self, node: ast.Return) -> ast.Return:
        value = node.value or ast.Constant(None)
        return ast.Return(ast.Call(ast.Name("bool"), [value], []))


def trivial_probe_f(puzzle: Candidate) -> str:
    """f as the paper's trivial check saw it: `assert f(t)` passed for a truthy result (not only
    `True`) and a NameError counted as a pass. The verifier wants `True`, so returns become
    `bool(...)` and the body is wrapped in `try: ... except NameError: return True`."""
    func = _copy(puzzle.func)
    body = [_TruthyReturns().visit(statement) for statement in func.body]
    handler = ast.ExceptHandler(ast.Name("NameError"), None, [ast.Return(ast.Constant(True))])
    func.body = [ast.Try(body, [handler], [], [])]
    return _unparse(func)


def trivial_answers(typ: str) -> list:
    """The paper's trivial answers for a supported answer type (see TRIVIAL_* above)."""
    if typ in TRIVIAL_SCALARS:
        return list(TRIVIAL_SCALARS[typ])
    depth = typ.count("List[")
    items = TRIVIAL_LIST_ITEMS[typ.replace("List[", "").replace("]", "")]
    answers = [
        list(values)
        for length in range(MAX_TRIVIAL_LIST_LENGTH + 1)
        for values in itertools.product(items, repeat=length)
    ]
    for _ in range(depth - 1):
        answers = [[answer] for answer in answers]
    if [] not in answers:
        answers.append([])
    return answers


def _copy(func: ast.FunctionDef) -> ast.FunctionDef:
    return ast.parse(ast.unparse(func)).body[0]


def _unparse(func: ast.FunctionDef) -> str:
    return ast.unparse(ast.fix_missing_locations(func)) + "\n"


def skips_answer_rules(key: str, rate: float, seed: int) -> bool:
    """The seeded skip: drawn from the puzzle's normalised text and the seed, so the same puzzle gets
    the same decision in any shard, order or rerun."""
    return random.Random(f"{seed}:{key}").random() < rate


# --- the whole filter ---


class _Probes:
    """Sandboxed runs collected over many puzzles, each distinct (f, g) run once, all in one batch."""

    def __init__(self):
        self.index: dict[tuple[str, str], int] = {}

    def add(self, probe: dict) -> int:
        return self.index.setdefault((probe["f"], probe["g"]), len(self.index))

    def run(self, verifier) -> list[dict]:
        if not self.index:
            return []
        batch = [{"id": str(i), "f": f, "g": g} for (f, g), i in self.index.items()]
        return verifier.run(batch)


def _default_verifier():
    from selfteach.verify import Verifier

    return Verifier(timeout=PROBE_TIMEOUT, imports=PROBE_IMPORTS)


def filter_puzzles(
    records: Iterable[dict],
    *,
    skip_trivial_rate: float = config.defaults("filter")["skip_trivial_rate"],
    seed: int = config.defaults()["seed"],
    verifier=None,
    held_out: Iterable[str] = (),
) -> list[dict]:
    """Each record {"id", "f", ...} plus "keep" and "reason" (None when kept), in input order.

    `verifier` is a running `selfteach.verify.Verifier` (or anything with its `run`); when None, one
    is started with the paper's limits and closed afterwards. `held_out` holds the sources of the
    test puzzles: a puzzle equal to one of them (normalised syntax tree) is rejected as "test_puzzle".
    """
    held_out_keys = {dedup.dedup_key(source) for source in held_out}
    if not 0.0 <= skip_trivial_rate <= 1.0:
        raise ValueError(f"skip_trivial_rate must be within [0, 1], not {skip_trivial_rate}")
    out = [dict(record, keep=False, reason=None) for record in records]
    for number, record in enumerate(out):
        if not isinstance(record.get("f"), str):
            raise ValueError(f"puzzle record {number} ({record.get('id')!r}) has no string 'f'")
    puzzles = [parse(record["f"]) for record in out]
    keys = [None] * len(out)

    live = []
    for i, puzzle in enumerate(puzzles):
        out[i]["reason"] = _first_rejection(SYNTAX_RULES, puzzle)
        if out[i]["reason"] is None:
            keys[i] = dedup.dedup_key(puzzle.source)
            if keys[i] in held_out_keys:
                out[i]["reason"] = "test_puzzle"
            else:
                live.append(i)

    with nullcontext(verifier) if verifier is not None else _default_verifier() as sandbox:
        probes = _Probes()
        signature = {i: probes.add(signature_probe(puzzles[i])) for i in live}
        verdicts = probes.run(sandbox)
        checked = []
        for i in live:
            verdict = verdicts[signature[i]]
            out[i]["reason"] = _first_rejection((rejects_refused_code, rejects_bad_signature), verdict)
            if out[i]["reason"] is None:
                checked.append(i)

        probes = _Probes()
        trivial: dict[int, list[int]] = {}
        for i in checked:
            if skips_answer_rules(keys[i], skip_trivial_rate, seed):
                continue
            out[i]["reason"] = _first_rejection(ANSWER_RULES, puzzles[i])
            if out[i]["reason"] is None:
                f = trivial_probe_f(puzzles[i])
                answers = trivial_answers(answer_type(puzzles[i]))
                trivial[i] = [probes.add({"f": f, "g": _answer_g(a)}) for a in answers]
        verdicts = probes.run(sandbox)
        for i, runs in trivial.items():
            if rejects_trivial_answer([verdicts[run] for run in runs]):
                out[i]["reason"] = "trivial_answer"

    seen: set[str] = set()
    for i in live:
        if out[i]["reason"] is None:
            out[i]["keep"] = keys[i] not in seen
            out[i]["reason"] = None if out[i]["keep"] else "duplicate"
            seen.add(keys[i])
    return out


def _first_rejection(rules, subject) -> str | None:
    for rule in rules:
        if rule(subject):
            return rule.__name__.removeprefix("rejects_")
    return None


def filter_file(in_path: str | Path, out_path: str | Path, held_out: Iterable[str | Path], **kwargs) -> dict:
    """Filter a JSONL of generated puzzles into a JSONL of the same records with keep/reason.

    `held_out` lists JSONL files of evaluation puzzles ({"f": ...}) that no kept puzzle may repeat.
    Returns the counts (see `filter_counts`).
    """
    records = read_jsonl(in_path)
    held_out = [record["f"] for path in held_out for record in read_jsonl(path)]
    try:
        filtered = filter_puzzles(records, held_out=held_out, **kwargs)
    except ValueError as err:
        raise ValueError(f"{in_path}: {err}") from None
    write_jsonl(out_path, filtered)
    return filter_counts(filtered)


def filter_counts(filtered: Iterable[dict]) -> dict:
    """{"generated": n, "kept": k, "rejected": {reason: count, ...}} of filtered records."""
    reasons = Counter()
    generated = kept = 0
    for record in filtered:
        generated += 1
        kept += bool(record["keep"])
        if not record["keep"]:
            reasons[record["reason"]] += 1
    return {"generated": generated, "kept": kept, "rejected": dict(reasons.most_common())}


def gather_filtered(shard_paths: Iterable[str | Path], puzzles_out, stats_out) -> dict:
    """Merge filtered shards: the kept puzzles, deduplicated across shards, and the counts.

    A puzzle kept in two shards is kept once; the later copy is counted as a "duplicate".
    """
    records = [record for path in shard_paths for record in read_jsonl(path)]
    seen: set[str] = set()
    for record in records:
        if record["keep"]:
            key = dedup.dedup_key(record["f"])
            if key in seen:
                record.update(keep=False, reason="duplicate")
            seen.add(key)
    write_jsonl(puzzles_out, (r for r in records if r["keep"]))
    stats = filter_counts(records)
    write_json(stats_out, stats)
    return stats
