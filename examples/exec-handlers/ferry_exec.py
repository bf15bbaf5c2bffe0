"""Ferry exec handlers in Python: ``serve(handler)`` speaks Ferry's JSON-lines protocol.

Copy this file next to your code (it needs nothing but the standard library, Python >= 3.7)
and name your script in an ``exec`` handler (a job file's ``[handler]`` or a ``[handler.NAME]``
table of ``ferry.toml``)::

    from ferry_exec import serve, Retry, Fatal

    def handle(items):                      # the batch's payloads, in order
        return [enrich(x) for x in items]   # one result per item

    serve(handle)

What the handler does decides each item's fate:

* it returns a list with one result per item: those items are done. An entry may instead be
  ``Retry("why")`` (that item is retried after a backoff) or ``Fatal("why")`` (that item is
  dead-lettered with the message);
* it raises ``Retry("why", after=2.0)``: the whole batch is retried, and every call to this
  handler pauses ``after`` seconds (like an HTTP ``Retry-After``);
* it raises ``Fatal("why")``: every item of the batch is dead-lettered;
* it raises anything else: the batch is split until the item that raises is alone, and that
  item is dead-lettered with the exception (``ValueError: ...``); its neighbours succeed.

``serve_each(fn)`` calls ``fn(item)`` per item instead; an exception other than ``Retry``
dead-letters that item alone. ``keys=True`` passes ``(key, item)`` pairs instead of items.

stdout carries the protocol, so ``print`` goes to stderr while ``serve`` runs (Ferry logs
each stderr line as a warning). ``serve`` returns when stdin closes: when Ferry stops the
handler or the process that runs it dies.
"""

import json
import sys

__all__ = ["serve", "serve_each", "Retry", "Fatal"]


class Retry(Exception):
    """Retry: raised, the whole batch (after ``after`` seconds if given); returned in place
    of a result, that item alone (after a backoff)."""

    def __init__(self, message="retry", after=None):
        super().__init__(message)
        self.after = after


class Fatal(Exception):
    """Fail for good: raised, every item of the batch; returned in place of a result, that
    item alone. The message is kept with the dead letter."""


def _describe(exc):
    return "%s: %s" % (type(exc).__name__, exc) if str(exc) else type(exc).__name__


def _outcome(result):
    if isinstance(result, Retry):
        return {"retry": str(result)}
    if isinstance(result, Fatal):
        return {"fatal": str(result)}
    return {"ok": result}


def _reply(handler, batch, keys):
    items = [(e["key"], e["item"]) if keys else e["item"] for e in batch]
    try:
        results = list(handler(items))
    except Retry as r:
        reply = {"retry": str(r)}
        if r.after is not None:
            reply["retry_after"] = float(r.after)
        return reply
    except Fatal as f:
        return {"fatal": str(f)}
    except Exception as e:  # noqa: BLE001 - any error of the handler's is the batch's
        return {"split": _describe(e)}
    if len(results) != len(batch):
        return {
            "fatal": "the handler returned %d results for %d items" % (len(results), len(batch))
        }
    return {"outcomes": [_outcome(r) for r in results]}


def serve(handler, keys=False, stdin=None, stdout=None):
    """Serves batches from ``stdin`` (default ``sys.stdin``) to ``handler(items)`` and writes
    one reply line per batch to ``stdout`` (default the real ``sys.stdout``) until stdin
    closes. See the module's documentation for what the handler returns or raises."""
    stdin = stdin if stdin is not None else sys.stdin
    out = stdout if stdout is not None else sys.stdout
    saved = sys.stdout
    sys.stdout = sys.stderr  # print() must not break the protocol
    try:
        for line in stdin:
            if not line.strip():
                continue
            try:
                batch = json.loads(line)["batch"]
            except (ValueError, KeyError, TypeError) as e:
                # Not a request this helper understands: say so without naming an item.
                out.write(json.dumps({"fatal": "bad request line: %s" % _describe(e)}) + "\n")
                out.flush()
                continue
            reply = _reply(handler, batch, keys)
            try:
                text = json.dumps(reply)
            except (TypeError, ValueError) as e:
                # A result that is not JSON: split until the item that produced it is alone.
                text = json.dumps({"split": "a result is not JSON: %s" % _describe(e)})
            out.write(text + "\n")
            out.flush()
    finally:
        sys.stdout = saved


def serve_each(fn, keys=False, stdin=None, stdout=None):
    """Like ``serve``, one item at a time: ``fn(item)`` (``fn(key, item)`` with ``keys``)
    returns the item's result; ``Retry`` retries that item, any other exception dead-letters
    it with the exception's message."""

    def handle(items):
        results = []
        for item in items:
            try:
                results.append(fn(*item) if keys else fn(item))
            except Retry as r:
                results.append(r)
            except Exception as e:  # noqa: BLE001 - the item's own failure
                results.append(e if isinstance(e, Fatal) else Fatal(_describe(e)))
        return results

    serve(handle, keys=keys, stdin=stdin, stdout=stdout)
