"""SQS over the AWS JSON 1.0 protocol, sans I/O: request bodies, response decoding, error mapping.

A call is ``POST /`` to the queue's regional endpoint with ``X-Amz-Target: AmazonSQS.<Action>``,
``Content-Type: application/x-amz-json-1.0`` and a JSON body of the action's parameters (the
``QueueUrl`` among them); the answer is a JSON object shaped as botocore returns it (``Messages``,
``Successful``/``Failed``), so callers can use either client. ``x-amzn-query-mode: true`` (sent by
botocore too) makes SQS report the query-protocol error code in ``x-amzn-query-error``
(``AWS.SimpleQueueService.NonExistentQueue;Sender``): that is the code botocore's ClientError
carries, so logs read the same with either client.

Errors become :class:`SqsError` with a ``kind`` the caller can act on (``throttled``, ``denied``,
``no_queue``, ``bad_handle``, ``server``, ``client``, ``network``) and ``retryable``. Per-entry
failures of the batch calls are not errors: they come back in ``Failed`` like botocore's.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

JSON_CONTENT_TYPE = "application/x-amz-json-1.0"
HOT_ACTIONS = ("ReceiveMessage", "DeleteMessageBatch", "ChangeMessageVisibilityBatch")

Kind = Literal["throttled", "denied", "no_queue", "bad_handle", "server", "client", "network"]

THROTTLED = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "KmsThrottled",
        "KmsThrottledException",
    }
)
DENIED = frozenset({"AccessDenied", "AccessDeniedException", "InvalidClientTokenId", "SignatureDoesNotMatch"})
NO_QUEUE = frozenset({"QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue"})
BAD_HANDLE = frozenset(
    {
        "ReceiptHandleIsInvalid",
        "InvalidReceiptHandle",
        "MessageNotInflight",
        "AWS.SimpleQueueService.MessageNotInflight",
    }
)

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder()


class SqsError(Exception):
    """A failed SQS call: the AWS error code, its kind, the HTTP status and the server's message."""

    def __init__(self, code: str, message: str, *, status: int, kind: Kind) -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message
        self.status = status
        self.kind: Kind = kind

    @property
    def retryable(self) -> bool:
        return self.kind in ("throttled", "server", "network")


def headers_for(action: str) -> dict[str, str]:
    """The fixed headers of one action (signed by :class:`workers.sigv4.HeaderSigner`)."""
    return {
        "Content-Type": JSON_CONTENT_TYPE,
        "X-Amz-Target": f"AmazonSQS.{action}",
        "x-amzn-query-mode": "true",
    }


def encode_request(params: dict[str, Any]) -> bytes:
    return _encoder.encode(params)


def kind_of(code: str, status: int) -> Kind:
    if code in THROTTLED or status == 429 or code.endswith("Throttled"):
        return "throttled"
    if code in NO_QUEUE:
        return "no_queue"
    if code in DENIED or status == 403:
        return "denied"
    if code in BAD_HANDLE:
        return "bad_handle"
    return "server" if status >= 500 else "client"


def error_from(status: int, query_error: str | None, body: bytes) -> SqsError:
    """The error of a non-2xx answer; the body need not be JSON (a proxy's HTML page)."""
    try:
        doc = _decoder.decode(body) if body else {}
    except msgspec.DecodeError:
        doc = {}
    if not isinstance(doc, dict):
        doc = {}
    type_name = str(doc.get("__type") or doc.get("code") or "")
    code = type_name.rsplit("#", 1)[-1].split(":", 1)[0]
    if query_error:
        code = query_error.split(";", 1)[0] or code
    if not code:
        code = "ServiceUnavailable" if status >= 500 else f"HTTP{status}"
    message = doc.get("message") or doc.get("Message") or ""
    return SqsError(code, str(message)[:500], status=status, kind=kind_of(code, status))


def decode_response(status: int, query_error: str | None, body: bytes) -> dict[str, Any]:
    """The answer of a call as botocore returns it (a dict), or raise :class:`SqsError`."""
    if not 200 <= status < 300:
        raise error_from(status, query_error, body)
    if not body:
        return {}
    try:
        doc = _decoder.decode(body)
    except msgspec.DecodeError as e:
        raise SqsError("InvalidResponse", f"not JSON: {e}", status=status, kind="server") from None
    if not isinstance(doc, dict):
        raise SqsError(
            "InvalidResponse", f"a JSON {type(doc).__name__}, not an object", status=status, kind="server"
        )
    return doc
