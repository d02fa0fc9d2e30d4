"""Administrative and grid codes: forms, parents, and grid numbering.

A grid code is 15 digits: the community's 12-digit NBS code and a 3-digit sequence, the
Beijing DB11 unit-grid convention (district 6 + street 3 + community 3 + grid 3). Grids are
numbered west→east, north→south inside their community (rows from the north, west to
east along each row).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np

from gis.errors import InvalidCodeError
from gis.schema import CODE_PATTERNS

_LENGTH = {6: "district", 9: "street", 12: "community", 15: "grid"}


def check(code: str, level: str) -> str:
    """Return ``code`` if it has the form of ``level`` (district, street, community, grid).

    Examples
    --------
    >>> check("370402001013", "community")
    '370402001013'
    """
    text = str(code).strip()
    if not re.match(CODE_PATTERNS[level], text):
        n = {v: k for k, v in _LENGTH.items()}[level]
        raise InvalidCodeError(f"{code!r} is not a {level} code ({n} digits expected)")
    return text


def level_of(code: str) -> str:
    """The level a code names, from its length (6, 9, 12 or 15 digits)."""
    text = str(code).strip()
    if not text.isdigit() or len(text) not in _LENGTH:
        raise InvalidCodeError(
            f"{code!r} is not an administrative or grid code (6, 9, 12 or 15 digits expected)"
        )
    return _LENGTH[len(text)]


def grid_code(community: str, seq: int) -> str:
    """The 15-digit code of grid ``seq`` (1–999) of a community.

    Examples
    --------
    >>> grid_code("370402001013", 7)
    '370402001013007'
    """
    check(community, "community")
    if not 1 <= int(seq) <= 999:
        raise InvalidCodeError(f"grid sequence {seq} of {community} is outside 1–999")
    return f"{community}{int(seq):03d}"


def split_grid_code(code: str) -> tuple[str, int]:
    """(community code, sequence) of a grid code."""
    check(code, "grid")
    return code[:12], int(code[12:])


def reading_order(x: np.ndarray, y: np.ndarray, row_height: float) -> np.ndarray:
    """Order of points west→east, north→south: rows of ``row_height`` from the north.

    Returns the permutation that sorts the points; ties keep their input order.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if len(x) == 0:
        return np.zeros(0, dtype=np.int64)
    row = np.floor((y.max() - y) / max(row_height, 1e-12)).astype(np.int64)
    return np.lexsort((x, row))


def next_sequences(used: Iterable[int], n: int) -> list[int]:
    """``n`` fresh sequences above every one ever used (codes are never reused)."""
    start = max(used, default=0) + 1
    if start + n - 1 > 999:
        raise InvalidCodeError(
            f"a community can hold grid sequences up to 999; {start + n - 1} needed"
        )
    return list(range(start, start + n))
