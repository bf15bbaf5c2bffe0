"""An example exec handler: scores each text, and refuses the poison one.

Run by Ferry (see ferry.toml beside it); by hand it answers one line per request line:

    echo '{"batch": [{"key": "1", "item": {"text": "great stuff"}}]}' | python3 enrich.py
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ferry_exec import serve  # noqa: E402

POSITIVE = {"good", "great", "love", "excellent", "happy"}
NEGATIVE = {"bad", "awful", "hate", "terrible", "sad"}


def score(payload):
    text = payload["text"]
    if text == "poison":
        raise ValueError("cannot score the poison text")
    words = text.lower().split()
    value = sum(w in POSITIVE for w in words) - sum(w in NEGATIVE for w in words)
    return {"n": payload.get("n"), "score": value, "pid": os.getpid()}


def handle(items):
    return [score(p) for p in items]


if __name__ == "__main__":
    serve(handle)
