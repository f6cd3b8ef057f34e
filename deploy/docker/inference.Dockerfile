# syntax=docker/dockerfile:1.7
# Duet inference: an inference worker: all calls stepped in one batch per tick.
# Build from the repository root:
#   docker build -f deploy/docker/inference.Dockerfile -t ghcr.io/duet-voice/duet-inference:0.1.0 .
# Multi-stage: dependencies and the TypeScript build in `build`, then only the service (pnpm deploy)
# and its production node modules in a slim runtime image that runs as a non-root user and needs no
# network at runtime (models are in the image or on a mounted volume).

# --- the dialogue model ----------------------------------------------------------------------
# By default the image carries the committed default dialogue model (models/default/dialogue,
# trained by `tools/recipe/duet-recipe default-dialogue`, duet.synclm/1) as it is.
# Bake in your own Hugging Face Llama checkpoint (units + [S0]/[S1], duet_tokens.json) instead with
#   docker build --build-context checkpoint=path/to/llama-units -f deploy/docker/inference.Dockerfile .
# (exported here by tools/export), or mount a model at run time and set DUET_INFERENCE_MODEL.
FROM scratch AS checkpoint

FROM python:3.12.12-slim-bookworm AS model
ARG PIP_INDEX_URL=https://pypi.org/simple
ARG PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PIP_INDEX_URL=${PIP_INDEX_URL} PIP_EXTRA_INDEX_URL=${PIP_EXTRA_INDEX_URL} PIP_NO_CACHE_DIR=1 \
    DUET_PYTHON=/usr/local/bin/python
WORKDIR /src
COPY tools/requirements.txt tools/requirements.txt
COPY tools/export tools/export
COPY models/default/dialogue /default-dialogue
COPY --from=checkpoint / /checkpoint/
# torch and the exporter are installed only when a checkpoint is given.
RUN set -eu; \
    if [ -f /checkpoint/config.json ]; then \
      pip install -r tools/requirements.txt; \
      tools/export/duet-export llama --checkpoint /checkpoint --out /models/dialogue --quiet; \
    else \
      mkdir -p /models && cp -r /default-dialogue /models/dialogue; \
    fi; \
    rm -rf /checkpoint /default-dialogue

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
RUN pnpm gen && pnpm exec tsc -b services/inference
# The service alone with its production dependencies (workspace packages copied with their
# dist; onnxruntime-node's CPU binding ships in its package) in /out.
RUN pnpm --filter @duet/inference deploy --prod --legacy /out

# --- runtime --------------------------------------------------------------------------------
FROM node:22.21.1-bookworm-slim
ENV NODE_ENV=production \
    DUET_HTTP_PORT=8080 \
    DUET_GRPC_PORT=50051 \
    DUET_BIND_HOST=0.0.0.0 \
    DUET_INFERENCE_MODEL=/app/models/dialogue/manifest.json \
    DUET_LOG_LEVEL=info
WORKDIR /app
# Owned by root, read-only for the service user.
COPY --from=build /out /app
# The dialogue model, built in the model stage (or mount yours and set DUET_INFERENCE_MODEL).
COPY --from=model /models/dialogue /app/models/dialogue
# The image's "node" user (uid 1000); Kubernetes runs it with runAsNonRoot.
USER 1000:1000
# 8080: /metrics /healthz /readyz; 50051: gRPC control + grpc.health.v1.
EXPOSE 8080/tcp 50051/tcp
# Liveness for plain Docker; Kubernetes uses the chart's probes (/healthz, /readyz).
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.DUET_HTTP_PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# SIGTERM drains calls (DUET_DRAIN_TIMEOUT_MS) before the process exits.
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "dist/main.js"]
