// Drives `seekserve route` with the official openai client (openai@4), next to one of its
// replicas reached directly. Started by tests/router/route_test.sh, which passes:
//   ROUTER_URL   the router (round_robin over the replicas)
//   REPLICA_URL  one replica, for the direct side of each comparison
import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';

const MODEL = 'tiny-v3';
const viaRouter = new OpenAI({ baseURL: `${process.env.ROUTER_URL}/v1`, apiKey: 'x', maxRetries: 0 });
const direct = new OpenAI({ baseURL: `${process.env.REPLICA_URL}/v1`, apiKey: 'x', maxRetries: 0 });

async function streamed(client, req) {
  const stream = await client.chat.completions.create({ ...req, stream: true,
    stream_options: { include_usage: true } });
  let text = '';
  let chunks = 0;
  let finish = null;
  let usage = null;
  for await (const chunk of stream) {
    chunks++;
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      text += c.delta?.content ?? '';
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  return { text, chunks, finish, usage };
}

test('models list passes through', async () => {
  const models = await viaRouter.models.list();
  assert.deepEqual(models.data.map((m) => m.id), [MODEL]);
});

test('streaming through the router equals streaming directly', async () => {
  const req = { model: MODEL, messages: [{ role: 'user', content: 'Tell me a story' }],
                max_tokens: 24, temperature: 0, ignore_eos: true };
  const a = await streamed(direct, req);
  const b = await streamed(viaRouter, req);
  assert.equal(b.text, a.text);
  assert.equal(b.chunks, a.chunks);
  assert.equal(b.finish, a.finish);
  assert.deepEqual(b.usage, a.usage);
  assert.equal(a.usage.completion_tokens, 24);
});

test('non-streaming through the router equals direct', async () => {
  const req = { model: MODEL, prompt: 'The quick brown fox', max_tokens: 12, temperature: 0 };
  const a = await direct.completions.create(req);
  const b = await viaRouter.completions.create(req);
  assert.equal(b.choices[0].text, a.choices[0].text);
  assert.deepEqual(b.usage, a.usage);
});

test('X-Request-Id is forwarded, or made when absent', async () => {
  const body = JSON.stringify({ model: MODEL, prompt: 'id', max_tokens: 2 });
  const headers = { 'Content-Type': 'application/json' };
  const given = await fetch(`${process.env.ROUTER_URL}/v1/completions`,
    { method: 'POST', headers: { ...headers, 'X-Request-Id': 'router-test-42' }, body });
  assert.equal(given.status, 200);
  assert.equal(given.headers.get('x-request-id'), 'router-test-42');
  await given.json();
  const made = await fetch(`${process.env.ROUTER_URL}/v1/completions`,
    { method: 'POST', headers, body });
  assert.equal(made.status, 200);
  assert.match(made.headers.get('x-request-id') ?? '', /\S+/);
  await made.json();
});

test('client errors from the backend pass through unchanged', async () => {
  const res = await fetch(`${process.env.ROUTER_URL}/v1/completions`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"model":',
  });
  assert.equal(res.status, 400);
  const body = await res.json();
  assert.equal(typeof body.error.message, 'string');
});
