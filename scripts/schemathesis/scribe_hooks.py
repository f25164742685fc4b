"""schemathesis hooks for scribe's contract run (scripts/schemathesis/run).

Two rules of the API cannot be written in JSON Schema; for the generated
requests that fit the schema ("positive" ones), these hooks make them hold,
so that a 422 on such a request is still a failure of the run:

- a blueprint's session names are unique (`POST /api/agents`);
- a meeting's `agent_id` names an existing agent (`POST /api/meetings`):
  positive requests use the agent the run script created
  (`SCRIBE_FUZZ_AGENT_ID`).

One media type has no serializer of schemathesis's own:
`application/sdp` (`POST /api/meetings/{id}/call`), sent as text.

And the webhooks are signed as Stream and OpenAI sign them, so that their
bodies are fuzzed past the signature check (see schemathesis.toml).
"""

import base64
import hashlib
import hmac
import json
import os
import time
import uuid

import schemathesis
from schemathesis import GenerationMode
from schemathesis.core import NotSet


# An SDP offer is text.
schemathesis.serializer.alias("application/sdp", "text/plain")


def _positive(case):
    meta = case.meta
    return meta is not None and meta.generation.mode == GenerationMode.POSITIVE


def _is(ctx, method, path):
    operation = ctx.operation
    return (
        operation is not None
        and operation.method.upper() == method
        and operation.path == path
    )


@schemathesis.hook
def filter_case(ctx, case):
    if not (_is(ctx, "POST", "/api/agents") and _positive(case)):
        return True
    body = case.body
    if not isinstance(body, dict) or not isinstance(body.get("blueprint"), dict):
        return True
    sessions = body["blueprint"].get("sessions")
    if not isinstance(sessions, list):
        return True
    names = [s.get("session_name") for s in sessions if isinstance(s, dict)]
    # Unique once trimmed, as scribe compares them.
    trimmed = [n.strip() for n in names if isinstance(n, str)]
    return len(set(trimmed)) == len(trimmed)


@schemathesis.hook
def map_case(ctx, case):
    agent = os.environ.get("SCRIBE_FUZZ_AGENT_ID")
    if (
        agent
        and _is(ctx, "POST", "/api/meetings")
        and _positive(case)
        and isinstance(case.body, dict)
        and "agent_id" in case.body
    ):
        case.body["agent_id"] = agent
    return case


# --- Webhook signatures ---------------------------------------------------

SIGN_ME = "sign-me"


def _wire_json(body):
    """The bytes `requests` sends for a JSON body (json.dumps, UTF-8)."""
    if isinstance(body, bytes):
        return body
    if isinstance(body, NotSet):
        return b""
    if body is None:
        return b"null"
    return json.dumps(body, allow_nan=False).encode("utf-8")


def _header(headers, name):
    for key, value in (headers or {}).items():
        if key.lower() == name:
            return key, value
    return None, None


@schemathesis.hook
def before_call(ctx, case, kwargs):
    headers = case.headers if case.headers is not None else {}
    if _is(ctx, "POST", "/api/webhook"):
        key, value = _header(headers, "x-signature")
        if value == SIGN_ME:
            secret = os.environ["STREAM_API_SECRET"].encode()
            headers[key] = hmac.new(secret, _wire_json(case.body), hashlib.sha256).hexdigest()
    elif _is(ctx, "POST", "/api/openai/webhook"):
        key, value = _header(headers, "webhook-signature")
        if value == SIGN_ME:
            secret = os.environ["OPENAI_WEBHOOK_SECRET"].removeprefix("whsec_")
            _, delivery = _header(headers, "webhook-id")
            if not isinstance(delivery, str) or not delivery:
                delivery = "msg_" + uuid.uuid4().hex
            # A fresh id and the current time: the server refuses stale
            # timestamps and answers a repeated id `duplicate`.
            for name in [k for k in headers if k.lower() in ("webhook-id", "webhook-timestamp")]:
                del headers[name]
            timestamp = str(int(time.time()))
            signed = f"{delivery}.{timestamp}.".encode() + _wire_json(case.body)
            digest = hmac.new(base64.b64decode(secret), signed, hashlib.sha256).digest()
            headers["webhook-id"] = delivery
            headers["webhook-timestamp"] = timestamp
            headers[key] = "v1," + base64.b64encode(digest).decode()
    case.headers = headers
