// Drives a running `seekserve serve` with the official OpenAI npm client (openai@4).
// Started by tests/server/serve_test.sh, which passes:
//   SEEKSERVE_URL        main server (--api-key test-key, roomy limits)
//   SEEKSERVE_SMALL_URL  server with --max-num-seqs 1 --max-queue 3 (overload, priority) and
//                        --api-key-file: plain-key, vip-key (priority -1000..100), ops-key (admin)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';

const URL_MAIN = process.env.SEEKSERVE_URL;
const URL_SMALL = process.env.SEEKSERVE_SMALL_URL;
const KEY = 'test-key';
const MODEL = 'tiny-v3';
const client = new OpenAI({ baseURL: `${URL_MAIN}/v1`, apiKey: KEY, maxRetries: 0 });
const small = new OpenAI({ baseURL: `${URL_SMALL}/v1`, apiKey: 'plain-key', maxRetries: 0 });
const smallVip = new OpenAI({ baseURL: `${URL_SMALL}/v1`, apiKey: 'vip-key', maxRetries: 0 });

async function metrics(url = URL_MAIN) {
  const text = await (await fetch(`${url}/metrics`)).text();
  const get = (name) => {
    const line = text.split('\n').find((l) => l.startsWith(name + ' '));
    return line === undefined ? undefined : Number(line.split(' ')[1]);
  };
  return { text, get };
}

