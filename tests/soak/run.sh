#!/usr/bin/env bash
# The soak test (BENCHMARKS.md, "Soak"), in one command — not part of the default test run:
#
#   nice -n 19 tests/soak/run.sh            # 10 minutes
#   MINUTES=2 tests/soak/run.sh             # a shorter run
#
# Builds the release `modelgate-dataplane` and the `soak` driver (`--features soak`),
# starts the data plane with no table on 127.0.0.1, and runs `soak` against it: fault
# upstreams in-process that fail and recover on a schedule (5xx, 429, resets, hangs, cuts
# mid-stream, malformed answers, slow answers), a fallback group, a new routing-table
# revision pushed on the admin port every SWAP_SECONDS, and a fixed rate of mixed
# streaming and non-streaming chat completions. It prints requests served,
# client-visible errors by cause, latency per minute (p50, p99, max), and the data
# plane's RSS at start, per minute and at the end. Exits 1 when a client saw an error
# issue 7 does not allow (anything but an error event ending a stream cut after its
# first byte) or a table push failed.
#
# Settings (environment): MINUTES (10), RATE (requests/s, 100), CONNECTIONS (16),
# STREAM_EVERY (every n-th request streams, 2), SWAP_SECONDS (3), CYCLE_SECONDS (fault
# cycle, 60), PORT_BASE (24180: three ports from it), SKIP_BUILD=1.
# Output: report.md, report.json and the logs in <target dir>/soak/. Every process
# started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."

MINUTES=${MINUTES:-10}
RATE=${RATE:-100}
CONNECTIONS=${CONNECTIONS:-16}
STREAM_EVERY=${STREAM_EVERY:-2}
SWAP_SECONDS=${SWAP_SECONDS:-3}
CYCLE_SECONDS=${CYCLE_SECONDS:-60}
PORT_BASE=${PORT_BASE:-24180}

target=${CARGO_TARGET_DIR:-target}
bin="$target/release"
work="$target/soak"
mkdir -p "$work"

if [ "${SKIP_BUILD:-0}" != 1 ]; then
    printf '==> building the release data plane and the soak driver\n' >&2
    cargo build --release --quiet -p modelgate-dataplane --bin modelgate-dataplane
    cargo build --release --quiet -p modelgate-tests --features soak --bin soak
fi

p_api=$PORT_BASE
p_admin=$((PORT_BASE + 1))
p_metrics=$((PORT_BASE + 2))
token="$work/admin-token"
printf 'soak-token-%s\n' "$$" >"$token"

pid=""
cleanup() {
    if [ -n "$pid" ]; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$bin/modelgate-dataplane" \
    --listen "127.0.0.1:$p_api" \
    --admin-listen "127.0.0.1:$p_admin" \
    --metrics-listen "127.0.0.1:$p_metrics" \
    --admin-token-file "$token" \
    --drain-seconds 2 \
    >"$work/dataplane.log" 2>&1 &
pid=$!

for i in $(seq 1 100); do
    if curl -sf -o /dev/null -m 1 "http://127.0.0.1:$p_api/health/liveliness"; then
        break
    fi
    if ! kill -0 "$pid" 2>/dev/null || [ "$i" = 100 ]; then
        tail -20 "$work/dataplane.log" >&2 || true
        echo "soak: the data plane did not start" >&2
        exit 1
    fi
    sleep 0.1
done

printf '==> soak: %s min, %s req/s over %s workers, every %s. request streams, a table push every %s s\n' \
    "$MINUTES" "$RATE" "$CONNECTIONS" "$STREAM_EVERY" "$SWAP_SECONDS" >&2
status=0
"$bin/soak" \
    --url "http://127.0.0.1:$p_api" \
    --admin "http://127.0.0.1:$p_admin" \
    --token-file "$token" \
    --pid "$pid" \
    --minutes "$MINUTES" \
    --rate "$RATE" \
    --connections "$CONNECTIONS" \
    --stream-every "$STREAM_EVERY" \
    --swap-seconds "$SWAP_SECONDS" \
    --cycle-seconds "$CYCLE_SECONDS" \
    --json "$work/report.json" | tee "$work/report.md" || status=$?

if grep -q '"level":"ERROR"\|panicked' "$work/dataplane.log"; then
    echo "soak: the data plane logged errors or panicked (see $work/dataplane.log)" >&2
    status=1
fi
kill -0 "$pid" 2>/dev/null || { echo "soak: the data plane died" >&2; status=1; }
exit "$status"
