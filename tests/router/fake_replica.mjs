// A stand-in replica for the router's alert tests: a real HTTP server (node's http module) that
// answers /v1/completions and /health like `seekserve serve` and exposes the same metric names at
// /metrics, but whose latency and failures the test sets at run time:
//   POST /fake/config {"delay_ms": 800, "fail_every": 2, "busy": 0.5, "waiting": 60}
// (delay every completion; answer 500 to every fail_every-th one, 0 = never; report that engine
// busy ratio and queue length). It also keeps a max_num_seqs behind GET/POST /admin/scheduler,
// the run-time control the autoscaler's scale_batch uses. `seekserve serve` cannot be made to fail or slow down on demand, which is what
// "alerts fire and resolve on injected latency and injected errors" needs.
// Usage: node fake_replica.mjs  -> prints "listening on http://127.0.0.1:PORT" (a free port).
import http from 'node:http';

const bounds = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5,
  0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0];  // as src/server/metrics.cpp
const buckets = new Array(bounds.length + 1).fill(0);
let latencySum = 0;
let latencyCount = 0;
const byCode = new Map();
const config = { delay_ms: 0, fail_every: 0, busy: 0.1, waiting: 0 };
const scheduler = { max_num_seqs: 8 };
let completions = 0;

function observe(seconds, code) {
  let i = 0;
  while (i < bounds.length && seconds > bounds[i]) i++;
  buckets[i]++;
  latencySum += seconds;
  latencyCount++;
  byCode.set(code, (byCode.get(code) || 0) + 1);
}

function metrics() {
  const lines = ['# TYPE seekserve_e2e_request_latency_seconds histogram'];
  let cumulative = 0;
  bounds.forEach((b, i) => {
    cumulative += buckets[i];
    lines.push(`seekserve_e2e_request_latency_seconds_bucket{le="${b}"} ${cumulative}`);
  });
  lines.push(`seekserve_e2e_request_latency_seconds_bucket{le="+Inf"} ${latencyCount}`);
  lines.push(`seekserve_e2e_request_latency_seconds_sum ${latencySum}`);
  lines.push(`seekserve_e2e_request_latency_seconds_count ${latencyCount}`);
  lines.push('# TYPE seekserve_engine_busy_ratio gauge', `seekserve_engine_busy_ratio ${config.busy}`);
  lines.push('# TYPE seekserve_num_requests_waiting gauge', `seekserve_num_requests_waiting ${config.waiting}`);
  lines.push('# TYPE seekserve_kv_cache_usage_ratio gauge', 'seekserve_kv_cache_usage_ratio 0');
  lines.push('# TYPE seekserve_requests_total counter');
  for (const [code, n] of [...byCode.entries()].sort()) {
    lines.push(`seekserve_requests_total{code="${code}"} ${n}`);
  }
  return lines.join('\n') + '\n';
}

function send(res, status, body, type = 'application/json') {
  res.writeHead(status, { 'Content-Type': type });
  res.end(typeof body === 'string' ? body : JSON.stringify(body));
}

const server = http.createServer((req, res) => {
  let body = '';
  req.on('data', (chunk) => { body += chunk; });
  req.on('end', () => {
    if (req.method === 'GET' && req.url === '/health') return send(res, 200, { status: 'ok' });
    if (req.method === 'GET' && req.url === '/metrics') {
      return send(res, 200, metrics(), 'text/plain; version=0.0.4');
    }
    if (req.url === '/admin/scheduler') {
      if (req.method === 'POST') {
        const n = JSON.parse(body || '{}').max_num_seqs;
        if (!Number.isInteger(n) || n < 1) return send(res, 400, { error: { message: 'bad' } });
        scheduler.max_num_seqs = n;
      }
      return send(res, 200, scheduler);
    }
    if (req.method === 'POST' && req.url === '/fake/config') {
      Object.assign(config, JSON.parse(body || '{}'));
      return send(res, 200, config);
    }
    if (req.method === 'POST' && req.url === '/v1/completions') {
      const start = process.hrtime.bigint();
      const n = ++completions;
      setTimeout(() => {
        const seconds = Number(process.hrtime.bigint() - start) / 1e9;
        if (config.fail_every > 0 && n % config.fail_every === 0) {
          observe(seconds, 500);
          return send(res, 500, { error: { message: 'injected failure', type: 'server_error' } });
        }
        observe(seconds, 200);
        return send(res, 200, {
          id: `cmpl-${n}`, object: 'text_completion', model: 'fake',
          choices: [{ index: 0, text: ' ok', finish_reason: 'length' }],
          usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
        });
      }, config.delay_ms);
      return undefined;
    }
    return send(res, 404, { error: { message: 'not found' } });
  });
});

server.listen(0, '127.0.0.1', () => {
  console.log(`listening on http://127.0.0.1:${server.address().port}`);
});
