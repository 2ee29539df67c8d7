"""The verifier's static checks, run in the sandbox worker before any candidate code runs.

Guarantees: code that is refused here (does not parse, defines no f or g, imports outside the paper's
list under that policy, annotates f's answer with a type P3 does not use) never runs. `shareable`
(the screen) passes only code that can reach immutable objects, the random module (reseeded before
every step) and the standard library's caches (which a lane empties after every step,
sandbox_lanes.forget): such code may share a long-lived lane child with other candidates' steps.

Runs on the host too (tests, benchmarks) and inside the sandbox, where only the standard library
exists: it imports nothing of selfteach.
"""

import ast
import collections  # noqa: F401 - every shareable module is imported here: `module_names` lists
import copy  # noqa: F401   their names, and children of the worker get them loaded for free
import functools  # noqa: F401
import hashlib
import heapq  # noqa: F401
import itertools
import math  # noqa: F401
import random  # noqa: F401
import re
import string  # noqa: F401
import sys
import types
import typing  # noqa: F401
from collections import Counter, OrderedDict, defaultdict, deque

# The paper accepted only code whose imports are all in this list.
PAPER_ALLOWED_IMPORTS = frozenset(
    {"collections", "copy", "hashlib", "math", "random", "re", "string", "typing"}
)
BASE_TYPES = {"int": int, "float": float, "str": str, "bool": bool}
LIST_NAMES = ("List", "list")
F_CACHE_SIZE = 1024  # distinct puzzles whose analysis is kept (a puzzle is checked against many solutions)


class Refused(Exception):
    """A candidate turned away before running; `status` is "rejected" or "error"."""

    def __init__(self, status, detail):
        super().__init__(detail)
        self.status = status


def parse_source(source, name):
    try:
        return ast.parse(source)
    except (SyntaxError, ValueError, MemoryError, RecursionError) as err:
        raise Refused("error", f"{name} does not parse: {type(err).__name__}: {err}") from None


def parse(source, name):
    tree = parse_source(source, name)
    if not any(isinstance(node, ast.FunctionDef) and node.name == name for node in tree.body):
        raise Refused("error", f"the {name} source defines no top-level function {name}")
    return tree


def banned_imports(tree):
    """Names the paper's policy refuses: imports outside its list, relative imports, __import__."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] not in PAPER_ALLOWED_IMPORTS:
                    yield alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level or (node.module or "").split(".")[0] not in PAPER_ALLOWED_IMPORTS:
                yield "." * node.level + (node.module or "")
        elif isinstance(node, ast.Name) and node.id == "__import__":
            yield "__import__"
        elif isinstance(node, ast.Attribute) and node.attr == "__import__":
            yield "__import__"


def answer_type(tree):
    """(list depth, base type name) of f's first argument, from annotations like List[List[int]]."""
    f = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "f"][-1]
    positional = f.args.posonlyargs + f.args.args
    if not positional:
        raise Refused("error", "f takes no answer argument")
    node, depth = positional[0].annotation, 0
    while (
        isinstance(node, ast.Subscript)
        and isinstance(node.value, ast.Name)
        and node.value.id in LIST_NAMES
    ):
        node, depth = node.slice, depth + 1
    if isinstance(node, ast.Name) and node.id in BASE_TYPES:
        return depth, node.id
    shown = ast.unparse(positional[0].annotation) if positional[0].annotation else "none"
    raise Refused("rejected", f"f's answer annotation ({shown}) is not int, float, str, bool or List[...]")


_f_cache = {}


def analyse_f(source, imports):
    """(list depth, base type name, code, shareable) of f, worked out once per distinct source (a puzzle
    is checked against many solutions)."""
    key = (source, imports)
    if key not in _f_cache:
        try:
            tree = parse(source, "f")
            check_imports(tree, "f", imports)
            _f_cache[key] = (*answer_type(tree), compile_tree(tree, "<f>"), shareable(tree))
        except Refused as err:
            _f_cache[key] = err
        if len(_f_cache) > F_CACHE_SIZE:
            _f_cache.pop(next(iter(_f_cache)))
    found = _f_cache[key]
    if isinstance(found, Refused):
        raise found
    return found


def analyse_g(source, imports):
    """(code, shareable) of g."""
    tree = parse(source, "g")
    check_imports(tree, "g", imports)
    return compile_tree(tree, "<g>"), shareable(tree)


def analyse_program(source):
    """The code of a whole program (a HumanEval problem with its tests): it runs as it is, in a fresh
    child, under no import policy (the programs' own tests import freely)."""
    return compile_tree(parse_source(source, "the program"), "<program>")


