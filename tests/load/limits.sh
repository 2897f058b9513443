#!/usr/bin/env bash
# What shared rate limits cost per request (BENCHMARKS.md, "Rate limits: Redis vs local"):
#
#   tests/load/limits.sh
#
# Starts one fast mock upstream, one `redis-server` (Debian package; installed when
# missing) and three `modelgate-operator local` gateways on the same one-deployment
# manifest, differing only in limits:
# - `none`:  no rpm/tpm (the limiter does nothing),
# - `local`: rpm/tpm set (far above the load), counted in the pod (no Redis),
# - `redis`: the same limits with `settings.redisUrl`: one Lua script round trip to Redis
#            before every request, the settlement sent after it in the background;
# then measures each with `loadgen` (closed loop, 1 and 16 connections), the three
# interleaved level by level in the same run, and prints p50/p99 and the added latency of
# `local` and `redis` over `none`.
# Settings (environment): DURATION (s per run, 5), WARMUP (1), LEVELS ("1 16"), PORT_BASE
# (18180: five ports from it), SKIP_BUILD=1. Everything listens on 127.0.0.1; every
# process started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=tests/load/bench-manifest.sh
source tests/load/bench-manifest.sh

DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
LEVELS=${LEVELS:-"1 16"}
PORT_BASE=${PORT_BASE:-18180}

die() {
    echo "limits benchmark: $*" >&2
    exit 1
}

target_dir=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
bin="$target_dir/release"
if [ "${SKIP_BUILD:-}" != 1 ]; then
    cargo build --release --locked -p modelgate-operator -p modelgate-tests \
        --bin modelgate-operator --bin loadgen --bin fast-upstream >&2
fi
if ! command -v redis-server >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
fi

work="$target_dir/limits-bench"
rm -rf "$work"
mkdir -p "$work"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

p_up=$PORT_BASE
p_redis=$((PORT_BASE + 1))
declare -A port=([none]=$((PORT_BASE + 2)) [local]=$((PORT_BASE + 3)) [redis]=$((PORT_BASE + 4)))

"$bin/fast-upstream" --listen "127.0.0.1:$p_up" >"$work/upstream.log" 2>&1 &
pids+=($!)
redis-server --port "$p_redis" --bind 127.0.0.1 --save '' --appendonly no >"$work/redis.log" 2>&1 &
pids+=($!)

for mode in none local redis; do
    dir="$work/$mode"
    mkdir -p "$dir"
    limits=""
    if [ "$mode" != none ]; then
        limits="  limits:
    rpm: 1000000000
    tpm: 1000000000000"
    fi
    bench_manifest "$dir/bench.yaml" "127.0.0.1:$p_up"
    cat >>"$dir/bench.yaml" <<EOF
  healthCheck:
    enabled: false
$limits
EOF
    if [ "$mode" = redis ]; then
        cat >>"$dir/bench.yaml" <<EOF
---
apiVersion: v1
kind: Secret
metadata:
  name: redis
stringData:
  url: redis://127.0.0.1:$p_redis/
---
apiVersion: modelgate.dev/v1alpha1
kind: RouterSettings
redisUrl:
  secretKeyRef: {name: redis, key: url}
EOF
    fi
    MODELGATE_LOG=warn "$bin/modelgate-operator" local -f "$dir" --listen "127.0.0.1:${port[$mode]}" \
        >"$dir/gateway.log" 2>&1 &
    pids+=($!)
done

ready() {
    for _ in $(seq 1 100); do
        if curl -sf -o /dev/null -X POST -H 'content-type: application/json' \
            -d '{"model":"bench","messages":[{"role":"user","content":"hi"}]}' "$1"; then
            return 0
        fi
        sleep 0.1
    done
    die "$1 never answered (logs: $work)"
}
ready "http://127.0.0.1:$p_up/v1/chat/completions"
for mode in none local redis; do
    ready "http://127.0.0.1:${port[$mode]}/v1/chat/completions"
done

results="$work/results.jsonl"
: >"$results"
for c in $LEVELS; do
    for mode in none local redis; do
        "$bin/loadgen" --url "http://127.0.0.1:${port[$mode]}/v1/chat/completions" --model bench \
            -c "$c" -d "$DURATION" --warmup "$WARMUP" --threads 1 --label "$mode c=$c" >>"$results"
    done
done

# Redis really decided: its counters hold the requests of the `redis` gateway.
keys=$(redis-cli -p "$p_redis" --scan --pattern 'modelgate:*' | wc -l)
[ "$keys" -gt 0 ] || die "no modelgate keys in Redis: the redis gateway did not use it"

python3 - "$results" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip().startswith("{")]
def get(r, *names):
    for n in names:
        if n in r:
            return r[n]
    return None
by = {r["label"]: r for r in rows}
print("| connections | mode | requests/s | p50 (ms) | p99 (ms) | p50 added over none (ms) | p99 added over none (ms) |")
print("|---|---|---|---|---|---|---|")
for label, r in by.items():
    mode, c = label.split(" c=")
    base = by.get(f"none c={c}")
    p50, p99 = get(r, "p50_us") / 1000, get(r, "p99_us") / 1000
    rps = get(r, "rps", "requests_per_s")
    d50 = p50 - get(base, "p50_us") / 1000 if base else 0
    d99 = p99 - get(base, "p99_us") / 1000 if base else 0
    print(f"| {c} | {mode} | {rps:.0f} | {p50:.3f} | {p99:.3f} | {d50:+.3f} | {d99:+.3f} |")
EOF
