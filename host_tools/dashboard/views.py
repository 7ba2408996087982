"""The pages: overview, station, alarms (GET). Actions (POST) are in ``actions``."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from host_tools.center.model import CenterAlarm
from protocol.elements import BY_NAME, COMMAND_OPS, RESULT_CODES

from . import stationdata as sd
from .charts import hydrograph_svg, small_line_svg
from .database import Rollups, StationsCache
from .overview import OverviewCache, fmt_value
from .permissions import ACK, COMMAND, FLEET, VIEW, Refused, Resource, allowed
from .status import LABEL_KEY
from .timefmt import fmt_time, station_zone, zone
from .web import Ctx, guarded, station_resource

_MARK = "\x00table\x00"
SPANS = {"24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400}
SPAN_LABEL = {"24h": "h24", "7d": "d7", "30d": "d30"}


def _cache(ctx: Ctx) -> OverviewCache:
    cache: OverviewCache = ctx.dash.extra["overview"]
    return cache


def _stations(ctx: Ctx) -> StationsCache:
    cache: StationsCache = ctx.dash.extra["stations"]
    return cache


def _table(ctx: Ctx) -> tuple[str, bytes, int]:
    """The overview table (HTML) in this session's language, rendered once per version; its
    digest and how many stations it lists."""
    cache = _cache(ctx)
    snap = cache.get()
    key = (snap.digest, ctx.session.lang)
    html = cache.renders.get(key)
    if html is None:  # each row rendered once while it stays the same (most do, 2 s later)
        row = ctx.dash.env.get_template("_overview_row.html")
        t, lang = ctx.t, ctx.session.lang
        body = "".join(cache.row_html(r, lang, lambda r: row.render(t=t, r=r, labels=LABEL_KEY))
                       for r in snap.rows)
        html = ctx.dash.env.get_template("_overview_table.html").render(t=t, body=body).encode()
        cache.renders[key] = html
    return snap.digest, html, len(snap.rows)


@guarded(VIEW, FLEET)
async def overview(ctx: Ctx) -> Response:
    digest, table, count = await ctx.run(_table, ctx)
    # the page around the shared table (its forms carry this session's tokens), and the
    # table's bytes as rendered once for every viewer
    head, _, tail = ctx.render_text("overview.html", digest=digest, table=_MARK, count=count).partition(_MARK)
    return ctx.finish(Response(head.encode() + table + tail.encode(), media_type="text/html"))


@guarded(VIEW, FLEET)
async def overview_table(ctx: Ctx) -> Response:
    """The table alone, for the page's poll: 204 while the shown version is current."""
    digest, table, _ = await ctx.run(_table, ctx)
    if ctx.request.query_params.get("v") == digest:
        return ctx.finish(Response(status_code=204))
    return ctx.finish(HTMLResponse(table, headers={"X-Overview-Version": digest}))


def _station_values(ctx: Ctx, station: int, span: str) -> dict[str, Any] | None:
    store = ctx.dash.stores.get()
    meta = _stations(ctx).get(station)
    if meta is None:
        return None
    now = int(ctx.dash.clock())
    start = now - SPANS[span]
    tz = station_zone(meta.timezone)
    if sd.uses_rollup(meta, start, now):
        rollups: Rollups = ctx.dash.extra["rollups"]
        rollups.fresh_for(store, station)
    d = sd.read_page(store, meta, start, now)
    chart = hydrograph_svg(d.level, d.rain, start, now, tz, meta.stages, meta.record_interval_s, ctx.t,
                           [(a.raised, a.kind) for a in d.center_alarms])
    comp = [(e, got, expected, 100.0 * got / expected if expected else None)
            for e, got, expected in d.completeness]
    events = [(fmt_time(int(r[1]), tz, seconds=True), r[2], _short(r[5])) for r in reversed(d.events)]
    station_alarms = [(fmt_time(int(r[0]), tz, seconds=True), r[1], r[2], r[3], r[4], r[5])
                      for r in reversed(d.station_alarms)]
    alarms = [_alarm_view(a, tz) for a in reversed(d.center_alarms)]
    latest = d.latest
    battery, clock = d.battery, d.clock
    return {
        "meta": meta, "span": span, "spans": SPANS, "span_label": SPAN_LABEL, "chart": chart,
        "zone": zone(tz, now), "completeness": comp,
        "latest": [(e, fmt_value(e, o.value), BY_NAME[e].unit if e in BY_NAME else "", o.quality,
                    fmt_time(o.time, tz)) for e, o in sorted(latest.items())],
        "battery_svg": small_line_svg(battery.points, start, now, tz, ctx.t("battery"), "V", "battery",
                                      battery.n),
        "clock_svg": small_line_svg(clock.points, start, now, tz, ctx.t("clock_offset"), "s", "clock_offset",
                                    clock.n),
        "events": events, "station_alarms": station_alarms, "alarms": alarms,
        "commands": _commands(ctx, station, tz),
    }


