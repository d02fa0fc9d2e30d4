"""``gridgis map``: coverage, staffing and scenario maps as self-contained HTML files."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from api.options import StoreOpt
from gis.coverage import Coverage
from gis.store import Store, open_store
from maps import views

app = typer.Typer(
    help="地图 — coverage, staffing and scenario maps (HTML, opens offline).",
    no_args_is_help=True,
)

StreetOpt = Annotated[
    str | None, typer.Option("--street", help="Detailed map of one street/township (9-digit code).")
]
CommunityOpt = Annotated[
    str | None, typer.Option("--community", help="Detailed map of one community (12-digit code).")
]
TilesOpt = Annotated[
    str,
    typer.Option(
        "--tiles", help="Base map: none (offline), osm, tianditu (needs a key) or amap (GCJ-02)."
    ),
]
KeyOpt = Annotated[
    str | None,
    typer.Option(
        "--tianditu-key", help="Tianditu key (default: $TIANDITU_KEY).", show_default=False
    ),
]
LangOpt = Annotated[str, typer.Option("--lang", help="Labels: zh (default) or en.")]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="The HTML file to write.")]

LAYERS = {
    "coverage_city": ("districts", "streets", "communities", "facility_types", "coverage"),
    "detail": (
        "districts",
        "streets",
        "communities",
        "facility_types",
        "buildings",
        "facilities",
        "grids",
        "roads",
        "assignments",
        "workers",
    ),  # fmt: skip
    "staffing_city": ("streets", "communities", "buildings", "workers"),
    "scenario": (
        "streets",
        "communities",
        "facility_types",
        "buildings",
        "facilities",
        "grids",
        "roads",
        "scenarios",
    ),  # fmt: skip
}


def frames(s: Store, kind: str) -> dict:
    """The layers a map kind reads (those the store holds)."""
    from gis.reference import facility_types

    out = {name: s.read(name) for name in LAYERS[kind] if s.has(name)}
    if "facility_types" in LAYERS[kind] and "facility_types" not in out:
        out["facility_types"] = facility_types()
    return out


def _done(path: Path) -> None:
    from api.cli import console

    console.print(f"地图已写入 {path}  ({path.stat().st_size / 1e6:.1f} MB)", highlight=False)


@app.command("coverage")
def coverage_map(
    out: OutOpt,
    type_: Annotated[
        str | None,
        typer.Option("--type", "-t", help="Facility type (city overview: all types when omitted)."),
    ] = None,
    street: StreetOpt = None,
    community: CommunityOpt = None,
    tiles: TilesOpt = "none",
    key: KeyOpt = None,
    lang: LangOpt = "zh",
    store: StoreOpt = None,
) -> None:
    """Coverage map: shares by grid (or community), facilities with their service areas,
    gap areas, uncovered households.
    """
    from api.cli import store_spec

    s = open_store(store_spec(store))
    kind = "detail" if street or community else "coverage_city"
    gm = views.coverage_map(
        frames(s, kind), type_, street=street, community=community, tiles=tiles, lang=lang,
        key=key or os.environ.get("TIANDITU_KEY"),
    )  # fmt: skip
    _done(gm.save(out))


@app.command("staffing")
def staffing_map(
    out: OutOpt,
    street: StreetOpt = None,
    community: CommunityOpt = None,
    tiles: TilesOpt = "none",
    key: KeyOpt = None,
    lang: LangOpt = "zh",
    store: StoreOpt = None,
) -> None:
    """Staffing map: grids by responsible worker, loads, communities flagged."""
    from api.cli import store_spec

    s = open_store(store_spec(store))
    kind = "detail" if street or community else "staffing_city"
    gm = views.staffing_map(
        frames(s, kind), street=street, community=community, tiles=tiles, lang=lang,
        key=key or os.environ.get("TIANDITU_KEY"),
    )  # fmt: skip
    _done(gm.save(out))


@app.command("scenario")
def scenario_map(
    name: Annotated[str, typer.Argument(help="A saved scenario (gridgis scenarios list).")],
    out: OutOpt,
    street: StreetOpt = None,
    tiles: TilesOpt = "none",
    key: KeyOpt = None,
    lang: LangOpt = "zh",
    store: StoreOpt = None,
) -> None:
    """Scenario map: candidate sites, coverage before and after, ranking."""
    from api.cli import store_spec

    s = open_store(store_spec(store))
    gm = views.scenario_map(
        frames(s, "scenario"), name, street=street, tiles=tiles, lang=lang,
        key=key or os.environ.get("TIANDITU_KEY"),
    )  # fmt: skip
    _done(gm.save(out))


def demo_maps(frames: dict, cov: Coverage, store: Store, out_dir: Path) -> list[Path]:
    """The demo's maps: city overviews, one street in detail, and a sample scenario
    (MCLP, 3 new day-care centres in that street) saved to the store and mapped.
    """
    import json

    import pandas as pd

    from gis import siting

    comms = frames["communities"]
    hh = frames["buildings"].groupby("community_code")["households"].sum()
    urban = comms[comms["kind"] == "urban"]
    street = str(urban.assign(hh=urban["code"].map(hh)).groupby("street_code")["hh"].sum().idxmax())
    t = "elderly_day_care"
    p = siting.Planner.from_coverage(
        cov,
        frames["buildings"],
        frames["facilities"],
        frames["facility_types"],
        t,
    )
    cands = siting.generate(p, 200)
    sol = siting.optimise(p, cands, 3, "mclp", within=street)
    chosen = cands[cands["id"].isin(sol.chosen)]
    name = "示例-日间照料"
    sites = pd.DataFrame(
        {"id": chosen["id"], "type": t, "lon": chosen.geometry.x.round(7),
         "lat": chosen.geometry.y.round(7), "area_m2": None}
    )  # fmt: skip
    row = pd.DataFrame(
        {
            "id": [name], "name": [name], "author": ["gridgis demo"],
            "created": [pd.Timestamp.now(tz="Asia/Shanghai").isoformat(timespec="seconds")],
            "sites": [sites.to_json(orient="records", force_ascii=False)],
            "results": [json.dumps(
                {"kind": "optimise", "type": t, "k": 3, **sol.as_dict()}, ensure_ascii=False
            )],
        }
    )  # fmt: skip
    store.write({"scenarios": row})
    frames = {**frames, "scenarios": row}
    detail = f"coverage_{street}_{t}.html"
    out = [
        views.coverage_map(frames, links={street: detail}).save(out_dir / "coverage_city.html"),
        views.staffing_map(frames).save(out_dir / "staffing_city.html"),
        views.coverage_map(frames, t, street=street).save(out_dir / detail),
        views.staffing_map(frames, street=street).save(out_dir / f"staffing_{street}.html"),
        views.scenario_map(frames, name).save(out_dir / "scenario_demo.html"),
    ]
    return out
