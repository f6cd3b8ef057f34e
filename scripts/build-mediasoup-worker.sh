#!/usr/bin/env bash
# Builds the mediasoup worker (C++) offline from mediasoup's npm tarball against Debian's system
# libraries, and caches the binary by version outside the checkout:
#
#   ${DUET_CACHE_DIR:-~/.cache/duet}/mediasoup-worker-<version>/mediasoup-worker
#
# mediasoup's own install downloads a prebuilt worker (unreachable here) or builds one with meson
# subprojects fetched from the internet (also unreachable). Instead every subproject named by a
# `.wrap` file gets a small meson.build shim that declares the variables mediasoup reads from the
# system library found by pkg-config, and meson runs with --wrap-mode=nodownload.
#
# Prints the binary's path as its last line. Idempotent: a cached binary whose shared libraries
# all resolve is reused. Services find it through MEDIASOUP_WORKER_BIN.
#
# Environment: MEDIASOUP_VERSION (3.13.16), MESON_VERSION (1.12.1), NINJA_VERSION (1.13.2),
# DUET_CACHE_DIR, MEDIASOUP_TARBALL (a local mediasoup-<version>.tgz to build from),
# MEDIASOUP_BUILD_JOBS (default: number of cores), FORCE=1 (rebuild even if cached).
set -euo pipefail

MEDIASOUP_VERSION=${MEDIASOUP_VERSION:-3.13.16}
MESON_VERSION=${MESON_VERSION:-1.12.1}
NINJA_VERSION=${NINJA_VERSION:-1.13.2}
CACHE_ROOT=${DUET_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/duet}
OUT_DIR="$CACHE_ROOT/mediasoup-worker-$MEDIASOUP_VERSION"
BIN="$OUT_DIR/mediasoup-worker"
REPO_ROOT=$(cd "$(dirname "$0")/.." && pwd)

say() { printf '\033[1m[mediasoup-worker]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31m[mediasoup-worker] error:\033[0m %s\n' "$*" >&2; exit 1; }

# The library versions this build was verified with, per Debian release. Others may work: the
# build is attempted, and if it fails the message names what differs.
declare -A VERIFIED_12=(
  [openssl]=3.0 [libuv]=1.44 [libsrtp2]=2.5 [usrsctp]=0.9 [flatbuffers]=2.0 [absl_flat_hash_map]=20220623
)
# pkg-config module -> Debian package that provides it.
declare -A PKG_OF=(
  [openssl]=libssl-dev [libuv]=libuv1-dev [libsrtp2]=libsrtp2-dev [usrsctp]=libusrsctp-dev
  [flatbuffers]=libflatbuffers-dev [absl_flat_hash_map]=libabsl-dev
)
APT_HINT="apt-get install -y build-essential pkg-config python3-venv libabsl-dev libsrtp2-dev libuv1-dev libusrsctp-dev libssl-dev nlohmann-json3-dev libflatbuffers-dev flatbuffers-compiler catch2"

# Source patches applied before building (named in BUILD-INFO; a cached binary without them is rebuilt).
PATCHES="bio-callback-return"

binary_ok() {
  [ -x "$BIN" ] || return 1
  grep -qx "patches: $PATCHES" "$OUT_DIR/BUILD-INFO" 2>/dev/null || return 1
  ! ldd "$BIN" 2>/dev/null | grep -q 'not found'
}

if [ "${FORCE:-0}" != 1 ] && binary_ok; then
  say "cached: $BIN"
  echo "$BIN"
  exit 0
fi

# --- check the platform and the libraries --------------------------------------------------
[ "$(uname -s)" = Linux ] || die "this script builds on Linux (Debian) only; found $(uname -s)"
if [ -r /etc/debian_version ]; then
  debian_version=$(cat /etc/debian_version)
else
  die "/etc/debian_version not found: this script builds against Debian's libraries (Debian 12 verified)"
fi
debian_major=${debian_version%%.*}
say "Debian $debian_version; mediasoup $MEDIASOUP_VERSION, meson $MESON_VERSION, ninja $NINJA_VERSION"

