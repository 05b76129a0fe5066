"""What the redactor masks: credential shapes and values, never ordinary words, in linear time."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import dvflow
from dvflow.core._git import looks_like_secret_file
from dvflow.core._redact import Redactor, is_secret_name, redactor_for

SECRETS = [
    "AWS_SECRET_ACCESS_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SESSION_TOKEN",
    "AZURE_STORAGE_CONNECTION_STRING",
    "AZURE_STORAGE_SAS_TOKEN",
    "AZURE_STORAGE_KEY",
    "AZURE_CLIENT_SECRET",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
    "PGPASSWORD",
    "HF_AUTH",
    "OPENAI_API_KEY",
    "MYSQL_PWD",
    "SLACK_WEBHOOK_URL",
    "DEPLOY_BEARER",
]
PLAIN = [
    "GIT_AUTHOR_NAME",
    "GIT_AUTHOR_EMAIL",
    "GIT_COMMITTER_NAME",
    "TOKENIZERS_PARALLELISM",
    "PWD",
    "OLDPWD",
    "HOSTNAME",
    "PASSENGER_APP_ENV",
    "MLFLOW_TRACKING_URI",
    "KEYBOARD_LAYOUT",
]


@pytest.mark.parametrize("name", SECRETS)
def test_credential_names_are_secret(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize("name", PLAIN)
def test_ordinary_names_are_not(name: str) -> None:
    assert not is_secret_name(name)


def test_an_author_named_like_a_folder_does_not_mask_paths() -> None:
    redactor = redactor_for(
        None, {"GIT_AUTHOR_NAME": "alice", "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG"}
    )
    text = "/home/alice/project s3 key wJalrXUtnFEMI/K7MDENG"
    assert redactor.redact(text) == "/home/alice/project s3 key ***"


# Each shape with the part that must go (the planted marker) and a part that must stay.
SHAPES = [
    ("https://api.example.invalid/v1?api_key=PlantedKey0001&page=2", "PlantedKey0001", "page=2"),
    ("https://api.example.invalid/v1?x=1&apikey=PlantedKey0002", "PlantedKey0002", "x=1"),
    ("https://maps.example.invalid/geo?key=AIzaPlantedKey0003xyz", "PlantedKey0003", "/geo?key="),
    (
        "gs://b/o?X-Goog-Algorithm=GOOG4-RSA-SHA256&X-Goog-Credential=svc%40p.iam%2FPlanted0004"
        "&X-Goog-Date=20240101T000000Z&X-Goog-Signature=9f8e7d6c5bPlanted0005",
        "Planted000",
        "X-Goog-Date=20240101T000000Z",
    ),
    ("X-Goog-Signature: 9f8e7d6c5bPlanted0006", "Planted0006", "X-Goog-Signature: "),
    (
        "curl -H 'Authorization: Bearer eyJhbGci.PlantedJwt0007' https://x",
        "PlantedJwt0007",
        "Bearer",
    ),
    ("Authorization: Basic dXNlcjpPlanted0008==", "Planted0008", "Basic"),
    ("token header: Bearer PlantedToken0009abc", "PlantedToken0009", "token header"),
    (
        "key:\n-----BEGIN RSA PRIVATE KEY-----\nMIIEowPlantedPem0010AAAA\nQWxhZGRpbjpvcGVuPlanted0011"
        "\n-----END RSA PRIVATE KEY-----\ndone",
        "Planted001",
        "-----END RSA PRIVATE KEY-----\ndone",
    ),
    (
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaPlantedCut0012 (the stderr tail ends here)",
        "PlantedCut0012",
        "BEGIN OPENSSH PRIVATE KEY",
    ),
    (
        "[default]\naws_access_key_id = AKIAPLANTED0013EXAMPLE\n"
        "aws_secret_access_key = wJalrXUtnFEMI/Planted0014/bPxRfiCYEXAMPLEKEY\nregion = us-east-1",
        "PLANTED0013",
        "region = us-east-1",
    ),
    ("aws_secret_access_key = wJalrXUtnFEMI/Planted0014", "Planted0014", "aws_secret_access_key"),
    ("export MYSQL_PWD=Planted0015pw", "Planted0015", "export MYSQL_PWD="),
    (
        "SLACK_WEBHOOK_URL=https://hooks.slack.example.invalid/services/T0/B0/Planted0016",
        "Planted0016",
        "SLACK_WEBHOOK_URL=",
    ),
    ("DEPLOY_BEARER=Planted0017bearer", "Planted0017", "DEPLOY_BEARER="),
    ('{"client_secret": "Planted0018secretvalue"}', "Planted0018", '"client_secret": "'),
    ("python train.py --token=Planted0019tok --lr 0.1", "Planted0019", "--lr 0.1"),
]


@pytest.mark.parametrize(("text", "planted", "kept"), SHAPES)
def test_credential_shapes_are_masked_and_the_text_around_them_kept(
    text: str, planted: str, kept: str
) -> None:
    redacted = Redactor().redact(text)
    assert planted not in redacted
    assert kept in redacted
    assert "***" in redacted


def test_a_patch_keeps_its_line_markers_when_a_key_in_it_is_masked() -> None:
    patch = (
        "+-----BEGIN PRIVATE KEY-----\n+MIIEvQIBADANPlanted\n+AAAAAAAAAAAAAAAA\n"
        "+-----END PRIVATE KEY-----\n"
    )
    redacted = Redactor().redact(patch)
    assert "Planted" not in redacted
    assert all(line.startswith("+") for line in redacted.splitlines())
    assert len(redacted.splitlines()) == 4


ORDINARY_ENV = {
    "SKIP_AUTH": "true",
    "CACHE_KEY": "train",
    "USE_SAS": "false",
    "HF_TOKEN": "train",
    "API_KEY_COUNT": "10",
    "MLFLOW_TRACKING_PASSWORD": "none",
    "SSH_AUTH_SOCK": "/run/user/1000/keyring/ssh",
    "PRIMARY_KEY": "id",
}


def test_ordinary_values_of_credential_looking_variables_are_not_masked() -> None:
    redactor = redactor_for(None, ORDINARY_ENV)
    text = "dvflow.git_dirty=true stage train 10 false id none /run/user/1000/keyring/ssh"
    assert redactor.redact(text) == text
    assert redactor.secrets == set()


def test_credential_variables_with_real_values_are_masked_everywhere() -> None:
    redactor = redactor_for(
        None,
        {
            "CACHE_KEY": "Xk29fLq0Pz7Rw3Ty",
            "MLFLOW_TRACKING_PASSWORD": "hunter22",
            "MYSQL_PWD": "s3cretpw",
            "PWD": "/home/alice",
        },
    )
    text = "Xk29fLq0Pz7Rw3Ty hunter22 s3cretpw /home/alice"
    assert redactor.redact(text) == "*** *** *** /home/alice"


CODE = [
    "token = next_token",
    "password = args.password",
    "sorted(values, key=len, reverse=True)",
    "sorted(values, key=lambda v: v.name)",
    'headers = {"Authorization": f"Bearer {token}"}',
    'secret = os.environ["MY_SECRET"]',
    "api_key: ${{ secrets.API_KEY }}",
    "the bearer of this letter",
    "git@github.com:org/repo.git",
]


@pytest.mark.parametrize("line", CODE)
def test_code_that_handles_credentials_is_not_masked(line: str) -> None:
    assert Redactor().redact(line) == line


@pytest.mark.parametrize(
    ("path", "secret"),
    [
        ("config/.env", True),
        ("config/.env.production", True),
        ("config/secrets.json", True),
        ("config/db_credentials.yaml", True),
        ("config/server.pem", True),
        ("config/tls.key", True),
        ("config/id_ed25519", True),
        ("config/secrets/db.json", True),
        ("config/settings.json", False),
        ("config/keys.txt", False),
        ("config/environment.yaml", False),
    ],
)
def test_untracked_files_named_like_secrets_are_recognised(path: str, secret: bool) -> None:
    assert looks_like_secret_file(path) is secret


# 10 MB single lines shaped to make a backtracking pattern try every start
# position against the rest of the line: quadratic, that is days of work.
LONG_LINES = """
import sys
from dvflow.core._redact import Redactor
N = 10_000_000
lines = {
    "alnum": "a" * N,
    "scheme": "a" * N + "://",
    "userinfo": "a://" + "b" * N,
    "assignments": "a=" * (N // 2),
    "colons": "a:" * (N // 2),
    "hyphens": "a-" * (N // 2),
    "query": "?key=" + "&" * N,
    "spaces": "password=" + " " * N,
    "pem": "-----BEGIN PRIVATE KEY-----" * (N // 27),
    "bearer": "Bearer " * (N // 7),
    "headers": "authorization:" * (N // 14),
    "words": "TOKEN_" * (N // 6) + "=x",
}
redactor = Redactor({"planted-value"})
for name, line in lines.items():
    redactor.redact(line)
    print(name, flush=True)
"""


def test_the_redactor_takes_10_mb_single_lines_in_linear_time(tmp_path: Path) -> None:
    src = str(Path(dvflow.__file__).parents[1])
    done = subprocess.run(
        [sys.executable, "-c", LONG_LINES],
        capture_output=True,
        text=True,
        timeout=900,  # linear: seconds; quadratic: days
        env={**os.environ, "PYTHONPATH": src},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [
        "alnum", "scheme", "userinfo", "assignments", "colons", "hyphens", "query", "spaces",
        "pem", "bearer", "headers", "words",
    ]  # fmt: skip