async function waitIdle(url = URL_MAIN) {
  for (let i = 0; i < 200; i++) {
    const m = await metrics(url);
    if (m.get('seekserve_num_requests_running') === 0 &&
        m.get('seekserve_num_requests_waiting') === 0 &&
        m.get('seekserve_kv_cache_usage_ratio') === 0) return m;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail('server did not go idle');
}

async function rawPost(path, body, headers = {}) {
  const res = await fetch(`${URL_MAIN}${path}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${KEY}`, ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.status, headers: res.headers, body: await res.json() };
}

function assertErrorShape(body) {
  assert.equal(typeof body.error, 'object');
  for (const k of ['message', 'type', 'param', 'code']) assert.ok(k in body.error, `error.${k}`);
  assert.equal(typeof body.error.message, 'string');
}

test('health and models', async () => {
  const h = await fetch(`${URL_MAIN}/health`);
  assert.equal(h.status, 200);
  const models = await client.models.list();
  assert.deepEqual(models.data.map((m) => m.id), [MODEL]);
});

test('chat completion', async () => {
  const r = await client.chat.completions.create({
    model: MODEL, messages: [{ role: 'user', content: 'Hello' }], max_tokens: 8, temperature: 0,
  });
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.equal(typeof r.choices[0].message.content, 'string');
  assert.ok(['stop', 'length'].includes(r.choices[0].finish_reason));
  assert.ok(r.usage.prompt_tokens > 0);
  assert.ok(r.usage.completion_tokens >= 1 && r.usage.completion_tokens <= 8);
});

test('streaming chat equals the same request not streamed, with usage', async () => {
  const req = { model: MODEL, messages: [{ role: 'user', content: 'Stream me' }], max_tokens: 12,
                temperature: 0, ignore_eos: true };
  const full = await client.chat.completions.create(req);
  const stream = await client.chat.completions.create(
    { ...req, stream: true, stream_options: { include_usage: true } });
  let text = '';
  let finish = null;
  let usage = null;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      text += c.delta.content ?? '';
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  assert.equal(text, full.choices[0].message.content);
  assert.equal(finish, 'length');
  assert.equal(usage.completion_tokens, 12);
  assert.equal(usage.prompt_tokens, full.usage.prompt_tokens);
});

test('completions: string and token-id prompts, stop strings', async () => {
  const r = await client.completions.create({ model: MODEL, prompt: 'Once upon a time',
                                              max_tokens: 6, temperature: 0, ignore_eos: true });
  assert.equal(r.object, 'text_completion');
  assert.equal(r.usage.completion_tokens, 6);
  const ids = await client.completions.create({ model: MODEL, prompt: [1000, 1001, 1002],
                                                max_tokens: 3, temperature: 0 });
  assert.equal(ids.usage.prompt_tokens, 3);
  const text = r.choices[0].text;
  if (text.length >= 2) {
    const stop = text.slice(1, 2);
    const s = await client.completions.create({ model: MODEL, prompt: 'Once upon a time',
                                                max_tokens: 6, temperature: 0, ignore_eos: true,
                                                stop: [stop] });
    assert.equal(s.choices[0].text, text.slice(0, text.indexOf(stop)));
    assert.equal(s.choices[0].finish_reason, 'stop');
  }
});

test('errors: status codes and the OpenAI error body', async () => {
  let r = await rawPost('/v1/chat/completions', '{"model": ');
  assert.equal(r.status, 400);
  assertErrorShape(r.body);
  r = await rawPost('/v1/chat/completions',
                    { model: MODEL, messages: [{ role: 'user', content: 'x' }], temperature: 'hot' });
  assert.equal(r.status, 400);
  assert.equal(r.body.error.param, 'temperature');
  r = await rawPost('/v1/completions', { model: MODEL, prompt: Array(600).fill(1000) });
  assert.equal(r.status, 400);
  assertErrorShape(r.body);
  for (const max_tokens of [0, 100000]) {
    r = await rawPost('/v1/completions', { model: MODEL, prompt: 'x', max_tokens });
    assert.equal(r.status, 400, `max_tokens ${max_tokens}`);
    assert.equal(r.body.error.param, 'max_tokens');
  }
  r = await rawPost('/v1/completions', { model: MODEL, prompt: 'x', n: 17 });  // --max-n 16
  assert.equal(r.status, 400);
  assert.equal(r.body.error.param, 'n');
  r = await rawPost('/v1/chat/completions', { model: MODEL, messages: [{ role: 'user', content: 'x' }],
                                              logprobs: true, top_logprobs: 21 });
  assert.equal(r.status, 400);
  assert.equal(r.body.error.param, 'top_logprobs');
  r = await rawPost('/v1/chat/completions', { model: MODEL, messages: [{ role: 'user', content: 'x' }],
                                              top_logprobs: 2 });
  assert.equal(r.status, 400);
  assert.equal(r.body.error.param, 'top_logprobs');
  r = await rawPost('/v1/completions', { model: MODEL, prompt: 'x', max_tokens: 2,
                                         some_unknown_field: { ok: true } });
  assert.equal(r.status, 200);
  r = await rawPost('/v1/completions', { model: MODEL, prompt: 'x' }, { Authorization: 'Bearer no' });
  assert.equal(r.status, 401);
  assertErrorShape(r.body);
  r = await rawPost('/v1/completions', { model: MODEL, prompt: 'x', max_tokens: 1 },
                    { 'X-Request-Id': 'my-id-42' });
  assert.equal(r.headers.get('x-request-id'), 'my-id-42');
  assert.equal(r.body.id, 'cmpl-my-id-42');
  for (const bad of ['has space', 'x'.repeat(129), 'semi;colon']) {
    r = await rawPost('/v1/completions', { model: MODEL, prompt: 'x', max_tokens: 1 },
                      { 'X-Request-Id': bad });
    const id = r.headers.get('x-request-id');
    assert.ok(/^[0-9a-f]{16}$/.test(id), `a fresh id replaces '${bad}': ${id}`);
    assert.equal(r.body.id, `cmpl-${id}`);
  }
  // Through the client: typed errors.
  await assert.rejects(client.chat.completions.create({ model: 'gpt-9', messages: [{ role: 'user', content: 'x' }] }),
                       (e) => e.status === 404 && e.error?.type === 'not_found_error');
  await assert.rejects(client.completions.create({ model: MODEL, prompt: 'x', logprobs: 21 }),
                       (e) => e.status === 400 && e.error?.param === 'logprobs');
});

test('32 concurrent greedy streams each equal the prompt run alone', async () => {
  const prompts = Array.from({ length: 32 }, (_, i) => `Concurrent prompt ${i}: ${'z'.repeat(i)}`);
  const req = (p) => ({ model: MODEL, prompt: p, max_tokens: 10, temperature: 0, ignore_eos: true });
  const alone = [];
  for (const p of prompts) alone.push((await client.completions.create(req(p))).choices[0].text);
  const together = await Promise.all(prompts.map(async (p) => {
    const s = await client.completions.create({ ...req(p), stream: true });
    let text = '';
    for await (const chunk of s) text += chunk.choices[0]?.text ?? '';
    return text;
  }));
  assert.deepEqual(together, alone);
  await waitIdle();
});

test('a client that disconnects mid-stream frees its sequence', async () => {
  const before = (await metrics()).get('seekserve_generation_tokens_total');
  const controller = new AbortController();
  const s = await client.completions.create(
    { model: MODEL, prompt: 'never ending', max_tokens: 480, temperature: 0, ignore_eos: true,
      stream: true }, { signal: controller.signal });
  let chunks = 0;
  try {
    for await (const _ of s) {
      if (++chunks === 3) controller.abort();
    }
  } catch (e) {
    assert.ok(e.name === 'AbortError' || e instanceof OpenAI.APIUserAbortError, String(e));
  }
  const m = await waitIdle();
  const generated = m.get('seekserve_generation_tokens_total') - before;
  assert.ok(generated < 480, `generation went on after the client left (${generated} tokens)`);
});

test('prefix cache: a second request sharing a 256-token prefix prefills only the rest', async () => {
  const prefix = Array.from({ length: 256 }, (_, i) => 2000 + i);
  const run = (tail) => client.completions.create({ model: MODEL, prompt: [...prefix, ...tail],
                                                   max_tokens: 2, temperature: 0 });
  await run([3001, 3002]);
  const m0 = await metrics();
  const r = await run([3003, 3004, 3005]);
  const m1 = await metrics();
  const hits = m1.get('seekserve_prefix_cache_hits_total') - m0.get('seekserve_prefix_cache_hits_total');
  const queries = m1.get('seekserve_prefix_cache_queries_total') -
                  m0.get('seekserve_prefix_cache_queries_total');
  assert.equal(queries, 259);
  assert.equal(hits, 256);
  assert.equal(r.usage.prompt_tokens_details.cached_tokens, 256);
});

test('overload: 429 with Retry-After, every accepted request completes', async () => {
  const req = { model: MODEL, prompt: 'load', max_tokens: 60, temperature: 0, ignore_eos: true };
  const results = await Promise.allSettled(
    Array.from({ length: 12 }, () => small.completions.create(req)));
  const ok = results.filter((r) => r.status === 'fulfilled');
  const refused = results.filter((r) => r.status === 'rejected');
  assert.ok(refused.length > 0, 'some requests are turned away');
  for (const r of refused) {
    assert.equal(r.reason.status, 429, String(r.reason));
    assert.ok(Number(r.reason.headers['retry-after']) >= 1);
  }
  assert.ok(ok.length >= 2);
  for (const r of ok) assert.equal(r.value.usage.completion_tokens, 60);
  assert.equal((await fetch(`${URL_SMALL}/health`)).status, 200);
  await waitIdle(URL_SMALL);
});

test('priority: priority-0 requests finish before priority-10 ones submitted earlier', async () => {
  const order = [];
  const run = (priority, tag, max_tokens) =>
    small.completions.create({ model: MODEL, prompt: `p ${tag}`, max_tokens, temperature: 0,
                               ignore_eos: true, priority })
      .then(() => order.push(tag));
  const busy = run(0, 'busy', 120);  // saturates the single running slot
  await new Promise((r) => setTimeout(r, 50));
  const low = [run(10, 'low1', 20)];
  await new Promise((r) => setTimeout(r, 20));
  const high = [run(0, 'high1', 20), run(0, 'high2', 20)];
  await Promise.all([busy, ...low, ...high]);
  const lastHigh = Math.max(order.indexOf('high1'), order.indexOf('high2'));
  assert.ok(lastHigh < order.indexOf('low1'), `finish order ${order}`);
  await waitIdle(URL_SMALL);
});

test('chat logprobs: the chosen token is the most likely under greedy, streamed the same', async () => {
  const req = { model: MODEL, messages: [{ role: 'user', content: 'Log probs please' }],
                max_tokens: 6, temperature: 0, ignore_eos: true, logprobs: true, top_logprobs: 3 };
  const r = await client.chat.completions.create(req);
  const content = r.choices[0].logprobs.content;
  assert.equal(content.length, r.usage.completion_tokens);
  for (const t of content) {
    assert.ok(t.logprob <= 0, `logprob ${t.logprob}`);
    assert.ok(Array.isArray(t.bytes) && t.bytes.length > 0);
    assert.equal(t.top_logprobs.length, 3);
    assert.equal(t.top_logprobs[0].token, t.token);
    assert.equal(t.top_logprobs[0].logprob, t.logprob);
    for (let k = 1; k < 3; k++) assert.ok(t.top_logprobs[k].logprob <= t.top_logprobs[k - 1].logprob);
  }
  const stream = await client.chat.completions.create({ ...req, stream: true });
  const streamed = [];
  for await (const chunk of stream)
    for (const c of chunk.choices) if (c.logprobs) streamed.push(...c.logprobs.content);
  assert.deepEqual(streamed, content);
  // Without logprobs: null, as OpenAI sends.
  const plain = await client.chat.completions.create({ ...req, logprobs: undefined, top_logprobs: undefined });
  assert.equal(plain.choices[0].logprobs, null);
});

test('completions logprobs (legacy shape), streaming and not', async () => {
  const req = { model: MODEL, prompt: 'Legacy log probs', max_tokens: 5, temperature: 0,
                ignore_eos: true, logprobs: 2 };
  const r = await client.completions.create(req);
  const lp = r.choices[0].logprobs;
  assert.equal(lp.tokens.length, 5);
  assert.equal(lp.token_logprobs.length, 5);
  assert.equal(lp.text_offset[0], 0);
  for (let i = 0; i < 5; i++) {
    assert.ok(lp.token_logprobs[i] <= 0);
    const top = Object.entries(lp.top_logprobs[i]);
    assert.ok(top.length >= 1 && top.length <= 2);
    const best = Math.max(...top.map(([, v]) => v));
    assert.equal(best, lp.token_logprobs[i]);  // greedy picks the most likely
    assert.equal(lp.top_logprobs[i][lp.tokens[i]], lp.token_logprobs[i]);
    if (i > 0) assert.ok(lp.text_offset[i] > lp.text_offset[i - 1]);
  }
  const stream = await client.completions.create({ ...req, stream: true });
  const merged = { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] };
  for await (const chunk of stream) {
    const l = chunk.choices[0]?.logprobs;
    if (l) for (const k of Object.keys(merged)) merged[k].push(...l[k]);
  }
  assert.deepEqual(merged, lp);
});

