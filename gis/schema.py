"""The data model: every layer, its columns, dtypes, geometry type and code formats, once.

Validation (:mod:`gis.io`), both stores (:mod:`gis.store`) and the API derive from the
:data:`LAYERS` table here. All geometry is stored in EPSG:4326.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

import geopandas as gpd
import shapely

from gis.errors import LayerNotFoundError, ValidationError

STORAGE_CRS = "EPSG:4326"

Kind = Literal["str", "int", "float", "bool"]
GeometryType = Literal["Point", "LineString", "Polygon", "MultiPolygon"]

#: Code formats of the administrative hierarchy (GB/T 2260, NBS 统计用区划代码) and grids.
CODE_PATTERNS: dict[str, str] = {
    "district": r"^\d{6}$",
    "street": r"^\d{9}$",
    "community": r"^\d{12}$",
    "grid": r"^\d{15}$",
}


@dataclass(frozen=True)
class Field:
    """One column of a layer.

    Parameters
    ----------
    name
        Column name.
    kind
        ``str``, ``int``, ``float`` or ``bool``.
    nullable
        Whether a value may be missing in the store.
    required
        Whether an input file must have the column (optional ones are derived or left empty).
    pattern
        Regular expression a text value must match.
    choices
        The allowed values of a text column.
    minimum
        Smallest allowed value of a number column.
    label
        Chinese label shown to people.
    """

    name: str
    kind: Kind
    nullable: bool = False
    required: bool = True
    pattern: str | None = None
    choices: tuple[str, ...] | None = None
    minimum: float | None = None
    label: str = ""

    @property
    def dtype(self) -> str:
        """The canonical pandas dtype of the column."""
        if self.kind == "int":
            return "Int64" if self.nullable else "int64"
        return {"str": "str", "float": "float64", "bool": "bool"}[self.kind]


#: the JSON Schema type of each field kind (queryables, filters, tile properties)
JSON_TYPES = {"str": "string", "int": "integer", "float": "number", "bool": "boolean"}


@dataclass(frozen=True)
class Layer:
    """A layer: its key, columns and geometry type (``None`` for a plain table)."""

    name: str
    key: tuple[str, ...]
    fields: tuple[Field, ...]
    geometry: GeometryType | None = None
    label: str = ""
    #: columns looked up often (besides the key): each gets an index in both stores
    indexes: tuple[tuple[str, ...], ...] = ()
    #: rows come and change one by one under load (work orders, their history, audit): no
    #: write counter is kept for it (concurrent writers would queue on that one counter)
    #: and it is never cached whole; readers ask the store each time
    live: bool = False
    #: an append-only history whose key ``seq`` the store numbers (:meth:`Tx.append`)
    journal: bool = False
    _by_name: dict[str, Field] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._by_name.update({f.name: f for f in self.fields})

    @property
    def columns(self) -> list[str]:
        """Attribute column names in order (geometry excluded)."""
        return [f.name for f in self.fields]

    def field(self, name: str) -> Field:
        """The field called ``name``."""
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(
                f"layer {self.name!r} has no column {name!r}; columns: {', '.join(self.columns)}"
            ) from None


def _code(name: str, level: str, **kw: object) -> Field:
    return Field(name, "str", pattern=CODE_PATTERNS[level], **kw)  # type: ignore[arg-type]


SYNTHETIC = Field("synthetic", "bool", required=False, label="合成数据")
COUNT_OPTS = {"nullable": True, "required": False, "minimum": 0}

LAYERS: dict[str, Layer] = {
    layer.name: layer
    for layer in [
        Layer(
            "districts",
            ("code",),
            (
                _code("code", "district", label="区县代码"),
                Field("name", "str", label="区县"),
                SYNTHETIC,
            ),
            "MultiPolygon",
            "区县",
        ),
        Layer(
            "streets",
            ("code",),
            (
                _code("code", "street", label="街道/乡镇代码"),
                Field("name", "str", label="街道/乡镇"),
                Field("kind", "str", choices=("街道", "镇", "乡", "其他"), label="类型"),
                _code("district_code", "district", label="区县代码"),
                SYNTHETIC,
            ),
            "MultiPolygon",
            "街道/乡镇",
        ),
        Layer(
            "communities",
            ("code",),
            (
                _code("code", "community", label="社区代码"),
                Field("name", "str", label="社区/村"),
                Field("kind", "str", choices=("urban", "rural"), label="类型"),
                _code("street_code", "street", label="街道/乡镇代码"),
                _code("district_code", "district", label="区县代码"),
                SYNTHETIC,
            ),
            "MultiPolygon",
            "社区/村",
        ),
        Layer(
            "buildings",
            ("id",),
            (
                Field("id", "str", label="楼栋编号"),
                _code("community_code", "community", label="社区代码"),
                Field("households", "int", minimum=0, label="户数"),
                Field("residents", "int", **COUNT_OPTS, label="人口"),  # type: ignore[arg-type]
                Field("elderly", "int", **COUNT_OPTS, label="60岁以上"),  # type: ignore[arg-type]
                Field("children", "int", **COUNT_OPTS, label="0-14岁"),  # type: ignore[arg-type]
                Field("disabled", "int", **COUNT_OPTS, label="残疾人"),  # type: ignore[arg-type]
                Field("address", "str", nullable=True, required=False, label="地址"),
                SYNTHETIC,
            ),
            "Point",
            "楼栋/院落",
            # a community's buildings (a province's county reads its own by these)
            indexes=(("address",), ("community_code",)),
        ),
        Layer(
            "footprints",
            ("building_id",),
            (Field("building_id", "str", label="楼栋编号"),),
            "MultiPolygon",
            "楼栋轮廓",
        ),
        Layer(
            "roads",
            ("id",),
            (Field("id", "str"), Field("kind", "str", label="道路等级"), SYNTHETIC),
            "LineString",
            "道路",
        ),
        Layer(
            "grids",
            ("code",),
            (
                _code("code", "grid", label="网格代码"),
                _code("community_code", "community", label="社区代码"),
                Field("seq", "int", minimum=1, label="序号"),
                Field("households", "int", minimum=0, label="户数"),
                Field("residents", "int", minimum=0, label="人口"),
            ),
            "MultiPolygon",
            "网格",
        ),
        Layer(
            "grid_history",
            ("code",),
            (
                _code("code", "grid", label="网格代码"),
                _code("community_code", "community", label="社区代码"),
                Field("seq", "int", minimum=1, label="序号"),
                Field("retired", "str", pattern=r"^\d{4}-\d{2}-\d{2}$", label="撤销日期"),
                Field("replaced_by", "str", nullable=True, required=False, label="替代网格"),
            ),
            None,
            "撤销网格",
        ),
        Layer(
            "workers",
            ("id",),
            (
                Field("id", "str", label="工号"),
                Field("name", "str", label="姓名"),
                _code("community_code", "community", label="社区代码"),
                Field("post", "str", choices=("正职", "副职", "其他"), label="岗位"),
                Field("hired", "str", pattern=r"^\d{4}-\d{2}-\d{2}$", label="入职日期"),
                Field(
                    "education",
                    "str",
                    choices=("高中及以下", "大专", "本科", "硕士", "博士"),
                    label="学历",
                ),
                Field("grade", "int", nullable=True, required=False, minimum=1, label="等级"),
                Field(
                    "role",
                    "str",
                    nullable=True,
                    required=False,
                    choices=("window", "grid"),
                    label="岗位角色",
                ),
                Field("phone", "str", nullable=True, required=False, label="电话"),
                Field("home_lon", "float", nullable=True, required=False),
                Field("home_lat", "float", nullable=True, required=False),
                SYNTHETIC,
            ),
            None,
            "社区工作者",
        ),
        Layer(
            "assignments",
            ("grid_code",),
            (_code("grid_code", "grid"), Field("worker_id", "str")),
            None,
            "网格责任人",
        ),
        Layer(
            "facility_types",
            ("code",),
            (
                Field("code", "str", pattern=r"^[a-z][a-z0-9_]*$"),
                Field("name_zh", "str"),
                Field("name_en", "str"),
                Field("level", "str", choices=("5min", "10min", "15min", "rural")),
                Field("radius_m", "float", minimum=1),
                Field(
                    "serves",
                    "str",
                    choices=("households", "elderly", "children", "disabled", "rural_households"),
                ),
                Field("area_per_100_households", "float", nullable=True, required=False, minimum=0),
                # which communities the type serves: a type does not apply to the others
                Field(
                    "applies",
                    "str",
                    nullable=True,
                    required=False,
                    choices=("urban", "rural", "both"),
                ),
            ),
            None,
            "设施类型",
        ),
        Layer(
            "facilities",
            ("id",),
            (
                Field("id", "str", label="设施编号"),
                Field("name", "str", label="名称"),
                Field("type", "str", pattern=r"^[a-z][a-z0-9_]*$", label="类型"),
                Field(
                    "area_m2", "float", nullable=True, required=False, minimum=0, label="建筑面积"
                ),
                Field(
                    "status", "str", required=False, choices=("existing", "planned"), label="状态"
                ),
                SYNTHETIC,
            ),
            "Point",
            "服务设施",
        ),
        Layer(
            "coverage",
            ("type", "level", "code"),
            (
                Field("type", "str", label="设施类型"),
                Field(
                    "level",
                    "str",
                    choices=("grid", "community", "street", "district", "city"),
                    label="层级",
                ),
                Field("code", "str", label="代码"),
                Field("served", "float", minimum=0, label="服务对象"),
                Field("covered", "float", minimum=0, label="已覆盖"),
                Field("uncovered", "float", minimum=0, label="未覆盖"),
                Field("unreachable", "float", minimum=0, label="路网不可达"),
                Field("share", "float", nullable=True, minimum=0, label="覆盖率"),
                # false where the type does not serve this unit's communities (不适用)
                Field("applies", "bool", required=False, label="适用"),
            ),
            None,
            "覆盖",
            indexes=(("code",),),  # a unit's rows of every type (a county's, replaced)
        ),
        Layer(
            "gaps",
            ("id",),
            (
                Field("id", "str", label="缺口编号"),
                Field("type", "str", label="设施类型"),
                _code("community_code", "community", label="社区代码"),
                Field("served", "float", minimum=0, label="未覆盖对象"),
            ),
            "MultiPolygon",
            "服务缺口",
            indexes=(("community_code",),),
        ),
        Layer(
            "scenarios",
            ("id",),
            (
                Field("id", "str"),
                Field("name", "str"),
                Field("author", "str"),
                Field("created", "str"),
                Field("sites", "str"),
                Field("results", "str", nullable=True),
                # the communities the sites lie in (comma-separated): who may see it
                Field("communities", "str", nullable=True, required=False),
                Field("editor", "str", nullable=True, required=False),
                Field("edited", "str", nullable=True, required=False),
            ),
            None,
            "方案",
        ),
        Layer(
            "settings",
            ("key",),
            (
                Field("key", "str", pattern=r"^[a-z][a-z0-9_.]*$", label="规则"),
                Field("value", "str", label="值 (JSON)"),
                Field("updated", "str", label="修改时间"),
                Field("who", "str", label="修改人"),
            ),
            None,
            "城市规则",
        ),
        Layer(
            "quotas",
            ("code",),
            (
                _code("code", "community", label="社区代码"),
                Field("name", "str", label="社区/村"),
                Field("kind", "str", choices=("urban", "rural"), label="类型"),
                Field("households", "int", minimum=0, label="户数"),
                Field("policy_min", "int", minimum=0, label="政策下限"),
                Field("policy_max", "int", minimum=0, label="政策上限"),
                Field("rule_quota", "int", minimum=0, label="规则定额"),
                Field("quota", "int", minimum=0, label="核定后定额"),
                Field("window", "int", minimum=0, label="窗口人员"),
                Field("grid_workers", "int", minimum=0, label="网格员"),
            ),
            None,
            "社区工作者定额",
        ),
        Layer(
            "api_keys",
            ("id",),
            (
                Field("id", "str"),
                Field("name", "str"),
                Field(
                    "role",
                    "str",
                    choices=("viewer", "supervisor", "planner", "admin", "dispatcher", "worker"),
                ),
                Field("scope", "str", nullable=True, required=False, pattern=r"^\d{6,12}$"),
                Field("hash", "str", pattern=r"^[0-9a-f]{64}$"),
                Field("created", "str"),
                Field("revoked", "str", nullable=True, required=False),
            ),
            None,
            "接口密钥",
        ),
        Layer(
            "orders",
            ("id",),
            (
                Field("id", "str", label="工单编号"),
                Field(
                    "source", "str", choices=("hotline", "patrol", "app", "system"), label="来源"
                ),
                Field("external_id", "str", nullable=True, required=False, label="来源单号"),
                Field("type", "str", label="类别"),
                Field("description", "str", label="内容"),
                Field("state", "str", label="状态"),
                Field("version", "int", minimum=1, label="版本"),
                Field(
                    "level", "str", choices=("community", "street", "district"), label="办理层级"
                ),
                _code("district_code", "district", label="区县代码"),
                _code("street_code", "street", label="街道代码"),
                _code("community_code", "community", label="社区代码"),
                Field(
                    "grid_code",
                    "str",
                    nullable=True,
                    required=False,
                    pattern=CODE_PATTERNS["grid"],
                    label="网格编码",
                ),
                Field("worker_id", "str", nullable=True, required=False, label="责任人工号"),
                Field("assignee", "str", nullable=True, required=False, label="责任人"),
                Field("building_id", "str", nullable=True, required=False, label="建筑编号"),
                Field("reporter", "str", nullable=True, required=False, label="联系人"),
                Field("attachments", "str", nullable=True, required=False, label="附件"),
                Field("creator", "str", label="创建方"),
                Field("created", "str", label="创建时间"),
                Field("updated", "str", label="更新时间"),
                Field("stage_start", "str", nullable=True, required=False, label="本环节开始"),
                Field("deadline", "str", nullable=True, required=False, label="本环节时限"),
                Field("delay_h", "float", minimum=0, label="延期小时"),
                Field("delay_requested", "bool", label="申请延期"),
                Field("escalated_at", "str", nullable=True, required=False, label="超时上报环节"),
                Field(
                    "satisfaction", "int", nullable=True, required=False, minimum=1, label="满意度"
                ),
            ),
            "Point",
            "工单",
            indexes=(("source", "external_id"), ("worker_id",), ("community_code",), ("deadline",)),
            live=True,
        ),
        Layer(
            "order_events",
            ("seq",),
            (
                Field("seq", "int", minimum=1, label="序号"),
                Field("order_id", "str", label="工单编号"),
                Field("at", "str", label="时间"),
                Field("who", "str", label="操作方"),
                Field("action", "str", label="操作"),
                Field("from_state", "str", nullable=True, required=False, label="原状态"),
                Field("to_state", "str", label="新状态"),
                Field("version", "int", minimum=1, label="版本"),
                Field("detail", "str", nullable=True, required=False, label="说明"),
            ),
            None,
            "工单记录",
            indexes=(("order_id",),),
            live=True,
            journal=True,
        ),
        Layer(
            "jobs",
            ("id",),
            (
                Field("id", "str", label="任务编号"),
                Field("kind", "str", label="类型"),
                Field(
                    "status", "str", choices=("queued", "running", "done", "failed"), label="状态"
                ),
                Field("owner", "str", label="发起方"),
                Field("runner", "str", label="执行进程"),
                Field("created", "str", label="创建时间"),
                Field("beat", "str", label="最近心跳"),
                Field("progress", "str", label="进度"),
                Field("result", "str", nullable=True, required=False, label="结果"),
                Field("error", "str", nullable=True, required=False, label="错误"),
            ),
            None,
            "后台任务",
            live=True,
        ),
        Layer(
            "province_runs",
            ("id",),
            (
                Field("id", "str", label="编号"),  # <county>:<stage>
                Field("county", "str", pattern=r"^\d{6}$", label="县级代码"),
                # base: the county's generated layers; results: grids, staffing, coverage
                Field("stage", "str", choices=("base", "results"), label="阶段"),
                # the settings and generator the stage ran with: a run with others redoes it
                Field("digest", "str", label="设置摘要"),
                Field("households", "int", minimum=0, label="户数"),
                Field("seconds", "float", minimum=0, label="用时秒"),
                Field("at", "str", label="完成时间"),
            ),
            None,
            "省级构建进度",
        ),
        Layer(
            "stale",
            ("id",),
            (
                Field("id", "str"),
                # what an edit made stale: "coverage:<type>" (its gaps too), "grids"
                # (their households), "quotas"; gone when that result is computed again
                Field("result", "str", label="待重算结果"),
                Field("cause", "str", label="原因"),
                Field("at", "str", label="时间"),
                Field("who", "str", label="修改人"),
            ),
            None,
            "待重算结果",
            indexes=(("result",),),
            live=True,
        ),
        Layer(
            "audit",
            ("id",),
            (
                Field("id", "str"),
                Field("at", "str"),
                Field("who", "str"),
                Field("action", "str"),
                Field("target", "str"),
                Field("detail", "str", nullable=True, required=False),
            ),
            None,
            "审计日志",
            live=True,
        ),
    ]
}


def layer(name: str) -> Layer:
    """The schema of layer ``name``, with a clear error for an unknown one."""
    try:
        return LAYERS[name]
    except KeyError:
        raise LayerNotFoundError(f"unknown layer {name!r}; layers: {', '.join(LAYERS)}") from None


def empty(name: str) -> pd.DataFrame:
    """An empty frame of layer ``name`` with the canonical dtypes."""
    spec = layer(name)
    df = pd.DataFrame({f.name: pd.Series([], dtype=f.dtype) for f in spec.fields})
    if spec.geometry is None:
        return df
    return gpd.GeoDataFrame(df, geometry=gpd.GeoSeries([], crs=STORAGE_CRS))


def conform(name: str, df: pd.DataFrame) -> pd.DataFrame:
    """Order and cast ``df`` to the canonical columns and dtypes of layer ``name``.

    Missing optional columns are added empty (or ``False`` for ``synthetic``); extra
    columns are dropped; the index is reset. Values must already be valid (see
    :func:`problems`).
    """
    spec = layer(name)
    out: dict[str, pd.Series] = {}
    n = len(df)
    for f in spec.fields:
        if f.name in df.columns:
            s = df[f.name].reset_index(drop=True)
        elif f.kind == "bool":
            s = pd.Series(np.zeros(n, dtype=bool))
        else:
            s = pd.Series([None] * n, dtype=object)
        if f.kind == "str":
            s = s.astype(object).where(s.notna(), None).astype("str")
        elif f.kind == "int" and f.nullable:
            s = pd.to_numeric(s).astype("Int64")
        elif f.kind == "bool":
            s = s.fillna(False).astype(bool)
        else:
            s = pd.to_numeric(s).astype(f.dtype)
        out[f.name] = s
    frame = pd.DataFrame(out)
    if spec.geometry is None:
        return frame
    geom = gpd.GeoSeries(df.geometry.values, crs=df.crs).reset_index(drop=True)
    if spec.geometry == "MultiPolygon":
        geom = gpd.GeoSeries(_to_multipolygon(geom.values), crs=geom.crs)
    return gpd.GeoDataFrame(frame, geometry=geom.rename("geometry"), crs=STORAGE_CRS)


def _to_multipolygon(geoms: np.ndarray) -> np.ndarray:
    geoms = np.asarray(geoms, dtype=object)
    single = shapely.get_type_id(geoms) == 3
    if single.any():
        geoms = geoms.copy()
        k = int(single.sum())
        geoms[single] = shapely.multipolygons(geoms[single], indices=np.arange(k))
    return geoms


def problems(name: str, df: pd.DataFrame, *, label_of: pd.Series | None = None) -> list[str]:
    """Every problem of ``df`` against layer ``name``'s columns, one line each.

    Checks missing required columns, values of the wrong type, missing values in
    non-nullable columns, codes of the wrong form, values out of range or not among the
    choices, and duplicate keys. ``label_of`` names each row in the messages (default:
    ``row N``, counted from 1 as people count rows).
    """
    spec = layer(name)
    out: list[str] = []
    labels = (
        label_of if label_of is not None else pd.Series([f"row {i + 1}" for i in range(len(df))])
    )
    labels = labels.reset_index(drop=True)
    df = df.reset_index(drop=True)
    missing = [f.name for f in spec.fields if f.required and f.name not in df.columns]
    if missing:
        out.append(
            f"missing column{'s' if len(missing) > 1 else ''}: {', '.join(missing)} "
            f"(expected columns: {', '.join(f.name for f in spec.fields if f.required)})"
        )
    for f in spec.fields:
        if f.name not in df.columns:
            continue
        s = df[f.name]
        na = (
            s.isna() | (s.astype(str).str.strip() == "")
            if s.dtype == object or f.kind == "str"
            else s.isna()
        )
        if not f.nullable and f.kind != "bool":
            for i in np.flatnonzero(na.to_numpy()):
                out.append(f"{labels[i]}: {f.name} is empty")
        present = ~na.to_numpy()
        if f.kind in ("int", "float"):
            num = pd.to_numeric(s.where(present), errors="coerce")
            bad = present & num.isna().to_numpy()
            if f.kind == "int":
                frac = present & ~bad & (np.mod(num.fillna(0).to_numpy(dtype=float), 1) != 0)
                bad = bad | frac
            for i in np.flatnonzero(bad):
                out.append(
                    f"{labels[i]}: {f.name} {s.iloc[i]!r} is not {'a whole number' if f.kind == 'int' else 'a number'}"
                )
            if f.minimum is not None:
                low = present & ~bad & (num.fillna(f.minimum).to_numpy(dtype=float) < f.minimum)
                for i in np.flatnonzero(low):
                    out.append(f"{labels[i]}: {f.name} is {s.iloc[i]} (must be ≥ {f.minimum:g})")
        elif f.kind == "str":
            text = s.astype(object).where(present, "").astype(str)
            if f.pattern:
                ok = text.str.match(f.pattern).to_numpy(dtype=bool)
                for i in np.flatnonzero(present & ~ok):
                    out.append(f"{labels[i]}: {f.name} {text.iloc[i]!r} {_pattern_hint(f.pattern)}")
            if f.choices:
                ok = text.isin(f.choices).to_numpy()
                for i in np.flatnonzero(present & ~ok):
                    out.append(
                        f"{labels[i]}: {f.name} {text.iloc[i]!r} is not one of {', '.join(f.choices)}"
                    )
    keys = [k for k in spec.key if k in df.columns]
    if keys and len(keys) == len(spec.key):
        dup = df.duplicated(subset=keys, keep="first").to_numpy()
        for i in np.flatnonzero(dup):
            value = "/".join(str(df[k].iloc[i]) for k in keys)
            out.append(f"{labels[i]}: duplicate {'/'.join(keys)} {value!r}")
    return out


def _pattern_hint(pattern: str) -> str:
    m = re.fullmatch(r"\^\\d\{(\d+)\}\$", pattern)
    if m:
        return f"is not a {m.group(1)}-digit code"
    return f"does not match {pattern}"


def check(name: str, df: pd.DataFrame, *, what: str | None = None) -> pd.DataFrame:
    """Validate and conform ``df`` to layer ``name``; raise one error listing every problem."""
    found = problems(name, df)
    spec = layer(name)
    if spec.geometry is not None:
        if not isinstance(df, gpd.GeoDataFrame):
            found.append(f"layer {name} needs geometry of type {spec.geometry}")
        else:
            found.extend(geometry_problems(spec, df.geometry))
    if found:
        raise ValidationError(what or name, found)
    return conform(name, df)


#: the geometry types a layer's geometry column accepts
GEOMETRY_TYPES: dict[str, set[str]] = {
    "Point": {"Point"},
    "LineString": {"LineString"},
    "Polygon": {"Polygon"},
    "MultiPolygon": {"Polygon", "MultiPolygon"},
}


def geometry_problems(
    spec: Layer, geoms: gpd.GeoSeries, *, labels: pd.Series | None = None
) -> list[str]:
    """Rows whose geometry is missing, empty, invalid or of the wrong type for ``spec``."""
    allowed = GEOMETRY_TYPES[spec.geometry or "Point"]
    labels = (
        labels if labels is not None else pd.Series([f"row {i + 1}" for i in range(len(geoms))])
    )
    out = []
    types = geoms.geom_type.to_numpy()
    missing = (geoms.isna() | geoms.is_empty).to_numpy()
    valid = geoms.is_valid.to_numpy()
    for i in range(len(geoms)):
        if missing[i]:
            out.append(f"{labels.iloc[i]}: geometry is empty")
        elif types[i] not in allowed:
            out.append(f"{labels.iloc[i]}: geometry is a {types[i]}, expected {spec.geometry}")
        elif not valid[i]:
            out.append(f"{labels.iloc[i]}: geometry is invalid")
    return out


#: the Python type of each field kind (a value cast for a store, a filter, a tag)
CASTS: dict[str, Any] = {"str": str, "int": int, "float": float, "bool": bool}


def missing(v: Any) -> bool:
    """Whether a value is absent: ``None``, ``pd.NA`` or a float NaN."""
    return v is None or v is pd.NA or (isinstance(v, float) and v != v)


def check_records(name: str, records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Validate a few rows given as dicts, in plain Python (no frames: the path of single
    row writes such as work orders); every problem in one error. Each row gets every
    column (missing optional ones as ``None``) and, for a layer with geometry, its
    ``geometry`` of the layer's type.
    """
    spec = layer(name)
    out, found = [], []
    allowed = GEOMETRY_TYPES.get(spec.geometry or "", set())
    for n, rec in enumerate(records, start=1):
        row: dict[str, Any] = {}
        for f in spec.fields:
            v = rec.get(f.name)
            if v is None or (isinstance(v, float) and v != v):
                if not f.nullable:
                    found.append(f"row {n}: {f.name} is missing")
                row[f.name] = None
                continue
            try:
                v = CASTS[f.kind](v.item() if isinstance(v, np.generic) else v)
            except (TypeError, ValueError):
                found.append(f"row {n}: {f.name} {v!r} is not a {f.kind}")
                continue
            if f.pattern and not re.fullmatch(f.pattern, str(v)):
                found.append(f"row {n}: {f.name} {v!r} {_pattern_hint(f.pattern)}")
            if f.choices and v not in f.choices:
                found.append(f"row {n}: {f.name} {v!r} is not one of {', '.join(f.choices)}")
            if f.minimum is not None and f.kind in ("int", "float") and v < f.minimum:
                found.append(f"row {n}: {f.name} {v!r} is below {f.minimum:g}")
            row[f.name] = v
        if spec.geometry:
            g = rec.get("geometry")
            if g is None or g.is_empty or not g.is_valid or g.geom_type not in allowed:
                found.append(f"row {n}: geometry must be a valid {spec.geometry}")
            row["geometry"] = g
        out.append(row)
    if found:
        raise ValidationError(f"rows for {name}", found)
    return out
