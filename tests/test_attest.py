"""Signed attestations of the demo's model versions: keygen, attest, verify, tamper, offline.

One real demo store (``dvflow demo``, real git, DVC and MLflow) is built once
for the whole session, by whichever worker gets there first, and each test
works on its own copy. The statement is checked against a JSON schema
written here from the in-toto Statement v1 and SLSA provenance v1 specs.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import socket
import sqlite3
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from filelock import FileLock
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from conftest import _isolate, cli, everything_written, git, stage_runs, tracking_client

MODEL = "models:/wine-classifier/1"

# -- the schema, from the specs ---------------------------------------------------
# in-toto Statement v1 (github.com/in-toto/attestation spec/v1/statement.md and
# resource_descriptor.md, digest_set.md) and SLSA provenance v1 (slsa.dev/provenance/v1).

HEX = {"sha256": "^[a-f0-9]{64}$", "gitCommit": "^[a-f0-9]{40}$", "md5": "^[a-f0-9]{32}$"}
DIGEST_SET = {
    "type": "object",
    "minProperties": 1,
    "properties": {name: {"type": "string", "pattern": p} for name, p in HEX.items()},
    "additionalProperties": {"type": "string", "pattern": "^[a-f0-9]+$"},
}
RESOURCE_DESCRIPTOR = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "uri": {"type": "string", "format": "uri"},
        "digest": DIGEST_SET,
        "content": {"type": "string", "contentEncoding": "base64"},
        "downloadLocation": {"type": "string", "format": "uri"},
        "mediaType": {"type": "string"},
        "annotations": {"type": "object"},
    },
    "anyOf": [{"required": ["uri"]}, {"required": ["digest"]}, {"required": ["content"]}],
    "additionalProperties": False,
}
SLSA_PROVENANCE_V1 = {
    "type": "object",
    "required": ["buildDefinition", "runDetails"],
    "additionalProperties": False,
    "properties": {
        "buildDefinition": {
            "type": "object",
            "required": ["buildType", "externalParameters"],
            "additionalProperties": False,
            "properties": {
                "buildType": {"type": "string", "format": "uri"},
                "externalParameters": {"type": "object"},
                "internalParameters": {"type": "object"},
                "resolvedDependencies": {"type": "array", "items": RESOURCE_DESCRIPTOR},
            },
        },
        "runDetails": {
            "type": "object",
            "required": ["builder"],
            "additionalProperties": False,
            "properties": {
                "builder": {
                    "type": "object",
                    "required": ["id"],
                    "additionalProperties": False,
                    "properties": {
                        "id": {"type": "string", "format": "uri"},
                        "version": {"type": "object", "additionalProperties": {"type": "string"}},
                        "builderDependencies": {"type": "array", "items": RESOURCE_DESCRIPTOR},
                    },
                },
                "metadata": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "invocationId": {"type": "string"},
                        "startedOn": {"type": "string", "format": "date-time"},
                        "finishedOn": {"type": "string", "format": "date-time"},
                    },
                },
                "byproducts": {"type": "array", "items": RESOURCE_DESCRIPTOR},
            },
        },
    },
}
STATEMENT_V1 = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["_type", "subject", "predicateType", "predicate"],
    "additionalProperties": False,
    "properties": {
        "_type": {"const": "https://in-toto.io/Statement/v1"},
        "subject": {
            "type": "array",
            "minItems": 1,
            "items": {**RESOURCE_DESCRIPTOR, "required": ["name", "digest"]},
        },
        "predicateType": {"const": "https://slsa.dev/provenance/v1"},
        "predicate": SLSA_PROVENANCE_V1,
    },
}
VALIDATOR = Draft202012Validator(STATEMENT_V1, format_checker=Draft202012Validator.FORMAT_CHECKER)


# -- the demo store, built once -------------------------------------------------------


@pytest.fixture(scope="session")
def demo_store(
    tmp_path_factory: pytest.TempPathFactory, worker_id: str, session_home: Path
) -> Path:
    """A finished ``dvflow demo`` (run as a user runs it), shared by every worker."""
    shared = tmp_path_factory.getbasetemp()
    if worker_id != "master":
        shared = shared.parent  # the folder every worker of this session shares
    with FileLock(str(shared / "attest-demo.lock")):
        root = shared / "attest-demo" / "dvflow-demo"
        if not (shared / "attest-demo.done").exists():
            with pytest.MonkeyPatch.context() as monkeypatch:
                _isolate(monkeypatch, session_home)
                root.parent.mkdir(exist_ok=True)
                made = cli("demo", str(root), timeout=900)
                assert made.returncode == 0, made.stderr
            (shared / "attest-demo.done").touch()
    return root


def _copy_store(source: Path, dest: Path) -> Path:
    """A copy whose MLflow store points at its own artifacts (they are absolute paths)."""
    shutil.copytree(source, dest, symlinks=True)
    (dest / ".dvflow" / "index.sqlite").unlink(missing_ok=True)
    db = sqlite3.connect(dest / "mlflow.db")
    try:
        tables = [t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            for column in [c[1] for c in db.execute(f"PRAGMA table_info({table})")]:
                db.execute(
                    f"UPDATE {table} SET {column} = replace({column}, ?, ?) "  # noqa: S608
                    f"WHERE typeof({column}) = 'text'",
                    (str(source), str(dest)),
                )
        db.commit()
    finally:
        db.close()
    return dest


@pytest.fixture
def demo(demo_store: Path, tmp_path: Path) -> Path:
    return _copy_store(demo_store, tmp_path / "demo")


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, Path]:
    made = cli("keygen", "--out", str(tmp_path / "keys"))
    assert made.returncode == 0, made.stderr
    other = cli("keygen", "--out", str(tmp_path / "other"), "--type", "ecdsa-p256")
    assert other.returncode == 0, other.stderr
    return {
        "key": tmp_path / "keys" / "dvflow-attest.key",
        "pub": tmp_path / "keys" / "dvflow-attest.pub",
        "other_key": tmp_path / "other" / "dvflow-attest.key",
        "other_pub": tmp_path / "other" / "dvflow-attest.pub",
    }


@pytest.fixture
def attested(demo: Path, keys: dict[str, Path], tmp_path: Path) -> Path:
    """The demo's version 1, attested with ``keys['key']``: the envelope's path."""
    envelope = tmp_path / "v1.intoto.json"
    done = cli("attest", MODEL, "--key", str(keys["key"]), "-o", str(envelope), "-C", str(demo))
    assert done.returncode == 0, done.stderr
    return envelope


def _payload(envelope: Path) -> dict[str, Any]:
    return json.loads(base64.b64decode(json.loads(envelope.read_text())["payload"]))


def _verify(demo: Path, envelope: Path, *pubkeys: Path, extra: tuple[str, ...] = ()) -> Any:
    keys = [arg for pub in pubkeys for arg in ("--pubkey", str(pub))]
    return cli("verify", MODEL, "--attestation", str(envelope), *keys, *extra, "-C", str(demo))


def _cache_object(root: Path, md5: str) -> Path:
    return root / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]


def _model_md5(root: Path) -> str:
    return tracking_client(root).get_model_version("wine-classifier", "1").tags["dvflow.model_md5"]


# -- attest and verify ----------------------------------------------------------------


def test_a_demo_model_version_attests_and_verifies(
    demo: Path, keys: dict[str, Path], attested: Path
) -> None:
    statement = _payload(attested)
    VALIDATOR.validate(statement)
    envelope = json.loads(attested.read_text())
    assert envelope["payloadType"] == "application/vnd.in-toto+json"

    # The subject's sha256 is that of the model's bytes, computed afresh here.
    md5 = _model_md5(demo)
    model_bytes = _cache_object(demo, md5).read_bytes()
    assert hashlib.md5(model_bytes).hexdigest() == md5  # noqa: S324 (DVC's digest)
    [subject] = statement["subject"]
    assert subject["name"] == "models/model.pkl"
    assert subject["digest"] == {"sha256": hashlib.sha256(model_bytes).hexdigest()}
    assert subject["annotations"]["dvc_md5"] == md5
    assert subject["annotations"]["mlflow_model_uri"] == MODEL

    # resolvedDependencies: the record's commit and every DVC input of the closure.
    client = tracking_client(demo)
    version = client.get_model_version("wine-classifier", "1")
    run_id = version.tags["dvflow.run_id"]
    commit = version.tags["dvflow.git_commit"]
    deps = statement["predicate"]["buildDefinition"]["resolvedDependencies"]
    assert {"name": "git", "digest": {"gitCommit": commit}} in deps
    by_name = {d["name"]: d for d in deps if "dvc_md5" in d.get("annotations", {})}
    raw_md5 = (demo / "data" / "raw.csv.dvc").read_text().split("md5: ")[1].split()[0]
    raw = by_name["data/raw.csv"]  # an input of prepare, upstream of train
    assert raw["annotations"]["dvc_md5"] == raw_md5
    raw_bytes = _cache_object(demo, raw_md5).read_bytes()
    assert raw["digest"]["sha256"] == hashlib.sha256(raw_bytes).hexdigest()
    prepared = by_name["data/prepared"]  # a folder: sha256 of its sha256sum listing
    assert prepared["annotations"]["dvc_md5"].endswith(".dir")
    listing = "".join(
        f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(demo / 'data' / 'prepared')}\n"
        for p in sorted((demo / "data" / "prepared").rglob("*"))
        if p.is_file()
    )
    assert prepared["digest"]["sha256"] == hashlib.sha256(listing.encode()).hexdigest()
    assert {"src/prepare.py", "src/train.py"} <= set(by_name)
    byproducts = statement["predicate"]["runDetails"]["byproducts"]
    stages = {b["annotations"]["stage"] for b in byproducts}
    assert stages == {"prepare", "train"}
    run_tags = client.get_run(run_id).data.tags
    own = next(b for b in byproducts if b["annotations"]["run_id"] == run_id)
    assert own["digest"]["sha256"] == run_tags["dvflow.record_sha256"]
    details = statement["predicate"]["runDetails"]
    assert details["metadata"]["invocationId"] == run_id
    assert details["builder"]["id"] == "urn:dvflow:builder:local"

    # Logged to the producing run; its sha256 is a tag on the version.
    digest = hashlib.sha256(attested.read_bytes()).hexdigest()
    assert version.tags["dvflow.attestation_sha256"] == digest
    artifact = version.tags["dvflow.attestation"]
    stored = client.download_artifacts(run_id, artifact, str(demo.parent / "dl"))
    assert Path(stored).read_bytes() == attested.read_bytes()

    verified = _verify(demo, attested, keys["pub"])
    assert verified.returncode == 0, verified.stderr
    assert "attestation verified" in verified.stdout
    # Without --attestation: the envelope the store holds.
    again = cli("verify", MODEL, "--pubkey", str(keys["pub"]), "-C", str(demo))
    assert again.returncode == 0, again.stderr


def test_the_schema_rejects_what_the_specs_forbid(attested: Path) -> None:
    good = _payload(attested)
    for change in (
        lambda s: s.update(_type="https://in-toto.io/Statement/v0.1"),
        lambda s: s.update(subject=[]),
        lambda s: s["subject"][0].update(digest={"sha256": "XYZ"}),
        lambda s: s["predicate"]["buildDefinition"].pop("buildType"),
        lambda s: s["predicate"]["runDetails"]["builder"].update(id="not a uri"),
        lambda s: s["predicate"]["runDetails"]["metadata"].update(startedOn="yesterday"),
    ):
        broken = json.loads(json.dumps(good))
        change(broken)
        with pytest.raises(ValidationError):
            VALIDATOR.validate(broken)


def test_an_ecdsa_p256_key_signs_and_verifies(
    demo: Path, keys: dict[str, Path], tmp_path: Path
) -> None:
    envelope = tmp_path / "ecdsa.json"
    done = cli(
        "attest", MODEL, "--key", str(keys["other_key"]), "-o", str(envelope), "-C", str(demo)
    )
    assert done.returncode == 0, done.stderr
    # Several trusted keys: any one that verifies will do.
    verified = _verify(demo, envelope, keys["pub"], keys["other_pub"])
    assert verified.returncode == 0, verified.stderr


# -- tamper: each its own message and exit code, no traceback ----------------------------


def _resign(envelope: Path, key: Path, change: Callable[[dict[str, Any]], None]) -> None:
    """A statement changed and signed again with the trusted key: only drift can tell."""
    from dvflow.export._dsse import envelope_bytes, load_private_key, sign_envelope

    statement = _payload(envelope)
    change(statement)
    payload = json.dumps(statement, sort_keys=True, separators=(",", ":")).encode()
    envelope.write_bytes(envelope_bytes(sign_envelope(payload, load_private_key(key))))


def _dependency(statement: dict[str, Any], name: str) -> dict[str, Any]:
    deps = statement["predicate"]["buildDefinition"]["resolvedDependencies"]
    return next(d for d in deps if d["name"] == name)


def _flip_model_byte(demo: Path, envelope: Path, keys: dict[str, Path]) -> None:
    obj = _cache_object(demo, _model_md5(demo))
    obj.chmod(obj.stat().st_mode | stat.S_IWUSR)
    data = bytearray(obj.read_bytes())
    data[len(data) // 2] ^= 0x01
    obj.write_bytes(bytes(data))


def _payload_type(demo: Path, envelope: Path, keys: dict[str, Path]) -> None:
    data = json.loads(envelope.read_text())
    data["payloadType"] = "application/vnd.dvflow+json"
    envelope.write_text(json.dumps(data))


def _other_key(demo: Path, envelope: Path, keys: dict[str, Path]) -> None:
    from dvflow.export._dsse import envelope_bytes, load_private_key, sign_envelope

    payload = base64.b64decode(json.loads(envelope.read_text())["payload"])
    other = sign_envelope(payload, load_private_key(keys["other_key"]))
    trusted_id = json.loads(envelope.read_text())["signatures"][0]["keyid"]
    other["signatures"][0]["keyid"] = trusted_id  # claiming the trusted keyid changes nothing
    envelope.write_bytes(envelope_bytes(other))


def _drifted_md5(demo: Path, envelope: Path, keys: dict[str, Path]) -> None:
    def change(s: dict[str, Any]) -> None:
        _dependency(s, "data/raw.csv")["annotations"]["dvc_md5"] = "0" * 32

    _resign(envelope, keys["key"], change)


def _drifted_sha256(demo: Path, envelope: Path, keys: dict[str, Path]) -> None:
    def change(s: dict[str, Any]) -> None:
        _dependency(s, "data/raw.csv")["digest"]["sha256"] = "0" * 64

    _resign(envelope, keys["key"], change)


def _malformed(demo: Path, envelope: Path, keys: dict[str, Path]) -> None:
    def change(s: dict[str, Any]) -> None:
        s["subject"][0]["annotations"] = "not an object"
        s["predicate"]["runDetails"]["byproducts"][0].pop("digest")

    _resign(envelope, keys["key"], change)


def _truncated(demo: Path, envelope: Path, keys: dict[str, Path]) -> None:
    envelope.write_bytes(envelope.read_bytes()[:200])


def _not_json(demo: Path, envelope: Path, keys: dict[str, Path]) -> None:
    envelope.write_bytes(b"\x89PNG\r\n not an attestation")


@pytest.mark.parametrize(
    ("tamper", "code", "words"),
    [
        (_flip_model_byte, 23, "DVC's cache holds other bytes for models/model.pkl"),
        (_payload_type, 21, "payloadType is 'application/vnd.dvflow+json'"),
        (_other_key, 22, "no signature verifies with the 1 trusted public key"),
        (_drifted_md5, 24, "data/raw.csv: the records name md5"),
        (_drifted_sha256, 24, "data/raw.csv: sha256"),
        (_truncated, 20, "not JSON"),
        (_not_json, 20, "not UTF-8 text"),
        (_malformed, 20, "not a dvflow statement (a subject without name or sha256)"),
    ],
    ids=[
        "model-byte",
        "payload-type",
        "other-key",
        "drift-md5",
        "drift-sha256",
        "truncated",
        "not-json",
        "malformed",
    ],
)
def test_a_tampered_attestation_fails_with_its_own_message_and_code(  # noqa: PLR0917 (fixtures)
    demo: Path,
    keys: dict[str, Path],
    attested: Path,
    tamper: Callable[[Path, Path, dict[str, Path]], None],
    code: int,
    words: str,
) -> None:
    tamper(demo, attested, keys)
    result = _verify(demo, attested, keys["pub"])
    assert result.returncode == code, result.stderr
    assert words in result.stderr
    assert result.stderr.startswith("error: attestation ")
    assert "\nhint: " in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_a_builder_not_on_the_allow_list_is_refused(
    demo: Path, keys: dict[str, Path], attested: Path
) -> None:
    refused = _verify(demo, attested, keys["pub"], extra=("--builder", "https://ci.example/x"))
    assert refused.returncode == 25, refused.stderr
    assert "builder 'urn:dvflow:builder:local' is not allowed" in refused.stderr
    allowed = _verify(demo, attested, keys["pub"], extra=("--builder", "urn:dvflow:builder:local"))
    assert allowed.returncode == 0, allowed.stderr


def test_an_attestation_of_another_version_does_not_verify_this_one(
    demo: Path, keys: dict[str, Path], attested: Path
) -> None:
    other = cli(
        "verify", "models:/wine-classifier/2", "--attestation", str(attested),
        "--pubkey", str(keys["pub"]), "-C", str(demo),
    )  # fmt: skip
    assert other.returncode == 23, other.stderr
    assert "not models:/wine-classifier/2" in other.stderr


# -- offline ------------------------------------------------------------------------------


def _shipped(demo: Path, into: Path) -> Path:
    """What a receiver gets: the model file alone, in a folder of its own."""
    into.mkdir()
    shutil.copy(_cache_object(demo, _model_md5(demo)), into / "model.pkl")
    return into


def test_offline_verification_opens_no_socket(
    demo: Path, keys: dict[str, Path], attested: Path, tmp_path: Path
) -> None:
    from dvflow.export._errors import SubjectMismatchError
    from dvflow.export._verify_attest import verify_attestation

    files = _shipped(demo, tmp_path / "shipped")
    shutil.rmtree(demo)  # no project, no store, no DVC remote: only what was shipped
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket, "socket", _refuse)
        patch.setattr(socket, "create_connection", _refuse)
        patch.setattr(socket, "getaddrinfo", _refuse)
        result = verify_attestation(
            MODEL,
            tmp_path,
            pubkeys=[keys["pub"]],
            attestation=attested,
            files=files,
        )
        assert result.offline
        assert [c.name for c in result.checks if c.level == "pass"] == [
            "signature", "statement", "builder", "subjects",
        ]  # fmt: skip
        data = bytearray((files / "model.pkl").read_bytes())
        data[0] ^= 0x01
        (files / "model.pkl").write_bytes(bytes(data))
        with pytest.raises(SubjectMismatchError, match=r"models/model\.pkl: sha256"):
            verify_attestation(
                MODEL, tmp_path, pubkeys=[keys["pub"]], attestation=attested, files=files
            )


def _refuse(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("a socket was opened during offline verification")


def test_offline_verification_through_the_command_line(
    demo: Path, keys: dict[str, Path], attested: Path, tmp_path: Path
) -> None:
    files = _shipped(demo, tmp_path / "shipped")
    # Anywhere, with no project: an unreachable tracking store must not matter.
    env = {"MLFLOW_TRACKING_URI": "http://127.0.0.1:9"}
    done = cli(
        "verify", MODEL, "--attestation", str(attested), "--pubkey", str(keys["pub"]),
        "--files", str(files), cwd=tmp_path, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "(offline)" in done.stdout and "warn  drift" in done.stdout
    other = cli(
        "verify", "models:/wine-classifier/2", "--attestation", str(attested),
        "--pubkey", str(keys["pub"]), "--files", str(files), cwd=tmp_path,
    )  # fmt: skip
    assert other.returncode == 23, other.stderr


# -- keys ----------------------------------------------------------------------------------


def test_keygen_writes_a_private_key_only_its_owner_reads(tmp_path: Path) -> None:
    made = cli("keygen", "--out", str(tmp_path / "k"))
    assert made.returncode == 0, made.stderr
    private = tmp_path / "k" / "dvflow-attest.key"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "k").stat().st_mode) == 0o700
    assert b"BEGIN PRIVATE KEY" in private.read_bytes()
    assert private.read_text() not in made.stdout + made.stderr
    again = cli("keygen", "--out", str(tmp_path / "k"))
    assert again.returncode == 2 and "already exists" in again.stderr
    # The default folder is under XDG_CONFIG_HOME, outside any project.
    default = cli("keygen", env={"XDG_CONFIG_HOME": str(tmp_path / "config")})
    assert default.returncode == 0, default.stderr
    assert (tmp_path / "config" / "dvflow" / "keys" / "dvflow-attest.pub").is_file()


def test_an_encrypted_key_needs_its_passphrase(demo: Path, tmp_path: Path) -> None:
    secret = "correct horse battery staple"  # noqa: S105 (a test passphrase)
    made = cli("keygen", "--out", str(tmp_path / "k"), env={"DVFLOW_KEY_PASSPHRASE": secret})
    assert made.returncode == 0, made.stderr
    key = tmp_path / "k" / "dvflow-attest.key"
    assert b"BEGIN ENCRYPTED PRIVATE KEY" in key.read_bytes()
    out = str(tmp_path / "e.json")
    missing = cli("attest", MODEL, "--key", str(key), "-o", out, "-C", str(demo))
    assert missing.returncode == 2 and "is encrypted" in missing.stderr
    assert "Traceback" not in missing.stderr
    wrong = cli(
        "attest", MODEL, "--key", str(key), "-o", out, "-C", str(demo),
        env={"DVFLOW_KEY_PASSPHRASE": "wrong"},
    )  # fmt: skip
    assert wrong.returncode == 2 and "wrong passphrase" in wrong.stderr
    right = cli(
        "attest", MODEL, "--key", str(key), "-o", out, "-C", str(demo),
        env={"DVFLOW_KEY_PASSPHRASE": secret},
    )  # fmt: skip
    assert right.returncode == 0, right.stderr
    assert secret not in right.stdout + right.stderr + Path(out).read_text()
    assert secret not in everything_written(demo)


def test_a_public_key_is_refused_as_a_signing_key_and_the_reverse(
    demo: Path, keys: dict[str, Path], attested: Path
) -> None:
    signing = cli("attest", MODEL, "--key", str(keys["pub"]), "-C", str(demo))
    assert signing.returncode == 2 and "not a PEM private key" in signing.stderr
    checking = _verify(demo, attested, keys["key"])
    assert checking.returncode == 2 and "That is a private key" in checking.stderr


def test_no_private_key_or_credential_reaches_an_artifact_a_tag_or_the_output(
    demo: Path, keys: dict[str, Path], tmp_path: Path
) -> None:
    planted = "AKIAPLANTED0123456789"
    env = {
        "AWS_SECRET_ACCESS_KEY": planted,
        "GITHUB_ACTIONS": "true",
        "GITHUB_SERVER_URL": f"https://token:{planted}@github.example",
        "GITHUB_WORKFLOW_REF": "org/repo/.github/workflows/ml.yml@refs/heads/main",
    }
    envelope = tmp_path / "ci.json"
    done = cli(
        "attest", MODEL, "--key", str(keys["key"]), "-o", str(envelope), "-C", str(demo), env=env
    )
    assert done.returncode == 0, done.stderr
    builder = _payload(envelope)["predicate"]["runDetails"]["builder"]["id"]
    assert builder.endswith("/org/repo/.github/workflows/ml.yml@refs/heads/main")
    private_body = "".join(keys["key"].read_text().splitlines()[1:-1])
    written = everything_written(demo) + done.stdout + done.stderr + envelope.read_text()
    assert private_body not in written
    assert planted not in written
    tags = tracking_client(demo).get_model_version("wine-classifier", "1").tags
    assert "PRIVATE KEY" not in json.dumps(tags) and planted not in json.dumps(tags)


def test_attest_refuses_a_tampered_record(demo: Path, keys: dict[str, Path]) -> None:
    client = tracking_client(demo)
    run_id = client.get_model_version("wine-classifier", "1").tags["dvflow.run_id"]
    client.set_tag(run_id, "dvflow.record_sha256", "0" * 64)
    done = cli("attest", MODEL, "--key", str(keys["key"]), "-C", str(demo), cwd=demo.parent)
    assert done.returncode == 1, done.stderr
    assert "was tampered with" in done.stderr
    assert not (demo.parent / "wine-classifier-v1.intoto.json").exists()


# -- the gates --------------------------------------------------------------------------------


def test_promote_requires_a_verified_attestation_when_asked(
    demo: Path, keys: dict[str, Path], tmp_path: Path
) -> None:
    promote = ("promote", "wine-classifier", "2", "--alias", "staging", "-C", str(demo))
    gate = ("--require-attestation", str(keys["pub"]))
    refused = cli(*promote, *gate)
    assert refused.returncode == 1, refused.stderr
    assert "FAIL  attested  models:/wine-classifier/2: no attestation is recorded" in refused.stdout
    assert "Traceback" not in refused.stderr
    client = tracking_client(demo)
    assert "staging" not in client.get_registered_model("wine-classifier").aliases

    # Signed by a key the gate does not trust: still refused.
    signed = cli("attest", "models:/wine-classifier/2", "--key", str(keys["other_key"]),
                 "-o", str(tmp_path / "v2.json"), "-C", str(demo))  # fmt: skip
    assert signed.returncode == 0, signed.stderr
    assert cli(*promote, *gate).returncode == 1
    # Version 2 was made in a dirty work tree: its patch is a dependency.
    deps = _payload(tmp_path / "v2.json")["predicate"]["buildDefinition"]["resolvedDependencies"]
    patches = [d for d in deps if d["name"].endswith("/dvflow/code.patch")]
    assert patches and all(len(p["digest"]["sha256"]) == 64 for p in patches)

    signed = cli("attest", "models:/wine-classifier/2", "--key", str(keys["key"]),
                 "-o", str(tmp_path / "v2.json"), "-C", str(demo))  # fmt: skip
    assert signed.returncode == 0, signed.stderr
    passed = cli(*promote, *gate, "--require-attestation", str(keys["other_pub"]))
    assert passed.returncode == 0, passed.stderr
    assert "pass  attested  models:/wine-classifier/2: signed by keyid" in passed.stdout
    assert client.get_registered_model("wine-classifier").aliases["staging"] == 2

    broken = cli(*promote, "--require-attestation", str(tmp_path / "missing.pub"))
    assert broken.returncode == 2 and "key " in broken.stderr


def test_check_requires_an_attestation_of_each_model_at_head(
    demo: Path, keys: dict[str, Path]
) -> None:
    check = ("check", "-C", str(demo), "--require-attestation", str(keys["pub"]))
    unsigned = cli(*check)
    assert unsigned.returncode == 14, unsigned.stdout + unsigned.stderr
    assert (
        "FAIL  attested  models:/wine-classifier/1: no attestation is recorded" in unsigned.stdout
    )
    assert "pass  stale" in unsigned.stdout  # every other check still runs
    plain = cli("check", "-C", str(demo))
    assert plain.returncode == 0, plain.stdout + plain.stderr  # only when asked

    done = cli("attest", MODEL, "--key", str(keys["key"]), "-C", str(demo), cwd=demo.parent)
    assert done.returncode == 0, done.stderr
    signed = cli(*check)
    assert signed.returncode == 0, signed.stdout + signed.stderr
    assert "pass  attested  1 model(s) at HEAD have a verified attestation" in signed.stdout
    other = cli("check", "-C", str(demo), "--require-attestation", str(keys["other_pub"]))
    assert other.returncode == 14
    assert "no signature verifies" in other.stdout


# -- interoperability with securesystemslib (its DSSE and signers; a test dependency) ----------


@pytest.mark.parametrize("kind", ["ed25519", "ecdsa-p256"])
def test_securesystemslib_verifies_dvflow_envelopes(demo: Path, tmp_path: Path, kind: str) -> None:
    from securesystemslib.dsse import Envelope
    from securesystemslib.exceptions import VerificationError
    from securesystemslib.signer import SSlibKey

    from dvflow.export._dsse import keyid, load_public_key

    made = cli("keygen", "--out", str(tmp_path / "k"), "--type", kind)
    assert made.returncode == 0, made.stderr
    out = tmp_path / "env.json"
    key = tmp_path / "k" / "dvflow-attest.key"
    done = cli("attest", MODEL, "--key", str(key), "-o", str(out), "-C", str(demo))
    assert done.returncode == 0, done.stderr
    public = load_public_key(tmp_path / "k" / "dvflow-attest.pub")
    # securesystemslib matches signatures to keys by keyid: its key carries dvflow's.
    trusted = SSlibKey.from_crypto(public, keyid=keyid(public))
    assert trusted.scheme == {"ed25519": "ed25519", "ecdsa-p256": "ecdsa-sha2-nistp256"}[kind]
    envelope = Envelope.from_dict(json.loads(out.read_text()))
    assert envelope.payload_type == "application/vnd.in-toto+json"
    assert list(envelope.verify([trusted], 1)) == [keyid(public)]
    assert json.loads(envelope.payload)["subject"][0]["name"] == "models/model.pkl"

    changed = json.loads(out.read_text())
    changed["payload"] = base64.b64encode(envelope.payload.replace(b"train", b"trail")).decode()
    with pytest.raises(VerificationError):
        Envelope.from_dict(changed).verify([trusted], 1)


@pytest.mark.parametrize("kind", ["ed25519", "ecdsa-p256"])
def test_dvflow_verifies_envelopes_securesystemslib_signed(
    demo: Path, keys: dict[str, Path], attested: Path, tmp_path: Path, kind: str
) -> None:
    from cryptography.hazmat.primitives import serialization
    from securesystemslib.dsse import Envelope
    from securesystemslib.signer import CryptoSigner

    signer = CryptoSigner.generate_ed25519() if kind == "ed25519" else CryptoSigner.generate_ecdsa()
    private = serialization.load_pem_private_key(signer.private_bytes, password=None)
    pub = tmp_path / "sslib.pub"
    pub.write_bytes(
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    # dvflow's own statement of version 1, signed by securesystemslib's DSSE code.
    payload = base64.b64decode(json.loads(attested.read_text())["payload"])
    envelope = Envelope(payload, "application/vnd.in-toto+json", {})
    envelope.sign(signer)
    signed = tmp_path / "sslib.json"
    signed.write_text(json.dumps(envelope.to_dict()))
    verified = _verify(demo, signed, pub)
    assert verified.returncode == 0, verified.stderr
    assert "attestation verified" in verified.stdout
    # ... and only with that key.
    assert _verify(demo, signed, keys["pub"]).returncode == 22


# -- doctor --------------------------------------------------------------------------------


def test_doctor_warns_of_a_private_key_in_git_or_readable_by_others(
    make_project: Callable[..., Path], tmp_path: Path
) -> None:
    root = make_project("basic")
    env = {"XDG_CONFIG_HOME": str(tmp_path / "config")}
    made = cli("keygen", env=env)
    assert made.returncode == 0, made.stderr
    sound = cli("doctor", "-C", str(root), env=env)
    assert "pass  keys      no private key in Git or readable by others" in sound.stdout

    key = tmp_path / "config" / "dvflow" / "keys" / "dvflow-attest.key"
    shutil.copy(key, root / "signing.key")
    key.chmod(0o644)
    loose = cli("doctor", "-C", str(root), env=env)
    assert loose.returncode == 0, loose.stderr  # a warning, not a failure
    line = next(x for x in loose.stdout.splitlines() if "keys" in x)
    assert line.startswith("  warn  keys")
    assert "'git add -A' would commit private key(s): signing.key" in line
    assert f"readable by others: {key}" in line

    git(root, "add", "signing.key")
    tracked = cli("doctor", "-C", str(root), env=env)
    assert "private key(s) tracked by Git: signing.key" in tracked.stdout
    assert "dvflow keygen --force" in tracked.stdout
    assert "".join(key.read_text().splitlines()[1:-1]) not in tracked.stdout + tracked.stderr


def test_a_later_run_that_remakes_the_same_data_is_not_drift(
    demo: Path, keys: dict[str, Path], attested: Path
) -> None:
    again = cli("run", "-f", "-s", "prepare", "-C", str(demo))
    assert again.returncode == 0, again.stderr
    verified = _verify(demo, attested, keys["pub"])
    assert verified.returncode == 0, verified.stderr
    assert "pass  records   2 record(s) still have their digests" in verified.stdout


def test_a_stage_run_of_a_dirty_work_tree_attests_its_changed_script(
    demo: Path, keys: dict[str, Path], tmp_path: Path
) -> None:
    script = demo / "src" / "train.py"
    script.write_text(script.read_text() + "\n# tuned by hand, not committed\n")
    ran = cli("run", "-C", str(demo))
    assert ran.returncode == 0, ran.stderr
    run_id = stage_runs(demo)["train"]
    envelope = tmp_path / "run.json"
    done = cli("attest", run_id, "--key", str(keys["key"]), "-o", str(envelope), "-C", str(demo))
    assert done.returncode == 0, done.stderr
    statement = _payload(envelope)
    VALIDATOR.validate(statement)
    assert [s["name"] for s in statement["subject"]] == ["models/model.pkl"]
    train = _dependency(statement, "src/train.py")  # the bytes the run read, from the work tree
    assert train["digest"]["sha256"] == hashlib.sha256(script.read_bytes()).hexdigest()
    deps = statement["predicate"]["buildDefinition"]["resolvedDependencies"]
    assert any(d["name"] == f"runs:/{run_id}/dvflow/code.patch" for d in deps)
    verified = cli("verify", run_id, "--attestation", str(envelope), "--pubkey", str(keys["pub"]),
                   "-C", str(demo))  # fmt: skip
    assert verified.returncode == 0, verified.stderr
    # From the run's own tags, without --attestation.
    stored = cli("verify", run_id, "--pubkey", str(keys["pub"]), "-C", str(demo))
    assert stored.returncode == 0, stored.stderr


def test_a_bundle_signs_each_upstream_stage_and_links_it_to_the_model(
    demo: Path, keys: dict[str, Path], tmp_path: Path
) -> None:
    from dvflow.export._dsse import envelope_bytes, load_private_key, sign_envelope

    bundle = tmp_path / "v1.intoto.jsonl"
    done = cli("attest", MODEL, "--key", str(keys["key"]), "--stages", "-o", str(bundle),
               "-C", str(demo))  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = bundle.read_text().splitlines()
    statements = [json.loads(base64.b64decode(json.loads(line)["payload"])) for line in lines]
    for statement in statements:
        VALIDATOR.validate(statement)
    prepare = statements[1]  # the stage upstream of train: its outputs are train's inputs
    assert {s["name"] for s in prepare["subject"]} == {
        "data/prepared/test.csv",
        "data/prepared/train.csv",
    }
    verified = _verify(demo, bundle, keys["pub"])
    assert verified.returncode == 0, verified.stderr
    assert "pass  stages    1 stage statement(s) signed; 1 output(s) link" in verified.stdout
    offline = cli("verify", MODEL, "--attestation", str(bundle), "--pubkey", str(keys["pub"]),
                  "--files", str(_shipped(demo, tmp_path / "shipped")))  # fmt: skip
    assert offline.returncode == 0, offline.stderr

    # A stage statement that disagrees with the model's on a file: drift, even offline.
    prepare["subject"][0]["digest"]["sha256"] = "0" * 64
    payload = json.dumps(prepare, sort_keys=True, separators=(",", ":")).encode()
    resigned = sign_envelope(payload, load_private_key(keys["key"]))
    bundle.write_text(lines[0] + "\n" + json.dumps(resigned) + "\n")
    drift = _verify(demo, bundle, keys["pub"])
    assert drift.returncode == 24, drift.stderr
    assert "data/prepared: its files as a stage attests them make sha256" in drift.stderr
    # Signed by another key: refused, naming the line.
    other = sign_envelope(base64.b64decode(json.loads(lines[1])["payload"]),
                          load_private_key(keys["other_key"]))  # fmt: skip
    bundle.write_text(lines[0] + "\n" + envelope_bytes(other).decode().replace("\n", "") + "\n")
    refused = _verify(demo, bundle, keys["pub"])
    assert refused.returncode == 22, refused.stderr
    assert "(line 2)" in refused.stderr
