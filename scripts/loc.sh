#!/usr/bin/env bash
# Non-blank, non-comment lines of Rust outside `#[cfg(test)]` modules.
# Usage: scripts/loc.sh common/src/*.rs server/src/*.rs server/src/*/*.rs
# A file named tests.rs holds a module's tests and is skipped.
for f in "$@"; do
  case "$f" in */tests.rs) continue;; esac
  awk '/^#\[cfg\(test\)\]/{exit} {l=$0; sub(/^[ \t]+/,"",l); if (l=="" || l ~ /^\/\//) next; n++} END{print n+0, FILENAME}' "$f"
done | awk '{t+=$1; print} END{print t, "total"}'
