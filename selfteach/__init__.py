"""selfteach: a language model teaches itself to program (the P3 self-improvement loop)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("selfteach")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+local"
