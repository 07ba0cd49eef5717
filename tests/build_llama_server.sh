#!/usr/bin/env bash
# Build llama.cpp's own llama-server from the llama.cpp vendored in the pinned llama-cpp-python sdist
# (the same commit as the binding), once per version: the binary is cached under the user cache dir and
# a second call only prints its path. Usage: tests/build_llama_server.sh [VERSION]  (default 0.3.36)
# Env: PYTHON (the interpreter whose pip downloads the sdist), JOBS (parallel compile jobs, default 2).
# The last line of stdout is the binary's path; the build log goes to stderr.
set -euo pipefail

VERSION="${1:-0.3.36}"
PYTHON="${PYTHON:-python3}"
JOBS="${JOBS:-2}"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/playground-tests/llama-server-$VERSION"
BIN="$CACHE/llama-server"

mkdir -p "$CACHE"
# One build at a time: a second caller (another pytest run) waits here and then finds the binary.
exec 9>"$CACHE/.lock"
flock 9

if [[ -x "$BIN" ]] && "$BIN" --version >/dev/null 2>&1; then
    echo "$BIN"
    exit 0
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/llama-server-build.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

echo "building llama-server $VERSION in $WORK (about 7 minutes on 2 cores)" >&2
"$PYTHON" -m pip download --quiet --no-binary :all: --no-deps "llama-cpp-python==$VERSION" -d "$WORK" >&2
tar -xzf "$WORK"/llama_cpp_python-"$VERSION".tar.gz -C "$WORK"
SRC="$WORK/llama_cpp_python-$VERSION/vendor/llama.cpp"
# Portable (no -march=native: the cache may be shared with another CPU), static (one file to cache),
# no curl (the tests never download models).
cmake -S "$SRC" -B "$WORK/build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=OFF -DLLAMA_CURL=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DBUILD_SHARED_LIBS=OFF >&2
cmake --build "$WORK/build" --target llama-server -j"$JOBS" >&2
# Copy then rename, so an interrupted build never leaves a half-written binary at $BIN.
cp "$WORK/build/bin/llama-server" "$BIN.tmp"
mv "$BIN.tmp" "$BIN"
"$BIN" --version >&2
echo "$BIN"
