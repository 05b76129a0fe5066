"""Keep credentials out of everything dvflow writes.

A Redactor knows two kinds of secrets: values it was told about (found in
``.dvc/config.local``, ``.dvc/config`` and the environment) and shapes it
recognises anywhere: ``user:pass@`` in URLs, signatures and keys in URL
queries, Azure connection-string keys, ``Authorization:`` headers and bearer
tokens, PEM private key blocks, and ``NAME = value`` assignments whose name is
a credential's. ``redact`` replaces them with ``***``.

A value is masked only when it looks like a secret: masking ``true`` or
``train`` everywhere would corrupt every record that contains them.

Every pattern runs in linear time: each is anchored on a literal (``://``,
``=``, a header name, a word start) and no quantified part can match the same
text in two ways, so a 10 MB line costs a scan, not a backtracking search.
"""

from __future__ import annotations

import math
import os
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MASK = "***"

# Parts of a variable's name (split at '_') that make it a credential: its
# value is masked whenever it is more than a trivial word.
_CREDENTIAL_PARTS = frozenset(
    {
        "SECRET",
        "SECRETS",
        "TOKEN",
        "TOKENS",
        "PASSWORD",
        "PASSWD",
        "PASSPHRASE",
        "CREDENTIAL",
        "CREDENTIALS",
        "APIKEY",
        "BEARER",
        "WEBHOOK",
        "DSN",
    }
)
# Long words that make a credential anywhere in a name (PGPASSWORD).
_CREDENTIAL_INFIXES = ("PASSWORD", "PASSWD", "SECRET", "CREDENTIAL", "CONNECTION_STRING")
# Endings that name a key rather than a setting about keys (CACHE_KEY).
_CREDENTIAL_SUFFIXES = (
    "API_KEY",
    "ACCESS_KEY",
    "ACCESS_KEY_ID",
    "ACCOUNT_KEY",
    "PRIVATE_KEY",
    "SECRET_KEY",
    "MASTER_KEY",
    "SIGNING_KEY",
    "WEBHOOK_URL",
)
# Parts that may name a credential (AZURE_STORAGE_KEY) or not (CACHE_KEY,
# SKIP_AUTH): the value is masked only when it looks like a secret itself.
_MAYBE_PARTS = frozenset({"KEY", "AUTH", "SAS", "SIG", "SIGNATURE", "PASS", "PWD"})
# Values that are never secrets, whatever the variable's name.
_ORDINARY = frozenset(
    {"true", "false", "yes", "no", "on", "off", "none", "null", "nil", "default", "enabled",
     "disabled", "required", "optional", "unset", "empty", "changeme"}
)  # fmt: skip


def _parts(name: str) -> list[str]:
    return [p for p in re.split(r"[_\-.]", name.upper()) if p]


def is_credential_name(name: str) -> bool:
    """Is ``name`` the name of a credential (MLFLOW_TRACKING_PASSWORD, HF_TOKEN, MYSQL_PWD)?"""
    upper = name.upper().replace("-", "_")
    parts = _parts(name)
    if _CREDENTIAL_PARTS & set(parts) or any(w in upper for w in _CREDENTIAL_INFIXES):
        return True
    if len(parts) > 1 and parts[-1] in ("PWD", "PASS"):  # MYSQL_PWD, not PWD itself
        return True
    return upper.endswith(_CREDENTIAL_SUFFIXES)


def is_secret_name(name: str) -> bool:
    """May ``name`` hold a credential? (Whole name parts: GIT_AUTHOR_NAME has no AUTH part.)"""
    if is_credential_name(name):
        return True
    parts = _parts(name)
    return bool(_MAYBE_PARTS & set(parts)) and parts != ["PWD"]


def _classes(value: str) -> int:
    return (
        any(c.islower() for c in value)
        + any(c.isupper() for c in value)
        + any(c.isdigit() for c in value)
        + any(not c.isalnum() for c in value)
    )


def _entropy(value: str) -> float:
    counts = Counter(value)
    return -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())