test('n > 1: choices 0..n-1 from one prefill, seeded choices reproducible', async () => {
  const prompt = 'Several choices from one prompt, a prompt of a few blocks in length';
  const req = { model: MODEL, prompt, max_tokens: 8, temperature: 1.0, seed: 7, ignore_eos: true };
  const before = await metrics();
  const r = await client.completions.create({ ...req, n: 4 });
  const after = await metrics();
  assert.deepEqual(r.choices.map((c) => c.index), [0, 1, 2, 3]);
  assert.equal(r.usage.completion_tokens, 32);
  // One prefill: the prompt's uncached tokens once, then each choice's decodes.
  const computed = after.get('seekserve_computed_tokens_total') -
                   before.get('seekserve_computed_tokens_total');
  const cached = r.usage.prompt_tokens_details.cached_tokens;
  assert.equal(computed, r.usage.prompt_tokens - cached + 4 * (8 - 1));
  assert.equal(after.get('seekserve_prompt_tokens_total') - before.get('seekserve_prompt_tokens_total'),
               r.usage.prompt_tokens);
  // Reproducible, and choice i is the same request alone with seed + i.
  const again = await client.completions.create({ ...req, n: 4 });
  assert.deepEqual(again.choices.map((c) => c.text), r.choices.map((c) => c.text));
  const third = await client.completions.create({ ...req, seed: 9 });
  assert.equal(third.choices[0].text, r.choices[2].text);
  assert.ok(new Set(r.choices.map((c) => c.text)).size > 1, 'sampled choices differ');
  // Streaming: chunks carry their choice's index and add up to the same texts.
  const stream = await client.completions.create({ ...req, n: 4, stream: true,
                                                   stream_options: { include_usage: true } });
  const texts = ['', '', '', ''];
  let finished = 0;
  let usage = null;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      texts[c.index] += c.text;
      if (c.finish_reason) finished++;
    }
  }
  assert.deepEqual(texts, r.choices.map((c) => c.text));
  assert.equal(finished, 4);
  assert.equal(usage.completion_tokens, 32);
  // Greedy: identical choices (chat).
  const g = await client.chat.completions.create({ model: MODEL, n: 2, max_tokens: 6, temperature: 0,
                                                   messages: [{ role: 'user', content: 'twins' }] });
  assert.equal(g.choices.length, 2);
  assert.equal(g.choices[0].message.content, g.choices[1].message.content);
  await waitIdle();
});

