"""Large annotation imports by a presigned URL of an object we wrote (``[target] annotation_staging``;
shared/ref/labelbox.md section 2 "By URL", A2.3 "Create by URL").

:meth:`Stager.stage` writes one import's NDJSON as ``s3://<bucket>/<prefix><import name>.ndjson``
and answers a presigned GET of it, which the importer passes as ``fileUrl``:

* the key is a pure function of the import name (itself a hash of the lines), so a retry after a
  crash or a lost answer writes the same object again, never a second one;
* the URL is signed by the project's own presigner (:class:`workers.urls.S3UrlSigner`, byte-identical
  to botocore) for ``[target] url_endpoint`` (where the platform fetches from, as for ``row_data``),
  valid ``annotation_staging_expires`` seconds: hours, enough for Labelbox to fetch it while the job
  runs, not the 7-day maximum;
* no HEAD check before the create (the SDK's ``requests.head`` would fail on a URL presigned for GET:
  A2.3); the URL, whose query holds the signature, is never logged: only ``s3://bucket/key`` is;
* the write is one ``PutObject`` through aiobotocore with botocore's own retries off: a failure is a
  :class:`TransientError` under the daemon's one retry policy (the batch goes back to the source,
  nothing is dead-lettered for our own storage). The objects are left in place (an S3 lifecycle rule
  on the prefix removes them; Labelbox reads the file only while the job runs).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import structlog
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from daemon.core.config import AwsConfig
from daemon.core.project_config import staging_location
from daemon.sinks.base import PermanentError, TransientError
from workers.platforms.labelbox.imports import staging_key
from workers.reads import ReadError
from workers.reads.s3 import ChainCredentials
from workers.urls import S3UrlSigner

log = structlog.get_logger()


class Stager:
    def __init__(
        self,
        location: str,
        *,
        aws: AwsConfig,
        url_endpoint: str,
        expires: int,
        client: Any,
        session: Any = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.bucket, self.prefix = staging_location(location)
        self.aws = aws
        self.expires = expires
        self._session = session or get_session()
        self._credentials = ChainCredentials(self._session)
        self._signer = S3UrlSigner(
            region=aws.region,
            endpoint_url=url_endpoint,
            addressing_style="path" if url_endpoint else "virtual",
        )
        self._clock = clock
        self._client = client  # aiobotocore S3 (daemon.core.aws.aws_client, botocore's retries off)
        self.staged = 0

    async def check(self) -> None:
        """The staging bucket is there and ours (``ingestd check``, readiness)."""
        where = f"s3://{self.bucket}/{self.prefix}"
        try:
            await self._client.head_bucket(Bucket=self.bucket)
        except ClientError as e:
            code = e.response.get("Error", {}).get("Code", "?")
            raise PermanentError(f"annotation staging {where}: {code} (target.annotation_staging)") from None
        except (BotoCoreError, OSError) as e:
            raise TransientError(f"annotation staging {where}: {type(e).__name__}: {e}") from None
        log.info("labelbox.annotation_staging", location=where)

    async def stage(self, name: str, ndjson: bytes) -> str:
        """Write ``ndjson`` as the import ``name``'s object; the presigned GET of it."""
        key = staging_key(self.prefix, name)
        where = f"s3://{self.bucket}/{key}"
        try:
            s3 = self._client
            await s3.put_object(Bucket=self.bucket, Key=key, Body=ndjson, ContentType="application/x-ndjson")
            creds = await self._credentials.get()
        except ClientError as e:
            err = e.response.get("Error", {})
            status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            raise TransientError(
                f"annotation staging {where}: {err.get('Code', '?')}: {err.get('Message', '')}", status=status
            ) from None
        except (BotoCoreError, OSError, ReadError) as e:
            raise TransientError(f"annotation staging {where}: {type(e).__name__}: {e}") from None
        self.staged += 1
        log.info("labelbox.import_staged", object=where, bytes=len(ndjson), expires_s=self.expires)
        return self._signer.presign_get(creds, self.bucket, key, expires=self.expires, now=self._clock())
