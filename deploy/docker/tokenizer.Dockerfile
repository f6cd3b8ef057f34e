# syntax=docker/dockerfile:1.7
# Duet tokenizer: the tokenizer: caller RTP in, speech units out on NATS.
# Build from the repository root:
#   docker build -f deploy/docker/tokenizer.Dockerfile -t ghcr.io/duet-voice/duet-tokenizer:0.1.0 .
# Multi-stage: dependencies and the TypeScript build in `build`, then only the service (pnpm deploy)
# and its production node modules in a slim runtime image that runs as a non-root user and needs no
# network at runtime (models are in the image or on a mounted volume).

# --- build ----------------------------------------------------------------------------------
FROM node:22.21.1-bookworm-slim AS build
ENV CI=true ONNXRUNTIME_NODE_INSTALL_CUDA=skip
RUN npm install -g pnpm@10.34.8
WORKDIR /src
COPY package.json pnpm-lock.yaml pnpm-workspace.yaml tsconfig.base.json tsconfig.json ./
COPY proto proto
COPY packages packages
COPY services services
# No install scripts: none is needed to build (onnxruntime-node's would only fetch CUDA
# providers), and the workspace's other services (the SFU's mediasoup worker) stay unbuilt.
RUN pnpm install --frozen-lockfile --ignore-scripts
# Protobuf code, then this service and the packages it references (tsc -b follows them).
RUN pnpm gen && pnpm exec tsc -b services/tokenizer
# The service alone with its production dependencies (workspace packages copied with their
# dist; onnxruntime-node's CPU binding ships in its package) in /out.
RUN pnpm --filter @duet/tokenizer deploy --prod --legacy /out

# --- runtime --------------------------------------------------------------------------------
FROM node:22.21.1-bookworm-slim
ENV NODE_ENV=production \
    DUET_HTTP_PORT=8080 \
    DUET_GRPC_PORT=50051 \
    DUET_BIND_HOST=0.0.0.0 \
    DUET_TOKENIZER_MODEL=/app/models/default/units/manifest.json \
    DUET_TOKENIZER_RTP_HOST=0.0.0.0 \
    DUET_LOG_LEVEL=info
WORKDIR /app
# Owned by root, read-only for the service user.
COPY --from=build /out /app
# The default units model, baked in; mount your own and set DUET_TOKENIZER_MODEL to override.
COPY models/default/units /app/models/default/units
# The image's "node" user (uid 1000); Kubernetes runs it with runAsNonRoot.
USER 1000:1000
# 8080: /metrics /healthz /readyz; 50051: gRPC control + grpc.health.v1.
EXPOSE 8080/tcp 50051/tcp 40000-40999/udp
# Liveness for plain Docker; Kubernetes uses the chart's probes (/healthz, /readyz).
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.DUET_HTTP_PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# SIGTERM drains calls (DUET_DRAIN_TIMEOUT_MS) before the process exits.
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "dist/main.js"]
