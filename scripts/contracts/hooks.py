"""schemathesis hooks for scripts/check-contracts.sh: real identifiers in generated requests.

Random device uuids only ever meet "not found". These hooks put the check's own phone (Token
API bodies) and ATM (Cash API queries) into most generated requests, so that tokens are
issued, claimed and confirmed with generated amounts, texts and JSON, and the reads after them
(lists, statistics, clearing) answer with real rows. Ledger transfers and account paths get
the check's two funded accounts the same way. Which requests get them is decided from
the request itself, never at random: hypothesis replays a case exactly when it shrinks it.
"""

import json
import os
import zlib

import schemathesis

PHONE = os.environ.get("CHECK_CONTRACTS_PHONE", "")
ATM = os.environ.get("CHECK_CONTRACTS_ATM", "")
LEDGER_ACCOUNTS = [item for item in os.environ.get("CHECK_CONTRACTS_LEDGER_ACCOUNTS", "").split(",") if item]


def _most(value) -> bool:
    """True for about three requests in four, the same for the same request."""
    text = json.dumps(value, sort_keys=True, default=str)
    return zlib.crc32(text.encode("utf-8", "surrogatepass")) % 4 != 0


def _with_ledger_accounts(transfer):
    """A transfer between the check's two accounts, where it names accounts at all."""
    if len(LEDGER_ACCOUNTS) < 2 or not isinstance(transfer, dict) or not _most(transfer):
        return transfer
    mapped = dict(transfer)
    if "debit_account_id" in mapped:
        mapped["debit_account_id"] = LEDGER_ACCOUNTS[0]
    if "credit_account_id" in mapped:
        mapped["credit_account_id"] = LEDGER_ACCOUNTS[1]
    return mapped


@schemathesis.hook
def map_body(context, body):
    operation = context.operation
    if operation is not None and operation.path == "/ledger/v1/transfers":
        return _with_ledger_accounts(body)
    if (
        operation is not None
        and operation.path == "/ledger/v1/transfers/batch"
        and isinstance(body, dict)
        and isinstance(body.get("transfers"), list)
    ):
        return {**body, "transfers": [_with_ledger_accounts(item) for item in body["transfers"]]}
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


@schemathesis.hook
def map_path_parameters(context, path_parameters):
    operation = context.operation
    if (
        LEDGER_ACCOUNTS
        and operation is not None
        and operation.path.startswith("/ledger/v1/accounts/{id}")
        and isinstance(path_parameters, dict)
        and "id" in path_parameters
        and _most(path_parameters)
    ):
        path_parameters = {**path_parameters, "id": LEDGER_ACCOUNTS[0]}
    return path_parameters