def _trivial(value: str) -> bool:
    """A word or number no one would use as a secret: true, train, 8080, 0.5."""
    return (
        len(value) < 6
        or value.lower() in _ORDINARY
        or bool(re.fullmatch(r"[+-]?[0-9.,_]+", value))
        or (len(value) < 8 and _classes(value) < 2)
    )


def looks_like_secret(value: str) -> bool:
    """Does ``value`` look like a key or a token by itself (length, character classes)?"""
    if _trivial(value) or len(value) < 8 or value.startswith(("/", "~", "./", "../")):
        return False
    if any(c.isspace() for c in value):
        return False
    classes = _classes(value)
    if classes >= 3:
        return True
    has_digit = any(c.isdigit() for c in value)
    return (classes == 2 and has_digit and len(value) >= 16) or (
        len(value) >= 20 and _entropy(value) >= 4.0
    )


def is_secret_value(name: str, value: str) -> bool:
    """Mask the value of variable ``name``?

    A credential's (``*_PASSWORD``, ``*_TOKEN``) unless trivial; a name that
    may be one (``*_KEY``, ``*_AUTH``) only when the value looks like a secret.
    """
    if is_credential_name(name):
        return not _trivial(value)
    return is_secret_name(name) and looks_like_secret(value)


# Keys of DVC remote sections that hold credentials rather than locations.
_SECRET_CONFIG_KEY = re.compile(
    r"(secret|token|password|user|access_key|key_id|account_key|connection_string|"
    r"sas|credential|keyfile|key_file|client_secret|client_id|tenant_id|sig)",
    re.IGNORECASE,
)

# -- shapes ---------------------------------------------------------------
# Each starts at a literal, and each quantified class stops at a character
# that cannot continue it: no backtracking beyond the text one match spans.

# user:pass@ after "scheme://": the scheme is checked by one character behind.
_URL_USERINFO = re.compile(r"(?<=[A-Za-z0-9+.\-])://[^/\s'\"<>]+@")
# Only inside a URL query (after ? or &), so code such as ``key=len`` is left alone.
_QUERY_SECRET = re.compile(
    r"(?<=[?&])(?P<key>(?:sig|signature|token|access_token|refresh_token|id_token|password|"
    r"passwd|pwd|secret|client_secret|key|api_key|apikey|api-key|access_key|auth|"
    r"x-amz-signature|x-amz-credential|x-amz-security-token|"
    r"x-goog-signature|x-goog-credential)=)(?P<value>[^&\s'\"#<>]+)",
    re.IGNORECASE,
)
_CONN_STRING_SECRET = re.compile(
    r"(?P<key>(?:AccountKey|SharedAccessSignature|SharedAccessKey|Password|Pwd)=)"
    r"[^;\s'\"]+",
    re.IGNORECASE,
)
# Authorization: Bearer abc / "x-api-key": "abc" / X-Goog-Signature: abc
_HEADER_SECRET = re.compile(
    r"\b(?P<key>(?:proxy-)?authorization|x-api-key|api-key|x-auth-token|private-token|"
    r"x-goog-signature|x-goog-credential|x-amz-security-token)"
    r"(?P<sep>[\"']?[ \t]*[:=][ \t]*[\"']?)"
    r"(?P<scheme>(?:bearer|basic|token|digest|negotiate)[ \t]+)?"
    r"(?P<value>[^\s'\",;&]+)",
    re.IGNORECASE,
)
_BEARER = re.compile(r"\b(?P<key>bearer[ \t]+)(?P<value>[A-Za-z0-9._~+/=\-]+)", re.IGNORECASE)
# NAME=value, name: value, "name": "value", name = 'value'
_ASSIGNMENT = re.compile(
    r"\b(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<sep>[\"']?[ \t]*[:=][ \t]*[\"']?)"
    r"(?P<value>[^\s'\"]+)"
)
_PEM_BEGIN = re.compile(r"-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY( BLOCK)?-----")
_PEM_END = "-----END "
# A base64 run of a key's body; a line's leading diff marker is kept, so a
# patch still applies.
_PEM_BODY = re.compile(r"(?m)(?:^(?P<lead>[+\- ]))?[A-Za-z0-9+/=]{8,}")
# An assigned name without digits is code, not a literal: args.token, next_token.
_IDENTIFIER = re.compile(r"[A-Za-z_]+(?:\.[A-Za-z_]+)*")


