// An example exec handler in Node.js: scores each text, one item at a time, and refuses the
// poison one (dead-lettered alone). Run by Ferry (see ferry.toml beside it); by hand:
//
//   echo '{"batch": [{"key": "1", "item": {"text": "great stuff"}}]}' | node enrich.js
"use strict";

const { serveEach } = require("./ferry_exec");

const POSITIVE = new Set(["good", "great", "love", "excellent", "happy"]);
const NEGATIVE = new Set(["bad", "awful", "hate", "terrible", "sad"]);

serveEach(async (payload) => {
  if (payload.text === "poison") throw new Error("cannot score the poison text");
  const words = payload.text.toLowerCase().split(/\s+/);
  const score =
    words.filter((w) => POSITIVE.has(w)).length - words.filter((w) => NEGATIVE.has(w)).length;
  return { n: payload.n ?? null, score, pid: process.pid };
});
