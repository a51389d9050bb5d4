"""Schemathesis hooks for .ci/check-openapi (loaded through SCHEMATHESIS_HOOKS).

What they change, and why none of it hides a disagreement between the spec and the server:
- NDJSON batches are serialized as sent (the examples' text), and generated batches are left
  out: each line of a batch is judged alone and a batch with one good line is a 200, which no
  request schema can state for a generator; tests/it/ingest.rs covers batches.
- Long polls are kept short: a valid `wait` above 200 ms would hold a request for up to 30 s
  when nothing new is committed (the feed answers at once when records are there).
- A valid Idempotency-Key is made unique per request: the spec says a key reused with another
  request is a 422, so a generator that repeats a short key would see 422s for valid requests.
  An invalid key is left as generated (it must still be refused).
- An integral number taken from a JSON body into a path (a link's `$request.body#/pr_number`
  given as 12.0) is written as JavaScript writes it, `12`: JSON has one number type, and a
  client building the URL writes the number, not Python's `12.0`.
"""
import re
import uuid

import schemathesis

_WAIT = re.compile(r"^(?:(\d+)s?|(\d+)ms)$")
_KEY = re.compile(r"^[!-~]{1,200}$")


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx, value):
    if isinstance(value, bytes):
        return value
    return str(value).encode("utf-8")


def _long_wait(value) -> bool:
    match = _WAIT.match(str(value))
    if match is None:
        return False
    millis = int(match.group(1)) * 1000 if match.group(1) is not None else int(match.group(2))
    return millis > 200


@schemathesis.hook
def filter_query(ctx, query):
    return not (isinstance(query, dict) and _long_wait(query.get("wait", "")))


@schemathesis.hook
def filter_case(ctx, case):
    media = (case.media_type or "").lower()
    return "ndjson" not in media


@schemathesis.hook
def before_call(ctx, case, kwargs):
    headers = case.headers or {}
    for name in list(headers):
        if name.lower() == "idempotency-key" and isinstance(headers[name], str) and _KEY.match(headers[name]):
            headers[name] = f"st-{uuid.uuid4()}"
    for name, value in (case.path_parameters or {}).items():
        if isinstance(value, float) and value.is_integer():
            case.path_parameters[name] = int(value)
