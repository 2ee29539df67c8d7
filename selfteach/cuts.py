"""Where a sampled function ends.

Both puzzle completions (after `def f{k+1}(`) and solution completions (after `def g(...):`) end
at the first newline followed by a non-whitespace character: the first line that is not indented.
Blank lines inside a body do not end it. The samplers stop generating at the same place.
"""

from __future__ import annotations

import re

_DEDENT = re.compile(r"\n(?=\S)")


def cut_at_dedent(completion: str) -> tuple[str, bool]:
    """Return the completion up to its first non-indented line, and whether such a line was found.

    `finished` is False when the text ran out first (the token budget ended inside the body).
    """
    match = _DEDENT.search(completion)
    if match is None:
        return completion.rstrip(), False
    return completion[: match.start()].rstrip(), True
