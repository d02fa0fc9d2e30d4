"""Shipped reference data: where it lives and how to load it (facility catalogue, Zaozhuang)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pandas as pd

from gis import schema
from gis.errors import InputFileError, ValidationError

#: ``data/boundaries`` of the source tree (the package is installed editable by ``make``).
DATA_DIR = Path(__file__).resolve().parent.parent / "data" / "boundaries"


def load_toml(path: Path, what: str) -> dict:
    """A TOML file as a dict, with one clear error for a missing or malformed file."""
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise InputFileError(f"{what} {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputFileError(f"{what} {path} is not valid TOML: {exc}") from None


def facility_types(path: str | Path | None = None) -> pd.DataFrame:
    """The facility catalogue as a ``facility_types`` table (default: the shipped TOML).

    Examples
    --------
    >>> ft = facility_types()
    >>> ft.set_index("code").loc["elderly_day_care", "radius_m"]
    np.float64(300.0)
    """
    path = Path(path) if path is not None else DATA_DIR / "facility_types.toml"
    rows = load_toml(path, "facility catalogue").get("type")
    if not isinstance(rows, list) or not rows:
        raise ValidationError(f"facility catalogue {path}", ["no [[type]] entries"])
    return schema.check("facility_types", pd.DataFrame(rows), what=f"facility catalogue {path}")
