#!/usr/bin/env bash
# Non-blank, non-comment lines of Rust outside `#[cfg(test)]` modules.
for f in "$@"; do
  awk '/^#\[cfg\(test\)\]/{exit} {l=$0; sub(/^[ \t]+/,"",l); if (l=="" || l ~ /^\/\//) next; n++} END{print n+0, FILENAME}' "$f"
done | awk '{t+=$1; print} END{print t, "total"}'
