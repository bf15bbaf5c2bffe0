// Ferry exec handlers in Node.js: `serve(handler)` speaks Ferry's JSON-lines protocol.
//
// Copy this file next to your code (no dependencies; Node >= 14) and name your script in an
// `exec` handler (a job file's `[handler]` or a `[handler.NAME]` table of `ferry.toml`):
//
//     const { serve, Retry, Fatal } = require("./ferry_exec");
//     serve(async (items) => items.map(enrich));   // one result per item, in order
//
// What the handler does decides each item's fate (the same rules as ferry_exec.py):
//   - it returns (or resolves to) an array with one result per item: those items are done.
//     An entry may instead be `new Retry("why")` (that item is retried after a backoff) or
//     `new Fatal("why")` (that item is dead-lettered with the message);
//   - it throws `new Retry("why", { after: 2 })`: the whole batch is retried, and every call
//     to this handler pauses `after` seconds (like an HTTP Retry-After);
//   - it throws `new Fatal("why")`: every item of the batch is dead-lettered;
//   - it throws anything else: the batch is split until the item that throws is alone, and
//     that item is dead-lettered with the error's message; its neighbours succeed.
// `serveEach(fn)` calls `fn(item)` per item instead; an error other than Retry dead-letters
// that item alone. `{ keys: true }` passes `[key, item]` pairs instead of items.
//
// stdout carries the protocol, so console.log goes to stderr while serving (Ferry logs each
// stderr line as a warning). Batches are answered one at a time, in order; the process ends
// when stdin closes (Ferry stopped the handler, or the process running it died).
"use strict";

const readline = require("readline");

class Retry extends Error {
  constructor(message = "retry", { after } = {}) {
    super(message);
    this.name = "Retry";
    this.after = after;
  }
}

class Fatal extends Error {
  constructor(message) {
    super(message);
    this.name = "Fatal";
  }
}

function describe(err) {
  if (err instanceof Error) {
    return err.message ? `${err.name}: ${err.message}` : err.name;
  }
  return String(err);
}

function outcome(result) {
  if (result instanceof Retry) return { retry: result.message };
  if (result instanceof Fatal) return { fatal: result.message };
  return { ok: result === undefined ? null : result };
}

async function reply(handler, batch, keys) {
  const items = batch.map((e) => (keys ? [e.key, e.item] : e.item));
  let results;
  try {
    results = Array.from(await handler(items));
  } catch (err) {
    if (err instanceof Retry) {
      const r = { retry: err.message };
      if (err.after !== undefined && err.after !== null) r.retry_after = Number(err.after);
      return r;
    }
    if (err instanceof Fatal) return { fatal: err.message };
    return { split: describe(err) };
  }
  if (results.length !== batch.length) {
    return { fatal: `the handler returned ${results.length} results for ${batch.length} items` };
  }
  return { outcomes: results.map(outcome) };
}

/**
 * Serves batches from `input` (default process.stdin) to `handler(items)` and writes one
 * reply line per batch to `output` (default process.stdout) until input closes. Resolves
 * then.
 */
async function serve(handler, { keys = false, input = process.stdin, output = process.stdout } = {}) {
  const log = console.log;
  console.log = console.error; // console.log must not break the protocol
  const write = (obj) =>
    new Promise((resolve) => {
      let text;
      try {
        text = JSON.stringify(obj);
      } catch (err) {
        text = JSON.stringify({ split: `a result is not JSON: ${describe(err)}` });
      }
      if (output.write(text + "\n")) resolve();
      else output.once("drain", resolve);
    });
  try {
    const lines = readline.createInterface({ input, crlfDelay: Infinity });
    for await (const line of lines) {
      if (!line.trim()) continue;
      let batch;
      try {
        batch = JSON.parse(line).batch;
        if (!Array.isArray(batch)) throw new TypeError("no batch array");
      } catch (err) {
        await write({ fatal: `bad request line: ${describe(err)}` });
        continue;
      }
      await write(await reply(handler, batch, keys));
    }
  } finally {
    console.log = log;
  }
}

/** Like `serve`, one item at a time: `fn(item)` (`fn(key, item)` with keys) returns or
 * resolves to the item's result; Retry retries that item, any other error dead-letters it. */
function serveEach(fn, options = {}) {
  const handle = async (items) => {
    const results = [];
    for (const item of items) {
      try {
        results.push(await (options.keys ? fn(item[0], item[1]) : fn(item)));
      } catch (err) {
        results.push(err instanceof Retry || err instanceof Fatal ? err : new Fatal(describe(err)));
      }
    }
    return results;
  };
  return serve(handle, options);
}

module.exports = { serve, serveEach, Retry, Fatal };
