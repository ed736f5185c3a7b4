#!/bin/sh
# deps.sh: make sure the Debian packages metastate needs are installed.
# As root it installs what is missing with apt-get; otherwise it prints the
# exact apt-get line to run and fails.  Used by `make run`, `make test`,
# `make bench` and .ci/run.  `deps.sh fuzz` adds what `make fuzz` needs:
# clang and its libFuzzer runtime (libclang-rt-14-dev is only recommended by
# clang, and recommends are not installed here).
PKGS="gcc g++ make libopenblas-dev libcjson-dev libreadline-dev libncurses-dev libpng-dev zlib1g-dev python3 python3-torch python3-numpy tmux valgrind"
[ "${1:-}" = fuzz ] && PKGS="$PKGS clang libclang-rt-14-dev"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then
    echo "deps: installing:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --no-install-recommends $missing >/dev/null || {
        echo "deps: apt-get install failed for:$missing" >&2; exit 1; }
else
    echo "deps: missing Debian packages. Run:" >&2
    echo "  sudo apt-get install -y$missing" >&2
    exit 1
fi
