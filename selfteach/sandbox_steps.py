"""The steps a candidate's code runs in, inside a child of the sandbox worker: solve and check for a
puzzle and its solution, and one step for a whole program (a HumanEval problem with its tests).

Guarantees: a puzzle's pass can come only from the *check* step, which never ran any g: the *solve* step
(f(g()) as P3 runs it, g may call f) hands on nothing but the answer as JSON data, encoded before f
sees it, or a failure status; the check decodes that data, checks its type against f's annotation,
runs f's code afresh and calls f(answer). Whatever the solve step does (tamper with builtins, lie in
__eq__, rebind f), all that reaches the check is data. Every result is a status of STATUSES with a
detail of at most MAX_DETAIL_CHARS.

A step returns bytes: b"A" + the encoded answer (a claim for the check to confirm) or b"S" + a JSON
status message.
"""

import builtins
import errno
import json
import typing

from selfteach.sandbox_screen import BASE_TYPES

# Copies of selfteach.terms (the worker cannot import selfteach; a test pins them to it).
STATUSES = ("pass", "fail", "wrong_type", "error", "timeout", "resource", "rejected")
MAX_DETAIL_CHARS = 300
# What the solve step may report: anything else would be candidate code forging a verdict.
SOLVE_FAILURES = frozenset({"fail", "wrong_type", "error", "timeout", "resource"})
RESOURCE_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.EAGAIN, errno.EFBIG, errno.ENOSPC, errno.ENOMEM}


def fresh_namespace():
    return {"__name__": "__main__", "__builtins__": builtins, "List": typing.List}


def describe(err):
    try:
        text = f"{type(err).__name__}: {err}"
    except BaseException:  # a hostile exception whose str() raises
        text = "an exception that cannot be printed"
    return text[:MAX_DETAIL_CHARS]


def failure(err):
    """The status for an exception raised by candidate code: a limit hit, or an error."""
    if isinstance(err, MemoryError):
        return "resource", describe(err)
    if isinstance(err, OSError) and err.errno in RESOURCE_ERRNOS:
        return "resource", describe(err)
    if isinstance(err, RuntimeError) and "can't start new thread" in str(err):
        return "resource", describe(err)
    return "error", describe(err)


def status_message(status, detail=None):
    message = {"status": status}
    if detail:
        message["detail"] = detail
    return b"S" + json.dumps(message).encode()


def matches(value, depth, base):
    """P3's type check: exact types (a bool is not an int), lists nested to the annotated depth."""
    if depth == 0:
        return type(value) is base
    return type(value) is list and all(matches(item, depth - 1, base) for item in value)


def hex_ints(value, depth):
    """Ints travel as hex strings: decimal conversion is quadratic in the digits, hex is linear."""
    return hex(value) if depth == 0 else [hex_ints(item, depth - 1) for item in value]


def unhex_ints(value, depth):
    if depth == 0:
        if type(value) is not str:
            raise ValueError("an int leaf that is not a hex string")
        return int(value, 16)
    if type(value) is not list:
        raise ValueError("a list level that is not a list")
    return [unhex_ints(item, depth - 1) for item in value]


def solve(f_code, g_code, depth, base_name):
    """The solve step, f(g()) as P3 runs it: b"A" + the answer as JSON when f returned True (a claim
    for the check step to confirm), else b"S" + the failure status."""
    namespace = fresh_namespace()
    try:
        exec(f_code, namespace)
        exec(g_code, namespace)
        answer = namespace["g"]()
        if not matches(answer, depth, BASE_TYPES[base_name]):
            return status_message("wrong_type", f"g returned a {type(answer).__name__}")
        # encoded before f runs: f may change the answer in place, the check must see g's
        encoded = json.dumps(hex_ints(answer, depth) if base_name == "int" else answer).encode()
        if namespace["f"](answer) is not True:
            return status_message("fail")
        return b"A" + encoded
    except BaseException as err:
        return status_message(*failure(err))


def check(f_code, encoded, depth, base_name):
    """The check step, in a clean child: decode the answer, check its type, call f on it."""
    try:
        answer = json.loads(encoded)
        if base_name == "int":
            answer = unhex_ints(answer, depth)
    except BaseException as err:
        return status_message("error", "the answer could not be decoded: " + describe(err))
    if not matches(answer, depth, BASE_TYPES[base_name]):
        return status_message("wrong_type", "the answer does not match f's annotation")
    namespace = fresh_namespace()
    try:
        exec(f_code, namespace)
        result = namespace["f"](answer)
    except BaseException as err:
        return status_message(*failure(err))
    return status_message("pass" if result is True else "fail")


def program(code):
    """A whole program, run as a script is (no `List` planted): "pass" when it ran to its end without
    an exception, else the failure status. The program holds its own tests, so nothing here can tell
    a program that ran its tests from one that wrote a pass to this step's result pipe and exited: as
    with HumanEval's own harness, its status is what the program's code makes it. The worker's reply,
    which no child can forge, carries it."""
    try:
        exec(code, {"__name__": "__main__", "__builtins__": builtins})
    except BaseException as err:
        return status_message(*failure(err))
    return status_message("pass")


STEPS = {step.__name__: step for step in (solve, check)}  # the steps a lane may run (screened code only)
