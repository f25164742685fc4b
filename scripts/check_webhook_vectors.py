#!/usr/bin/env python3
"""CI: every committed Standard Webhooks vector's verdict is OpenAI's SDK's own.

Reads tests/fixtures/openai/webhook_vectors.json (made by
scripts/openai_webhook_vectors.py) and asks openai's
`webhooks.verify_signature`, with its clock pinned to each vector's
`now_unix`, whether it accepts; any disagreement with `sdk_accepts` fails.
scribe's own verifier is checked against the same file by
`openai::webhook::tests` in `cargo test`.
"""

import json
import sys
import types

import openai
import openai.lib._webhooks as sdk_webhooks
from openai import OpenAI

path = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/openai/webhook_vectors.json"
client = OpenAI(api_key="sk-not-used", base_url="http://127.0.0.1:9/")
wrong = []
vectors = json.load(open(path, encoding="utf-8"))
for v in vectors:
    sdk_webhooks.time = types.SimpleNamespace(time=lambda now=v["now_unix"]: float(now))
    try:
        client.webhooks.verify_signature(v["body"].encode("utf-8"), v["headers"], secret=v["secret"])
        accepts = True
    except Exception:
        accepts = False
    if accepts != v["sdk_accepts"]:
        wrong.append(f"{v['name']}: the SDK {'accepts' if accepts else 'refuses'}")
if wrong:
    sys.exit("vectors disagree with openai " + openai.__version__ + ":\n" + "\n".join(wrong))
print(f"{len(vectors)} webhook vectors agree with openai {openai.__version__}")
