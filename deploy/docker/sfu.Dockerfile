# syntax=docker/dockerfile:1.7
# Duet sfu: the WebRTC edge (mediasoup): browsers in, plain RTP to the tokenizer and back from the vocoder.
# Build from the repository root:
#   docker build -f deploy/docker/sfu.Dockerfile -t ghcr.io/duet-voice/duet-sfu:0.1.0 .
# Multi-stage: the mediasoup worker (C++) in `worker`, dependencies and the TypeScript build in
# `build`, then only the service (pnpm deploy), its production node modules, the worker and the
# shared libraries the worker links against in a slim runtime image that runs as a non-root user
# and needs no network at runtime.

# --- the mediasoup worker --------------------------------------------------------------------
# Built the way CI and developers build it: scripts/build-mediasoup-worker.sh compiles mediasoup's
# sources (the npm tarball of the version it pins, 3.13.16 as services/sfu does) against Debian
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
RUN pnpm gen && pnpm exec tsc -b services/sfu
# The service alone with its production dependencies (workspace packages copied with their
# dist; src/client, which the service bundles with esbuild at start, comes with the package) in /out.
RUN pnpm --filter @duet/sfu deploy --prod --legacy /out

# --- runtime --------------------------------------------------------------------------------
FROM node:22.21.1-bookworm-slim
# The shared libraries the worker links against (ldd): abseil, OpenSSL 3, libuv, libsrtp2 (with
# its NSS dependencies), usrsctp; libstdc++/libgcc/libc are in the base image.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libabsl20220623 libssl3 libuv1 libsrtp2-1 libusrsctp2 \
 && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production \
    DUET_HTTP_PORT=9404 \
    DUET_GRPC_PORT=50054 \
    DUET_BIND_HOST=0.0.0.0 \
    DUET_SFU_PORT=8088 \
    DUET_SFU_RTC_PORT_MIN=44000 \
    DUET_SFU_RTC_PORT_MAX=45999 \
    DUET_SFU_WORKER_BIN=/app/bin/mediasoup-worker \
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
# 8088: the browser client (/) and the signalling WebSocket (/ws); 9404: /metrics /healthz
# /readyz; 50054: grpc.health.v1; UDP: one WebRtcServer port per worker from 44000 (what browsers
# send to), then the plain RTP legs to the tokenizer and from the vocoder. Set
# DUET_SFU_LISTEN_IP (and DUET_SFU_ANNOUNCED_IP) to the address callers reach; the chart does.
EXPOSE 8088/tcp 9404/tcp 50054/tcp 44000-45999/udp
# Liveness for plain Docker; Kubernetes uses the chart's probes (/healthz, /readyz).
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.DUET_HTTP_PORT||9404)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# SIGTERM refuses new calls and lets the open ones end (DUET_DRAIN_TIMEOUT_MS) before the process exits.
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "dist/main.js"]
