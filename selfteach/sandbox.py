"""The bubblewrap sandbox: which interpreter runs inside, and how a worker is started in it.

Layers, each one named here and none trusted to hold alone:
- namespaces and mounts (bwrap): every namespace unshared (so no network), only the interpreter's own
  files visible, read-only, and a small private tmpfs; no nested user namespaces (--disable-userns);
  the worker is the sandbox's pid 1 (--as-pid-1), so no bwrap reaper inside holds the host's pipes;
- a seccomp filter (bwrap --seccomp), the syscalls of DENIED_SYSCALLS and namespace flags of clone:
  see `seccomp_filter`;
- resource limits: the worker sets them on each child (address space, CPU seconds, processes, file
  size, open files), and the verifier enforces a wall-clock limit from outside.
Where a layer cannot be had (no bwrap, a bwrap without those options, no libseccomp bindings, a
worker that does not report itself as a filtered pid 1), starting fails with a SandboxError that says
what is missing.
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
# The worker's modules, in import order: they run inside the sandbox as a stub `selfteach` package.
WORKER_MODULES = ("sandbox_screen", "sandbox_steps", "sandbox_lanes", "sandbox_worker")
# A bwrap without these cannot give the guarantees above (0.8.0, Debian 12's, has them all).
BWRAP_OPTIONS = ("--as-pid-1", "--disable-userns", "--seccomp")
# -P: no script folder on sys.path; -s -S: no site packages; -B: write no bytecode.
PYTHON_FLAGS = ("-P", "-s", "-S", "-B")
FIX_BWRAP = (
    "install the bubblewrap package (apt-get install bubblewrap), and on hosts that forbid unprivileged "
    "user namespaces allow them (sysctl kernel.unprivileged_userns_clone=1, or on Ubuntu 24.04 "
    "kernel.apparmor_restrict_unprivileged_userns=0); or run unsandboxed with --no-sandbox, which "
    "lets model-written code touch this machine"
)
# Debian's interpreter, where python3-seccomp puts libseccomp's bindings (the venv cannot import them).
SECCOMP_BUILDER = SYSTEM_PYTHON
FIX_SECCOMP = (
    "install libseccomp's Python bindings (apt-get install python3-seccomp); or run unsandboxed with "
    "--no-sandbox, which lets model-written code touch this machine"
)

# What the sandbox may not ask of the kernel (EPERM), whatever the candidate imports: other processes'
# memory and descriptors, namespaces and mounts, kernel subsystems that run programs of their own or
# share state across processes, memory that RLIMIT_AS does not count, IPC objects that outlive the
# process that made them, and the machine itself (those need capabilities the sandbox lacks anyway).
DENIED_SYSCALLS = (
    "ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd", "kcmp", "process_madvise",
    "unshare", "setns", "mount", "umount2", "pivot_root", "chroot", "open_tree", "move_mount",
    "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr",
    "bpf", "io_uring_setup", "io_uring_enter", "io_uring_register", "perf_event_open", "userfaultfd",
    "keyctl", "add_key", "request_key", "fanotify_init", "name_to_handle_at", "open_by_handle_at",
    "memfd_create", "memfd_secret", "shmget", "shmat", "shmctl", "msgget", "msgsnd", "msgrcv", "msgctl",
    "semget", "semop", "semtimedop", "semctl", "mq_open", "mq_unlink", "mq_timedsend", "mq_timedreceive",
    "mq_notify", "mq_getsetattr",
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "reboot", "swapon",
    "swapoff", "acct", "quotactl", "syslog",
)  # fmt: skip
# clone3 passes its flags in memory, which a filter cannot read: ENOSYS makes glibc fall back to clone.
ABSENT_SYSCALLS = ("clone3",)
# clone with any of these flags (a new namespace) is denied; plain forks and threads are not.
CLONE_NAMESPACE_FLAGS = {
    "CLONE_NEWNS": 0x00020000, "CLONE_NEWCGROUP": 0x02000000, "CLONE_NEWUTS": 0x04000000,
    "CLONE_NEWIPC": 0x08000000, "CLONE_NEWUSER": 0x10000000, "CLONE_NEWPID": 0x20000000,
    "CLONE_NEWNET": 0x40000000,
}  # fmt: skip
# Run by SECCOMP_BUILDER: the policy above as a BPF program on stdout. libseccomp adds the checks a
# hand-written program gets wrong: the architecture (other ABIs, i386 or x32 calls, are killed) and
# each syscall's number on it.
BUILD_FILTER = r"""
import errno, json, seccomp, sys
policy = json.loads(sys.argv[1])
rules = seccomp.SyscallFilter(seccomp.ALLOW)
for name in policy["denied"]:
    rules.add_rule(seccomp.ERRNO(errno.EPERM), name)
