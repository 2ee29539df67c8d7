"""The bubblewrap sandbox: which interpreter runs inside, and the command line that starts a worker.

bwrap unshares every namespace (so no network), shows the sandbox only the interpreter's own files
read-only and a small private tmpfs, and dies with its parent. It sets no resource limits: the worker
sets them on each child (address space, CPU seconds, processes, file size, open files).
Linux does not enforce RLIMIT_NPROC for root, so when we run as root the sandbox is entered as an
unprivileged user (setpriv) - and that user must be able to read the interpreter, which rules out a
pyenv interpreter under /root; hence the interpreter is a parameter.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

SANDBOX_UID = 65534  # "nobody"
SYSTEM_PYTHON = "/usr/bin/python3"
MIN_PYTHON = (3, 11)  # for -P and sys.set_int_max_str_digits
SCRATCH = "/tmp"  # the sandbox's private tmpfs
SCRATCH_BYTES = 64 << 20
PROBE_TIMEOUT_S = 60
PT_INTERP = 3  # ELF program header type naming the dynamic loader
MAX_SYMLINK_HOPS = 40
WORKER_SOURCE = Path(__file__).with_name("sandbox_worker.py")
# -P: no script folder on sys.path; -s -S: no site packages; -B: write no bytecode.
PYTHON_FLAGS = ("-P", "-s", "-S", "-B")
FIX_BWRAP = (
    "install the bubblewrap package (apt-get install bubblewrap), and on hosts that forbid unprivileged "
    "user namespaces allow them (sysctl kernel.unprivileged_userns_clone=1, or on Ubuntu 24.04 "
    "kernel.apparmor_restrict_unprivileged_userns=0); or run unsandboxed with --no-sandbox, which "
    "lets model-written code touch this machine"
)

# Run by the candidate interpreter as the sandbox user: prove it can start, and list the files it
# maps once every compiled standard module is loaded (those folders are what the sandbox shows).
# Opening its own executable matters: run by root's setpriv, which execs with root's capabilities, an
# interpreter under /root starts, cannot read its own prefix, and silently takes another stdlib.
PROBE = r"""
import importlib, json, os, sys
open(sys.executable, "rb").close()
dynload = [p for p in sys.path if p.endswith("lib-dynload") and os.path.isdir(p)]
for folder in dynload:
    for name in sorted(os.listdir(folder)):
        try:
            importlib.import_module(name.split(".")[0])
        except BaseException:
            pass
mapped = set()
with open("/proc/self/maps") as maps:
    for line in maps:
        parts = line.split(maxsplit=5)
        if len(parts) == 6 and parts[5].startswith("/"):
            mapped.add(parts[5].strip())
