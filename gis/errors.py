"""The errors gridgis raises: one base class, subclasses that also inherit a built-in."""

from __future__ import annotations

from collections.abc import Iterable


class GridError(Exception):
    """Base of every error gridgis raises on purpose."""


class InvalidCRSError(GridError, ValueError):
    """A missing, unknown or unsuitable coordinate reference system."""


class InvalidCodeError(GridError, ValueError):
    """An administrative or grid code with the wrong form."""


class StoreError(GridError, RuntimeError):
    """A store that cannot be opened, or a layer it does not hold."""


class StoreBusyError(StoreError):
    """Another writer held the layers a write needs for longer than the write would wait."""


class StoreUnavailableError(StoreError):
    """The store's database cannot be reached (stopped, restarting, network down)."""


class LayerNotFoundError(StoreError, KeyError):
    """A layer the store does not hold (yet)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class InputFileError(GridError, OSError):
    """A file that cannot be read at all (missing, wrong format, unreadable)."""


class ValidationError(GridError, ValueError):
    """Every problem found in one input, collected into one error.

    Parameters
    ----------
    what
        What was validated, e.g. ``"buildings (b.csv)"``.
    problems
        One line per problem, each naming its row or feature.
    """

    max_listed = 50

    def __init__(self, what: str, problems: Iterable[str]) -> None:
        self.what = what
        self.problems = list(problems)
        super().__init__(self._message())

    def _message(self) -> str:
        n = len(self.problems)
        shown = self.problems[: self.max_listed]
        more = f"\n  … and {n - len(shown)} more" if n > len(shown) else ""
        lines = "\n".join(f"  - {p}" for p in shown)
        return f"{what_s(self.what)}: {n} problem{'s' if n != 1 else ''}\n{lines}{more}"


def what_s(what: str) -> str:
    """Capitalise the subject of a validation message."""
    return what[:1].upper() + what[1:]


class NotFoundError(ValidationError):
    """A named thing (a scenario, a grid…) that the store does not hold."""


class ConflictError(GridError, ValueError):
    """A write that conflicts with what the store holds: a name taken, a stale version."""


class AccessError(GridError, PermissionError):
    """A request outside the caller's role or jurisdiction."""


class StaleTagError(ConflictError):
    """An edit whose ``If-Match`` tag no longer matches the stored feature (HTTP 412)."""
