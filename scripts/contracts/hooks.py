"""schemathesis hooks for scripts/check-contracts.sh: real identifiers in generated requests.

Random device uuids only ever meet "not found". These hooks put the check's own phone (Token
API bodies) and ATM (Cash API queries) into most generated requests, so that tokens are
issued, claimed and confirmed with generated amounts, texts and JSON, and the reads after them
(lists, statistics, clearing) answer with real rows. Which requests get them is decided from
the request itself, never at random: hypothesis replays a case exactly when it shrinks it.
"""

import json
import os
import zlib

import schemathesis

PHONE = os.environ.get("CHECK_CONTRACTS_PHONE", "")
ATM = os.environ.get("CHECK_CONTRACTS_ATM", "")


def _most(value) -> bool:
    """True for about three requests in four, the same for the same request."""
    text = json.dumps(value, sort_keys=True, default=str)
    return zlib.crc32(text.encode("utf-8", "surrogatepass")) % 4 != 0


@schemathesis.hook
def map_body(context, body):
    operation = context.operation
    if (
        PHONE
        and operation is not None
        and operation.path == "/dnapi/token/v1/tokens"
        and isinstance(body, dict)
        and "device_uuid" in body
        and _most(body)
    ):
        body = {**body, "device_uuid": PHONE}
    return body


@schemathesis.hook
def map_query(context, query):
    operation = context.operation
    if (
        ATM
        and operation is not None
        and operation.path.startswith("/dnapi/cash/")
        and isinstance(query, dict)
        and "device_uuid" in query
        and _most(query)
    ):
        query = {**query, "device_uuid": ATM}
    return query
