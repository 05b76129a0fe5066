"""What went wrong with the DVC remote, told apart for the user.

boto3, gcsfs, adlfs, aiohttp and fsspec each raise their own exceptions,
often one wrapped in another (s3fs turns a 403 into ``PermissionError``, DVC
wraps everything in ``DvcException``). ``remote_errors`` walks that chain
and raises one :class:`RemoteError` naming the cause:

    no-credentials   no credentials resolve (config, environment, files)
    refused          the store refused the credentials that resolved
    unreachable      nothing answers at the endpoint (refused, DNS, timeout)
    missing-bucket   the bucket or container does not exist
    error            anything else the remote said

Only type names and messages are read: no cloud library is imported here.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator
from typing import Any

from dvflow.core._capture import logger_level
from dvflow.core._exceptions import DvflowError, RemoteError

_CHATTY_LOGGERS = ("gcsfs", "adlfs", "s3fs")

# Checked in this order: a chain that holds several causes reports the first.
_NAMES = {
    "no-credentials": (
        "NoCredentialsError",
        "PartialCredentialsError",
        "DefaultCredentialsError",
        "CredentialUnavailableError",
    ),
    "refused": (
        "ClientAuthenticationError",
        "RefreshError",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "InvalidClientTokenId",
        "ExpiredToken",
        "AuthenticationFailed",
        "AccessDenied",
    ),
    "unreachable": (
        "EndpointConnectionError",
        "ConnectTimeoutError",
        "ReadTimeoutError",
        "ClientConnectorError",
        "ServerTimeoutError",
        "ServiceRequestError",
        "ConnectionError",
        "ConnectTimeout",
        "NewConnectionError",
        "TransportError",
    ),
    "missing-bucket": ("NoSuchBucket", "ContainerNotFound", "BucketNotFound"),
}
_TEXTS = {
    "no-credentials": ("unable to locate credentials", "could not automatically determine"),
    "refused": (
        "forbidden",
        "access denied",
        "accessdenied",
        "invalidaccesskeyid",
        "signaturedoesnotmatch",
        "authenticationfailed",
        "invalid_grant",
    ),
    "unreachable": (
        "could not connect",
        "cannot connect",
        "connection refused",
        "name or service not known",
        "temporary failure in name resolution",
        "nodename nor servname",
        "timed out",
    ),
    "missing-bucket": (
        "nosuchbucket",
        "the specified bucket does not exist",
        "containernotfound",
        "the specified container does not exist",
    ),
}


# An HTTP status on its own ("403 Forbidden", "(401)"), not digits inside an md5.
_REFUSED_STATUS = re.compile(r"(?<![0-9a-f])40[13](?![0-9a-f])")


def classify(exc: BaseException) -> str:
    """The cause of a remote failure: one of the names in the module docstring."""
    chain = list(_chain(exc))
    for reason in _NAMES:
        for link in chain:
            if _matches(link, reason):
                return reason
    return "error"


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _matches(exc: BaseException, reason: str) -> bool:
    names = {cls.__name__ for cls in type(exc).__mro__}
    if names & set(_NAMES[reason]):
        return True
    if reason == "unreachable" and isinstance(exc, (ConnectionRefusedError, TimeoutError)):
        return True
    text = f"{exc} {getattr(exc, 'response', '')}".lower()
    if reason == "refused" and _REFUSED_STATUS.search(text):
        return True
    return any(fragment in text for fragment in _TEXTS[reason])


def describe(exc: BaseException) -> str:
    """The message that names the problem: the innermost link of the cause found.

    Implicit chaining can add exceptions that merely happened while another
    was handled; the link that shows the cause is the one to quote.
    """
    reason = classify(exc)
    chain = [link for link in _chain(exc) if str(link).strip()]
    telling = [link for link in chain if reason == "error" or _matches(link, reason)]
    last = (telling or chain or [exc])[-1]
    return str(last).strip() or type(last).__name__


@contextlib.contextmanager
def remote_errors(url: str | None) -> Iterator[None]:
    """Turn whatever the remote's client raises into one RemoteError.

    A remote is reached through a third-party client that may raise any
    exception type; every one of them is a remote problem, never a dvflow bug.
    """
    try:
        with quiet_clients():
            yield
    except DvflowError:
        raise
    except Exception as exc:
        raise RemoteError(url, classify(exc), describe(exc)) from exc


def escaped_client_error(exc: BaseException) -> RemoteError | None:
    """The RemoteError for a cloud client's exception no boundary translated, if it is one.

    Only exception type names count here (not messages), so that a dvflow
    bug is never passed off as a remote problem.
    """
    for link in _chain(exc):
        names = {cls.__name__ for cls in type(link).__mro__}
        for reason, known in _NAMES.items():
            if names & set(known) and not isinstance(link, OSError | RemoteError):
                error = RemoteError(None, reason, describe(exc))
                error.__cause__ = exc
                return error
    return None


@contextlib.contextmanager
def quiet_clients() -> Iterator[None]:
    """gcsfs logs each failed retry with its traceback; the RemoteError says it once."""
    with contextlib.ExitStack() as stack:
        for name in _CHATTY_LOGGERS:
            stack.enter_context(logger_level(name, logging.CRITICAL))
        yield


def raise_if_unanswered(fs: Any, path: str) -> None:
    """``exists`` is False for a server that never answered, too (fsspec's HTTP
    file system swallows connection errors): ask again, and let only those raise.

    Anything else (a local path under a file, say) stays "missing", for the
    push itself to report.
    """
    try:
        fs.info(path)
    except OSError as exc:
        if classify(exc) == "unreachable":
            raise


def check_bucket(remote: Any, url: str | None) -> None:
    """Objects a missing bucket "lacks" are a wrong URL, not lost data: say which.

    ``remote`` is DVC's remote (its ``fs`` and ``path``).
    """
    from dvc_objects.fs.base import ObjectFileSystem

    bucket = str(remote.path).split("/", maxsplit=1)[0]
    if isinstance(remote.fs, ObjectFileSystem) and not remote.fs.exists(bucket):
        raise RemoteError(url, "missing-bucket", f"no bucket {bucket!r}")


def remote_listing(odb: Any, md5: str) -> Any:
    """A ``.dir`` object read from the remote: absent or broken is [], any other failure raises.

    Credentials refused or a remote that does not answer must not read as an
    empty directory (``remote_errors`` names them).
    """
    import json

    try:
        with odb.fs.open(odb.oid_to_path(md5), "r") as fobj:
            return json.load(fobj)
    except (FileNotFoundError, ValueError):
        return []
