"""Which environment variables hold credentials: whole name parts, not substrings."""

from __future__ import annotations

import pytest

from dvflow._redact import is_secret_name, redactor_for

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
