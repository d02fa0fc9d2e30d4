"""Grid rules: the household band of a grid, per community kind.

The city's defaults (300–400 households, target 350) come from its policy; every number is
the city's to set and is kept in the store (:mod:`gis.settings`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from gis.errors import ValidationError


@dataclass(frozen=True)
class Band:
    """Households per grid: the allowed band and the target inside it."""

    min: int = 300
    target: int = 350
    max: int = 400

    def __post_init__(self) -> None:
        if not 0 < self.min <= self.target <= self.max:
            raise ValidationError(
                "grid band",
                [f"need 0 < min ≤ target ≤ max, got {self.min}, {self.target}, {self.max}"],
            )

    def k_range(self, households: float) -> tuple[int, int]:
        """The whole numbers of grids ``[lo, hi]`` that keep every grid in the band."""
        return math.ceil(households / self.max), math.floor(households / self.min)

    def reachable(self, households: float) -> bool:
        """Whether some whole number of grids puts ``households`` in the band.

        Examples
        --------
        >>> Band().reachable(450), Band().reachable(700)
        (False, True)
        """
        lo, hi = self.k_range(households)
        return households > 0 and max(lo, 1) <= hi

    def choose(self, households: float) -> int:
        """The number of grids for ``households``: nearest the target within the band, else
        the one with the smallest excursion from the band (fewer grids on a tie).
        """
        if households <= 0:
            return 1
        lo, hi = self.k_range(households)
        lo = max(lo, 1)
        if lo <= hi:
            return int(min(max(round(households / self.target), lo), hi))
        options = sorted({max(1, hi), max(1, lo)})
        return min(options, key=lambda k: (self.excursion(households / k), k))

    def excursion(self, households: float) -> float:
        """How far one grid's households lie outside the band (0 inside)."""
        return max(0.0, self.min - households, households - self.max)

    def contains(self, households: np.ndarray | float) -> np.ndarray | bool:
        """Whether households lie inside the band."""
        return (np.asarray(households) >= self.min) & (np.asarray(households) <= self.max)


@dataclass(frozen=True)
class GridRules:
    """Bands per community kind (defaults: 300–400, target 350, for both)."""

    urban: Band = field(default_factory=Band)
    rural: Band = field(default_factory=Band)

    def band(self, kind: str) -> Band:
        """The band of a community kind (``urban`` or ``rural``)."""
        return self.rural if kind == "rural" else self.urban
