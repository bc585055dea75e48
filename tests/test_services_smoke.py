"""The local services start and answer like the real ones."""

from __future__ import annotations

import boto3
import pytest
import requests

pytestmark = pytest.mark.integration


def test_moto_s3_conditional_put(aws_env):
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="smoke")
    s3.put_object(Bucket="smoke", Key="a", Body=b"1", IfNoneMatch="*")
    with pytest.raises(s3.exceptions.ClientError) as err:
        s3.put_object(Bucket="smoke", Key="a", Body=b"2", IfNoneMatch="*")
    assert err.value.response["Error"]["Code"] == "PreconditionFailed"


def test_pgstac_api_answers(pgstac_api):
    landing = requests.get(pgstac_api.url, timeout=10).json()
    assert landing["type"] == "Catalog"
    conforms = requests.get(f"{pgstac_api.url}/conformance", timeout=10).json()["conformsTo"]
    assert any("transaction" in c for c in conforms)
