"""Webhooks in the policy (strictly parsed), their signatures, and their secret files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cutter.core.errors import PolicyInvalid
from cutter.core.notices import encode_notice, notices_for
from cutter.core.policy import parse_policy
from cutter.core.webhooks import sign, verify
from cutter.runtime.secret_files import SecretFileUnreadable, read_secret_file
from tests._harness import paused_sidecar

BASE = 'admins = ["ann"]\n'


def test_a_signature_verifies_with_its_secret_and_fails_with_another() -> None:
    (notice,) = notices_for(paused_sidecar("run-a"))
    body = encode_notice(notice)
    header = sign(b"s3cret", body)
    assert header.startswith("sha256=")
    assert len(header) == len("sha256=") + 64
    assert verify(b"s3cret", body, header)
    assert not verify(b"other", body, header)
    assert not verify(b"s3cret", body + b" ", header)
    assert not verify(b"s3cret", body, header.upper())


def test_the_policy_takes_webhooks_and_a_reminder() -> None:
    policy = parse_policy(
        BASE + "remind_before_seconds = 600\n"
        '[[webhooks]]\nurl = "https://hooks.example/cutter"\nsecret_file = "/etc/cutter/hook"\n'
        'events = ["gate_opened", "approval_reminder"]\n',
        "toml",
    )
    (hook,) = policy.webhooks
    assert hook.wants("gate_opened")
    assert not hook.wants("closeout")
    assert policy.remind_before_seconds == 600
    assert parse_policy(BASE, "toml").webhooks == ()


@pytest.mark.parametrize(
    ("hook", "says"),
    [
        ('url = "ftp://h/x"\nsecret_file = "/s"', "http:// or https://"),
        ('url = "http:///x"\nsecret_file = "/s"', "http:// or https://"),
        ('url = "http://u:pw@h/x"\nsecret_file = "/s"', "no credentials"),
        ('url = "http://h/x y"\nsecret_file = "/s"', "plain URL"),
        ('url = "http://h:99999/x"\nsecret_file = "/s"', "is not a URL"),
        ('url = "http://h/x"\nsecret_file = "relative"', "absolute path"),
        ('url = "http://h/x"\nsecret_file = "/s"\nevents = []', "events is empty"),
        ('url = "http://h/x"\nsecret_file = "/s"\nevents = ["boom"]', "invalid policy"),
        ('url = "http://h/x"\nsecret_file = "/s"\nmax_attempts = 0', "max_attempts"),
        ('url = "http://h/x"\nsecret_file = "/s"\nretries = 3', "unknown field"),
    ],
)
def test_a_bad_webhook_is_policy_invalid(hook: str, says: str) -> None:
    with pytest.raises(PolicyInvalid) as caught:
        parse_policy(BASE + "[[webhooks]]\n" + hook + "\n", "toml")
    assert caught.value.code == "E_POLICY_INVALID"
    assert says in caught.value.message


def test_too_many_webhooks_or_a_url_twice_is_refused() -> None:
    one = '[[webhooks]]\nurl = "http://h/{n}"\nsecret_file = "/s"\n'
    with pytest.raises(PolicyInvalid, match="more than 20 webhooks"):
        parse_policy(BASE + "".join(one.format(n=n) for n in range(21)), "toml")
    with pytest.raises(PolicyInvalid, match="listed twice"):
        parse_policy(BASE + one.format(n=1) + one.format(n=1), "toml")
    with pytest.raises(PolicyInvalid, match="remind_before_seconds"):
        parse_policy(BASE + "remind_before_seconds = 5\n", "toml")


def test_a_secret_file_is_read_only_when_private(tmp_path: Path) -> None:
    secret = tmp_path / "hook.secret"
    secret.write_bytes(b"s3cret\n")
    secret.chmod(0o600)
    assert read_secret_file(str(secret)) == b"s3cret"
    secret.chmod(0o640)
    with pytest.raises(SecretFileUnreadable, match="readable by group or others") as caught:
        read_secret_file(str(secret))
    assert "s3cret" not in caught.value.message
    secret.chmod(0o600)
    link = tmp_path / "link"
    link.symlink_to(secret)
    with pytest.raises(SecretFileUnreadable):
        read_secret_file(str(link))
    with pytest.raises(SecretFileUnreadable, match="not a regular file"):
        read_secret_file(str(tmp_path))
    empty = tmp_path / "empty"
    empty.write_bytes(b"\n")
    os.chmod(empty, 0o600)
    with pytest.raises(SecretFileUnreadable, match="empty"):
        read_secret_file(str(empty))
    with pytest.raises(SecretFileUnreadable) as missing:
        read_secret_file(str(tmp_path / "absent"))
    assert missing.value.code == "E_SECRET_FILE_UNREADABLE"
