// Steady load for the router's fault test: CONCURRENCY loops of non-streaming completions through
// the official openai client (no client retries), until the file STOP_FILE exists. Prints
// {"ok":N,"failed":M,"errors":[...]} on stdout.
import { existsSync } from 'node:fs';
import OpenAI from 'openai';

const client = new OpenAI({ baseURL: `${process.env.ROUTER_URL}/v1`, apiKey: 'unused',
                            maxRetries: 0, timeout: 120000 });
const concurrency = Number(process.env.CONCURRENCY || 4);
const stopFile = process.env.STOP_FILE;
let ok = 0;
let failed = 0;
const errors = [];

async function loop(worker) {
  for (let i = 0; !existsSync(stopFile); i++) {
    try {
      const r = await client.completions.create({
        model: 'tiny-v3', prompt: `load ${worker} ${i}`, max_tokens: 4, temperature: 0,
      });
      if (typeof r.choices?.[0]?.text !== 'string') throw new Error('no text in reply');
      ok++;
    } catch (e) {
      failed++;
      if (errors.length < 10) errors.push(String(e?.message ?? e));
    }
  }
}

await Promise.all(Array.from({ length: concurrency }, (_, w) => loop(w)));
console.log(JSON.stringify({ ok, failed, errors }));
