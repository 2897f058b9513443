# Sourced by the load scripts (run.sh, callgrind.sh, pgo.sh, limits.sh): the benchmark's
# deployment.
#
# bench_manifest FILE UPSTREAM writes FILE: one ModelDeployment, `bench`, serving the model
# `bench` from the fast upstream at UPSTREAM (host:port) as an OpenAI-compatible server.
# upstream.model is the public name, so the request body is forwarded as it came (no
# rewrite), as nginx forwards it.
bench_manifest() {
    local file=$1 upstream=$2
    mkdir -p "$(dirname "$file")"
    cat >"$file" <<EOF
apiVersion: modelgate.dev/v1alpha1
kind: ModelDeployment
metadata:
  name: bench
spec:
  model: bench
  upstream:
    provider: openai-compatible
    apiBase: http://$upstream/v1
EOF
}
