"""The center dashboard: a live web page over the center store, with who may see and act.

One module per concern, as Datasette lays itself out: ``users`` (accounts and
password hashes), ``permissions`` (the one ``allowed`` question), ``csrf``,
``sessions`` (signed cookies, login rate limit), ``database`` (the reads the
pages need), ``status`` (a station's state), ``charts`` (server-side SVG),
``i18n``, ``views`` (pages), ``app`` (the Starlette app) and ``main`` (the CLI).
"""
