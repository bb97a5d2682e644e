#!/usr/bin/env bash
# `seekserve bench` against a real `seekserve serve` (tiny-v3): its request and token counts equal
# the deltas of the server's own /metrics counters, its TTFT/e2e percentiles fall in the server's
# histogram buckets (one bucket of slack), --json carries every figure, a sweep writes a valid
# SVG (parsed by python3's XML parser), shared prefixes hit the server's prefix cache; and bad
# targets (a refused port, a server that never answers, a server that is not OpenAI) end with a
# clear message, exit 1 and the partial figures; --no-stream (TTFT = e2e, no TPOT/ITL); the live
# progress line on a terminal (under script(1)'s pty) and plain lines otherwise. Servers are
# always killed (tests/lib/common.sh).
source "$(dirname "$0")/../lib/common.sh"
tmp=$TEST_TMP

"$BIN" make-model --preset tiny-v3 --out "$tmp/tiny-v3" >/dev/null
start_serve serve "$tmp/tiny-v3" --threads 1 --kv-blocks 512 --max-num-seqs 8

# 1. Counts and percentiles against the server's own metrics.
curl -sf "$URL/metrics" >"$tmp/m0.txt"
"$BIN" bench --url "$URL" -c 4 -n 12 --warmup 2 --input-len 24 --output-len 4 \
  -m "$tmp/tiny-v3" --slo ttft=500ms,tpot=50ms --json "$tmp/run.json" >"$tmp/run.txt" 2>"$tmp/run.err"
curl -sf "$URL/metrics" >"$tmp/m1.txt"
grep -q "Successful requests: *12" "$tmp/run.txt"
grep -q "P99 TTFT (ms):" "$tmp/run.txt"
$PY - "$tmp/m0.txt" "$tmp/m1.txt" "$tmp/run.json" <<'EOF'
import json, math, re, sys

def metrics(path):
    out = {}
    for line in open(path):
        if line.startswith('#') or not line.strip():
            continue
        name, value = line.rsplit(' ', 1)
        out[name] = float(value)
    return out

m0, m1, r = metrics(sys.argv[1]), metrics(sys.argv[2]), json.load(open(sys.argv[3]))
d = lambda k: m1.get(k, 0) - m0.get(k, 0)
w = r['warmup']
assert r['completed'] == 12 and r['failed'] == 0, r
assert w['completed'] == 2, w
assert d('seekserve_requests_total{code="200"}') == r['completed'] + w['completed']
assert d('seekserve_prompt_tokens_total') == r['total_input_tokens'] + w['input_tokens']
assert d('seekserve_generation_tokens_total') == r['total_output_tokens'] + w['output_tokens']
assert r['total_input_tokens'] == 12 * 24, r['total_input_tokens']  # token-exact prompts
assert r['total_output_tokens'] == 12 * 4
assert r['token_counts_from_server_usage'] is True
for key in ['duration_s', 'request_throughput', 'input_token_throughput',
            'output_token_throughput', 'total_token_throughput', 'goodput', 'failures',
            'completed_by_status', 'config', 'aborted']:
    assert key in r, key
for fig in ['ttft_ms', 'tpot_ms', 'itl_ms', 'e2e_ms']:
    for stat in ['mean', 'median', 'p90', 'p99', 'std', 'min', 'max', 'n']:
        assert stat in r[fig], (fig, stat)
assert r['ttft_ms']['n'] == 12 and r['e2e_ms']['n'] == 12 and r['tpot_ms']['n'] == 12
assert r['goodput'] is not None and r['goodput'] <= r['request_throughput'] + 1e-9
assert abs(r['request_throughput'] - 12 / r['duration_s']) < 1e-6

# The client's percentile lies in the server's histogram bucket for that quantile, give or take
# one bucket (the client also sees the HTTP round trip; the server's sample includes warm-up).
def bucket_range(name, q):
    bounds = sorted((float(re.search(r'le="([^"]+)"', k).group(1)), d(k))
                    for k in m1 if k.startswith(name + '_bucket'))
    total = bounds[-1][1]
    rank = q * total
    for i, (le, cum) in enumerate(bounds):
        if cum >= rank:
            lo = bounds[i - 2][0] if i >= 2 else 0.0
            hi = bounds[min(i + 1, len(bounds) - 1)][0]
            return lo, hi
    return 0.0, math.inf

for metric, fig in [('seekserve_time_to_first_token_seconds', 'ttft_ms'),
                    ('seekserve_e2e_request_latency_seconds', 'e2e_ms')]:
    for q, stat in [(0.5, 'median'), (0.9, 'p90')]:
        lo, hi = bucket_range(metric, q)
        v = r[fig][stat] / 1000
        assert lo <= v <= hi, f'{fig} {stat} {v:.4f}s outside server buckets [{lo}, {hi}]'
print('metrics reconcile')
EOF

