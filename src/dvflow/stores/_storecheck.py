"""Why a tracking store cannot be used, when the machine is the reason (exit 7).

Checks made before MLflow opens a store (MLflow retries a store it cannot
open for nearly two minutes, and writes its schema into any SQLite file),
and the reading of the database errors that ``_tracking.mlflow_errors``
translates: a full disk, a file locked by another process, a folder or
another program's file where the SQLite file should be, a database URI
without host or database, or without its driver.
"""

from __future__ import annotations

import contextlib
import errno
import sqlite3
from pathlib import Path

from dvflow.core._exceptions import StoreEnvironmentError
from dvflow.core._redact import Redactor

# The first bytes of every SQLite database file.
SQLITE_MAGIC = b"SQLite format 3\x00"
# The URI schemes MLflow serves from a database server through SQLAlchemy.
_DATABASE_SERVERS = ("postgresql", "mysql", "mssql")
# Tables every MLflow SQLite store has.
MLFLOW_TABLES = frozenset({"alembic_version", "experiments", "runs"})


def check_store_location(uri: str) -> None:
    """Refuse, before MLflow tries (and retries for minutes), a store that cannot work.

    A folder or another program's file where the SQLite file should be; a
    database server URI that names no database, or whose Python driver is
    not installed.
    """
    scheme = uri.split(":", 1)[0].split("+", 1)[0].lower()
    if uri.startswith("sqlite:///"):
        _check_sqlite_file(uri, Path(uri[len("sqlite:///") :]))
    elif scheme in _DATABASE_SERVERS:
        _check_database_uri(uri, scheme)


def _check_sqlite_file(uri: str, path: Path) -> None:
    if path.is_dir():
        raise StoreEnvironmentError(
            _shown(uri),
            "that path is a folder, not an SQLite file",
            hint="Move that folder away (dvflow then creates the store), or name the "
            "store's file with --tracking-uri sqlite:///PATH.",
        )
    try:
        with path.open("rb") as file:
            head = file.read(len(SQLITE_MAGIC))
    except FileNotFoundError:
        return  # MLflow creates it
    except OSError as exc:
        raise StoreEnvironmentError(
            _shown(uri),
            f"cannot read that file ({exc.strerror or exc})",
            hint="Give dvflow read and write access to that file, or name another store "
            "with --tracking-uri.",
        ) from exc
    if head and head != SQLITE_MAGIC:
        raise StoreEnvironmentError(
            _shown(uri),
            "that file is not an SQLite database",
            hint="It holds something else: move it away (dvflow then creates the store), "
            "or name the store's file with --tracking-uri sqlite:///PATH.",
        )


def _check_database_uri(uri: str, scheme: str) -> None:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    form = f"{scheme}://HOST:PORT/DATABASE (with USER@ before HOST when the server wants one)"
    try:
        url = make_url(uri)
        dialect = url.get_dialect()
    except (ArgumentError, NoSuchModuleError, ValueError) as exc:
        raise StoreEnvironmentError(
            _shown(uri),
            f"not a database URI SQLAlchemy knows ({Redactor().redact(str(exc))})",
            hint=f"Write it as {form}.",
        ) from exc
    if not url.host and not url.database:
        raise StoreEnvironmentError(
            _shown(uri),
            "the URI names neither a host nor a database",
            hint=f"Write it as {form}.",
        )
    try:
        dialect.import_dbapi()
    except ImportError as exc:
        module = exc.name or str(exc)
        raise StoreEnvironmentError(
            _shown(uri),
            f"the Python driver for {url.drivername} is not installed (no module {module!r})",
            hint=f"Install the package that provides {module!r} in dvflow's Python "
            f"environment, or name an installed driver in the URI ({scheme}+DRIVER://...).",
        ) from exc


def mlflow_sqlite_problem(path: Path) -> str | None:
    """Why ``path`` is not an MLflow SQLite store (None: it is one); it is only read.

    MLflow writes its schema into any SQLite file it opens: an empty file or
    another program's database would come back changed.
    """
    if path.is_dir():
        return "it is a folder, not an SQLite file"
    if path.stat().st_size == 0:
        return "the file is empty"
    with path.open("rb") as file:
        if file.read(len(SQLITE_MAGIC)) != SQLITE_MAGIC:
            return "the file is not an SQLite database"
    try:
        read_only = f"{path.resolve().as_uri()}?mode=ro"
        with contextlib.closing(sqlite3.connect(read_only, uri=True)) as db:
            rows = db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            tables = {str(name) for (name,) in rows}
    except sqlite3.Error as exc:
        return f"SQLite cannot read it ({exc})"
    if not MLFLOW_TABLES.issubset(tables):
        return "an SQLite database without MLflow's tables"
    return None


DATABASE_MODULES = ("sqlalchemy.", "sqlite3", "psycopg", "pymysql", "MySQLdb", "pyodbc")

# What SQLite (or the system) says, and what dvflow says instead: (problem, hint).
_ENVIRONMENT_PROBLEMS = (
    (
        ("database or disk is full", "No space left on device", "Disk quota exceeded"),
        "no space left on the device that holds it",
        "Free some space there (or move the store elsewhere: --tracking-uri), then run "
        "the command again.",
    ),
    (
        ("database is locked",),
        "its SQLite file is locked by another process",
        "Another program holds the file (an 'mlflow ui' or a script writing to it, or a "
        "network file system without SQLite locks): wait for it or stop it; for many "
        "writers at once use an MLflow server.",
    ),
    (
        ("file is not a database",),
        "its file is not an SQLite database (another program's file, or damaged)",
        "Move the file away (dvflow then creates the store), or name the store's file "
        "with --tracking-uri sqlite:///PATH.",
    ),
    (
        ("unable to open database file", "attempt to write a readonly database"),
        "SQLite cannot open or write its file",
        "Check that the file (and its folder) exists, is a file and may be written.",
    ),
)
_ENVIRONMENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES})


def raise_environment_problem(shown: str, exc: BaseException) -> None:
    """Raise StoreEnvironmentError when ``exc`` (or what caused it) is the machine's doing."""
    seen: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and cause not in seen and len(seen) < 10:
        seen.append(cause)
        cause = cause.__cause__ or cause.__context__
    for error in seen:
        number = getattr(error, "errno", None)
        if isinstance(error, OSError) and number in _ENVIRONMENT_ERRNOS:
            where = f" ({error.filename})" if error.filename else ""
            if number in {errno.ENOSPC, errno.EDQUOT}:
                problem, hint = _ENVIRONMENT_PROBLEMS[0][1:]
                raise StoreEnvironmentError(shown, problem + where, hint) from exc
            raise StoreEnvironmentError(
                shown,
                f"cannot write {error.filename or 'its files'} ({error.strerror})",
                "Check the permissions of the store's files and that their file system is "
                "not read-only.",
            ) from exc
        if not type(error).__module__.startswith(DATABASE_MODULES):
            continue  # MLflow's own messages can quote a user's values
        text = str(error)
        for needles, problem, hint in _ENVIRONMENT_PROBLEMS:
            if any(needle in text for needle in needles):
                raise StoreEnvironmentError(shown, problem, hint) from exc


def database_message(exc: BaseException) -> str:
    """The database's own first line, without SQLAlchemy's wrapping."""
    text = str(getattr(exc, "orig", None) or exc)
    first = next((line for line in text.splitlines() if line.strip()), type(exc).__name__)
    return first.strip()


def _shown(uri: str) -> str:
    return Redactor().redact(uri)
