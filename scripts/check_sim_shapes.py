#!/usr/bin/env python3
"""Validates the simulated peers' frames (one JSON object a line on stdin,
from `cargo run --example sim_frames`) against OpenAI's own generated types:
each frame against the member of `openai.types.realtime.RealtimeServerEvent`
(after a line `--- live`: of `openai.types.live.ServerEvent`) whose `type`
it names (required fields present, values of the declared types). A frame
whose type OpenAI does not define fails too. Exits non-zero on the first
misfit, naming it."""
import json
import sys
import typing

from pydantic import TypeAdapter, ValidationError
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.live import ServerEvent as LiveServerEvent
from openai.types.realtime import RealtimeServerEvent


def members(tp):
    """The models of a (possibly Annotated) union."""
    args = typing.get_args(tp)
    if typing.get_origin(tp) is typing.Annotated:
        return members(args[0])
    return args or (tp,)


def adapters(union):
    out = {}
    for model in members(union):
        for literal in typing.get_args(model.model_fields["type"].annotation):
            out[literal] = TypeAdapter(model)
    return out


api = "realtime"
by_type = adapters(RealtimeServerEvent)

seen = {}
for n, line in enumerate(sys.stdin, 1):
    line = line.strip()
    if not line:
        continue
    if line == "--- live":
        api = "live"
        by_type = adapters(LiveServerEvent)
        continue
    if line in ("--- chat", "--- completion"):
        # Chat answers have no `type`: each is one model, named by `object`.
        api = "chat"
        model = ChatCompletionChunk if line == "--- chat" else ChatCompletion
        by_type = {model.model_fields["object"].annotation.__args__[0]: TypeAdapter(model)}
        continue
    frame = json.loads(line)
    kind = frame.get("type") if api != "chat" else frame.get("object")
    adapter = by_type.get(kind)
    if adapter is None:
        print(f"frame {n}: `{kind}` is not a type OpenAI defines\n{line}", file=sys.stderr)
        sys.exit(1)
    try:
        adapter.validate_python(frame)
    except ValidationError as error:
        print(f"frame {n} ({kind}) does not fit OpenAI's types:\n{error}\n{line}", file=sys.stderr)
        sys.exit(1)
    seen[f"{api} {kind}"] = seen.get(f"{api} {kind}", 0) + 1
if not seen:
    print("no frames read", file=sys.stderr)
    sys.exit(1)
for kind, count in sorted(seen.items()):
    print(f"{count:5} {kind}")
for needed in ("chat chat.completion.chunk", "chat chat.completion"):
    if needed not in seen:
        print(f"no `{needed}` read", file=sys.stderr)
        sys.exit(1)
print(f"all {sum(seen.values())} frames fit openai.types.realtime.RealtimeServerEvent, openai.types.live.ServerEvent, openai.types.chat.ChatCompletionChunk and ChatCompletion")