missing=()
for tool in c++ cc pkg-config python3 flatc; do command -v "$tool" >/dev/null 2>&1 || missing+=("$tool"); done
((${#missing[@]} == 0)) || die "missing tools: ${missing[*]}. Install them: $APT_HINT flatbuffers-compiler"

declare -A FOUND=()
missing=()
for mod in "${!PKG_OF[@]}"; do
  if v=$(pkg-config --modversion "$mod" 2>/dev/null); then FOUND[$mod]=$v; else missing+=("${PKG_OF[$mod]}"); fi
done
((${#missing[@]} == 0)) || die "missing development packages: ${missing[*]}. Install them: $APT_HINT"
[ -r /usr/include/nlohmann/json.hpp ] || die "nlohmann/json.hpp not found. Install nlohmann-json3-dev"
flatc_version=$(flatc --version | awk '{print $NF}')
[ "${flatc_version%%.*}" = "${FOUND[flatbuffers]%%.*}" ] ||
  die "flatc $flatc_version does not match libflatbuffers ${FOUND[flatbuffers]}: install the same version of flatbuffers-compiler and libflatbuffers-dev"

differs=()
for mod in "${!FOUND[@]}"; do
  want=${VERIFIED_12[$mod]}
  case "${FOUND[$mod]}" in "$want" | "$want".*) ;; *) differs+=("$mod ${FOUND[$mod]} (verified: $want)") ;; esac
done
for mod in "${!FOUND[@]}"; do say "  $mod ${FOUND[$mod]}"; done
if [ "$debian_major" != 12 ] || ((${#differs[@]})); then
  say "warning: not the verified platform (Debian 12 libraries). Differences: Debian $debian_version ${differs[*]:-}"
  say "trying anyway; if it fails, build on Debian 12 or set MEDIASOUP_WORKER_BIN to a worker built elsewhere"
fi

# --- sources ---------------------------------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/duet-mediasoup-build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
src=""
if [ -n "${MEDIASOUP_TARBALL:-}" ]; then
  tar -xzf "$MEDIASOUP_TARBALL" -C "$WORK" && src="$WORK/package"
else
  # The package pnpm installed for services/sfu carries the worker's sources.
  pkg_json=$(cd "$REPO_ROOT/services/sfu" 2>/dev/null &&
    node -e 'console.log(require.resolve("mediasoup/package.json"))' 2>/dev/null || true)
  if [ -n "$pkg_json" ] && [ "$(node -p "require('$pkg_json').version")" = "$MEDIASOUP_VERSION" ]; then
    say "sources: $(dirname "$pkg_json")"
    mkdir -p "$WORK/package" && cp -r "$(dirname "$pkg_json")/worker" "$WORK/package/worker"
    src="$WORK/package"
  else
    say "sources: npm pack mediasoup@$MEDIASOUP_VERSION"
    (cd "$WORK" && npm pack --silent "mediasoup@$MEDIASOUP_VERSION" >/dev/null) ||
      die "could not fetch mediasoup@$MEDIASOUP_VERSION from the npm registry (or set MEDIASOUP_TARBALL)"
    tar -xzf "$WORK/mediasoup-$MEDIASOUP_VERSION.tgz" -C "$WORK" && src="$WORK/package"
  fi
fi
worker="$src/worker"
[ -f "$worker/meson.build" ] || die "no worker sources in the mediasoup package ($worker)"

# --- patches ------------------------------------------------------------------------------------
# bio-callback-return: mediasoup's BIO callback on the DTLS output answers 1 to every control
# query, so an OpenSSL built with kTLS (Debian's is; mediasoup's bundled one is not) believes the
# memory BIO does kernel TLS, leaves its write buffer unallocated and crashes (SIGSEGV in SSL_read)
# on the first DTLS handshake. Return OpenSSL's own answer for every BIO_CB_RETURN call instead.
dtls="$worker/src/RTC/DtlsTransport.cpp"
grep -q '(operationType == BIO_CB_RETURN) ? static_cast<long>(ret) : 1' "$dtls" ||
  die "patch bio-callback-return: the expected line is not in $dtls (another mediasoup version?)"
sed -i 's/(operationType == BIO_CB_RETURN) ? static_cast<long>(ret) : 1/(operationType \& BIO_CB_RETURN) ? static_cast<long>(ret) : 1/' "$dtls"

# --- meson + ninja in a venv (from pip's configured index) ------------------------------------
venv="$CACHE_ROOT/meson-$MESON_VERSION-ninja-$NINJA_VERSION"
if [ ! -x "$venv/bin/meson" ] || [ ! -x "$venv/bin/ninja" ]; then
  say "installing meson $MESON_VERSION and ninja $NINJA_VERSION into $venv"
  python3 -m venv "$venv" || die "python3 -m venv failed: install python3-venv"
  # Few retries: an unreachable index otherwise costs ~8 s of backoff per package.
  PIP_RETRIES=${PIP_RETRIES:-1} "$venv/bin/pip" install -q --disable-pip-version-check "meson==$MESON_VERSION" "ninja==$NINJA_VERSION" ||
    die "pip could not install meson==$MESON_VERSION ninja==$NINJA_VERSION (check pip's index: pip config list)"
fi

# --- subproject shims: system libraries in place of downloaded sources ------------------------
wrap_dir() { sed -n 's/^directory *= *//p' "$worker/subprojects/$1.wrap"; }
shim() { # name, body, options (meson_options.txt: those mediasoup passes as default_options)
  local dir="$worker/subprojects/$(wrap_dir "$1")"
  mkdir -p "$dir"
  printf '%s\n' "${3:-}" >"$dir/meson_options.txt"
  echo "int duet_shim_${1//-/_}(void) { return 0; }" >"$dir/shim.c"
  printf "project('%s', 'c')\n# Duet: system library in place of the downloaded subproject.\nshim_lib = static_library('%s_shim', 'shim.c')\n%s\n" \
    "$1" "${1//-/_}" "$2" >"$dir/meson.build"
}
shim openssl "openssl_dep = dependency('openssl')
libcrypto_dep = dependency('libcrypto')
libssl_dep = dependency('libssl')
libcrypto_lib = shim_lib
libssl_lib = shim_lib"
shim libuv "libuv_dep = dependency('libuv')
libuv = shim_lib" "option('build_tests', type: 'boolean', value: false)
option('build_benchmarks', type: 'boolean', value: false)"
shim libsrtp2 "srtp = dependency('libsrtp2')
libsrtp2_dep = declare_dependency(dependencies: srtp,
  compile_args: '-I' + srtp.get_variable(pkgconfig: 'includedir') + '/srtp2')
libsrtp2 = shim_lib" "option('crypto-library', type: 'string', value: 'openssl')
option('crypto-library-kdf', type: 'string', value: 'disabled')
option('tests', type: 'string', value: 'disabled')"
shim usrsctp "usrsctp_dep = dependency('usrsctp')
usrsctp = shim_lib" "option('sctp_build_programs', type: 'boolean', value: false)"
shim abseil-cpp "absl_container_dep = declare_dependency(dependencies: [
  dependency('absl_flat_hash_map'), dependency('absl_flat_hash_set'), dependency('absl_btree'),
  dependency('absl_inlined_vector'), dependency('absl_memory')])
absl_strings_dep = dependency('absl_strings')
absl_types_dep = dependency('absl_optional')
absl_container_lib = shim_lib"
shim flatbuffers "flatbuffers_dep = dependency('flatbuffers')
flatbuffers_lib = shim_lib"
shim catch2 "catch2_dep = declare_dependency()
catch2_with_main_dep = catch2_dep"

# --- build -----------------------------------------------------------------------------------
jobs=${MEDIASOUP_BUILD_JOBS:-$(nproc)}
build="$WORK/build"
say "meson setup (log: $WORK/meson.log)"
if ! PATH="$venv/bin:$PATH" "$venv/bin/meson" setup --wrap-mode=nodownload -Dms_disable_liburing=true \
  --buildtype release -Db_ndebug=true "$build" "$worker" >"$WORK/meson.log" 2>&1; then
  tail -30 "$WORK/meson.log" >&2
  die "meson setup failed on Debian $debian_version (libraries: $(for m in "${!FOUND[@]}"; do printf '%s %s, ' "$m" "${FOUND[$m]}"; done)). Verified on Debian 12; ${differs[*]:+differences: ${differs[*]}}"
fi
say "compiling with $jobs jobs (about 4-5 minutes on 2 cores)"
start=$(date +%s)
# The generated flatbuffers headers first: libwebrtc includes them but does not depend on them.
# Progress every 10 % of the compile steps; the full output goes to ninja.log.
progress() {
  tee -a "$WORK/ninja.log" | awk -F'[][/]' '/^\[[0-9]+\/[0-9]+\]/ {
    if ($3 != total) { total = $3; last = 0 }
    p = int($2 * 10 / $3); if (p > last) { last = p; printf "\033[1m[mediasoup-worker]\033[0m   %d %% (%s/%s)\n", p * 10, $2, $3 > "/dev/stderr"; fflush("/dev/stderr") } }'
}
if ! { "$venv/bin/ninja" -C "$build" fbs/FBS && "$venv/bin/ninja" -C "$build" -j "$jobs" mediasoup-worker; } 2>&1 | progress; then
  grep -m 20 -B 2 -A 8 'error' "$WORK/ninja.log" >&2 || tail -40 "$WORK/ninja.log" >&2
  die "compiling the worker failed on Debian $debian_version (libraries: $(for m in "${!FOUND[@]}"; do printf '%s %s, ' "$m" "${FOUND[$m]}"; done)). Verified on Debian 12; ${differs[*]:+differences: ${differs[*]}}"
fi
mkdir -p "$OUT_DIR"
install -m 0755 "$build/mediasoup-worker" "$BIN.tmp" && mv -f "$BIN.tmp" "$BIN"
{
  echo "mediasoup $MEDIASOUP_VERSION built $(date -u +%FT%TZ) on Debian $debian_version in $(($(date +%s) - start)) s"
  echo "patches: $PATCHES"
  for m in "${!FOUND[@]}"; do echo "$m ${FOUND[$m]}"; done
} >"$OUT_DIR/BUILD-INFO"
binary_ok || die "the built worker does not load: $(ldd "$BIN" | grep 'not found')"
say "built in $(($(date +%s) - start)) s: $BIN"
echo "$BIN"
