"""What every request goes through: its session, its user, the permission check, CSRF.

Each endpoint is wrapped by :func:`guarded` with the action it performs and the
resource it acts on. The wrapper reads the session cookie, finds the user (a removed
user is signed out), asks :func:`~host_tools.dashboard.permissions.check`, and for
a POST checks the origin headers and spends the form's one-use CSRF token (in the
database, so every worker process knows it is spent). A refusal is logged there and
answered with a page (or, for a page that needs a login, a redirect to the login page);
no endpoint runs for a refused request.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio.to_thread
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from . import users
from .csrf import FIELD, CsrfError, Tokens, origin_problem
from .database import Stores
from .i18n import translator
from .permissions import Refused, Resource, User, check, refusal
from .sessions import COOKIE, LoginLimiter, Session, Sessions

TEMPLATES = Path(__file__).with_name("templates")


@dataclass
class Dashboard:
    """The app's configuration and shared state (one per process)."""

    stores: Stores
    sessions: Sessions
    tokens: Tokens
    limiter: LoginLimiter
    no_auth: bool = False
    secure_cookies: bool = False
    gateway_spool: str | None = None
    registry: Any = None
    clock: Callable[[], float] = time.time
    env: Environment = field(default_factory=lambda: Environment(
        loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]),
        trim_blocks=True, lstrip_blocks=True, auto_reload=False))
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Ctx:
    """One request, as the endpoints see it."""

    request: Request
    dash: Dashboard
    session: Session
    user: User | None
    dirty: bool = False           # the session changed: send the cookie again
    form: FormData | None = None

    @property
    def t(self) -> Callable[..., str]:
        return translator(self.session.lang)

    @property
    def client(self) -> str:
        c = self.request.client
        return c.host if c else "-"

    def set_session(self, s: Session) -> None:
        self.session, self.dirty = s, True

    def token(self) -> str:
        """A fresh one-use CSRF token for a form on this page."""
        return self.dash.tokens.issue(self.session.sid)

    def render_text(self, template: str, **values: Any) -> str:
        return self.dash.env.get_template(template).render(
            t=self.t, lang=self.session.lang, user=self.user, csrf_field=FIELD, ctx=self,
            path=self.request.url.path, **values)

    def render(self, template: str, status: int = 200, **values: Any) -> Response:
        return self.finish(HTMLResponse(self.render_text(template, **values), status_code=status))

    def finish(self, response: Response) -> Response:
        if self.dirty:
            response.set_cookie(COOKIE, self.dash.sessions.dump(self.session), httponly=True,
                                samesite="strict", secure=self.dash.secure_cookies,
                                max_age=int(self.dash.sessions.ttl_s) + 60)
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Frame-Options"] = "DENY"  # no clickjacking of the forms
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        return response

    async def run(self, fn: Callable[..., Any], *args: Any, retry: bool = True) -> Any:
        """Run blocking store work in a worker thread (each has its own store). A store that
        failed is dropped, and with ``retry`` the work runs once more on a new connection, so
        each thread's connection broken by a database restart costs no request."""
        stores = self.dash.stores

        def call() -> Any:
            try:
                return fn(*args)
            except Exception:
                stores.discard()
                if not retry:
                    raise
            return fn(*args)

        return await anyio.to_thread.run_sync(call)


def _load_user(dash: Dashboard, s: Session) -> User | None:
    if s.uid is None:
        return None
    account = users.get_user_by_id(dash.stores.get().db, s.uid)
    return User(account.name, account.role) if account and account.name == s.user else None


async def context(request: Request) -> Ctx:
    """The request's session (a new anonymous one if it has none) and user."""
    dash: Dashboard = request.app.state.dash
    session, problem = dash.sessions.load(request.cookies.get(COOKIE))
    ctx = Ctx(request, dash, session or dash.sessions.new(), None, dirty=session is None)
    if problem:
        refusal(problem, user=None, action="session", resource=request.url.path,
                client=ctx.client, status=401)
        ctx.dirty = True
    if dash.no_auth:
        ctx.user = User("local", "operator")
    elif ctx.session.uid is not None:
        ctx.user = await ctx.run(_load_user, dash, ctx.session)
        if ctx.user is None:
            refusal("user no longer exists", user=None, action="session",
                    resource=request.url.path, client=ctx.client, status=401)
            ctx.set_session(ctx.session.signed_out())
    return ctx


async def check_form(ctx: Ctx) -> FormData:
    """The POSTed form, after the origin and one-use token checks (raises Refused)."""
    req = ctx.request
    why = origin_problem(req.headers, req.url.scheme, req.headers.get("host", ""))
    form = await req.form()
    if why is None:
        tokens = ctx.dash.tokens
        try:
            nonce = tokens.check(str(form.get(FIELD) or ""), ctx.session.sid)
        except CsrfError as e:
            why = str(e)
        else:
            if not await ctx.run(lambda: tokens.spend(ctx.dash.stores.get().db, nonce)):
                why = "form was already submitted (replay)"
    if why is not None:
        raise refusal(f"CSRF: {why}", user=ctx.user, action="post", resource=req.url.path,
                      client=ctx.client, status=403)
    ctx.form = form
    return form


def refused_response(ctx: Ctx, e: Refused) -> Response:
    if e.status == 401 and ctx.request.method == "GET":
        target = ctx.request.url.path + (f"?{ctx.request.url.query}" if ctx.request.url.query else "")
        return ctx.finish(RedirectResponse(f"/login?next={quote(target)}", status_code=303))
    return ctx.render("refused.html", status=e.status, reason=e.reason)


Endpoint = Callable[[Ctx], Awaitable[Response]]


def guarded(action: str, resource: Callable[[Request], Resource] | Resource,
            form: bool = False) -> Callable[[Endpoint], Callable[[Request], Awaitable[Response]]]:
    """Wrap an endpoint: session, ``check(user, action, resource)``, CSRF for forms."""

    def wrap(fn: Endpoint) -> Callable[[Request], Awaitable[Response]]:
        @functools.wraps(fn)
        async def endpoint(request: Request) -> Response:
            ctx = await context(request)
            try:
                res = resource(request) if callable(resource) else resource
                check(ctx.user, action, res, ctx.client)
                if form:
                    await check_form(ctx)
                return await fn(ctx)
            except Refused as e:
                return refused_response(ctx, e)
        return endpoint

    return wrap


def station_resource(request: Request) -> Resource:
    try:
        return Resource("station", int(request.path_params["station"]))
    except (KeyError, ValueError):
        raise Refused(404, "no such station") from None


def alarm_resource(request: Request) -> Resource:
    try:
        return Resource("alarm", int(request.path_params["alarm"]))
    except (KeyError, ValueError):
        raise Refused(404, "no such alarm") from None
