"""Session-scoped real servers shared by every test: Mosquitto and PostgreSQL.

Registered in ``tests/conftest.py``: ask for the ``mosquitto`` or ``postgres`` fixture.
A test that kills its server starts its own (``Mosquitto(dir)``, ``Postgres(dir)``).

PostgreSQL is Debian's server (``/usr/lib/postgresql/<version>/bin``): ``initdb`` and
``pg_ctl`` in a temporary directory on a free port with trust authentication on
loopback; as root it runs as the ``postgres`` user (``runuser``), since ``initdb``
refuses root. ``postgres.new_database()`` gives each test a fresh database.
Without the server (or psycopg) the tests that need it skip, naming what to install.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gateway.helpers import Mosquitto, free_port, wait_for

PG_MISSING = "PostgreSQL is not installed (apt-get install postgresql)"


def pg_bindir() -> Path | None:
    """The newest installed PostgreSQL server's bin directory, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def pg_available() -> str | None:
    """None if PostgreSQL tests can run here, else the reason they cannot."""
    if pg_bindir() is None:
        return PG_MISSING
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install 'psycopg[binary]')"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "no 'postgres' user to run the server as (apt-get install postgresql creates it)"
    return None


class Postgres:
    """A real PostgreSQL server in its own directory on a free loopback port.

    ``workdir`` must be reachable by the ``postgres`` user when run as root (pytest's
    ``tmp_path`` is not: its parents are private); by default a fresh ``/tmp`` directory.
    """

    _ids = itertools.count(1)

    def __init__(self, workdir: Path | None = None) -> None:
        bindir = pg_bindir()
        assert bindir is not None, PG_MISSING
        self.bin = bindir
        self.dir = Path(workdir or tempfile.mkdtemp(prefix="hydrolink-pg-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        self.data = self.dir / "data"
        self.port = free_port()
        self.user = "postgres"
        self._as: list[str] = []
        if os.geteuid() == 0:
            self._as = ["runuser", "-u", "postgres", "--"]
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", self.user, "--auth=trust", "-E", "UTF8",
                  "--no-sync", "--no-instructions")

    def _run(self, tool: str, *args: str) -> None:
        r = subprocess.run([*self._as, str(self.bin / tool), *args], capture_output=True, text=True)
        if r.returncode:
            raise AssertionError(f"{tool} failed: {r.stderr.strip() or r.stdout.strip()}")

    def start(self) -> Postgres:
        """Start the server (again) and wait until it accepts connections."""
        # fsync off: the tests never crash the machine, only the server, and the OS keeps what
        # it was given. synchronous_commit stays on: with it off a COMMIT returns before its WAL
        # is written, and a server crash (pg_ctl -m immediate) loses commits the center acked.
        opts = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
                " -c full_page_writes=off -c max_connections=200")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.dir / "server.log"), "-o", opts,
                  "-w", "-t", "60", "start")
        wait_for(self._ready, 30, "postgres to accept connections", step=0.1)
        return self

    def _ready(self) -> bool:
        import psycopg

        try:
            psycopg.connect(self.url("postgres"), connect_timeout=2).close()
        except psycopg.OperationalError:
            return False
        return True

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``; ``immediate`` is a crash without cleanup)."""
        with contextlib.suppress(AssertionError):
            self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def url(self, database: str) -> str:
        """The connection URL of one of the server's databases."""
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """Create a fresh empty database; returns its URL."""
        import psycopg

        name = f"t{os.getpid()}_{next(self._ids)}"
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def remove(self) -> None:
        """Stop the server and delete its directory."""
        self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """One PostgreSQL server for the whole run; take a fresh database with ``new_database()``."""
    reason = pg_available()
    if reason:
        pytest.skip(reason)
    pg = Postgres().start()
    yield pg
    pg.remove()


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """One Mosquitto broker for the whole run (use unique topics or client ids per test)."""
    if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
        pytest.skip("mosquitto is not installed (apt-get install mosquitto mosquitto-clients)")
    m = Mosquitto(tmp_path_factory.mktemp("mosquitto"))
    m.start()
    yield m
    m.stop()
