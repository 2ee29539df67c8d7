"""Deduplication by normalised syntax tree, for puzzles and for solutions.

The paper removed exact-string duplicates only. Sampled code repeats itself with small cosmetic
changes, so here two sources count as one when they differ only in whitespace, comments, docstrings
or the names of local variables (parameters and names bound inside a function, consistently renamed
in order of first appearance). Names that are not bound locally (builtins, `List`, imported modules,
the function's own name `f` or `g`) keep their spelling, so `len(x)` and `sum(x)` stay different.
"""

from __future__ import annotations

import ast
import hashlib
from typing import Callable, Iterable, Iterator

_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
_WITH_DOCSTRING = (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_UNPARSABLE_TAG = "text:"  # keys of sources that do not parse: their exact text


def _drop_docstrings(tree: ast.AST) -> None:
    for node in ast.walk(tree):
        if isinstance(node, _WITH_DOCSTRING) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                if isinstance(first.value.value, str):
                    node.body = node.body[1:]


def _bound_names(scope: ast.AST) -> Iterator[str]:
    """Names a function binds (parameters, assignment and loop targets, `except ... as`, inner defs)."""
    for node in ast.walk(scope):
        if isinstance(node, ast.arg):
            yield node.arg
        elif isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            yield node.id
        elif isinstance(node, ast.ExceptHandler) and node.name:
            yield node.name
        elif isinstance(node, (*_SCOPES[:2], ast.ClassDef)) and node is not scope:
            yield node.name


class _Rename(ast.NodeTransformer):
    def __init__(self, mapping: dict[str, str]):
        self.mapping = mapping

    def _renamed(self, name: str) -> str:
        return self.mapping.get(name, name)

    def visit_Name(self, node: ast.Name) -> ast.Name:
        node.id = self._renamed(node.id)
        return node

    def visit_arg(self, node: ast.arg) -> ast.arg:
        node.arg = self._renamed(node.arg)
        self.generic_visit(node)
        return node

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> ast.ExceptHandler:
        if node.name:
            node.name = self._renamed(node.name)
        self.generic_visit(node)
        return node

    def _visit_def(self, node):
        node.name = self._renamed(node.name)
        self.generic_visit(node)
        return node

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _visit_def


def normalised_tree(source: str) -> ast.Module:
    """The syntax tree without docstrings, local names replaced by `%0`, `%1`, ... (not identifiers,
    so they never collide with a real name). Raises SyntaxError when the source does not parse."""
    tree = ast.parse(source)
    _drop_docstrings(tree)
    for top in tree.body:
        if isinstance(top, _SCOPES[:2]):
            mapping: dict[str, str] = {}
            for name in _bound_names(top):
                mapping.setdefault(name, f"%{len(mapping)}")
            rename = _Rename(mapping)  # the function's own name is not local: only its inside
            top.args = rename.visit(top.args)
            top.body = [rename.visit(statement) for statement in top.body]
    return tree


def dedup_key(source: str) -> str:
    """A short digest that is equal for sources that differ only in cosmetics (see module doc).

    A source that does not parse is keyed by its exact text, so deduplication never fails.
    """
    try:
        text = ast.dump(normalised_tree(source), annotate_fields=False)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        text = _UNPARSABLE_TAG + source
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def first_occurrences(records: Iterable[dict], key: Callable[[dict], str]) -> Iterator[dict]:
    """The records whose key has not been seen before, in input order (one pass, keys only kept)."""
    seen: set[str] = set()
    for record in records:
        k = key(record)
        if k not in seen:
            seen.add(k)
            yield record


def puzzle_key(record: dict) -> str:
    return dedup_key(record["f"])
