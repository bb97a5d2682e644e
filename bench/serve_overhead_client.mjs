// Sequential 1-token completions over one keep-alive connection; prints JSON with the
// client-side round trips. Used by bench/serve_overhead_bench.sh.
import http from 'node:http';
import fs from 'node:fs';

// The server's CPU time (all threads), seconds, from /proc (clock ticks of 10 ms).
function serverCpu() {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;  // utime + stime
}

const [url, n, warmup, pid] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4]),
                               process.argv[5]];
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const target = new URL('/v1/completions', url);

const health = new URL('/health', url);

// One 1-token completion, or (floor) one GET /health: the same connection, HTTP parsing and
// writing, but no JSON body, tokenizer, engine or hand-off: what the HTTP layer alone costs.
function once(i, floor = false) {
  const body = JSON.stringify({ model: 'tiny-v3', prompt: `overhead ${i % 7}`, max_tokens: 1,
                                temperature: 0 });
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const req = http.request(floor ? health : target, { method: floor ? 'GET' : 'POST', agent,
      headers: floor ? {} : { 'Content-Type': 'application/json',
                              'Content-Length': Buffer.byteLength(body) } },
    (res) => {
      let text = '';
      res.on('data', (d) => { text += d; });
      res.on('end', () => {
        const ms = Number(process.hrtime.bigint() - t0) / 1e6;
        if (res.statusCode !== 200) reject(new Error(`HTTP ${res.statusCode}: ${text}`));
        else resolve(ms);
      });
    });
    req.on('error', reject);
    req.end(floor ? undefined : body);
  });
}

async function metric(name) {
  const text = await (await fetch(new URL('/metrics', url))).text();
  const line = text.split('\n').find((l) => l.startsWith(name + ' '));
  return Number(line.split(' ')[1]);
}

for (let i = 0; i < warmup; i++) await once(i);
const f0 = await metric('seekserve_engine_forward_seconds_total');
const c0 = await metric('seekserve_engine_forward_cpu_seconds_total');
const p0 = serverCpu();
const s0 = await metric('seekserve_computed_tokens_total');
const rtt = [];
for (let i = 0; i < n; i++) rtt.push(await once(i));
const p1 = serverCpu();
const f1 = await metric('seekserve_engine_forward_seconds_total');
const c1 = await metric('seekserve_engine_forward_cpu_seconds_total');
const s1 = await metric('seekserve_computed_tokens_total');
const q0 = serverCpu();
const floorRtt = [];
for (let i = 0; i < n; i++) floorRtt.push(await once(i, true));
const q1 = serverCpu();
floorRtt.sort((a, b) => a - b);
rtt.sort((a, b) => a - b);
const mean = rtt.reduce((a, b) => a + b, 0) / n;
const forwardMs = ((f1 - f0) * 1e3) / n;
console.log(JSON.stringify({ n, rtt_mean_ms: mean, rtt_p50_ms: rtt[Math.floor(n / 2)],
                             rtt_p90_ms: rtt[Math.floor(n * 0.9)], forward_mean_ms: forwardMs,
                             overhead_mean_ms: mean - forwardMs,
                             server_cpu_ms_per_request: ((p1 - p0) * 1e3) / n,
                             forward_cpu_ms_per_request: ((c1 - c0) * 1e3) / n,
                             overhead_cpu_ms_per_request: ((p1 - p0 - (c1 - c0)) * 1e3) / n,
                             computed_tokens_per_request: (s1 - s0) / n,
                             http_floor_rtt_p50_ms: floorRtt[Math.floor(n / 2)],
                             http_floor_cpu_ms_per_request: ((q1 - q0) * 1e3) / n }));
agent.destroy();
