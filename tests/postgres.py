"""A throwaway PostgreSQL server for tests: Debian's binaries, a temporary cluster.

`postgres_server` (session scope) runs initdb and postgres in a temporary directory,
listening on 127.0.0.1 on a free port with its unix socket in that directory, creates
the database "bot", and stops and deletes everything at the end of the session. Tests
that use it are skipped, with the reason, where no PostgreSQL server binary exists.

PostgreSQL refuses to run as root, so under root the server runs as the "postgres"
user (which Debian's package creates) through runuser; otherwise as the current user.
Clients connect over TCP with trust authentication as the superuser "postgres".
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import free_port

SUPERUSER = "postgres"


def find_server_binaries() -> Path | None:
    """The bin directory of the newest installed PostgreSQL server, or None."""
    found = [p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/postgres")]
    if found:
        return max(found, key=lambda d: int(d.parent.name) if d.parent.name.isdigit() else 0)
    on_path = shutil.which("pg_ctl")
    if on_path and (Path(on_path).parent / "initdb").exists():
        return Path(on_path).parent
    return None


class PostgresServer:
    """A running temporary cluster; `url` is its database "bot"."""

    def __init__(self, bin_dir: Path, run_as: str | None) -> None:
        self.bin_dir = bin_dir
        self.run_as = run_as  # a user to runuser to, when we are root
        self.root = Path(tempfile.mkdtemp(prefix="store-postgres-"))
        self.data_dir = self.root / "data"
        self.socket_dir = self.root / "socket"
        self.log_file = self.root / "server.log"
        self.port = free_port()
        self.host = "127.0.0.1"
        self._names = itertools.count(1)

    def url(self, database: str = "bot") -> str:
        """A postgresql:// URL for `database` as the superuser."""
        return f"postgresql://{SUPERUSER}@{self.host}:{self.port}/{database}"

    def _run(self, *command: str | Path) -> None:
        prefix = ["runuser", "-u", self.run_as, "--"] if self.run_as else []
        argv = [*prefix, *(str(part) for part in command)]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            log = self.log_file.read_text() if self.log_file.exists() else ""
            raise RuntimeError(
                f"{' '.join(argv)} failed ({done.returncode}):\n{done.stdout}{done.stderr}{log}"
            )

    def start(self) -> None:
        """initdb, start the server and create the database "bot"."""
        # The postgres user must reach its directories inside our private temp dir.
        self.root.chmod(0o755)
        for directory in (self.data_dir, self.socket_dir):
            directory.mkdir(mode=0o700)
            if self.run_as:
                account = pwd.getpwnam(self.run_as)
                os.chown(directory, account.pw_uid, account.pw_gid)
        if self.run_as:
            self.log_file.touch()
            account = pwd.getpwnam(self.run_as)
            os.chown(self.log_file, account.pw_uid, account.pw_gid)
        self._run(
            self.bin_dir / "initdb", "-D", self.data_dir, "-U", SUPERUSER,
            "--auth=trust", "--encoding=UTF8", "--no-sync",
        )  # fmt: skip
        self.resume()
        self.create_database("bot")

    def resume(self) -> None:
        """Start the server process on the existing cluster (after `halt`)."""
        # fsync off: a test cluster need not survive a power cut, and it is much faster.
        options = f"-h {self.host} -p {self.port} -k {self.socket_dir} -c fsync=off"
        self._run(
            self.bin_dir / "pg_ctl", "-D", self.data_dir, "-l", self.log_file,
            "-o", options, "-w", "-t", "60", "start",
        )  # fmt: skip

    def halt(self) -> None:
        """Stop the server process as a crash would (immediate), keeping the cluster."""
        self._run(self.bin_dir / "pg_ctl", "-D", self.data_dir, "-m", "immediate", "-w",
                  "stop")  # fmt: skip

    def _client(self, program: str, *args: str) -> None:
        done = subprocess.run(
            [str(self.bin_dir / program), "-h", self.host, "-p", str(self.port),
             "-U", SUPERUSER, *args],
            capture_output=True, text=True, timeout=60, check=False,
            env={**os.environ, "PGCONNECT_TIMEOUT": "10"},
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"{program} {' '.join(args)} failed: {done.stderr.strip()}")

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database (a fresh name unless given); returns its URL."""
        name = name or f"test_{next(self._names)}"
        self._client("createdb", name)
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop a database, disconnecting whoever is still connected to it."""
        self._client("dropdb", "--force", "--if-exists", name)

    def sql(self, database: str, statement: str) -> None:
        """Run SQL as the superuser in `database` (for set-up the store cannot do)."""
        self._client("psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", database,
                     "-c", statement)  # fmt: skip

    def stop(self) -> None:
        """Stop the server and delete the cluster."""
        try:
            if (self.data_dir / "postmaster.pid").exists():
                # Immediate: skip the shutdown checkpoint, as the cluster is deleted next.
                self.halt()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def _run_as_user() -> str | None:
    """Who the server runs as: None for ourselves, or the postgres user under root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SUPERUSER)
    except KeyError:
        pytest.skip("running as root and there is no 'postgres' user to run PostgreSQL as")
    if shutil.which("runuser") is None:
        pytest.skip("running as root and runuser is missing, so PostgreSQL cannot start")
    return SUPERUSER


def _running_server() -> Iterator[PostgresServer]:
    bin_dir = find_server_binaries()
    if bin_dir is None:
        pytest.skip("no PostgreSQL server binaries (apt-get install postgresql)")
    server = PostgresServer(bin_dir, _run_as_user())
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A running PostgreSQL for the whole session; skips where none is installed."""
    yield from _running_server()


@pytest.fixture
def own_postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL of this test's own, which it may halt and resume; skips likewise."""
    yield from _running_server()
