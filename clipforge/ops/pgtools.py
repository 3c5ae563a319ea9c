"""Finding and running Postgres client programs (pg_dump, pg_restore, pg_basebackup).

The programs must be at least as new as the server (pg_dump refuses a newer server; a base
backup is only startable by the same major version), so the lookup asks the server for its
major version and looks in `PG_BIN_DIR`, else in the `pgserver` wheel's build (the embedded
database), Debian's `/usr/lib/postgresql/<major>/bin` and `PATH`, preferring the same major.

Connection details go to the programs through libpq's environment variables (PGHOST,
PGPASSWORD, ...), never on the command line, where `ps` would show a password.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict

from clipforge.errors import ClipForgeError

_LIBPQ_ENV = {
    "host": "PGHOST",
    "hostaddr": "PGHOSTADDR",
    "port": "PGPORT",
    "user": "PGUSER",
    "password": "PGPASSWORD",
    "dbname": "PGDATABASE",
    "sslmode": "PGSSLMODE",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "connect_timeout": "PGCONNECT_TIMEOUT",
    "application_name": "PGAPPNAME",
}


class BackupError(ClipForgeError):
    """A backup or restore step failed (program missing, wrong version, non-zero exit)."""

    code = "backup_error"


def libpq_env(url: str) -> dict[str, str]:
    """The process environment plus the connection of `url` as PG* variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    for key, value in conninfo_to_dict(url).items():
        if key in _LIBPQ_ENV and value is not None:
            env[_LIBPQ_ENV[key]] = str(value)
    return env


def server_major(url: str) -> int:
    """The server's major version (15, 16, ...)."""
    with psycopg.connect(url, connect_timeout=10) as conn:
        return conn.info.server_version // 10000


def _version_of(exe: Path) -> int | None:
    try:
        out = subprocess.run(
            [str(exe), "--version"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"\)\s+(\d+)", out)
    return int(match.group(1)) if match else None


def _candidates(bin_dir: Path | None, major: int) -> list[Path]:
    dirs: list[Path] = []
    if bin_dir is not None:
        return [bin_dir]
    spec = importlib.util.find_spec("pgserver")
    if spec is not None and spec.origin is not None:
        dirs.append(Path(spec.origin).parent / "pginstall" / "bin")
    dirs.append(Path(f"/usr/lib/postgresql/{major}/bin"))
    return dirs


@dataclass(frozen=True, slots=True)
class PgTools:
    """Client programs of one Postgres build.

    Attributes:
        bin_dir: folder holding pg_dump, pg_restore and pg_basebackup.
        major: their major version.
    """

    bin_dir: Path
    major: int

    @classmethod
    def for_server(cls, url: str, *, bin_dir: Path | None = None) -> PgTools:
        """Programs able to back up (and restore into) the server at `url`."""
        return cls.for_major(server_major(url), bin_dir=bin_dir)

    @classmethod
    def for_major(cls, major: int, *, bin_dir: Path | None = None) -> PgTools:
        """Programs of major version `major` (or newer, for pg_dump and pg_restore)."""
        found = [d / "pg_dump" for d in _candidates(bin_dir, major)]
        if bin_dir is None and (on_path := shutil.which("pg_dump")):
            found.append(Path(on_path))
        versions = [(exe, _version_of(exe) if exe.is_file() else None) for exe in found]
        tried = [f"{exe} ({version or 'absent'})" for exe, version in versions]
        # The same major first (a base backup must be started by it), else the oldest newer one.
        usable = sorted(
            (
                (v != major, v, i)
                for i, (_, v) in enumerate(versions)
                if v is not None and v >= major
            )
        )
        if usable:
            _, version, index = usable[0]
            return cls(bin_dir=versions[index][0].parent, major=version)
        raise BackupError(
            f"no Postgres {major} client programs found; set PG_BIN_DIR (tried: {', '.join(tried)})"
        )

    def exe(self, name: str) -> str:
        """Path of one program of this build."""
        path = self.bin_dir / name
        if not path.is_file():
            raise BackupError(f"{name} is missing from {self.bin_dir}")
        return str(path)

    def run(self, name: str, *args: str, url: str | None = None, timeout_s: float = 3600) -> str:
        """Run a program (connected to `url` through PG* variables); its stdout, or `BackupError`
        with the end of its stderr."""
        env = libpq_env(url) if url else None
        try:
            done = subprocess.run(
                [self.exe(name), *args],
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout_s,
            )
        except subprocess.TimeoutExpired:
            raise BackupError(f"{name} ran longer than {timeout_s:.0f} s") from None
        if done.returncode != 0:
            tail = done.stderr.strip()[-2000:]
            raise BackupError(f"{name} failed with exit code {done.returncode}: {tail}")
        return done.stdout