# 2. Sweep: one summary per level and a chart that parses as SVG with a point per level and series.
"$BIN" bench --url "$URL" --sweep concurrency=1,2 -n 4 --warmup 0 --input-len 16 --output-len 2 \
  --json "$tmp/sweep.json" --svg "$tmp/sweep.svg" --progress none >"$tmp/sweep.txt"
grep -q "concurrency=2" "$tmp/sweep.txt"
$PY - "$tmp/sweep.json" "$tmp/sweep.svg" <<'EOF'
import json, sys, xml.etree.ElementTree as ET
r = json.load(open(sys.argv[1]))
assert [l['label'] for l in r['levels']] == ['concurrency=1', 'concurrency=2'], r['levels']
assert all(l['completed'] == 4 for l in r['levels'])
root = ET.parse(sys.argv[2]).getroot()
ns = '{http://www.w3.org/2000/svg}'
assert root.tag == ns + 'svg', root.tag
assert len(root.findall(ns + 'polyline')) == 4
assert len(root.findall(ns + 'circle')) == 4 * 2
labels = [t.text for t in root.iter(ns + 'text')]
assert 'concurrency=2' in labels and 'request throughput (req/s)' in labels, labels
print('sweep svg ok')
EOF

# 3. Chat endpoint, priority mix and shared prefixes: the server's prefix cache gets hits.
curl -sf "$URL/metrics" >"$tmp/m2.txt"
"$BIN" bench --url "$URL" --endpoint chat -c 3 -n 6 --warmup 0 --input-len 56 --output-len 2 \
  --prefix-groups 2 --prefix-len 40 --priority-mix 0:1,5:1 --seed 3 --json "$tmp/chat.json" \
  --progress none >/dev/null
curl -sf "$URL/metrics" >"$tmp/m3.txt"
$PY - "$tmp/m2.txt" "$tmp/m3.txt" "$tmp/chat.json" <<'EOF'
import json, sys
def counter(path, name):
    return sum(float(l.split()[-1]) for l in open(path) if l.startswith(name + ' '))
r = json.load(open(sys.argv[3]))
assert r['completed'] == 6 and r['config']['endpoint'] == '/v1/chat/completions', r
hits = counter(sys.argv[2], 'seekserve_prefix_cache_hits_total') - \
    counter(sys.argv[1], 'seekserve_prefix_cache_hits_total')
assert hits >= 32, f'prefix cache hits {hits}'
assert set(r['by_priority']) == {'0', '5'}, r['by_priority']
print('chat, prefixes, priorities ok')
EOF

# 4. --no-stream: one JSON answer per request. Counts still reconcile with the server's metrics;
# TTFT is the whole request (= e2e), TPOT and ITL are absent (null), not zero.
curl -sf "$URL/metrics" >"$tmp/m4.txt"
"$BIN" bench --url "$URL" --no-stream -c 2 -n 6 --warmup 1 --input-len 20 --output-len 5 \
  -m "$tmp/tiny-v3" --json "$tmp/nostream.json" --progress none >"$tmp/nostream.txt"
curl -sf "$URL/metrics" >"$tmp/m5.txt"
grep -q "Successful requests: *6" "$tmp/nostream.txt"
grep -q "TPOT (ms): *n/a" "$tmp/nostream.txt"
grep -q "ITL (ms): *n/a" "$tmp/nostream.txt"
$PY - "$tmp/m4.txt" "$tmp/m5.txt" "$tmp/nostream.json" <<'EOF'
import json, sys
def counter(path, name):
    return sum(float(l.split()[-1]) for l in open(path) if l.startswith(name + ' '))
d = lambda name: counter(sys.argv[2], name) - counter(sys.argv[1], name)
r = json.load(open(sys.argv[3]))
w = r['warmup']
assert r['config']['stream'] is False and r['streamed'] is False, r['config']
assert r['completed'] == 6 and r['failed'] == 0, r
assert r['tpot_ms'] is None and r['itl_ms'] is None, (r['tpot_ms'], r['itl_ms'])
assert r['ttft_ms']['n'] == 6
for stat in ['mean', 'median', 'p90', 'p99', 'min', 'max']:
    assert r['ttft_ms'][stat] == r['e2e_ms'][stat], stat
assert r['token_counts_from_server_usage'] is True
assert r['total_input_tokens'] == 6 * 20 and r['total_output_tokens'] == 6 * 5, r
assert d('seekserve_requests_total{code="200"}') == r['completed'] + w['completed']
assert d('seekserve_prompt_tokens_total') == r['total_input_tokens'] + w['input_tokens']
assert d('seekserve_generation_tokens_total') == r['total_output_tokens'] + w['output_tokens']
print('no-stream ok')
EOF
rc=0
"$BIN" bench --url "$URL" --no-stream --slo tpot=50ms -n 1 2>"$tmp/bad.err" || rc=$?
[[ $rc -eq 2 ]] && grep -q "no-stream" "$tmp/bad.err" || fail "--no-stream with a TPOT SLO: exit $rc"