print(json.dumps({
    "executable": os.path.realpath(sys.executable),
    "version": list(sys.version_info[:2]),
    "stdlib": os.path.dirname(os.__file__),
    "dynload": dynload,
    "mapped": sorted(p for p in mapped if os.path.isfile(p)),
}))
"""


class SandboxError(RuntimeError):
    """The sandbox cannot start here; the message says why and how to fix it."""


@dataclass(frozen=True)
class Limits:
    """Per-child resource limits (the wall-clock limit is the verifier's `timeout`)."""

    memory_bytes: int = 1 << 30  # RLIMIT_AS
    processes: int = 16  # RLIMIT_NPROC: counts the sandbox's init and worker too
    file_bytes: int = 16 << 20  # RLIMIT_FSIZE
    open_files: int = 64  # RLIMIT_NOFILE
    output_bytes: int = 256 << 20  # cap on what a child may send back (the encoded answer)


@dataclass(frozen=True)
class Interpreter:
    executable: str
    folders: tuple[str, ...]  # bound read-only in the sandbox
    loader: str | None  # the ELF loader path the executable asks for


def running_as_root() -> bool:
    return os.geteuid() == 0


def privilege_drop() -> list[str]:
    """The prefix that enters the sandbox as an unprivileged user when we are root, else nothing."""
    if not running_as_root():
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        raise SandboxError(
            "running as root, the sandbox must drop to an unprivileged user but setpriv is missing: "
            "install util-linux"
        )
    uid = str(SANDBOX_UID)
    return [setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--inh-caps=-all"]


def bwrap_path() -> str:
    path = shutil.which("bwrap")
    if path is None:
        raise SandboxError(f"bwrap (bubblewrap) was not found on PATH: {FIX_BWRAP}")
    return path


def auto_python(sandboxed: bool) -> str:
    """Our own base interpreter (not a venv's wrapper), when the sandbox user could run it."""
    ours = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
    if not sandboxed or not running_as_root():
        return ours
    try:
        probe_interpreter(ours, tuple(privilege_drop()))
        return ours
    except SandboxError:
        return SYSTEM_PYTHON


@functools.lru_cache(maxsize=None)
def probe_interpreter(python: str, prefix: tuple[str, ...]) -> Interpreter:
    """Run the probe with `python` as the sandbox user; the folders it needs, or a SandboxError."""
    try:
        done = subprocess.run(
            [*prefix, python, "-S", "-c", PROBE],
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_S,
            env={"PATH": "/usr/bin:/bin"},
            cwd="/",
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise SandboxError(f"cannot run the sandbox interpreter {python}: {err}") from None
    user = f"uid {SANDBOX_UID}" if prefix else "this user"
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise SandboxError(
            f"{user} cannot run the sandbox interpreter {python} ({reason}); "
            f"pass --python with one it can read, e.g. {SYSTEM_PYTHON}"
        )
    found = json.loads(done.stdout)
    if tuple(found["version"]) < MIN_PYTHON:
        raise SandboxError(f"the sandbox interpreter {python} is Python {found['version']}, need 3.11+")
    executable = found["executable"]
    folders = {found["stdlib"], *found["dynload"]}
    folders.update(os.path.dirname(path) for path in found["mapped"] if path != executable)
    return Interpreter(executable, outermost(folders), elf_loader(executable))


def outermost(folders) -> tuple[str, ...]:
    """Drop folders that sit inside another one of the set."""
    kept: list[str] = []
    for folder in sorted(folders):
        if not any(folder.startswith(parent.rstrip("/") + "/") for parent in kept):
            kept.append(folder)
    return tuple(kept)


def elf_loader(executable: str) -> str | None:
    """The dynamic loader a 64-bit little-endian ELF asks for (PT_INTERP), e.g. /lib64/ld-linux-x86-64.so.2."""
    with open(executable, "rb") as file:
        head = file.read(64)
        if head[:6] != b"\x7fELF\x02\x01":
            return None
        phoff, = struct.unpack_from("<Q", head, 0x20)
        phentsize, phnum = struct.unpack_from("<HH", head, 0x36)
        for number in range(phnum):
            file.seek(phoff + number * phentsize)
            kind, _, offset, _, _, size = struct.unpack("<IIQQQQ", file.read(40))
            if kind == PT_INTERP:
                file.seek(offset)
                return file.read(size).rstrip(b"\0").decode()
    return None


def symlinks_on_the_way(path: str) -> list[tuple[str, str]]:
    """(target, link) for every symlink met while resolving `path`, so the sandbox can recreate them."""
    links, resolved, parts = [], "/", [p for p in path.split("/") if p]
    hops = 0
    while parts:
        here = os.path.join(resolved, parts.pop(0))
        if os.path.islink(here) and hops < MAX_SYMLINK_HOPS:
            hops += 1
            target = os.readlink(here)
            links.append((target, here))
            parts = [p for p in target.split("/") if p] + parts
            resolved = "/" if target.startswith("/") else resolved
        else:
            resolved = here
    return links


def root_symlinks() -> list[str]:
    """Recreate /lib, /lib64, /bin ... -> usr/... so the loader finds its libraries by their usual paths."""
    return [entry.path for entry in os.scandir("/") if entry.is_symlink()]


def bwrap_args(interpreter: Interpreter) -> list[str]:
    args = [bwrap_path(), "--unshare-all", "--unshare-user", "--die-with-parent", "--new-session"]
    args += ["--hostname", "sandbox", "--clearenv", "--setenv", "PYTHONHASHSEED", "0"]
    links = {link: target for target, link in symlinks_on_the_way(interpreter.loader or "/")}
    links.update((path, os.readlink(path)) for path in root_symlinks())
    for link in sorted(links, key=lambda path: path.count("/")):  # parents before children
        args += ["--symlink", links[link], link]
    for folder in interpreter.folders:
        args += ["--ro-bind", folder, folder]
    args += ["--ro-bind", interpreter.executable, interpreter.executable]
    args += ["--proc", "/proc", "--dev", "/dev", "--remount-ro", "/dev"]
    args += ["--size", str(SCRATCH_BYTES), "--tmpfs", SCRATCH, "--chdir", SCRATCH]
    args += ["--remount-ro", "/", "--"]
    return args


def worker_command(config: dict, python: str = "auto", sandboxed: bool = True) -> list[str]:
    """The command line of one worker; `config` goes to the worker (timeout, imports, limits...)."""
    if python == "auto":
        python = auto_python(sandboxed)
    source = WORKER_SOURCE.read_text()
    if not sandboxed:
        return [python, *PYTHON_FLAGS, "-c", source, json.dumps(config)]
    bwrap_path()  # say what is missing before probing anything
    prefix = privilege_drop()
    interpreter = probe_interpreter(python, tuple(prefix))
    return [*prefix, *bwrap_args(interpreter), interpreter.executable, *PYTHON_FLAGS, "-c", source,
            json.dumps(config)]