def _is_code(m: re.Match[str], value: str) -> bool:
    """Is an assigned value code or a reference (f(x), os.environ[, ${TOKEN}), not a literal?

    An unquoted name assigned to a lowercase variable is code (token = next_token);
    NAME=value lines of an environment file hold literals.
    """
    if any(c in value for c in "$({[<"):
        return True
    quoted = m["sep"].endswith(("'", '"'))
    return not quoted and not m["name"].isupper() and bool(_IDENTIFIER.fullmatch(value))


def _mask_query(m: re.Match[str]) -> str:
    # key= and auth= also name ordinary things (?key=train); a signature is always one.
    generic = m["key"].lower() in ("key=", "auth=")
    return m[0] if generic and _trivial(m["value"]) else f"{m['key']}{MASK}"


def _mask_header(m: re.Match[str]) -> str:
    if _trivial(m["value"]) or any(c in m["value"] for c in "$({[<"):
        return m[0]
    return f"{m['key']}{m['sep']}{m['scheme'] or ''}{MASK}"


def _mask_bearer(m: re.Match[str]) -> str:
    return f"{m['key']}{MASK}" if looks_like_secret(m["value"]) else m[0]


def _mask_assignment(m: re.Match[str]) -> str:
    name, value = m["name"], m["value"].rstrip(",;")
    if MASK in value or not is_secret_name(name) or _is_code(m, value):
        return m[0]
    if not is_secret_value(name, value):
        return m[0]
    return f"{name}{m['sep']}{MASK}{m['value'][len(value) :]}"


def _mask_pem_line(m: re.Match[str]) -> str:
    return f"{m['lead'] or ''}{MASK}"


def _mask_pem(text: str) -> str:
    """Mask the body of every PEM private key block (to the end of text when cut short)."""
    out: list[str] = []
    pos = 0
    while (begin := _PEM_BEGIN.search(text, pos)) is not None:
        end = text.find(_PEM_END, begin.end())
        stop = len(text) if end < 0 else end
        out += [text[pos : begin.end()], _PEM_BODY.sub(_mask_pem_line, text[begin.end() : stop])]
        pos = stop
        if end < 0:
            break
        pos = end + len(_PEM_END)
        out.append(_PEM_END)
    out.append(text[pos:])
    return "".join(out)


def redact_shapes(text: str) -> str:
    """Mask every credential shape in ``text``, in time linear in its length."""
    if "PRIVATE KEY" in text:
        text = _mask_pem(text)
    if "://" in text:
        text = _URL_USERINFO.sub(f"://{MASK}@", text)
    if "=" in text:
        text = _CONN_STRING_SECRET.sub(lambda m: f"{m['key']}{MASK}", text)
        text = _QUERY_SECRET.sub(_mask_query, text)
    if ":" in text or "=" in text:
        text = _HEADER_SECRET.sub(_mask_header, text)
        text = _ASSIGNMENT.sub(_mask_assignment, text)
    return _BEARER.sub(_mask_bearer, text)


@dataclass
class Redactor:
    secrets: set[str] = field(default_factory=set)

    def add(self, values: Iterable[str]) -> None:
        """Known credential values: each is masked wherever it appears, unless trivial."""
        for raw in values:
            value = raw.strip().strip("'\"")
            if not _trivial(value):
                self.secrets.add(value)

    def redact(self, text: str) -> str:
        # Longest first, so a secret that contains another is masked whole.
        for secret in sorted(self.secrets, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, MASK)
        return redact_shapes(text)

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
    """Values of the variables that hold credentials (and look like them)."""
    return [value for name, value in environ.items() if is_secret_value(name, value.strip())]


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
