"""ingestd sign: URL from the standard credential chain, equal to botocore's, usable, clear errors."""

from __future__ import annotations

import argparse
import datetime
import urllib.request
from typing import Any
from unittest import mock

import boto3
import botocore.auth
import pytest
from botocore.config import Config
from s3_moto import REGION, unique

from daemon.commands import sign

AT = datetime.datetime(2030, 5, 6, 7, 8, 9, tzinfo=datetime.UTC)


def cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="ingestd")
    sign.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["sign", *argv])
    return int(args.func(args))


def test_prints_botocore_identical_url(moto_endpoint: str, capsys: Any, monkeypatch: Any) -> None:
    """The printed URL equals botocore's presigned URL for the same time and options."""
    monkeypatch.setattr(sign, "_clock", AT.timestamp)
    monkeypatch.delenv("AWS_ENDPOINT_URL")  # sign the real AWS host, as botocore would
    assert cli("--expires", "600", "--region", "eu-west-1", "s3://media-bucket/a b+c.mp4") == 0
    out = capsys.readouterr().out.strip()
    client = boto3.client(
        "s3",
        region_name="eu-west-1",
        config=Config(signature_version="s3v4", s3={"addressing_style": "virtual"}),
    )
    with mock.patch.object(botocore.auth, "get_current_datetime", return_value=AT.replace(tzinfo=None)):
        expected = client.generate_presigned_url(
            "get_object", Params={"Bucket": "media-bucket", "Key": "a b+c.mp4"}, ExpiresIn=600
        )
    assert out == expected
    assert out.startswith("https://media-bucket.s3.eu-west-1.amazonaws.com/a%20b%2Bc.mp4?")


def test_url_fetches_the_object(moto_endpoint: str, s3: Any, capsys: Any) -> None:
    """Against an S3-compatible endpoint, the URL downloads the object."""
    bucket = unique("signed")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="dir/x y.txt", Body=b"payload")
    assert (
        cli("--endpoint-url", moto_endpoint, "--path-style", "--region", REGION, f"s3://{bucket}/dir/x y.txt")
        == 0
    )
    url = capsys.readouterr().out.strip()
    assert url.startswith(f"{moto_endpoint}/{bucket}/dir/x%20y.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256&")
    with urllib.request.urlopen(url, timeout=5) as r:
        assert r.read() == b"payload"


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["ftp://x/y"], "scheme must be s3 or https"),
        (["--expires", "604801", "s3://media-bucket/k"], "expires must be 1..604800"),
        (["s3://media-bucket/"], "no object key"),
        (["--region", "eu-west-1", "s3://my.dotted/k"], None),
    ],
)
def test_errors_are_clear(
    moto_endpoint: str, capsys: Any, monkeypatch: Any, argv: list[str], needle: str | None
) -> None:
    """Bad input fails with exit 2 and a message naming the problem; the secret never appears."""
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    code = cli(*argv)
    out, err = capsys.readouterr()
    if needle is None:  # dotted buckets are signed path-style, not refused
        assert code == 0 and "https://s3.eu-west-1.amazonaws.com/my.dotted/k?" in out
    else:
        assert code == 2 and needle in err and out == ""
    assert "AWS_SECRET" not in out + err and "testing" not in (out + err).replace(
        "X-Amz-Credential=testing", ""
    )


def test_no_credentials(moto_endpoint: str, capsys: Any, monkeypatch: Any) -> None:
    """Without credentials anywhere in the chain the error says where it looked."""
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    assert cli("--region", "us-east-1", "s3://media-bucket/k") == 2
    assert "no AWS credentials found in the standard chain" in capsys.readouterr().err


def test_config_and_env_endpoint(moto_endpoint: str, capsys: Any, tmp_path: Any) -> None:
    """[aws] from -c gives region and path style; AWS_ENDPOINT_URL is honoured like botocore does."""
    conf = tmp_path / "ingestd.toml"
    conf.write_text(
        '[source]\ntype = "sqs"\nqueue_url = "https://sqs.example/q"\n'
        '[aws]\nregion = "eu-central-1"\naddressing_style = "path"\n'
    )
    assert cli("-c", str(conf), "s3://media-bucket/k.mp4") == 0
    url = capsys.readouterr().out.strip()
    assert url.startswith(f"{moto_endpoint}/media-bucket/k.mp4?") and "%2Feu-central-1%2Fs3%2F" in url


def test_config_s3_endpoint_wins(moto_endpoint: str, capsys: Any, tmp_path: Any) -> None:
    """[aws] endpoints.s3 is where S3 URLs point, not endpoint_url (another service's place)."""
    conf = tmp_path / "ingestd.toml"
    conf.write_text(
        '[source]\ntype = "sqs"\nqueue_url = "https://sqs.example/q"\n[aws]\nregion = "eu-central-1"\n'
        'endpoint_url = "http://127.0.0.1:9324"\naddressing_style = "path"\n'
        'endpoints = { s3 = "https://minio.example.com:9000" }\n'
    )
    assert cli("-c", str(conf), "s3://media-bucket/k.mp4") == 0
    assert capsys.readouterr().out.startswith("https://minio.example.com:9000/media-bucket/k.mp4?")


def test_region_from_aws_region(capsys: Any, monkeypatch: Any) -> None:
    """AWS_REGION (which the error message names) is honoured, not only AWS_DEFAULT_REGION."""
    monkeypatch.setattr(sign, "_clock", AT.timestamp)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("AWS_REGION", "ap-southeast-2")
    assert cli("s3://media-bucket/a.mp4") == 0
    assert capsys.readouterr().out.startswith("https://media-bucket.s3.ap-southeast-2.amazonaws.com/a.mp4?")
