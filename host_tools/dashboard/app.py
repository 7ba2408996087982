"""The Starlette app: routes, and the shared state they use."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from . import actions, users, views
from .csrf import Tokens
from .database import Rollups, StationsCache, Stores
from .overview import OverviewCache
from .sessions import LoginLimiter, Sessions
from .web import Dashboard

log = logging.getLogger("hydrolink.dashboard")
LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "::1", "[::1]", "testserver"]


def _lifespan(stores: Stores) -> Callable[[Starlette], contextlib.AbstractAsyncContextManager[None]]:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        app.state.dash.extra["overview"].close()
        stores.close()

    return lifespan


def create_app(db_url: str, *, no_auth: bool = False, gateway_spool: str | None = None,
               registry: Any = None, session_ttl_s: float = 8 * 3600,
               clock: Callable[[], float] = time.time, secure_cookies: bool = False,
               overview_ttl_s: float = 2.0, login_limit: int = 5,
               login_window_s: float = 300.0, stations_ttl_s: float = 10.0) -> Starlette:
    """The dashboard app on the center database at ``db_url``.

    ``no_auth``: nobody signs in and everyone is an operator, for a loopback address only;
    the app then also refuses any ``Host`` header that is not a loopback name (DNS
    rebinding). ``clock`` drives session expiry and the login rate limit (tests)."""
    stores = Stores(db_url)
    secret = users.secret(stores.get().db)
    dash = Dashboard(
        stores=stores, sessions=Sessions(secret, session_ttl_s, clock),
        tokens=Tokens(secret, max_age=int(session_ttl_s), clock=clock),  # a form lives as long as a login
        limiter=LoginLimiter(login_limit, login_window_s, clock), no_auth=no_auth,
        secure_cookies=secure_cookies, gateway_spool=gateway_spool, registry=registry,
        clock=clock)
    dash.extra["overview"] = OverviewCache(stores, overview_ttl_s, clock)
    dash.extra["rollups"] = dash.extra["overview"].rollups = Rollups()
    dash.extra["stations"] = StationsCache(stores, stations_ttl_s)
    routes = [
        Route("/", views.overview),
        Route("/overview/table", views.overview_table),
        Route("/station/{station}", views.station_page),
        Route("/station/{station}/command", actions.queue_command, methods=["POST"]),
        Route("/alarms", views.alarms_page),
        Route("/alarms/{alarm}/ack", actions.acknowledge, methods=["POST"]),
        Route("/login", actions.login_page),
        Route("/login", actions.login, methods=["POST"]),
        Route("/logout", actions.logout, methods=["POST"]),
        Route("/lang", actions.set_lang, methods=["POST"]),
    ]
    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=LOOPBACK_HOSTS)] if no_auth else []

    async def unavailable(request: Request, exc: Exception) -> Response:
        log.error("request failed", extra={"fields": {"path": request.url.path,
                                                       "error": f"{type(exc).__name__}: {exc}"}})
        return HTMLResponse("<h1>503</h1><p>The center database is not answering; this page "
                            "tries again when reloaded.</p>", status_code=503)

    app = Starlette(routes=routes, middleware=middleware,
                    exception_handlers={404: views.not_found, Exception: unavailable},
                    lifespan=_lifespan(stores),
                    max_body_size=64 * 1024)
    app.state.dash = dash
    return app
