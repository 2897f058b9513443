#!/usr/bin/env bash
# Writes a fleet of ModelDeployments for the load benchmark's memory measurement:
#
#   tests/load/gen-manifest.sh COUNT API_BASE > deployments.yaml
#
# COUNT deployments in COUNT/5 model groups (`model-00000` …, five deployments each, weights
# 1–5), every one an `openai-compatible` upstream at API_BASE (the benchmark's fast upstream,
# so that health checks succeed), with limits, timeouts, costs and the default health check
# (every 60 s) — roughly what a real fleet carries. No credentials: the table holds nothing
# secret, so it can also be printed with `modelgate-operator check --print-table`.
set -euo pipefail
count=${1:?usage: gen-manifest.sh COUNT API_BASE}
api_base=${2:?usage: gen-manifest.sh COUNT API_BASE}
case $count in
    '' | *[!0-9]*) echo "COUNT must be a number" >&2; exit 2 ;;
esac
awk -v n="$count" -v base="$api_base" 'BEGIN {
    for (i = 0; i < n; i++) {
        g = int(i / 5)
        printf "---\n"
        printf "apiVersion: modelgate.dev/v1alpha1\n"
        printf "kind: ModelDeployment\n"
        printf "metadata:\n  name: dep-%05d\n  namespace: bench\n", i
        printf "spec:\n"
        printf "  model: model-%05d\n", g
        printf "  upstream:\n"
        printf "    provider: openai-compatible\n"
        printf "    model: bench\n"
        printf "    apiBase: %s\n", base
        printf "  limits:\n    rpm: %d\n    tpm: %d\n", 1000000 + i % 7, 100000000 + i
        printf "  timeouts:\n    request: 30s\n"
        printf "  routing:\n    weight: %d\n", 1 + i % 5
        printf "  modelInfo:\n    mode: chat\n    contextWindow: 128000\n    maxOutputTokens: 4096\n"
        printf "    inputCostPerToken: 0.0000025\n    outputCostPerToken: 0.00001\n"
    }
}'