# 5. Progress: on a terminal (script(1) gives bench a pty) a live line redrawn in place
# ("\r\033[K" before each update, a newline after the last); otherwise plain lines, no "\r".
script -qfec "'$BIN' bench --url '$URL' -m '$tmp/tiny-v3' -c 2 -n 8 --warmup 0 --input-len 16 \
  --output-len 4" "$tmp/tty.txt" </dev/null >/dev/null
"$BIN" bench --url "$URL" -m "$tmp/tiny-v3" -c 2 -n 8 --warmup 0 --input-len 16 --output-len 4 \
  >"$tmp/lines.out" 2>"$tmp/lines.err"
$PY - "$tmp/tty.txt" "$tmp/lines.err" <<'EOF'
import re, sys
tty = open(sys.argv[1], encoding='utf-8', errors='replace', newline='').read()
updates = re.findall(r'\r\x1b\[K(concurrency=2 \[[#.]{24}\] \d+/8 done[^\r\n]*)', tty)
assert updates, 'no live progress line on the terminal: %r' % tty[:400]
assert re.search(r'\r\x1b\[Kconcurrency=2 \[#{24}\] 8/8 done \(0 failed\)[^\r\n]*\r?\n', tty), \
    'the last update is not the finished bar followed by a newline'
assert 'Successful requests:' in tty
lines = open(sys.argv[2], newline='').read()
assert '\r' not in lines and '\x1b' not in lines, 'terminal codes when stderr is a file: %r' % lines
assert re.search(r'^concurrency=2 \[#{24}\] 8/8 done \(0 failed\)', lines, re.M), lines
print(f'progress ok ({len(updates)} live updates on the terminal)')
EOF

# 6. Bad targets: a clear message, exit 1, partial figures in --json.
expect_fail() {  # NAME PATTERN ARGS...
  local name=$1 pattern=$2
  shift 2
  local rc=0
  timeout 60 "$BIN" bench "$@" --progress none --json "$tmp/$name.json" \
    >"$tmp/$name.out" 2>"$tmp/$name.err" || rc=$?
  [[ $rc -eq 1 ]] || { echo "$name: exit $rc, expected 1"; cat "$tmp/$name.err"; exit 1; }
  grep -qi -- "$pattern" "$tmp/$name.err" ||
    { echo "$name: no '$pattern' in:"; cat "$tmp/$name.err"; exit 1; }
  [[ $(wc -l <"$tmp/$name.err") -le 3 ]] || { echo "$name: message too long"; cat "$tmp/$name.err"; exit 1; }
}
free_port=$(free_port)
expect_fail refused "connection refused" --url "http://127.0.0.1:$free_port" --model x -c 2 -n 8 --warmup 0
grep -q '"aborted": true' "$tmp/refused.json"
grep -q "Failed requests: *2" "$tmp/refused.out"
expect_fail refused_probe "connection refused" --url "http://127.0.0.1:$free_port" -n 2

# A server that accepts connections and never answers: the per-request timeout ends it.
$PY -c '
import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(16)
print(s.getsockname()[1], flush=True)
conns = []
while True:
    c, _ = s.accept(); conns.append(c)
' >"$tmp/hang.port" &
track_pid $!
wait_for_file "$tmp/hang.port"
expect_fail hang "timed out after 2s" --url "http://127.0.0.1:$(cat "$tmp/hang.port")" \
  --model x -c 2 -n 6 --warmup 0 --timeout 2
$PY -c 'import json,sys; r=json.load(open(sys.argv[1])); assert r["aborted"] and r["failed"]==2, r' \
  "$tmp/hang.json"

# An HTTP server that is not OpenAI: the probe says so; forced on, its 501s are reported.
mkdir -p "$tmp/www"
(cd "$tmp/www" && exec $PY -u -m http.server 0 --bind 127.0.0.1 >"$tmp/www.out" 2>&1) &
track_pid $!
www=
for _ in $(seq 1 300); do
  www=$(sed -n 's/.*port \([0-9]*\).*/\1/p' "$tmp/www.out" | head -1)
  [[ -n "$www" ]] && break
  sleep 0.1
done
expect_fail notopenai "does not look like an OpenAI-compatible server" --url "http://127.0.0.1:$www"
expect_fail notopenai_post "HTTP 501" --url "http://127.0.0.1:$www" --model x -c 2 -n 4 --warmup 0

# Bad input: exit 2, nothing sent.
rc=0
"$BIN" bench --url "$URL" --input-len 0 2>"$tmp/bad.err" || rc=$?
[[ $rc -eq 2 ]] && grep -q "input-len" "$tmp/bad.err"
rc=0
"$BIN" bench --url "ftp://x" 2>"$tmp/bad.err" || rc=$?
[[ $rc -eq 2 ]] && grep -q "http://" "$tmp/bad.err"
echo "bench_test: ok"
