# Sourced by the load scripts (run.sh, callgrind.sh): nginx's configuration for them.
#
# nginx_conf DIR WORKERS UPSTREAM LISTEN MASTER writes DIR/nginx.conf from
# nginx.conf.template: WORKERS worker processes, proxying LISTEN to UPSTREAM (host:port
# each), with `master_process MASTER` (on, or off for one process under a profiler);
# `user root;` when run as root, as nginx needs then.
nginx_conf() {
    local dir=$1 workers=$2 upstream=$3 listen=$4 master=$5
    local user_line=""
    if [ "$(id -u)" = 0 ]; then
        user_line="user root;"
    fi
    mkdir -p "$dir"
    sed -e "s|@USER@|$user_line|" -e "s|@WORKERS@|$workers|" -e "s|@DIR@|$dir|g" \
        -e "s|@UPSTREAM@|$upstream|" -e "s|@LISTEN@|$listen|" \
        -e "s|^master_process on;|master_process $master;|" \
        "$(dirname "${BASH_SOURCE[0]}")/nginx.conf.template" >"$dir/nginx.conf"
}
