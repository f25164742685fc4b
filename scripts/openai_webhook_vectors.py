#!/usr/bin/env python3
"""Build Standard-Webhooks test vectors and let the OpenAI SDK decide each one.

Run with the pinned venv:
    python scripts/openai_webhook_vectors.py [OUT]   (a venv with openai==3.57.0; standardwebhooks optional)

Signatures are computed here with hmac/hashlib (independently of the SDK); the
verdict `sdk_accepts` is whatever openai==3.57.0's
`OpenAI().webhooks.verify_signature(payload, headers, secret=...)` decides with
its clock pinned to `now_unix` (we replace the `time` module seen by
openai/lib/_webhooks.py, which calls `int(time.time())`).

For contrast the note also records what the reference `standardwebhooks`
(PyPI, 1.1.0) library decides, with its clock pinned the same way.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import sys
import types
from datetime import datetime, timezone

import openai
import openai.lib._webhooks as sdk_webhooks
from openai import OpenAI

try:
    import standardwebhooks.webhooks as sw  # type: ignore
except Exception:  # pragma: no cover - optional
    sw = None

assert openai.__version__ == "3.57.0", openai.__version__

OUT = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/openai/webhook_vectors.json"

# ---------------------------------------------------------------- fixtures
KEY_BYTES = bytes(range(1, 33))  # 32-byte HMAC key
WHSEC = "whsec_" + base64.b64encode(KEY_BYTES).decode()  # 44 chars incl. one '='
WHSEC_UNPADDED = WHSEC.rstrip("=")
RAW_SECRET = "scribe-test-raw-secret"  # no whsec_ prefix -> used as raw UTF-8 bytes
B64_NO_PREFIX = base64.b64encode(KEY_BYTES).decode()  # base64 text but no prefix

TS = 1700000000
NOW = TS + 100  # default clock: delivery 100 s after the timestamp
MSG_ID = "wh_6745b1c2d3e4f5a6b7c8d9e0"
BODY = (
    '{"id":"evt_685343a1381c819085d44c354e1b330e","object":"event","created_at":1700000000,'
    '"type":"realtime.call.incoming","data":{"call_id":"rtc_479a275623b54bdb9b6fbae2f7cbd408",'
    '"sip_headers":[{"name":"From","value":"sip:+142555512112@sip.example.com"}]}}'
)
BODY_UTF8 = '{"id":"evt_1","type":"live.transport.incoming","data":{"note":"Grüße – 日本語 ✓"}}'


def key_for(secret: str) -> bytes:
    """Key derivation exactly as documented in openai/lib/_webhooks.py lines 49-53."""
    if secret.startswith("whsec_"):
        return base64.b64decode(secret[6:])
    return secret.encode()


def sign(key: bytes, msg_id: str, ts_as_sent: str, body: str) -> str:
    mac = hmac.new(key, f"{msg_id}.{ts_as_sent}.{body}".encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(mac).decode()


# ------------------------------------------------------------ verifiers
client = OpenAI(api_key="sk-test-not-used", base_url="http://127.0.0.1:9/")


def sdk_verdict(secret: str, headers: dict, body: str, now: int):
    sdk_webhooks.time = types.SimpleNamespace(time=lambda: float(now))  # pin the clock
    try:
        client.webhooks.verify_signature(body.encode("utf-8"), headers, secret=secret)
        return True, "verify_signature returned None"
    except Exception as e:  # record the exact exception the SDK raised
        return False, f"{type(e).__module__}.{type(e).__name__}: {e}"


class _FixedDatetime(datetime):
    _now = 0

    @classmethod
    def now(cls, tz=None):  # type: ignore[override]
        return datetime.fromtimestamp(cls._now, tz=tz or timezone.utc)


def stdwh_verdict(secret: str, headers: dict, body: str, now: int):
    if sw is None:
        return None, "standardwebhooks not installed"
    _FixedDatetime._now = now
    orig = sw.datetime
    sw.datetime = _FixedDatetime
    try:
        sw.Webhook(secret).verify(body.encode("utf-8"), dict(headers))
        return True, "ok"
    except Exception as e:
        return False, f"{type(e).__name__}: {e}"
    finally:
        sw.datetime = orig


# ---------------------------------------------------------------- cases
cases = []


def add(name, secret, ts_header, sig_header, note, *, body=BODY, now=NOW, msg_id=MSG_ID):
    headers = {"webhook-id": msg_id, "webhook-timestamp": ts_header, "webhook-signature": sig_header}
    ok, why = sdk_verdict(secret, headers, body, now)
    swok, swwhy = stdwh_verdict(secret, headers, body, now)
    cases.append(
        {
            "name": name,
            "secret": secret,
            "headers": headers,
            "body": body,
            "now_unix": now,
            "sdk_accepts": ok,
            "note": f"{note} [openai 3.57.0: {why}] [standardwebhooks 1.1.0: "
            f"{'accepts' if swok else 'refuses'}{'' if swok else ' - ' + swwhy}]",
        }
    )


K = key_for(WHSEC)
T = str(TS)

# 1. baseline
add("whsec_valid", WHSEC, T, "v1," + sign(K, MSG_ID, T, BODY),
    "whsec_ secret: key = base64-decode of the text after 'whsec_'.")
add("whsec_valid_utf8_body", WHSEC, T, "v1," + sign(K, MSG_ID, T, BODY_UTF8),
    "Non-ASCII body: the signed content is the UTF-8 bytes of the body.", body=BODY_UTF8)

# 2. secrets
add("raw_secret_valid", RAW_SECRET, T, "v1," + sign(RAW_SECRET.encode(), MSG_ID, T, BODY),
    "Secret without whsec_ prefix: the SDK uses its UTF-8 bytes as the HMAC key (no base64 decoding).")
add("unprefixed_base64_secret_signed_with_decoded_key", B64_NO_PREFIX, T,
    "v1," + sign(KEY_BYTES, MSG_ID, T, BODY),
    "Secret is base64 text WITHOUT whsec_; signature made with the base64-DECODED key. "
    "The SDK keys with the raw text bytes, so it refuses.")
add("unprefixed_base64_secret_signed_with_text_bytes", B64_NO_PREFIX, T,
    "v1," + sign(B64_NO_PREFIX.encode(), MSG_ID, T, BODY),
    "Same secret, signature keyed with the secret's text bytes: the SDK accepts.")
add("whsec_secret_unpadded_base64", WHSEC_UNPADDED, T, "v1," + sign(K, MSG_ID, T, BODY),
    "whsec_ secret with its trailing '=' padding removed: base64.b64decode raises binascii.Error "
    "(a ValueError, NOT InvalidWebhookSignatureError) out of verify_signature.")
add("wrong_secret", "whsec_" + base64.b64encode(bytes(32)).decode(), T,
    "v1," + sign(K, MSG_ID, T, BODY), "Signature made with a different key.")

# 3. timestamp header spelling (signature always over the header string exactly as sent)
for label, ts_header in [
    ("leading_zeros", "0001700000000"),
    ("leading_plus", "+1700000000"),
    ("leading_space", " 1700000000"),
    ("trailing_space", "1700000000 "),
    ("leading_tab", "\t1700000000"),
    ("underscores", "1_700_000_000"),
    ("fullwidth_digits", "\uff11\uff17\uff10\uff10\uff10\uff10\uff10\uff10\uff10\uff10"),
    ("decimal_fraction", "1700000000.0"),
    ("exponent", "1.7e9"),
    ("hex", "0x6553f100"),
    ("empty", ""),
]:
    add(f"timestamp_{label}_signed_as_sent", WHSEC, ts_header,
        "v1," + sign(K, MSG_ID, ts_header, BODY),
        f"webhook-timestamp={ts_header!r}; signature computed over the header string exactly as sent. "
        "The SDK parses it with Python int() (accepts surrounding whitespace, a sign, leading zeros, "
        "'_' separators and any Unicode decimal digits) but signs the ORIGINAL string.")
for label, ts_header in [("leading_zeros", "0001700000000"), ("leading_plus", "+1700000000"),
                         ("leading_space", " 1700000000")]:
    add(f"timestamp_{label}_signed_over_canonical_integer", WHSEC, ts_header,
        "v1," + sign(K, MSG_ID, str(int(ts_header)), BODY),
        f"webhook-timestamp={ts_header!r} but signature computed over the re-formatted integer "
        f"{int(ts_header)}: the SDK signs the header as sent, so it refuses.")

# 4. signature header handling
good = sign(K, MSG_ID, T, BODY)
bad = base64.b64encode(b"\x00" * 32).decode()
add("multiple_signatures_second_valid", WHSEC, T, f"v1,{bad} v1,{good}",
    "Space-separated list; any one matching v1 signature is enough.")
add("multiple_signatures_first_valid", WHSEC, T, f"v1,{good} v1,{bad}",
    "Valid signature first, an invalid one second.")
add("multiple_signatures_tab_separated", WHSEC, T, f"v1,{bad}\tv1,{good}",
    "The SDK splits with str.split() (any whitespace run), so a tab separator also works.")
add("multiple_signatures_double_space", WHSEC, T, f"v1,{bad}  v1,{good}",
    "Two spaces between entries: str.split() ignores empty parts.")
add("signature_without_v1_prefix", WHSEC, T, good,
    "Bare base64 signature with no 'v1,' prefix: the SDK compares the whole part, so it accepts.")
add("signature_with_v2_prefix", WHSEC, T, f"v2,{good}",
    "Right HMAC under a 'v2,' label: the SDK compares 'v2,<sig>' as a whole string, so it refuses.")
add("wrong_signature", WHSEC, T, f"v1,{bad}", "Well-formed but wrong signature.")
add("signature_over_other_body", WHSEC, T, "v1," + sign(K, MSG_ID, T, BODY + " "),
    "Signature of the body plus one trailing space: any byte change refuses.")
add("signature_over_other_webhook_id", WHSEC, T, "v1," + sign(K, "wh_other", T, BODY),
    "Signature made for a different webhook-id.")

# 5. clock window (tolerance 300 s, inclusive on both sides)
add("stale_timestamp_301s", WHSEC, T, "v1," + good, "now - ts = 301 > 300.", now=TS + 301)
add("stale_timestamp_exactly_300s", WHSEC, T, "v1," + good,
    "now - ts = 300: the check is `now - ts > tolerance`, so exactly 300 s is accepted.", now=TS + 300)
add("future_timestamp_301s", WHSEC, T, "v1," + good, "ts = now + 301.", now=TS - 301)
add("future_timestamp_exactly_300s", WHSEC, T, "v1," + good,
    "ts = now + 300: the check is `ts > now + tolerance`, so exactly 300 s ahead is accepted.", now=TS - 300)
add("stale_leading_zero_timestamp", WHSEC, "0001700000000",
    "v1," + sign(K, MSG_ID, "0001700000000", BODY),
    "Leading-zero header, signed as sent, but 301 s old: refused for age.", now=TS + 301)

with open(OUT, "w", encoding="utf-8") as f:
    json.dump(cases, f, indent=2, ensure_ascii=False)
    f.write("\n")

for c in cases:
    print(f"{'ACCEPT' if c['sdk_accepts'] else 'refuse'}  {c['name']}")
print(f"{len(cases)} vectors -> {OUT}", file=sys.stderr)
