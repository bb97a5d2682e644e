#!/usr/bin/env bash
# `seekserve route` with its control sections, real processes on loopback:
#   1. bad replicas:/scaling_policy:/alerts: values -> one line naming the field, exit 2;
#   2. alerts over a node backend (tests/router/fake_replica.mjs) whose latency and failures are
#      injected at run time, traffic through the router: GET /alerts and /metrics show them firing
#      and resolving (promtool accepts the router's /metrics);
#   3. supervised `seekserve serve` replicas: a killed one is restarted and readmitted; sustained
#      load through the router adds a replica, no second one inside the cooldown; when the load
#      stops they drain back to min and no client request failed; SIGTERM stops the replicas too.
# Every process is killed on exit (trap).
source "$(dirname "$0")/../lib/common.sh"
SRC=${SEEKSERVE_SOURCE_DIR:?}
tmp=$TEST_TMP
fail() {
  echo "route_control_test: FAIL: $*"
  for f in "$tmp"/*.log; do echo "--- $f"; tail -25 "$f"; done
  exit 1
}

"$BIN" make-model --preset tiny-v3 --out "$tmp/tiny-v3" >/dev/null

# metric NAME_WITH_LABELS: its value on the router's /metrics (empty when absent).
metric() {
  curl -sf "$RURL/metrics" | awk -v n="$1" '$1 == n { print $2 }'
}
metric_is() { [[ "$(metric "$1")" == "$2" ]]; }
alert_state() {
  curl -sf "$RURL/alerts" | node -e '
    let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
      const a = JSON.parse(s).alerts.find((x) => x.name === process.argv[1]);
      console.log(a ? a.state : "absent");
    });' "$1"
}
alert_is() { [[ "$(alert_state "$1")" == "$2" ]]; }

# --- 1. bad configuration --------------------------------------------------------------------
bad() {
  local field=$1 body=$2 rc=0
  printf 'port: 0\nbackends: [http://127.0.0.1:9]\n%s\n' "$body" >"$tmp/bad.yaml"
  "$BIN" route --config "$tmp/bad.yaml" >"$tmp/bad.out" 2>"$tmp/bad.err" || rc=$?
  [[ $rc -eq 2 ]] || fail "bad config ($field): exit $rc, want 2: $(cat "$tmp/bad.err")"
  grep -qF "$field" "$tmp/bad.err" || fail "bad config: '$field' not named: $(cat "$tmp/bad.err")"
  [[ $(wc -l <"$tmp/bad.err") -eq 1 ]] || fail "bad config ($field): not one line: $(cat "$tmp/bad.err")"
}
SERVE="$BIN serve --model $tmp/tiny-v3 --host 127.0.0.1 --port {port} --threads 1 --kv-blocks 256"
REPLICAS="replicas: {command: \"$SERVE\", min: 1, max: 2}"
bad "scaling_policy.scaling_rules[0].threshold" "$REPLICAS
scaling_policy: {scaling_rules: [{metric: gpu_utilization, threshold: -5%, action: add_instance}]}"
bad "scaling_policy.scaling_rules[0].action" "$REPLICAS
scaling_policy: {scaling_rules: [{metric: gpu_utilization, threshold: 85%, action: reboot}]}"
bad "scaling_policy.scaling_rules[0].metric" "$REPLICAS
scaling_policy: {scaling_rules: [{metric: gpu_temp, threshold: 85%, action: add_instance}]}"
bad "scaling_policy.scaling_rules[0].cooldown" "$REPLICAS
scaling_policy: {scaling_rules: [{metric: gpu_utilization, threshold: 85%, action: add_instance, cooldown: 5 minutes}]}"
bad "alerts.rules[0].for" "alerts: {rules: [{name: A, metric: error_rate, threshold: 1%, for: soon}]}"
bad "replicas.command" "replicas: {command: \"$BIN serve\", min: 1}"
echo "route_control_test: bad configs ok"

# --- 2. alerts over an injectable backend ----------------------------------------------------
node "$SRC/tests/router/fake_replica.mjs" >"$tmp/fake.out" 2>"$tmp/fake.log" &
track_pid "$!"
wait_for 30 grep -q listening "$tmp/fake.out" || fail "fake replica did not start"
FAKE=$(sed -n 's/listening on \(http:.*\)$/\1/p' "$tmp/fake.out")
inject() { curl -sf -d "$1" -H 'Content-Type: application/json' "$FAKE/fake/config" >/dev/null; }
start_router alerts "port: 0
threads: 1
backends: [$FAKE]
health_check: {interval: 1s, healthy_threshold: 1}
ejection: {consecutive_failures: 1000}
alerts:
  default_rules: false
  evaluation_interval: 500ms
  rules:
    - {name: SlowP99, metric: p99_latency, threshold: 500ms, window: 4s, for: 1s}
    - {name: Failing, metric: error_rate, threshold: 1%, window: 4s, for: 1s}"
(
  while true; do
    curl -s -o /dev/null -w '%{http_code}\n' -H 'Content-Type: application/json' -d '{"prompt":"x"}' \
      "$RURL/v1/completions" >>"$tmp/alert_codes.txt" || true
    sleep 0.05
  done
) &
traffic=$!
track_pid "$traffic"
wait_for 60 test -s "$tmp/alert_codes.txt" || fail "no traffic through the router"
sleep 2
alert_is SlowP99 inactive || fail "SlowP99 $(alert_state SlowP99) on healthy traffic"
alert_is Failing inactive || fail "Failing $(alert_state Failing) on healthy traffic"
inject '{"delay_ms":800}'
wait_for 90 alert_is SlowP99 firing || fail "SlowP99 did not fire on injected latency"
metric_is 'seekserve_router_alert_firing{alertname="SlowP99"}' 1 || fail "SlowP99 gauge not 1"
curl -sf "$RURL/metrics" | promtool check metrics || fail "promtool rejects the router's /metrics"
inject '{"delay_ms":0}'
wait_for 90 alert_is SlowP99 inactive || fail "SlowP99 did not resolve"
inject '{"fail_every":5}'
wait_for 90 alert_is Failing firing || fail "Failing did not fire on injected errors"
grep -q '^500$' "$tmp/alert_codes.txt" || fail "clients never saw the injected 500s"
inject '{"fail_every":0}'
wait_for 90 alert_is Failing inactive || fail "Failing did not resolve"
metric_is 'seekserve_router_alert_firing{alertname="Failing"}' 0 || fail "Failing gauge not 0"
kill "$traffic"
kill -TERM "$RPID"
wait "$RPID" || fail "router exited $? after SIGTERM"
echo "route_control_test: alerts ok"

# --- 3. supervised replicas and autoscaling --------------------------------------------------
base=$((32000 + ($$ % 100) * 100))
start_router scale "port: 0
threads: 1
health_check: {interval: 1s, healthy_threshold: 1}
replicas:
  command: \"$SERVE\"
  min: 1
  max: 3
  port_range: $base-$((base + 99))
  restart_backoff: 500ms
  drain_timeout: 60s
  log_dir: $tmp
scaling_policy:
  evaluation_interval: 1s
  scaling_rules:
    - {metric: gpu_utilization, threshold: 60%, action: add_instance, cooldown: 10m}
    - {metric: gpu_utilization, threshold: 30%, action: remove_instance, window: 5s, cooldown: 0s}
alerts: {default_rules: false}"
ready_is() { metric_is 'seekserve_router_supervised_replicas{state="ready"}' "$1"; }
complete() {
  curl -s -o /dev/null -w '%{http_code}\n' -H 'Content-Type: application/json' \
    -d "{\"model\":\"tiny-v3\",\"prompt\":\"load $RANDOM\",\"max_tokens\":$1,\"ignore_eos\":true}" \
    "$RURL/v1/completions"
}
wait_for 120 ready_is 1 || fail "the first replica did not become ready"
wait_for 30 test "$(complete 4)" = 200 || fail "no answer through the router"

# Killed: restarted and readmitted.
victim=$(pgrep -P "$RPID" -f "seekserve serve" | head -1)
[[ -n "$victim" ]] || fail "no supervised replica process under the router"
kill -9 "$victim"
wait_for 120 metric_is seekserve_router_replica_restarts_total 1 || fail "killed replica not restarted"
wait_for 120 ready_is 1 || fail "restarted replica not readmitted"
wait_for 30 test "$(complete 4)" = 200 || fail "no answer after the restart"
echo "route_control_test: restart ok"

# Sustained load: one replica added, no second inside the cooldown.
touch "$tmp/heavy"
for _ in 1 2 3 4; do
  (while [[ -e "$tmp/heavy" ]]; do complete 32 >>"$tmp/scale_codes.txt"; done) &
  track_pid "$!"
done
(while [[ ! -e "$tmp/done" ]]; do complete 8 >>"$tmp/scale_codes.txt"; sleep 2; done) &
trickle=$!
track_pid "$trickle"
wait_for 180 metric_is seekserve_router_replicas_target 2 || fail "no replica added under load"
wait_for 120 ready_is 2 || fail "the added replica did not become ready"
sleep 10
metric_is seekserve_router_replicas_target 2 || fail "a second replica added inside the cooldown"
metric_is 'seekserve_router_scaling_decisions_total{action="add_instance",metric="engine_utilization"}' 1 ||
  fail "add_instance decisions not 1"
grep -q "autoscaler add_instance: rule 0 gpu_utilization" "$tmp/scale.log" || fail "decision not logged"

# Load stops: back to min by draining, and no client request failed.
rm "$tmp/heavy"
wait_for 180 metric_is seekserve_router_replicas_target 1 || fail "no scale-down after the load"
wait_for 120 ready_is 1 || fail "scale-down did not finish"
wait_for 120 metric_is 'seekserve_router_supervised_replicas{state="draining"}' 0 || fail "still draining"
wait_for 120 metric_is 'seekserve_router_supervised_replicas{state="stopping"}' 0 || fail "still stopping"
touch "$tmp/done"
wait "$trickle" || true
sleep 1
total=$(wc -l <"$tmp/scale_codes.txt")
bad_codes=$(grep -vc '^200$' "$tmp/scale_codes.txt" || true)
[[ $bad_codes -eq 0 ]] || fail "$bad_codes of $total requests failed: $(sort "$tmp/scale_codes.txt" | uniq -c)"
[[ $total -gt 10 ]] || fail "only $total requests"
echo "route_control_test: autoscale ok ($total requests, none failed)"

# SIGTERM: the router exits 0 and takes its replicas with it.
children=$(pgrep -P "$RPID" || true)
kill -TERM "$RPID"
wait "$RPID" || fail "router exited $? after SIGTERM"
for c in $children; do
  wait_for 30 bash -c "! kill -0 $c 2>/dev/null" || fail "replica $c outlived the router"
done
echo "route_control_test: ok"
