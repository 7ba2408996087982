"""The forms (POST): sign in and out, language, acknowledge an alarm, queue a command.

Every form passes the CSRF checks in :func:`~host_tools.dashboard.web.guarded` (or, for
the login form, :func:`~host_tools.dashboard.web.check_form` directly), and every
refusal is logged. Commands go into the gateway's spool through the same
``Spool.queue_command`` and the same checks as ``hydrolink command``.
"""

from __future__ import annotations

import logging
import time
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from protocol.config_keys import check_setting

from . import users
from .permissions import ACK, COMMAND, Refused, refusal
from .sessions import LANGS
from .web import Ctx, alarm_resource, check_form, context, guarded, refused_response, station_resource

log = logging.getLogger("hydrolink.dashboard")
COMMAND_EXPIRES_S = 7 * 86400  # as hydrolink command's default --expires 7d


def _safe_next(target: str | None) -> str:
    """Only a path on this site (no ``//host`` or scheme): no open redirect."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


async def login_page(request: Request) -> Response:
    ctx = await context(request)
    if ctx.user is not None:
        return ctx.finish(RedirectResponse(_safe_next(request.query_params.get("next")), 303))
    return ctx.render("login.html", next=_safe_next(request.query_params.get("next")), error="")


async def login(request: Request) -> Response:
    ctx = await context(request)
    try:
        form = await check_form(ctx)
    except Refused as e:
        return refused_response(ctx, e)
    name = str(form.get("user") or "").strip()
    password = str(form.get("password") or "")
    target = _safe_next(str(form.get("next") or "/"))
    limiter = ctx.dash.limiter
    keys = (f"user:{name}", f"client:{ctx.client}")
    wait, attempt = await ctx.run(lambda: limiter.begin(ctx.dash.stores.get().db, keys))
    if wait > 0:
        refusal("login rate-limited", user=None, action="login", resource=f"user:{name}",
                client=ctx.client, status=429)
        resp = ctx.render("login.html", status=429, next=target,
                          error=ctx.t("too_many", s=int(wait) + 1))
        resp.headers["Retry-After"] = str(int(wait) + 1)
        return resp
    # the worker thread's own store (stores.get() here would be the event loop thread's)
    account = await ctx.run(lambda: users.verify(ctx.dash.stores.get().db, name, password))
    if account is None:  # the attempt's rows stay: a failure
        refusal("wrong user name or password", user=None, action="login",
                resource=f"user:{name}", client=ctx.client, status=401)
        return ctx.render("login.html", status=401, next=target, error=ctx.t("bad_login"))
    await ctx.run(lambda: limiter.succeeded(ctx.dash.stores.get().db, attempt, keys[0]))
    ctx.set_session(ctx.session.signed_in(account.name, account.id, ctx.dash.sessions.expiry()))
    log.info("login", extra={"fields": {"user": account.name, "role": account.role,
                                        "client": ctx.client}})
    return ctx.finish(RedirectResponse(target, status_code=303))


async def logout(request: Request) -> Response:
    ctx = await context(request)
    try:
        await check_form(ctx)
    except Refused as e:
        return refused_response(ctx, e)
    ctx.set_session(ctx.session.signed_out())
    return ctx.finish(RedirectResponse("/login", status_code=303))


async def set_lang(request: Request) -> Response:
    ctx = await context(request)
    try:
        form = await check_form(ctx)
    except Refused as e:
        return refused_response(ctx, e)
    lang = str(form.get("lang") or "")
    if lang in LANGS:
        from dataclasses import replace

        ctx.set_session(replace(ctx.session, lang=lang))
    return ctx.finish(RedirectResponse(_safe_next(str(form.get("next") or "/")), 303))


@guarded(ACK, alarm_resource, form=True)
async def acknowledge(ctx: Ctx) -> Response:
    alarm = int(ctx.request.path_params["alarm"])
    assert ctx.user is not None and ctx.form is not None
    who = ctx.user.name
    done = await ctx.run(lambda: ctx.dash.stores.get().ack_center_alarm(alarm, who, ctx.dash.clock()))
    if not done:
        raise Refused(404, f"no alarm {alarm}")
    log.info("alarm acknowledged", extra={"fields": {"alarm": alarm, "user": who,
                                                     "client": ctx.client}})
    ctx.dash.extra["overview"].invalidate()
    back = _safe_next(str(ctx.form.get("next") or "/alarms"))
    return ctx.finish(RedirectResponse(back, status_code=303))


def build(words: list[str], start: str | None, end: str | None) -> tuple[int, Any]:
    """The op and args of a command typed in the form, checked as ``hydrolink command``
    checks it (and every ``key=value`` against protocol/config_keys.csv)."""
    from host_tools.gateway.commands import SET_CONFIG, build_command

    op, args = build_command(words, start or None, end or None)
    if op == SET_CONFIG:
        from host_tools.gateway.commands import CommandError

        for key, value in args.items():
            why = check_setting(key, value, remote=True)
            if why is not None:
                raise CommandError(why)
    return op, args


def _queue(path: str, station: int, op: int, args: Any, now: float) -> int:
    from host_tools.gateway.spool import Spool

    spool = Spool(path)
    try:
        queue: Any = spool.queue_command
        return int(queue(station, op, args, now=now, expires=now + COMMAND_EXPIRES_S))
    finally:
        spool.close()


@guarded(COMMAND, station_resource, form=True)
async def queue_command(ctx: Ctx) -> Response:
    from host_tools.gateway.commands import CommandError
    from host_tools.gateway.spool import SpoolError

    station = int(ctx.request.path_params["station"])
    assert ctx.user is not None and ctx.form is not None
    form = ctx.form
    words = str(form.get("command") or "").split()
    back = f"/station/{station}"
    path = ctx.dash.gateway_spool
    if not path:
        raise Refused(409, ctx.t("no_spool"))
    meta = await ctx.run(ctx.dash.extra["stations"].get, station)
    if meta is None:
        raise Refused(404, f"no station {station}")
    try:
        op, args = build(words, str(form.get("from") or ""), str(form.get("to") or ""))
        cid = await ctx.run(_queue, path, station, op, args, time.time(), retry=False)
    except (CommandError, SpoolError) as e:
        return ctx.finish(RedirectResponse(f"{back}?notice={quote(str(e))}", status_code=303))
    log.info("command queued", extra={"fields": {"station": station, "id": cid, "op": op,
                                                 "user": ctx.user.name, "client": ctx.client}})
    notice = f"{ctx.t('queued')} #{cid}"
    return ctx.finish(RedirectResponse(f"{back}?notice={quote(notice)}", status_code=303))
