#!/usr/bin/env bash
# The Prometheus rules shipped in deploy/prometheus/ are valid (promtool check rules) and fire,
# stay pending, stay quiet and resolve as their unit tests over synthetic series say (promtool test
# rules). Prometheus' own tool is the judge.
set -euo pipefail
SRC=${SEEKSERVE_SOURCE_DIR:?}
promtool check rules "$SRC/deploy/prometheus/seekserve-rules.yml"
promtool test rules "$SRC/deploy/prometheus/seekserve-rules_test.yml"
echo "prometheus_rules_alert_test: ok"
