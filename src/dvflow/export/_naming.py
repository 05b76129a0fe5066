"""Names of jobs and datasets, as OpenLineage's naming spec writes them.

Physical locations (a DVC remote's object) follow the spec: ``s3://bucket``,
``gs://bucket``, ``wasbs://container@account.dfs.core.windows.net`` (Azure
Blob) or ``abfss://…`` (ADLS Gen2), each with the object key as the name, and
``file`` with the absolute path for a folder on this machine. A path in the
work tree is dvflow's own convention: namespace ``dvc://<host>/<org>/<repo>``
(the Git remote, normalised), name the repo-relative path.
"""

from __future__ import annotations

import configparser
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from dvflow.core._record import ProvenanceRecord
from dvflow.core._redact import Redactor

# git@host:org/repo.git, the scp-like form git accepts for ssh.
_AZURE = ("wasbs", "abfss", "wasb", "abfs")
_SCP_LIKE = re.compile(r"^(?:[^@/\s]+@)?(?P<host>[^:/\s]+):(?P<path>[^/\s].*)$")


def strip_userinfo(url: str) -> str:
    """``url`` without ``user:password@`` (and unchanged when it is not a URL)."""
    parts = urlsplit(url)
    if not parts.scheme or "@" not in parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def normalise_git_remote(url: str | None) -> str | None:
    """``host/org/repo`` of a Git remote URL; None for a local path or no remote.

    ``git@github.com:org/repo.git``, ``ssh://git@github.com/org/repo`` and
    ``https://user:token@github.com/org/repo.git`` are all ``github.com/org/repo``.
    """
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme in ("http", "https", "ssh", "git", "git+ssh"):
        host, path = parts.hostname or "", parts.path
    elif not parts.scheme and (m := _SCP_LIKE.match(url)) and "/" not in m["host"]:
        host, path = m["host"], m["path"]
    else:
        return None  # file:// or a folder: no name others can resolve
    path = path.strip("/")
    path = path.removesuffix(".git").strip("/")
    return f"{host.lower()}/{path}" if host and path else None


def repo_web_url(url: str | None) -> str | None:
    """The https URL of a repository hosted at a Git remote (None: a local one)."""
    name = normalise_git_remote(url)
    return f"https://{name}" if name else None


def workspace_namespace(remote: str | None, fallback: str) -> str:
    """dvflow's dataset namespace for files of the work tree: ``dvc://host/org/repo``."""
    return f"dvc://{normalise_git_remote(remote) or 'local/' + fallback}"


def location(  # noqa: PLR0911 (one return per kind of location, as the spec lists them)
    uri: str, azure_accounts: Mapping[str, str] | None = None
) -> tuple[str, str]:
    """(namespace, name) of a physical location, per OpenLineage's naming spec.

    ``azure_accounts`` maps an Azure container to its storage account, as the
    DVC remote's ``account_name`` says (a DVC ``azure://`` URL names only the
    container); without it the namespace names the container alone.
    """
    if urlsplit(uri).scheme.lower() not in _AZURE:  # their user part is the container
        uri = strip_userinfo(uri)
    if uri.startswith("/"):
        return "file", posixpath.normpath(uri)
    parts = urlsplit(uri)
    scheme, key = parts.scheme.lower(), parts.path.lstrip("/")
    if scheme in ("s3", "s3a", "s3n"):
        return f"s3://{parts.netloc}", key
    if scheme in ("gs", "gcs"):
        return f"gs://{parts.netloc}", key
    if scheme == "azure":
        account = (azure_accounts or {}).get(parts.netloc)
        where = f"{parts.netloc}@{account}.dfs.core.windows.net" if account else parts.netloc
        return f"wasbs://{where}", key
    if scheme in _AZURE:
        return f"{scheme}://{parts.netloc}", key
    if scheme == "file":
        if parts.netloc in ("", "localhost"):
            return "file", posixpath.normpath(parts.path)
        return f"file://{parts.netloc}", parts.path
    return f"{scheme}://{parts.netloc}", "/" + key if key else "/"


@dataclass(frozen=True)
class Names:
    """What names jobs and datasets: given, or of this clone (its Git remote, its folder)."""

    namespace: str | None
    remote: str | None
    folder: str
    tracking: str
    tracking_uri: str
    azure: dict[str, str]

    def of(self, record: ProvenanceRecord) -> tuple[str, str]:
        """(job namespace, dataset namespace) of a run: a shared store holds other repositories'.

        The record's own Git remote names its repository; a record without one
        is taken as this clone's.
        """
        remote = record.code.get("repo_url") or self.remote
        job = self.namespace or normalise_git_remote(remote) or self.folder
        return job, workspace_namespace(remote, self.folder)


def tracking_namespace(uri: str) -> str:
    """The tracking server, named without credentials, path or query (a file store: its URI)."""
    clean = strip_userinfo(uri)
    parts = urlsplit(clean)
    if parts.scheme in ("http", "https"):
        return f"{parts.scheme}://{parts.netloc}"
    return Redactor().redact(clean.split("?")[0])


def azure_accounts(project: Path) -> dict[str, str]:
    """Container -> storage account of the project's Azure DVC remotes.

    From the remote's ``account_name``, else the ``AccountName`` of its
    connection string (only that part is read).
    """
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    for name in ("config", "config.local"):
        try:
            parser.read(project / ".dvc" / name, encoding="utf-8")
        except (configparser.Error, OSError, UnicodeDecodeError):
            continue
    found: dict[str, str] = {}
    for section in parser.sections():
        url = parser.get(section, "url", fallback="")
        account = parser.get(section, "account_name", fallback="") or _account_of(
            parser.get(section, "connection_string", fallback="")
        )
        if url.startswith("azure://") and account:
            found[url[len("azure://") :].split("/")[0]] = account
    return found


def _account_of(connection_string: str) -> str:
    for part in connection_string.split(";"):
        key, _, value = part.partition("=")
        if key.strip().lower() == "accountname":
            return value.strip()
    return ""