for name in policy["absent"]:
    rules.add_rule(seccomp.ERRNO(errno.ENOSYS), name)
for flag in policy["clone_flags"]:
    rules.add_rule(seccomp.ERRNO(errno.EPERM), "clone", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
rules.export_bpf(sys.stdout)
"""
# Run by the sandbox interpreter: makes the worker's modules a stub `selfteach` package (the real one
# is not visible in the sandbox) and starts the worker. {modules}: (name, source) pairs.
BOOTSTRAP = """
import sys, types
package = types.ModuleType("selfteach")
package.__path__ = []
sys.modules["selfteach"] = package
for name, source in {modules!r}:
    module = types.ModuleType("selfteach." + name)
    sys.modules[module.__name__] = module
    setattr(package, name, module)
    exec(compile(source, "selfteach/" + name + ".py", "exec"), vars(module))
module.main()
"""

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
    processes: int = 16  # RLIMIT_NPROC: counts the worker (the sandbox's pid 1) and its lanes too
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
    """bwrap's path, once it is known to have every option the sandbox needs."""
    path = shutil.which("bwrap")
    if path is None:
        raise SandboxError(f"bwrap (bubblewrap) was not found on PATH: {FIX_BWRAP}")
    missing = missing_bwrap_options(path)
    if missing:
        raise SandboxError(
            f"{path} lacks {', '.join(missing)}, which the sandbox needs: install bubblewrap 0.8 or newer, "
            "or run unsandboxed with --no-sandbox, which lets model-written code touch this machine"
        )
    return path


@functools.lru_cache(maxsize=None)
def missing_bwrap_options(bwrap: str) -> list[str]:
    try:
        done = subprocess.run([bwrap, "--help"], capture_output=True, text=True, timeout=PROBE_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise SandboxError(f"cannot run {bwrap} --help: {err}") from None
    return [option for option in BWRAP_OPTIONS if option not in done.stdout + done.stderr]


@functools.lru_cache(maxsize=None)
def seccomp_filter(builder: str) -> bytes:
    """The sandbox's seccomp filter as a BPF program for bwrap --seccomp, built by libseccomp's Python
    bindings in `builder` (they are a Debian package, python3-seccomp, for Debian's interpreter):
    libseccomp rather than a hand-assembled program, for its per-architecture syscall tables and
    architecture checks. Raises SandboxError where it cannot be built: the sandbox never runs without."""
    policy = {
        "denied": DENIED_SYSCALLS,
        "absent": ABSENT_SYSCALLS,
        "clone_flags": sorted(CLONE_NAMESPACE_FLAGS.values()),
    }
    try:
        done = subprocess.run(
            [builder, "-I", "-c", BUILD_FILTER, json.dumps(policy)],
            capture_output=True,
            timeout=PROBE_TIMEOUT_S,
            cwd="/",
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise SandboxError(f"cannot build the sandbox's seccomp filter with {builder} ({err}): {FIX_SECCOMP}") from None
    if done.returncode != 0 or not done.stdout:
        reason = (done.stderr.decode(errors="replace").strip().splitlines() or ["no output"])[-1]
        raise SandboxError(f"cannot build the sandbox's seccomp filter with {builder} ({reason}): {FIX_SECCOMP}")
    return done.stdout


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


def bwrap_args(bwrap: str, interpreter: Interpreter) -> list[str]:
    """bwrap's options, all but --seccomp (its descriptor is new for every worker)."""
    args = [bwrap, "--unshare-all", "--unshare-user", "--disable-userns", "--as-pid-1", "--die-with-parent"]
    args += ["--new-session", "--hostname", "sandbox", "--clearenv", "--setenv", "PYTHONHASHSEED", "0"]
    links = {link: target for target, link in symlinks_on_the_way(interpreter.loader or "/")}
    links.update((path, os.readlink(path)) for path in root_symlinks())
    for link in sorted(links, key=lambda path: path.count("/")):  # parents before children
        args += ["--symlink", links[link], link]
    for folder in interpreter.folders:
        args += ["--ro-bind", folder, folder]
    args += ["--ro-bind", interpreter.executable, interpreter.executable]
    args += ["--proc", "/proc", "--dev", "/dev", "--remount-ro", "/dev"]
    args += ["--size", str(SCRATCH_BYTES), "--tmpfs", SCRATCH, "--chdir", SCRATCH]
    args += ["--remount-ro", "/"]
    return args


def bootstrap() -> str:
    """The program a worker's interpreter runs: the worker's modules, loaded without the package."""
    folder = Path(__file__).parent
    modules = tuple((name, (folder / f"{name}.py").read_text()) for name in WORKER_MODULES)
    return BOOTSTRAP.format(modules=modules)


class Launcher:
    """Starts workers that run `config` (timeout, imports, limits...): in the sandbox, every layer of it
    present, or, unsandboxed, a bare interpreter."""

    def __init__(self, config: dict, python: str = "auto", sandboxed: bool = True):
        if python == "auto":
            python = auto_python(sandboxed)
        self.sandboxed = sandboxed
        if not sandboxed:
            self.bwrap, self.filter = [], None
            self.program = [python, *PYTHON_FLAGS, "-c", bootstrap(), json.dumps(config)]
            return
        bwrap = bwrap_path()  # say what is missing before probing anything
        prefix = privilege_drop()
        interpreter = probe_interpreter(python, tuple(prefix))
        self.filter = seccomp_filter(SECCOMP_BUILDER)
        self.bwrap = [*prefix, *bwrap_args(bwrap, interpreter)]
        self.program = [interpreter.executable, *PYTHON_FLAGS, "-c", bootstrap(), json.dumps(config)]

    def popen(self, **kwargs) -> subprocess.Popen:
        """Start one worker (subprocess.Popen's keyword arguments); bwrap reads the filter from a pipe."""
        if not self.sandboxed:
            return subprocess.Popen(self.program, **kwargs)
        read_fd, write_fd = os.pipe()
        try:
            with open(write_fd, "wb") as pipe:
                pipe.write(self.filter)  # at most 32 KiB (4,096 instructions): the pipe holds it all
            command = [*self.bwrap, "--seccomp", str(read_fd), "--", *self.program]
            return subprocess.Popen(command, pass_fds=(read_fd,), **kwargs)
        finally:
            os.close(read_fd)

    def check_ready(self, ready: dict) -> None:
        """Refuse a sandboxed worker that is not the sandbox's pid 1 under a seccomp filter."""
        if self.sandboxed and (ready.get("pid"), ready.get("seccomp")) != (1, 2):
            raise SandboxError(
                f"the sandbox worker runs as pid {ready.get('pid')} with seccomp mode {ready.get('seccomp')}, "
                "not as pid 1 under a filter (mode 2): this bwrap or kernel cannot give the sandbox's guarantees"
            )