async function waitMetric(url, name, want, what) {
  for (let i = 0; i < 400; i++) {
    if ((await metrics(url)).get(name) === want) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  assert.fail(`${what}: ${name} never reached ${want}`);
}

test('priority is clamped per key: -1000 from an ordinary key does not jump ahead', async () => {
  const order = [];
  const run = (c, priority, tag, max_tokens) =>
    c.completions.create({ model: MODEL, prompt: `clamp ${tag}`, max_tokens, temperature: 0,
                           ignore_eos: true, priority })
      .then(() => order.push(tag));
  const busy = run(small, 0, 'busy', 200);
  await waitMetric(URL_SMALL, 'seekserve_num_requests_running', 1, 'busy runs');
  const a = run(small, 0, 'plain0', 10);
  await waitMetric(URL_SMALL, 'seekserve_num_requests_waiting', 1, 'plain0 waits');
  const b = run(small, -1000, 'plain-1000', 10);  // clamped to 0: behind plain0
  await waitMetric(URL_SMALL, 'seekserve_num_requests_waiting', 2, 'plain-1000 waits');
  const c = run(smallVip, -1000, 'vip-1000', 10);  // allowed: ahead of both
  await Promise.all([busy, a, b, c]);
  assert.ok(order.indexOf('plain0') < order.indexOf('plain-1000'), `finish order ${order}`);
  assert.ok(order.indexOf('vip-1000') < order.indexOf('plain0'), `finish order ${order}`);
  await waitIdle(URL_SMALL);
});

test('a client that leaves while queued is removed from the queue and never runs', async () => {
  const before = (await metrics(URL_SMALL)).get('seekserve_generation_tokens_total');
  const busy = small.completions.create({ model: MODEL, prompt: 'busy while one leaves',
                                          max_tokens: 300, temperature: 0, ignore_eos: true });
  await waitMetric(URL_SMALL, 'seekserve_num_requests_running', 1, 'busy runs');
  const controller = new AbortController();
  const queued = small.completions.create(
    { model: MODEL, prompt: 'I will leave', max_tokens: 50, temperature: 0, ignore_eos: true },
    { signal: controller.signal }).catch((e) => e);
  await waitMetric(URL_SMALL, 'seekserve_num_requests_waiting', 1, 'the second one waits');
  controller.abort();
  await waitMetric(URL_SMALL, 'seekserve_num_requests_waiting', 0, 'the queue drops it');
  const m = await metrics(URL_SMALL);
  assert.equal(m.get('seekserve_num_requests_running'), 1, 'busy still runs: it was not a finish');
  await busy;
  await queued;
  const after = await waitIdle(URL_SMALL);
  assert.equal(after.get('seekserve_generation_tokens_total') - before, 300, 'the left one never ran');
  assert.match(after.text, /seekserve_requests_total\{code="499"\} [1-9]/);
});

test('per-request timeout: a request that waits past it gets 408 and never runs', async () => {
  const before = (await metrics(URL_SMALL)).get('seekserve_generation_tokens_total');
  const busy = small.completions.create({ model: MODEL, prompt: 'busy past a timeout',
                                          max_tokens: 300, temperature: 0, ignore_eos: true });
  await waitMetric(URL_SMALL, 'seekserve_num_requests_running', 1, 'busy runs');
  await assert.rejects(
    small.completions.create({ model: MODEL, prompt: 'impatient', max_tokens: 5, timeout: 0.2 }),
    (e) => e.status === 408 && e.error?.type === 'timeout_error');
  await busy;
  const after = await waitIdle(URL_SMALL);
  assert.equal(after.get('seekserve_generation_tokens_total') - before, 300);
});

test('admin: scheduler limits read and changed at run time, admin keys only', async () => {
  const admin = (method, body, key = KEY, url = URL_MAIN) =>
    fetch(`${url}/admin/scheduler`, {
      method, headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    }).then(async (r) => ({ status: r.status, body: await r.json() }));
  let r = await admin('GET');
  assert.equal(r.status, 200);
  assert.equal(r.body.max_num_seqs, 32);
  assert.equal(r.body.max_num_seqs_limit, 128);
  assert.equal(r.body.max_num_batched_tokens, 4096);
  r = await admin('POST', { max_num_seqs: 2 });
  assert.equal(r.status, 200);
  assert.equal(r.body.max_num_seqs, 2);
  assert.equal((await admin('GET')).body.max_num_seqs, 2);
  assert.equal((await metrics()).get('seekserve_max_num_seqs'), 2);
  // The new limit holds: 5 concurrent requests never run more than 2 at once.
  let peak = 0;
  let done = false;
  const watch = (async () => {
    while (!done) {
      peak = Math.max(peak, (await metrics()).get('seekserve_num_requests_running'));
      await new Promise((res) => setTimeout(res, 10));
    }
  })();
  const results = await Promise.all(Array.from({ length: 5 }, (_, i) => client.completions.create(
    { model: MODEL, prompt: `limited ${i}`, max_tokens: 30, temperature: 0, ignore_eos: true })));
  done = true;
  await watch;
  for (const x of results) assert.equal(x.usage.completion_tokens, 30);
  assert.ok(peak <= 2, `running peaked at ${peak}`);
  for (const bad of [{ max_num_seqs: 0 }, { max_num_seqs: 129 }, { max_num_seqs: 'x' },
                     { max_queue: 3 }, {}]) {
    r = await admin('POST', bad);
    assert.equal(r.status, 400, JSON.stringify(bad));
    assertErrorShape(r.body);
  }
  assert.equal((await admin('POST', { max_num_seqs: 3 }, 'wrong')).status, 401);
  assert.equal((await admin('GET', undefined, 'plain-key', URL_SMALL)).status, 403);
  assert.equal((await admin('GET', undefined, 'ops-key', URL_SMALL)).status, 200);
  r = await admin('POST', { max_num_seqs: 32 });
  assert.equal(r.body.max_num_seqs, 32);
});