def _short(payload: str, limit: int = 160) -> str:
    try:
        text = json.dumps(json.loads(payload), ensure_ascii=False)
    except ValueError:
        text = payload
    return text if len(text) <= limit else text[:limit] + "…"


def _alarm_view(a: CenterAlarm, tz: Any) -> dict[str, Any]:
    return {"id": a.id, "station": a.station, "kind": a.kind, "state": a.state,
            "raised": fmt_time(a.raised, tz, seconds=True),
            "cleared": fmt_time(a.cleared, tz, seconds=True), "value": a.value,
            "threshold": a.threshold, "detail": a.detail or "", "acked_by": a.acked_by,
            "acked_at": fmt_time(a.acked_at, tz, seconds=True)}


def _commands(ctx: Ctx, station: int, tz: Any) -> list[dict[str, Any]] | None:
    path = ctx.dash.gateway_spool
    if not path:
        return None
    from host_tools.gateway.spool import Spool, SpoolError

    try:
        spool = Spool(path, readonly=True)
    except SpoolError:
        return []
    try:
        rows = spool.commands(station)
    finally:
        spool.close()
    out = []
    for r in reversed(rows):
        ended = getattr(r, "ended", None)  # expired / cancelled (newer spools)
        if r.result is None and ended:
            state = str(ended)
        elif r.result is None:
            state = "waiting" if r.sends == 0 else f"sent x{r.sends}"
        else:
            state = RESULT_CODES[r.result] if 0 <= r.result < len(RESULT_CODES) else str(r.result)
        op = COMMAND_OPS[r.op] if 0 < r.op < len(COMMAND_OPS) else f"op{r.op}"
        out.append({"id": r.id, "op": op, "args": "" if r.args is None else json.dumps(r.args),
                    "queued": fmt_time(r.queued, tz, seconds=True), "state": state,
                    "detail": "" if r.detail is None else json.dumps(r.detail, ensure_ascii=False),
                    "done": fmt_time(r.done, tz, seconds=True)})
    return out


@guarded(VIEW, station_resource)
async def station_page(ctx: Ctx) -> Response:
    station = int(ctx.request.path_params["station"])
    span = ctx.request.query_params.get("span", "24h")
    if span not in SPANS:
        span = "24h"
    values = await ctx.run(_station_values, ctx, station, span)
    if values is None:
        raise Refused(404, f"no station {station}")
    return ctx.render("station.html", **values,
                      may_command=allowed(ctx.user, COMMAND, Resource("station", station)),
                      may_ack=allowed(ctx.user, ACK, Resource("station", station)),
                      notice=ctx.request.query_params.get("notice", ""))


def _alarms(ctx: Ctx) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    store = ctx.dash.stores.get()
    now = ctx.dash.clock()
    metas = _stations(ctx).all()
    recent = sorted(store.center_alarms(start=now - 7 * 86400), key=lambda a: (a.raised, a.id),
                    reverse=True)
    views = []
    for a in recent[:500]:
        meta = metas.get(a.station)
        v = _alarm_view(a, station_zone(meta.timezone if meta else None))
        v["name"] = meta.name if meta else str(a.station)
        views.append(v)
    return [v for v in views if v["state"] == "active"], [v for v in views if v["state"] != "active"]


@guarded(VIEW, FLEET)
async def alarms_page(ctx: Ctx) -> Response:
    active, recent = await ctx.run(_alarms, ctx)
    return ctx.render("alarms.html", active=active, recent=recent,
                      may_ack=allowed(ctx.user, ACK, FLEET),
                      notice=ctx.request.query_params.get("notice", ""))


async def not_found(request: Request, exc: Exception) -> Response:
    return HTMLResponse("<h1>404</h1>", status_code=404)
