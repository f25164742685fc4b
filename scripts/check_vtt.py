#!/usr/bin/env python3
"""Parses every WebVTT file scribe's tests wrote (the folder given, from
`GET /api/meetings/{id}/transcript?format=vtt` on a Realtime and a GPT-Live
call on each backend, and one with every mark the page shows) with
`webvtt-py`, a parser nobody at scribe wrote, and checks what a player
relies on: the file parses, it has cues, each cue ends after it starts,
cues come in start order, each has text. Exits non-zero naming the first
misfit."""
import pathlib
import sys

import webvtt


def ms(timestamp):
    """A parsed cue time in milliseconds."""
    return timestamp.in_seconds() * 1000 + timestamp.milliseconds

folder = pathlib.Path(sys.argv[1])
files = sorted(folder.glob("*.vtt"))
# realtime and gpt-live on at least SQLite, and the marks sample.
if len(files) < 3:
    sys.exit(f"expected at least 3 WebVTT samples in {folder}, found {len(files)}")
for path in files:
    try:
        captions = webvtt.read(str(path))
    except Exception as error:  # the parser's own errors name the fault
        sys.exit(f"{path.name}: not valid WebVTT: {error}")
    cues = list(captions)
    if not cues:
        sys.exit(f"{path.name}: no cues")
    previous = -1
    for n, cue in enumerate(cues, 1):
        start, end = ms(cue.start_time), ms(cue.end_time)
        if end <= start:
            sys.exit(f"{path.name}: cue {n} ends ({cue.end}) before it starts ({cue.start})")
        if start < previous:
            sys.exit(f"{path.name}: cue {n} starts ({cue.start}) before the one before it")
        if not cue.text.strip():
            sys.exit(f"{path.name}: cue {n} has no text")
        previous = start
    print(f"{path.name}: {len(cues)} cues, valid WebVTT")
