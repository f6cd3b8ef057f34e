# syntax=docker/dockerfile:1.7
# Duet sip-bridge: the phone edge (SIP UAS over UDP/TCP), media on mediasoup plain transports to the
# tokenizer and back from the vocoder (the SFU's media plane, from @duet/sfu/media).
# Build from the repository root:
#   docker build -f deploy/docker/sip-bridge.Dockerfile -t ghcr.io/duet-voice/duet-sip-bridge:0.1.0 .
# Multi-stage: the mediasoup worker (C++) in `worker`, dependencies and the TypeScript build in
# `build`, then only the service (pnpm deploy), its production node modules, the worker and the
# shared libraries the worker links against in a slim runtime image that runs as a non-root user
# and needs no network at runtime.

# --- the mediasoup worker --------------------------------------------------------------------
# Built the way CI and developers build it: scripts/build-mediasoup-worker.sh compiles mediasoup's
# sources (the npm tarball of the version it pins, 3.13.16 as services/sfu and services/sip-bridge do) against Debian
# 12's system libraries with meson --wrap-mode=nodownload (nothing fetched by meson), meson and
# ninja from pip (PIP_INDEX_URL: your package index). Same Debian release as the runtime stage, so
# the shared libraries match.
FROM node:22.21.1-bookworm-slim AS worker
ARG PIP_INDEX_URL=https://pypi.org/simple
ENV PIP_INDEX_URL=${PIP_INDEX_URL} PIP_NO_CACHE_DIR=1 DUET_CACHE_DIR=/opt/duet
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates build-essential pkg-config python3 python3-venv \
      libabsl-dev libsrtp2-dev libuv1-dev libusrsctp-dev libssl-dev nlohmann-json3-dev \
      libflatbuffers-dev flatbuffers-compiler catch2 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY scripts/build-mediasoup-worker.sh scripts/build-mediasoup-worker.sh
# Prints the binary's path: /opt/duet/mediasoup-worker-3.13.16/mediasoup-worker (+ BUILD-INFO).
RUN scripts/build-mediasoup-worker.sh \
 && mkdir -p /out \
 && cp /opt/duet/mediasoup-worker-*/mediasoup-worker /opt/duet/mediasoup-worker-*/BUILD-INFO /out/

# --- build ----------------------------------------------------------------------------------
FROM node:22.21.1-bookworm-slim AS build
ENV CI=true ONNXRUNTIME_NODE_INSTALL_CUDA=skip
RUN npm install -g pnpm@10.34.8
WORKDIR /src
COPY package.json pnpm-lock.yaml pnpm-workspace.yaml tsconfig.base.json tsconfig.json ./
COPY proto proto
COPY packages packages
COPY services services
# No install scripts: mediasoup's would download a prebuilt worker (the `worker` stage builds it)
# and onnxruntime-node's (other services) would fetch CUDA providers.
RUN pnpm install --frozen-lockfile --ignore-scripts
# Protobuf code, then this service and the packages it references (tsc -b follows them).
RUN pnpm gen && pnpm exec tsc -b services/sip-bridge
# The service alone with its production dependencies (workspace packages, @duet/sfu included,
# copied with their dist) in /out.
RUN pnpm --filter @duet/sip-bridge deploy --prod --legacy /out

# --- runtime --------------------------------------------------------------------------------
FROM node:22.21.1-bookworm-slim
# The shared libraries the worker links against (ldd): abseil, OpenSSL 3, libuv, libsrtp2 (with
# its NSS dependencies), usrsctp; libstdc++/libgcc/libc are in the base image.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libabsl20220623 libssl3 libuv1 libsrtp2-1 libusrsctp2 \
 && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production \
    DUET_HTTP_PORT=9405 \
    DUET_GRPC_PORT=50055 \
    DUET_BIND_HOST=0.0.0.0 \
    DUET_SIP_PORT=5060 \
    DUET_SIP_LISTEN_IP=0.0.0.0 \
    DUET_SIP_RTP_PORT_MIN=46000 \
    DUET_SIP_RTP_PORT_MAX=46999 \
    DUET_SIP_MS_PORT_MIN=47000 \
    DUET_SIP_MS_PORT_MAX=48999 \
    DUET_SIP_WORKER_BIN=/app/bin/mediasoup-worker \
    MEDIASOUP_WORKER_BIN=/app/bin/mediasoup-worker \
    DUET_LOG_LEVEL=info
WORKDIR /app
# Owned by root, read-only for the service user.
COPY --from=build /out /app
COPY --from=worker /out /app/bin
# Fails the build if a library the worker needs is missing.
RUN ! ldd /app/bin/mediasoup-worker | grep 'not found'
# The image's "node" user (uid 1000); Kubernetes runs it with runAsNonRoot.
USER 1000:1000
# 5060 UDP/TCP: SIP; 9405: /metrics /healthz /readyz; 50055: grpc.health.v1; UDP 46000-46999:
# the callers' RTP (one port per call); UDP 47000-48999: mediasoup's plain transports to the
# tokenizer and from the vocoder. Set DUET_SIP_MEDIA_IP to the pod's address (reachable by
# callers, tokenizer and vocoder) and DUET_SIP_ANNOUNCED_IP to the address callers reach (NAT).
EXPOSE 5060/udp 5060/tcp 9405/tcp 50055/tcp 46000-46999/udp 47000-48999/udp
# Liveness for plain Docker; Kubernetes uses the chart's probes (/healthz, /readyz).
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.DUET_HTTP_PORT||9405)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# SIGTERM answers new INVITEs 503 and lets the open calls end (DUET_DRAIN_TIMEOUT_MS), then BYE to the rest.
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "dist/main.js"]
