"""Keep credentials out of everything dvflow writes.

A Redactor knows two kinds of secrets: values it was told about (found in
``.dvc/config.local``, ``.dvc/config`` and the environment) and shapes it
recognises anywhere (``user:pass@`` in URLs, SAS signatures, Azure
connection-string keys). ``redact`` replaces both with ``***``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MASK = "***"

# An environment variable holds a credential when a part of its name (split
# at '_') is one of these words, or when its name contains one of the long
# words anywhere (PGPASSWORD). Whole parts only: GIT_AUTHOR_NAME has no AUTH
# part and TOKENIZERS_PARALLELISM no TOKEN part, and masking their values
# would corrupt every record that contains them.
_SECRET_PARTS = frozenset(
    {
        "SECRET",
        "SECRETS",
        "TOKEN",
        "PASSWORD",
        "PASSWD",
        "PASS",
        "PASSPHRASE",
        "CREDENTIAL",
        "CREDENTIALS",
        "KEY",
        "APIKEY",
        "SAS",
        "AUTH",
        "SIGNATURE",
        "SIG",
    }
)
_SECRET_INFIXES = ("PASSWORD", "PASSWD", "SECRET", "CREDENTIAL", "CONNECTION_STRING")


def is_secret_name(name: str) -> bool:
    upper = name.upper()
    return bool(_SECRET_PARTS & set(upper.split("_"))) or any(w in upper for w in _SECRET_INFIXES)


# Keys of DVC remote sections that hold credentials rather than locations.
_SECRET_CONFIG_KEY = re.compile(
    r"(secret|token|password|user|access_key|key_id|account_key|connection_string|"
    r"sas|credential|keyfile|key_file|client_secret|client_id|tenant_id|sig)",
    re.IGNORECASE,
)
_URL_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s'\"]+@")
# Only inside a URL query (after ? or &), so code such as ``key=len`` is left alone.
_QUERY_SECRET = re.compile(
    r"(?<=[?&])(?P<key>(?:sig|signature|token|access_token|password|secret|"
    r"x-amz-signature|x-amz-credential|x-amz-security-token)=)[^&\s'\"#]+",
    re.IGNORECASE,
)
_CONN_STRING_SECRET = re.compile(
    r"(?P<key>(?:AccountKey|SharedAccessSignature|SharedAccessKey|Password|Pwd)=)"
    r"[^;\s'\"]+",
    re.IGNORECASE,
)
_MIN_SECRET_LEN = 4


@dataclass
class Redactor:
    secrets: set[str] = field(default_factory=set)

    def add(self, values: Iterable[str]) -> None:
        for raw in values:
            value = raw.strip().strip("'\"")
            if len(value) >= _MIN_SECRET_LEN:
                self.secrets.add(value)

    def redact(self, text: str) -> str:
        # Longest first, so a secret that contains another is masked whole.
        for secret in sorted(self.secrets, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, MASK)
        text = _URL_USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@", text)
        text = _CONN_STRING_SECRET.sub(lambda m: f"{m['key']}{MASK}", text)
        return _QUERY_SECRET.sub(lambda m: f"{m['key']}{MASK}", text)

    def redact_bytes(self, data: bytes) -> bytes:
        return self.redact(data.decode("utf-8", errors="surrogateescape")).encode(
            "utf-8", errors="surrogateescape"
        )

    def redact_obj(self, obj: Any) -> Any:
        """Redact every string inside a JSON-like structure."""
        if isinstance(obj, str):
            return self.redact(obj)
        if isinstance(obj, Mapping):
            return {self.redact(str(k)): self.redact_obj(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return [self.redact_obj(v) for v in obj]
        return obj


def secrets_from_environ(environ: Mapping[str, str]) -> list[str]:
    return [value for name, value in environ.items() if is_secret_name(name)]


def secrets_from_dvc_config(text: str) -> list[str]:
    """Credential values in a DVC config file (``key = value`` lines)."""
    found: list[str] = []
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and _SECRET_CONFIG_KEY.search(key.strip()):
            found.append(value.strip())
    return found


def redactor_for(root: Path | None, environ: Mapping[str, str] | None = None) -> Redactor:
    """A Redactor that knows the credentials visible from ``root``."""
    redactor = Redactor()
    redactor.add(secrets_from_environ(os.environ if environ is None else environ))
    if root is not None:
        for name in ("config.local", "config"):
            path = root / ".dvc" / name
            try:
                redactor.add(secrets_from_dvc_config(path.read_text(encoding="utf-8")))
            except (OSError, UnicodeDecodeError):
                continue
    return redactor