def compile_tree(tree, filename):
    """Compiling an already parsed tree is bounded (CPython folds only small constants), so it is safe
    in the worker; a tree the compiler still refuses is the candidate's error."""
    try:
        return compile(tree, filename, "exec")
    except (SyntaxError, ValueError, MemoryError, RecursionError) as err:
        raise Refused("error", f"{filename} does not compile: {type(err).__name__}: {err}") from None


def check_imports(tree, name, imports):
    if imports == "paper":
        banned = sorted(set(banned_imports(tree)))
        if banned:
            raise Refused("rejected", f"{name} imports {', '.join(banned)} (outside the paper's list)")


# --- the screen: which code may share a child with other candidates ---

# Modules screened code may import, and the names of each it may use (None: every public function,
# class and constant, but no module or mutable container). random's state is reseeded before every
# step; what screened code stores in re's and typing's caches (typing keeps any hashable value it is
# subscripted with, a suspended generator's closure included) is emptied after every lane step.
SHAREABLE_MODULES = {
    "collections": {"ChainMap", "Counter", "OrderedDict", "defaultdict", "deque", "namedtuple"},
    "copy": {"copy", "deepcopy"},
    # not wraps/update_wrapper/total_ordering: they set attributes on the object they are given
    "functools": {"cache", "cmp_to_key", "lru_cache", "partial", "reduce"},
    "hashlib": {"blake2b", "blake2s", "md5", "new", "sha1", "sha224", "sha256", "sha384", "sha512"},
    "heapq": None,
    "itertools": None,
    "math": None,
    "random": None,
    "re": None,
    "string": None,
    # not get_type_hints or ForwardRef: they evaluate strings as code
    "typing": {"Any", "Callable", "Dict", "FrozenSet", "Iterable", "Iterator", "List", "Optional", "Sequence",
               "Set", "Tuple", "Union"},
}
# Built-ins that reach objects by a computed name, run strings as code, read input and files, or
# make classes (type(int) is type: a class could carry a finalizer into a cache and out of its step).
UNSHAREABLE_BUILTINS = frozenset(
    {"breakpoint", "compile", "delattr", "eval", "exec", "getattr", "globals", "help", "input", "locals", "open",
     "setattr", "type", "vars"}
)
IMMUTABLE = (bool, int, float, complex, str, bytes, type(None))


def module_names(name):
    """The names screened code may take from a shareable module."""
    allowed = SHAREABLE_MODULES[name]
    if allowed is not None:
        return frozenset(allowed)
    return frozenset(
        key
        for key, value in vars(sys.modules[name]).items()
        if not key.startswith("_")
        and not isinstance(value, types.ModuleType)
        and (callable(value) or isinstance(value, IMMUTABLE))
    )


def value_attributes():
    """Public attribute names of the values screened code makes: methods of str, list, dict, Counter..."""
    values = (0, 0.0, 0j, "", b"", bytearray(), [], (), {}, set(), frozenset(), range(0), slice(0), deque(),
              Counter(), OrderedDict(), defaultdict(), re.compile(""), re.match("", ""), hashlib.sha256(),
              itertools.chain())
    return {name for value in values for name in dir(value) if not name.startswith("_")}


SHAREABLE_NAMES = {name: module_names(name) for name in SHAREABLE_MODULES}
# Attribute names are checked whatever object they are read from: none of these reaches a shared
# mutable object, and screened code cannot store an attribute at all.
SHAREABLE_ATTRIBUTES = frozenset(value_attributes().union(*SHAREABLE_NAMES.values()))


def shareable(tree):
    """True when the code can reach no object that outlives its step but immutable ones (and the
    reseeded random module), so a later step cannot tell it ran: then it may share a child.

    Conservative on purpose: anything unusual (classes, type, dunder names, attribute stores, getattr,
    other modules) is unscreened and simply gets a fresh child; the screen decides speed, not verdicts."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.ClassDef, ast.Match)):
            return False
        if isinstance(node, ast.Name) and (node.id.startswith("__") or node.id in UNSHAREABLE_BUILTINS):
            return False
        if isinstance(node, ast.Attribute) and not (
            isinstance(node.ctx, ast.Load) and node.attr in SHAREABLE_ATTRIBUTES
        ):
            return False
        if isinstance(node, ast.Import) and not all(alias.name in SHAREABLE_NAMES for alias in node.names):
            return False
        if isinstance(node, ast.ImportFrom) and not (
            node.level == 0
            and node.module in SHAREABLE_NAMES
            and all(alias.name in SHAREABLE_NAMES[node.module] for alias in node.names)
        ):
            return False
    return True


