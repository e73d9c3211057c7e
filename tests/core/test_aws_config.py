"""``[aws] endpoints``: one endpoint per service, falling back to ``endpoint_url``, then AWS's
default; unknown services and URLs that are not endpoints are refused at load, naming the key."""

from __future__ import annotations

from typing import Any

import pytest

from daemon.core.aws_config import AwsConfig
from daemon.core.config import ConfigError, from_dict

SOURCE: dict[str, Any] = {"type": "spool", "path": "media"}


def aws(table: dict[str, Any], environ: dict[str, str] | None = None) -> AwsConfig:
    return from_dict({"source": SOURCE, "aws": table}, environ=environ or {}).aws


def refused(table: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as e:
        aws(table)
    return str(e.value)


class TestLookup:
    def test_each_service_its_own_endpoint(self) -> None:
        """``endpoints.<service>`` wins over ``endpoint_url`` for that service only."""
        a = aws(
            {"endpoint_url": "https://vpce-all.example.com", "endpoints": {"sqs": "http://127.0.0.1:9324"}}
        )
        assert a.endpoint("sqs") == "http://127.0.0.1:9324"
        assert a.endpoint("s3") == "https://vpce-all.example.com"

    def test_empty_or_absent_falls_back_to_endpoint_url_then_aws(self) -> None:
        """An empty override is no override; with no endpoint_url either, AWS's default ('')."""
        a = aws({"endpoint_url": "http://minio:9000", "endpoints": {"s3": ""}})
        assert a.endpoint("s3") == a.endpoint("sqs") == "http://minio:9000"
        assert aws({}).endpoint("s3") == aws({"endpoints": {"s3": ""}}).endpoint("sqs") == ""

    def test_both_services_set(self) -> None:
        a = aws(
            {"endpoints": {"s3": "https://s3.vpce.example.com/base", "sqs": "https://sqs.vpce.example.com"}}
        )
        assert (a.endpoint("s3"), a.endpoint("sqs")) == (
            "https://s3.vpce.example.com/base",
            "https://sqs.vpce.example.com",
        )

    def test_inline_table_from_the_environment(self) -> None:
        """``INGESTD_AWS_ENDPOINTS`` takes a TOML inline table, like any table-valued key."""
        a = aws({}, environ={"INGESTD_AWS_ENDPOINTS": '{ sqs = "http://elasticmq:9324" }'})
        assert a.endpoints == {"sqs": "http://elasticmq:9324"}

    def test_asking_for_a_service_ingestd_does_not_call_is_a_bug(self) -> None:
        with pytest.raises(ValueError, match="'sns'"):
            AwsConfig().endpoint("sns")


class TestRefused:
    def test_unknown_service_is_named_with_the_known_ones(self) -> None:
        assert refused({"endpoints": {"sns": "https://sns.example.com"}}) == (
            "aws.endpoints.sns: unknown service 'sns' (ingestd calls: s3, sqs)"
        )

    @pytest.mark.parametrize("url", ["ftp://files.example.com", "minio:9000", "http://", "http://h:99999"])
    def test_bad_url_names_the_service(self, url: str) -> None:
        assert refused({"endpoints": {"s3": url}}) == (
            f"aws.endpoints.s3: must be http(s)://host[:port][/path], got {url!r}"
        )

    def test_endpoint_url_is_checked_the_same_way(self) -> None:
        assert refused({"endpoint_url": "localhost:4566"}) == (
            "aws.endpoint_url: must be http(s)://host[:port][/path], got 'localhost:4566'"
        )

    def test_credentials_in_an_endpoint_are_refused_and_never_echoed(self) -> None:
        with pytest.raises(ConfigError) as e:
            from_dict({"aws": {"endpoints": {"sqs": "http://me:hunter2@elasticmq:9324"}}})
        assert "aws.endpoints.sqs: must not carry credentials" in str(e.value)
        assert "hunter2" not in str(e.value)

    def test_a_url_must_be_a_string(self) -> None:
        assert refused({"endpoints": {"sqs": 9324}}).startswith("aws.endpoints")


class TestSdkEnvironment:
    """Where ``[aws]`` names no endpoint for a service, the AWS SDKs' variables decide, read at
    load, so S3 reads and signed URLs go where botocore's listing and SQS clients go."""

    def test_service_variable_then_the_general_one(self) -> None:
        a = aws(
            {}, environ={"AWS_ENDPOINT_URL_S3": "http://minio:9000", "AWS_ENDPOINT_URL": "http://ls:4566"}
        )
        assert (a.endpoint("s3"), a.endpoint("sqs")) == ("http://minio:9000", "http://ls:4566")

    def test_the_config_wins_over_the_environment(self) -> None:
        env = {"AWS_ENDPOINT_URL_S3": "http://minio:9000", "AWS_ENDPOINT_URL_SQS": "http://mq:9324"}
        a = aws({"endpoints": {"s3": "http://s3.internal"}}, environ=env)
        assert (a.endpoint("s3"), a.endpoint("sqs")) == ("http://s3.internal", "http://mq:9324")
        b = aws({"endpoint_url": "http://ls:4566"}, environ=env)
        assert (b.endpoint("s3"), b.endpoint("sqs")) == ("http://ls:4566", "http://ls:4566")

    def test_ignored_when_the_sdk_is_told_to(self) -> None:
        env = {"AWS_ENDPOINT_URL": "http://ls:4566", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true"}
        assert aws({}, environ=env).endpoint("s3") == ""

    def test_a_bad_variable_is_named(self) -> None:
        with pytest.raises(
            ConfigError, match=r"^AWS_ENDPOINT_URL_SQS \(the AWS SDKs' endpoint for sqs\): must be"
        ):
            aws({}, environ={"AWS_ENDPOINT_URL_SQS": "mq:9324"})
