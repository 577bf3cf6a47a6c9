#!/usr/bin/env bash
# `make bench`: builds release binaries, then runs the load generator
# (client/examples/loadgen/), which starts a fresh chat-server on an
# ephemeral 127.0.0.1 port for each scenario run, with a temporary key and
# data directory, and stops it afterwards. Prints one JSON line per run and
# a table; arguments are passed to the load generator (try --quick).
# docs/PERFORMANCE.md explains the figures.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo=${CARGO:-cargo}
target=${CARGO_TARGET_DIR:-target}

# The load generator needs no GUI, so the client is built without FLTK.
"$cargo" build --release -q -p chat-server --bin chat-server --example lock_bench
"$cargo" build --release -q -p chat-client --no-default-features --example loadgen

# 10,000 connections need 10,000 descriptors in each process.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 10100 ]; then
    echo "bench: only $(ulimit -n) file descriptors allowed; the 10,000-connection run will fail" >&2
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/hmac-chat-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
sha=no
grep -qw sha_ni /proc/cpuinfo 2>/dev/null && sha=yes
model=$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//')
echo "bench: $(nproc) cores, ${model:-unknown CPU}, SHA-NI $sha; load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2

"$target/release/examples/loadgen" --server "$target/release/chat-server" --work-dir "$work" "$@"
# The time the state lock is held per public message, 10 vs 10,000 registered.
"$target/release/examples/lock_bench"
