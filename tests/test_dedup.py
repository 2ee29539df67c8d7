"""Normalised-AST deduplication: cosmetic differences merge, real ones do not."""

from selfteach.dedup import dedup_key, first_occurrences, puzzle_key

BASE = "def f(s: str, n=3):\n    t = s[::-1]\n    return len(t) == n and t[0] == 'a'"

SAME = [
    # whitespace
    "def f(s: str, n=3):\n\n    t = s[ :: -1]\n    return len(t)==n and t[0]=='a'\n",
    # comments
    "def f(s: str, n=3):  # the puzzle\n    t = s[::-1]  # reversed\n    return len(t) == n and t[0] == 'a'",
    # a docstring
    'def f(s: str, n=3):\n    """Find a string."""\n    t = s[::-1]\n    return len(t) == n and t[0] == \'a\'',
    # local names, parameters included
    "def f(word: str, k=3):\n    rev = word[::-1]\n    return len(rev) == k and rev[0] == 'a'",
    # quotes and redundant parentheses
    'def f(s: str, n=3):\n    t = (s[::-1])\n    return (len(t) == n) and t[0] == "a"',
]

DIFFERENT = [
    "def f(s: str, n=4):\n    t = s[::-1]\n    return len(t) == n and t[0] == 'a'",  # a constant
    "def f(s: str, n=3):\n    t = s[::-1]\n    return len(t) == n and t[0] == 'b'",
    "def f(s: str, n=3):\n    t = s[::-1]\n    return len(t) == n or t[0] == 'a'",  # an operator
    "def f(s: str, n=3):\n    t = s[::-1]\n    return sum(t) == n and t[0] == 'a'",  # a global name
    "def f(s: List[str], n=3):\n    t = s[::-1]\n    return len(t) == n and t[0] == 'a'",  # the annotation
    "def f(s: str, n=3):\n    t = s[::-1]\n    return len(s) == n and t[0] == 'a'",  # which local is used
    "def g(s: str, n=3):\n    t = s[::-1]\n    return len(t) == n and t[0] == 'a'",  # the function's name
]


def test_cosmetic_differences_share_a_key():
    for variant in SAME:
        assert dedup_key(variant) == dedup_key(BASE), variant


def test_real_differences_keep_their_keys():
    keys = {dedup_key(source) for source in [BASE, *DIFFERENT]}
    assert len(keys) == 1 + len(DIFFERENT)


def test_renaming_is_consistent_not_collapsing():
    # swapping which name is bound and which is global must not merge two programs
    a = "def g():\n    x = 1\n    return x + y"
    b = "def g():\n    y = 1\n    return y + x"
    c = "def g():\n    y = 1\n    return y + y"
    assert dedup_key(a) == dedup_key("def g():\n    z = 1\n    return z + y")
    assert len({dedup_key(a), dedup_key(b), dedup_key(c)}) == 3


def test_solutions_with_nested_scopes():
    a = "def g(n=3):\n    def h(k):\n        return [i * k for i in range(n)]\n    return h(2)"
    b = "def g(m=3):\n    def aux(q):\n        return [j * q for j in range(m)]  # note\n    return aux(2)"
    assert dedup_key(a) == dedup_key(b)
    assert dedup_key(a) != dedup_key(a.replace("h(2)", "h(3)"))


def test_unparsable_sources_are_keyed_by_text():
    assert dedup_key("def g(:") == dedup_key("def g(:")
    assert dedup_key("def g(:") != dedup_key("def g( :")


def test_first_occurrences_in_order():
    records = [{"id": i, "f": source} for i, source in enumerate([BASE, DIFFERENT[0], *SAME, DIFFERENT[1]])]
    assert [r["id"] for r in first_occurrences(records, key=puzzle_key)] == [0, 1, len(records) - 1]
