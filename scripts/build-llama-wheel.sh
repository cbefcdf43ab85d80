#!/usr/bin/env bash
# Build (once) and install llama-cpp-python from a cached wheel.
#
# llama-cpp-python is published as source only, and its default build compiles
# llama.cpp with -march=native; on the project's machines that build crashes in
# the AMX code path.  We therefore build a portable AVX2/FMA/F16C wheel, keep it
# in .cache/wheels/ (gitignored) and install from there, so the ~15 minute
# compile happens once per machine, not on every `make install`.
#
# A fresh clone (CI) has no .cache/, so the wheel is also kept in a per-user cache
# outside the work tree (SHARED_WHEEL_DIR) and copied from there when present.
#
# Usage: scripts/build-llama-wheel.sh [PYTHON]   (default: .venv/bin/python)
# Env:   LLAMA_CPP_VERSION (0.3.36), WHEEL_DIR (.cache/wheels),
#        SHARED_WHEEL_DIR (${XDG_CACHE_HOME:-~/.cache}/sipscribe/wheels), NICE (19)
set -euo pipefail

cd "$(dirname "$0")/.."
PY="${1:-.venv/bin/python}"
VERSION="${LLAMA_CPP_VERSION:-0.3.36}"
WHEEL_DIR="${WHEEL_DIR:-.cache/wheels}"
SHARED_WHEEL_DIR="${SHARED_WHEEL_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sipscribe/wheels}"
NICE="${NICE:-19}"
PIP=("$PY" -m pip --disable-pip-version-check)
WHEEL_NAME="llama_cpp_python-${VERSION}-*.whl"

mkdir -p "$WHEEL_DIR"
if ! compgen -G "$WHEEL_DIR/$WHEEL_NAME" >/dev/null \
    && compgen -G "$SHARED_WHEEL_DIR/$WHEEL_NAME" >/dev/null; then
    cp "$SHARED_WHEEL_DIR"/$WHEEL_NAME "$WHEEL_DIR"/
fi

if compgen -G "$WHEEL_DIR/$WHEEL_NAME" >/dev/null; then
    echo "llama-cpp-python ${VERSION}: using cached wheel $(ls "$WHEEL_DIR"/$WHEEL_NAME | head -n1)"
else
    echo "llama-cpp-python ${VERSION}: building wheel into $WHEEL_DIR (7-15 min on 2 cores)"
    export CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON ${EXTRA_CMAKE_ARGS:-}"
    export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-2}"
    nice -n "$NICE" "${PIP[@]}" wheel --no-deps "llama-cpp-python==${VERSION}" -w "$WHEEL_DIR"
    if mkdir -p "$SHARED_WHEEL_DIR" 2>/dev/null; then
        cp "$WHEEL_DIR"/$WHEEL_NAME "$SHARED_WHEEL_DIR"/ || true
    fi
fi

if "$PY" -c "import importlib.metadata as m, sys; sys.exit(m.version('llama_cpp_python') != '${VERSION}')" 2>/dev/null; then
    echo "llama-cpp-python ${VERSION}: already installed"
else
    # Its dependencies (numpy, typing-extensions, diskcache, jinja2) come from the index.
    "${PIP[@]}" install --find-links "$WHEEL_DIR" "llama-cpp-python==${VERSION}"
fi
