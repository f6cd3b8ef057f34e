#!/usr/bin/env bash
# One-time setup on a fresh Debian/Ubuntu machine: system packages, pnpm, node modules,
# the Python tool environment (.venv) and a build. Idempotent; safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

# System packages the tools and tests use. util-linux gives taskset (benchmarks pin one core);
# espeak-ng, sox and opus-tools synthesise, resample and Opus round-trip the speech corpus of
# tools/recipe; nats-server is the data plane of the services (tests and `pnpm start` run one).
# The rest build the mediasoup worker against Debian's libraries (scripts/build-mediasoup-worker.sh);
# chromium runs the browser end-to-end tests of the SFU (headless, driven by playwright-core).
# prometheus (with promtool) and kubectl validate deploy/ and k8s/ and scrape the scale-out test;
# Go with sprig and ghodss/yaml builds deploy/helm/render, which renders the Helm chart in tests.
# sip-tester (SIPp) and baresip-core are the independent SIP peers of the SIP bridge's tests.
# tcpdump: pnpm bench:sfu captures loopback to time the SFU's own forwarding (kernel timestamps).
apt_packages=(util-linux espeak-ng sox opus-tools nats-server sip-tester baresip-core tcpdump
  build-essential pkg-config python3-venv libabsl-dev libsrtp2-dev libuv1-dev libusrsctp-dev libssl-dev
  nlohmann-json3-dev libflatbuffers-dev flatbuffers-compiler catch2 liburing-dev chromium
  prometheus kubectl golang-go golang-github-masterminds-sprig-dev golang-github-ghodss-yaml-dev)
missing=()
for p in "${apt_packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  if [ "$(id -u)" = 0 ]; then
    say "installing ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  else
    say "please install: ${missing[*]} (sudo apt-get install ${missing[*]})"; exit 1
  fi
fi

node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 20 ]; then echo "Node.js >= 20 is required (found $(node -v 2>/dev/null || echo none))" >&2; exit 1; fi

pnpm_version=$(node -p 'require("./package.json").packageManager.split("@")[1]')
if [ "$(pnpm -v 2>/dev/null || true)" != "$pnpm_version" ]; then
  say "installing pnpm $pnpm_version"
  npm install -g "pnpm@$pnpm_version" >/dev/null
fi

# onnxruntime-node's install script would try to download CUDA providers: the CPU binding ships in the package.
export ONNXRUNTIME_NODE_INSTALL_CUDA=skip
# mediasoup's install would download a prebuilt worker (unreachable): with MEDIASOUP_WORKER_BIN set it
# skips that; the worker is built from source below and cached outside the checkout.
MEDIASOUP_WORKER_BIN="${MEDIASOUP_WORKER_BIN:-${DUET_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/duet}/mediasoup-worker-3.13.16/mediasoup-worker}"
export MEDIASOUP_WORKER_BIN
say "installing node modules"
pnpm install --frozen-lockfile

say "building the mediasoup worker (cached by version: $MEDIASOUP_WORKER_BIN)"
bash scripts/build-mediasoup-worker.sh >/dev/null

say "preparing the Python tool environment (.venv)"
bash scripts/setup-python.sh

say "building"
pnpm build
say "done"
