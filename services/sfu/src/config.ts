// The SFU's environment variables (the common DUET_* ones are added by the shell).

import { availableParallelism, homedir } from 'node:os';
import { join } from 'node:path';
import { env } from '@duet/runtime';
import { z } from 'zod';

export const MEDIASOUP_VERSION = '3.13.16';

/** Where scripts/build-mediasoup-worker.sh caches the worker (outside the checkout). */
export function defaultWorkerBin(environment: NodeJS.ProcessEnv = process.env): string {
  const cache =
    environment.DUET_CACHE_DIR ?? join(environment.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'duet');
  return join(cache, `mediasoup-worker-${MEDIASOUP_VERSION}`, 'mediasoup-worker');
}

const list = z.string().transform((s) =>
  s
    .split(',')
    .map((v) => v.trim())
    .filter((v) => v.length > 0),
);

export const sfuConfig = {
  /** Port of the signalling WebSocket (/ws) and the browser client (/). */
  DUET_SFU_PORT: env.port(8088),
  /** The mediasoup worker binary (default: MEDIASOUP_WORKER_BIN, else the build script's cache). */
  DUET_SFU_WORKER_BIN: z.string().min(1).optional(),
  /** mediasoup workers (one per core by default). */
  DUET_SFU_WORKERS: env.int(availableParallelism(), 1, 256),
  /** mediasoup worker log level (its lines go to the service's log through mediasoup's `debug` output). */
  DUET_SFU_WORKER_LOG_LEVEL: env.oneOf(['debug', 'warn', 'error', 'none'] as const, 'warn'),
  /** IP the WebRTC and plain transports listen on. */
  DUET_SFU_LISTEN_IP: env.string('127.0.0.1'),
  /** IP announced to browsers in ICE candidates (a public address behind NAT; default: the listen IP). */
  DUET_SFU_ANNOUNCED_IP: z.string().min(1).optional(),
  DUET_SFU_RTC_PORT_MIN: env.port(44_000),
  DUET_SFU_RTC_PORT_MAX: env.port(44_999),
  /** gRPC control addresses of the call services. */
  DUET_SFU_INFERENCE_ADDR: env.string('127.0.0.1:50051'),
  DUET_SFU_TOKENIZER_ADDR: env.string('127.0.0.1:50052'),
  DUET_SFU_VOCODER_ADDR: env.string('127.0.0.1:50053'),
  /** HMAC secret (HS256) of caller tokens; `duet token` mints them with the same secret. */
  DUET_SFU_TOKEN_SECRET: z.string().min(32, 'must be at least 32 characters'),
  /** Allowed Origin headers (comma-separated, "*" for any); the SFU's own origin is always allowed. */
  DUET_SFU_ALLOWED_ORIGINS: list.default([]),
  /** New signalling connections per client IP per minute. */
  DUET_SFU_CONNECTIONS_PER_MINUTE: env.int(30, 1, 1_000_000),
  /** Largest signalling message (bytes). */
  DUET_SFU_MAX_MESSAGE_BYTES: env.int(16_384, 1_024, 1_048_576),
  /** A socket with no message for this long is closed (4408); the client pings every 10 s. */
  DUET_SFU_IDLE_TIMEOUT_MS: env.int(30_000, 1_000, 3_600_000),
  /** Time a new socket has to present its token. */
  DUET_SFU_JOIN_TIMEOUT_MS: env.int(5_000, 100, 60_000),
  DUET_SFU_MAX_CALLS: env.int(1_000, 1, 1_000_000),
  /** Opus payload type towards the tokenizer and from the vocoder. */
  DUET_SFU_OPUS_PT: env.int(111, 96, 127),
  /** Serve GET /debug/mediasoup (workers' and routers' dumps; for tests, never in production). */
  DUET_SFU_DEBUG_DUMP: env.bool(false),
  /** Delay the call loop adds, shown in the client's mouth-to-ear estimate (chunk + jitter buffer + playout). */
  DUET_SFU_PIPELINE_DELAY_MS: env.int(240, 0, 10_000),
} as const;

export type SfuConfig = z.infer<z.ZodObject<typeof sfuConfig>>;
