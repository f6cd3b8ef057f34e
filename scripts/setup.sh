#!/usr/bin/env bash
# One-time setup on a fresh Debian/Ubuntu machine: system packages, pnpm, node modules,
# the Python tool environment (.venv) and a build. Idempotent; safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

# System packages the tools and tests use. util-linux gives taskset (benchmarks pin one core);
# espeak-ng and sox synthesise and resample the speech corpus of tools/recipe; nats-server is
# the data plane of the services (tests and `pnpm start` run a local one).
apt_packages=(util-linux espeak-ng sox nats-server)
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
say "installing node modules"
pnpm install --frozen-lockfile

say "preparing the Python tool environment (.venv)"
bash scripts/setup-python.sh

say "building"
pnpm build
say "done"
