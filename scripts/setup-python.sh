#!/usr/bin/env bash
# Creates <repo>/.venv and installs tools/requirements.txt into it.
# Idempotent: a stamp file holding the sha256 of requirements.txt skips the
# reinstall when nothing changed (delete .venv/.duet-requirements.sha256 to force).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
REQ="$ROOT/tools/requirements.txt"
STAMP="$VENV/.duet-requirements.sha256"
PYTHON="${PYTHON:-python3}"

log() { echo "[setup-python] $*"; }

if ! command -v "$PYTHON" >/dev/null 2>&1; then
  log "error: $PYTHON not found; install python3 (>= 3.10)" >&2
  exit 1
fi

want="$(sha256sum "$REQ" | cut -d' ' -f1)"

if [[ -x "$VENV/bin/python" && -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
  log "venv $VENV is up to date (requirements sha256 $want); nothing to do"
  exit 0
fi

if [[ ! -x "$VENV/bin/python" ]]; then
  log "creating venv at $VENV with $("$PYTHON" --version 2>&1)"
  if ! "$PYTHON" -m venv "$VENV" 2>/tmp/duet-venv-err.$$; then
    cat /tmp/duet-venv-err.$$ >&2 || true
    rm -rf "$VENV"
    # Debian splits ensurepip/venv into python3-venv (python3.X-venv).
    if [[ "$(id -u)" == "0" ]] && command -v apt-get >/dev/null 2>&1; then
      pyver="$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
      log "python3 -m venv failed; installing python3-venv / python${pyver}-venv via apt-get"
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv \
        || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "python${pyver}-venv"
      "$PYTHON" -m venv "$VENV"
    else
      log "error: '$PYTHON -m venv' failed; install python3-venv (as root: apt-get install python3-venv)" >&2
      exit 1
    fi
  fi
  rm -f /tmp/duet-venv-err.$$
else
  log "reusing venv at $VENV (requirements changed or no stamp)"
fi

# Fewer retries than pip's default 5: on a machine that reaches only some indexes, each
# unreachable one otherwise costs ~8 s of backoff per package (minutes in all).
export PIP_RETRIES="${PIP_RETRIES:-1}"
log "installing $REQ (pip retries: $PIP_RETRIES)"
"$VENV/bin/python" -m pip install --disable-pip-version-check -q --upgrade pip
"$VENV/bin/python" -m pip install --disable-pip-version-check -q -r "$REQ"
echo "$want" > "$STAMP"
log "done: $("$VENV/bin/python" -c 'import torch, transformers, onnx, onnxruntime; print(f"torch {torch.__version__}, transformers {transformers.__version__}, onnx {onnx.__version__}, onnxruntime {onnxruntime.__version__}")')"
