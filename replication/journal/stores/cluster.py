"""A throwaway PostgreSQL cluster: for the tests, the benchmark and the demo.

:class:`Cluster` runs Debian's (or any) PostgreSQL server binaries: ``initdb``
into a fresh directory, ``pg_ctl start`` listening on ``127.0.0.1`` at a free
port and on a unix socket inside that directory, and at the end ``pg_ctl stop``
and the directory removed. The server refuses to run as root, so when this
process is root every command runs as an unprivileged user (``postgres`` when
it exists, else ``nobody``) through ``runuser``, and the directory is handed
to that user. Nothing here imports psycopg: a cluster is only processes and
files, and the URL it gives is what a journal connects to.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Self

__all__ = ["Cluster", "ClusterError", "find_binaries"]

#: Where Debian's packages put each major version's binaries.
_DEBIAN_GLOB = "/usr/lib/postgresql/*/bin"
#: Seconds a start, stop or restart may take before it counts as failed.
_PATIENCE = 60


class ClusterError(RuntimeError):
    """The cluster could not be made, started or stopped: the message says which step, and why."""


def find_binaries() -> Path | None:
    """Return the directory holding ``initdb`` and ``pg_ctl``: on ``PATH``, else Debian's newest."""
    found = shutil.which("initdb")
    if found is not None and shutil.which("pg_ctl") is not None:
        return Path(found).resolve().parent
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda path: int(path.parent.parent.name) if path.parent.parent.name.isdigit() else 0,
    )
    return candidates[-1].parent if candidates else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _server_user() -> str | None:
    """Return the user to run the server as: ``None`` when this process is not root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise ClusterError("running as root, and neither user 'postgres' nor 'nobody' exists")


class Cluster:
    """One throwaway PostgreSQL cluster; a context manager that starts and removes it.

    ``listen`` is the TCP address it listens on (``127.0.0.1``; a test that
    runs hosts in network namespaces adds the bridge's address with
    ``extra_listen``, and lets its subnet in with ``trusted_networks``: initdb's
    trust authentication covers only loopback). ``fsync`` stays on unless told:
    a journal is acknowledged after a durable commit, and a benchmark of that
    must measure one.
    """

    def __init__(
        self,
        *,
        binaries: Path | None = None,
        extra_listen: tuple[str, ...] = (),
        trusted_networks: tuple[str, ...] = (),
        settings: dict[str, str] | None = None,
    ) -> None:
        found = binaries or find_binaries()
        if found is None:
            raise ClusterError(
                "no PostgreSQL server binaries (initdb, pg_ctl) on PATH or in "
                f"{_DEBIAN_GLOB}: install Debian's 'postgresql' package"
            )
        self.binaries = found
        self.user = _server_user()
        self.port = _free_port()
        self.extra_listen = extra_listen
        self.trusted_networks = trusted_networks
        self.settings = dict(settings or {})
        self.root = Path(tempfile.mkdtemp(prefix="replication-pg-"))
        self.data = self.root / "data"
        self.sockets = self.root / "sockets"
        self.log = self.root / "server.log"
        self._started = False

    # -- addresses ---------------------------------------------------------------------------

    def url(self, *, host: str = "127.0.0.1", database: str = "postgres") -> str:
        """Return a ``postgresql://`` URL of this cluster over TCP at ``host``."""
        user = self.user or pwd.getpwuid(os.geteuid()).pw_name
        return f"postgresql://{user}@{host}:{self.port}/{database}"

    def socket_url(self, *, database: str = "postgres") -> str:
        """Return a URL of this cluster through its unix socket."""
        user = self.user or pwd.getpwuid(os.geteuid()).pw_name
        return f"postgresql://{user}@/{database}?host={self.sockets}&port={self.port}"

    # -- life --------------------------------------------------------------------------------

    def _run(self, step: str, *command: str, timeout: float = _PATIENCE) -> str:
        full = [str(self.binaries / command[0]), *command[1:]]
        if self.user is not None:
            full = ["runuser", "-u", self.user, "--", *full]
        try:
            done = subprocess.run(  # noqa: S603 - our own binaries and arguments
                full, capture_output=True, text=True, timeout=timeout, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise ClusterError(f"{step}: {error}") from None
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise ClusterError(
                f"{step} failed ({done.returncode}): {done.stderr.strip()[-2000:]} {log}".strip()
            )
        return done.stdout

    def _own(self) -> None:
        if self.user is None:
            return
        entry = pwd.getpwnam(self.user)
        for path in (self.root, self.data, self.sockets):
            path.mkdir(exist_ok=True)
            os.chown(path, entry.pw_uid, entry.pw_gid)
        self.root.chmod(0o755)
        self.data.chmod(0o700)

    def create(self) -> None:
        """Run ``initdb`` (trust authentication: the cluster is reachable only as set below)."""
        self._own()
        self.sockets.mkdir(exist_ok=True)
        self._run(
            "initdb",
            "initdb",
            "-D",
            str(self.data),
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-instructions",
        )
        if self.trusted_networks:
            # Appending keeps the file's owner: the server still reads it.
            with (self.data / "pg_hba.conf").open("a", encoding="utf-8") as hba:
                hba.writelines(
                    f"host all all {network} trust\n" for network in self.trusted_networks
                )

    def _options(self) -> str:
        addresses = ",".join(("127.0.0.1", *self.extra_listen))
        settings = {
            "listen_addresses": f"'{addresses}'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.sockets}'",
            "max_connections": "100",
            **self.settings,
        }
        return " ".join(f"-c {name}={value}" for name, value in settings.items())

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        self._run(
            "pg_ctl start",
            "pg_ctl",
            "start",
            "-w",
            "-t",
            str(_PATIENCE),
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-o",
            self._options(),
        )
        self._started = True

    def stop(self, *, mode: str = "fast") -> None:
        """Stop the server (``fast``: roll back open transactions; ``immediate``: crash)."""
        if self._started:
            self._run("pg_ctl stop", "pg_ctl", "stop", "-w", "-m", mode, "-D", str(self.data))
            self._started = False

    def restart(self, *, mode: str = "fast") -> None:
        """Stop and start again on the same port: every connection is cut."""
        self.stop(mode=mode)
        # The port may linger a moment in TIME_WAIT-free state: a short pause is enough.
        time.sleep(0.05)
        self.start()

    @property
    def running(self) -> bool:
        """Whether this object started the server and has not stopped it."""
        return self._started

    def remove(self) -> None:
        """Stop the server if running, and remove every file of the cluster."""
        try:
            if self._started:
                self.stop(mode="immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Self:
        try:
            self.create()
            self.start()
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()
