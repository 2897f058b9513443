#!/usr/bin/env bash
# Instructions per proxied request (BENCHMARKS.md, "What limits the data plane"), in one
# command:
#
#   tests/load/callgrind.sh
#
# Runs the release `modelgate-dataplane` under `valgrind --tool=callgrind` with one
# deployment (`openai-compatible`, the body forwarded unchanged) in front of
# `fast-upstream`, warms it up, then switches instrumentation on for REQUESTS requests at a
# fixed 200 req/s over 16 connections (`loadgen`), and prints the instructions per request
# and the functions that cost the most (inclusive and exclusive). Instruction counts do not
# depend on what else the machine is doing, so two builds can be compared on a busy box.
#
# PROXY=nginx measures nginx instead, the load benchmark's yardstick, the same way: one
# process (`master_process off`), configured as in the benchmark (nginx.conf.template).
#
# SATURATE=1 drives it in a closed loop over 64 connections instead, for as long as
# REQUESTS would take at 200 req/s: busy all along, as in the saturation runs, so the
# event loop's cost is shared by the requests each turn finds ready.
#
# PGO=1 (the default) measures Modelgate as the load benchmark and the images build it,
# with profile-guided optimisation (tests/load/pgo.sh); PGO=0 a plain release build.
#
# Settings (environment): PROXY (modelgate or nginx), SATURATE, REQUESTS (2000), BODY (a request
# body; the default one-message chat), PORT_BASE (18280: four ports from it), PGO (1),
# SKIP_BUILD=1, TOP (25 functions).
# Output: the summary on stdout; the callgrind file and logs in <target dir>/callgrind/.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=tests/load/nginx-conf.sh
source tests/load/nginx-conf.sh
# shellcheck source=tests/load/bench-manifest.sh
source tests/load/bench-manifest.sh

PROXY=${PROXY:-modelgate}
REQUESTS=${REQUESTS:-2000}
PORT_BASE=${PORT_BASE:-18280}
TOP=${TOP:-25}
PGO=${PGO:-1}
p_upstream=$PORT_BASE
p_public=$((PORT_BASE + 1))
p_admin=$((PORT_BASE + 2))

die() {
    echo "callgrind: $*" >&2
    exit 1
}
command -v valgrind >/dev/null 2>&1 || die "valgrind is needed (apt-get install valgrind)"
case "$PROXY" in
modelgate) ;;
nginx) command -v nginx >/dev/null 2>&1 || die "nginx is needed (apt-get install nginx)" ;;
*) die "PROXY is modelgate or nginx, not $PROXY" ;;
esac

if [ "${SKIP_BUILD:-0}" != 1 ]; then
    cargo build --release --locked -p modelgate-tests --bins
    if [ "$PGO" = 1 ]; then
        tests/load/pgo.sh
    else
        cargo build --release --locked -p modelgate-operator -p modelgate-dataplane
    fi
fi
target_dir=$(cargo metadata --format-version 1 --no-deps |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
bin="$target_dir/release"
mg_bin="$bin"
if [ "$PGO" = 1 ]; then
    mg_bin="$target_dir/pgo/bin"
fi
for b in "$bin/loadgen" "$bin/fast-upstream" "$mg_bin/modelgate-operator" "$mg_bin/modelgate-dataplane"; do
    [ -x "$b" ] || die "$b is missing (run without SKIP_BUILD)"
done
work="$target_dir/callgrind"
rm -rf "$work"
mkdir -p "$work/manifests"

pids=()
cleanup() {
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
}
trap cleanup EXIT

"$bin/fast-upstream" --listen "127.0.0.1:$p_upstream" >"$work/upstream.log" 2>&1 &
pids+=($!)

if [ "$PROXY" = nginx ]; then
    nginx_conf "$work/nginx" 1 "127.0.0.1:$p_upstream" "127.0.0.1:$p_public" off
    valgrind --tool=callgrind --instr-atstart=no \
        --callgrind-out-file="$work/callgrind.out" \
        nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -e stderr >"$work/nginx.log" 2>&1 &
else
    bench_manifest "$work/manifests/bench.yaml" "127.0.0.1:$p_upstream"
    "$mg_bin/modelgate-operator" check -f "$work/manifests" --print-table >"$work/table.json"

    MODELGATE_LOG=warn valgrind --tool=callgrind --instr-atstart=no \
        --callgrind-out-file="$work/callgrind.out" \
        "$mg_bin/modelgate-dataplane" --table-file "$work/table.json" --worker-threads 1 \
        --listen "127.0.0.1:$p_public" --admin-listen "127.0.0.1:$p_admin" \
        --metrics-listen "127.0.0.1:$((PORT_BASE + 3))" >"$work/dataplane.log" 2>&1 &
fi
vg=$!
pids+=($vg)

url="http://127.0.0.1:$p_public/v1/chat/completions"
body_args=()
if [ -n "${BODY:-}" ]; then
    body_args=(--body "$BODY")
fi
for _ in $(seq 1 300); do
    if curl -sf -o /dev/null -m 5 -X POST -H 'content-type: application/json' \
        -d '{"model":"bench","messages":[{"role":"user","content":"hi"}]}' "$url"; then
        break
    fi
    kill -0 "$vg" 2>/dev/null || die "the proxy exited (logs in $work)"
    sleep 0.2
done
# Warm-up: connections opened, pools filled, lazy state made.
"$bin/loadgen" --url "$url" -c 16 --rate 200 -d 3 --warmup 1 "${body_args[@]}" >/dev/null
callgrind_control -i on "$vg" >/dev/null
seconds=$(((REQUESTS + 199) / 200))
if [ "${SATURATE:-0}" = 1 ]; then
    # Closed loop over 64 connections: the proxy always busy, as in the saturation runs
    # (its event-loop turns are shared by the requests each one finds ready).
    "$bin/loadgen" --url "$url" -c 64 -d "$seconds" --warmup 0 "${body_args[@]}" >"$work/loadgen.json"
else
    "$bin/loadgen" --url "$url" -c 16 --rate 200 -d "$seconds" --warmup 0 "${body_args[@]}" >"$work/loadgen.json"
fi
callgrind_control -i off "$vg" >/dev/null
callgrind_control -d "$vg" >/dev/null
kill -TERM "$vg" 2>/dev/null || true
wait "$vg" 2>/dev/null || true

requests=$(grep -oE '"requests":[0-9]+' "$work/loadgen.json" | cut -d: -f2)
out="$work/callgrind.out.1"
total=$(callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ && !seen {gsub(",", "", $1); print $1; seen = 1}')
[ -n "$total" ] && [ "${requests:-0}" -gt 0 ] || die "no totals (see $work)"
echo "$PROXY: requests: $requests, instructions: $total, per request: $((total / requests))"
echo
echo "inclusive (top $TOP):"
callgrind_annotate --inclusive=yes "$out" 2>/dev/null | sed -n '/file:function/,$p' | sed -n "2,$((TOP + 1))p"
echo
echo "exclusive (top $TOP):"
callgrind_annotate "$out" 2>/dev/null | sed -n '/file:function/,$p' | sed -n "2,$((TOP + 1))p"
