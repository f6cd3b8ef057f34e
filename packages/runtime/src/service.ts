import type { ServiceDefinition, UntypedServiceImplementation } from '@grpc/grpc-js';
import type { NatsConnection } from '@nats-io/nats-core';
import type { Registry } from 'prom-client';
import type { z } from 'zod';
import { ConfigError, commonConfig, loadConfig } from './config.js';
import { startGrpcServer } from './grpcServer.js';
import { type DuetJetStream, ensureJetStream } from './jetstream.js';
import { createLogger, type Logger } from './logger.js';
import { createMetricsRegistry } from './metrics.js';
import { connectNats } from './nats.js';
import { startOpsServer } from './opsServer.js';

type CommonConfig = z.infer<z.ZodObject<typeof commonConfig>>;

export interface ServiceContext<C> {
  readonly name: string;
  readonly instanceId: string;
  readonly config: CommonConfig & C;
  readonly log: Logger;
  readonly registry: Registry;
  readonly nc: NatsConnection;
  readonly js: DuetJetStream;
}

export interface GrpcServiceBinding {
  readonly name: string;
  readonly definition: ServiceDefinition;
  readonly implementation: UntypedServiceImplementation;
}

/** What a service's start() returns: the shell drives it through its life. */
export interface ServiceHandle {
  readonly grpc?: readonly GrpcServiceBinding[];
  /** Readiness beyond "connected" (e.g. models loaded, clock ticks arriving). */
  ready?(): { ready: boolean; reason?: string };
  /** SIGTERM: stop taking new calls and let the current ones finish (bounded by the drain timeout). */
  drain?(signal: AbortSignal): Promise<void>;
  /** Releases everything (sockets, subscriptions, models). */
  close(): Promise<void>;
}

export interface ServiceDefinitionOptions<S extends z.ZodRawShape> {
  /** e.g. "clock", "inference". */
  readonly name: string;
  /** Service-specific environment variables (common ones are added). */
  readonly config: S;
  readonly start: (ctx: ServiceContext<z.infer<z.ZodObject<S>>>) => Promise<ServiceHandle>;
}

/**
 * The shell every service runs in: typed config validated at start, structured logs, NATS
 * (and JetStream resources), gRPC control server with health, /metrics /healthz /readyz, and a
 * graceful drain on SIGTERM/SIGINT. Once up it logs one "ready" line carrying its ports.
 */
export async function runService<S extends z.ZodRawShape>(
  options: ServiceDefinitionOptions<S>,
): Promise<void> {
  let config: CommonConfig & z.infer<z.ZodObject<S>>;
  try {
    config = loadConfig(options.name, { ...commonConfig, ...options.config }) as typeof config;
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
  const instanceId = config.DUET_INSTANCE_ID ?? `${options.name}-${process.pid}`;
  const log = createLogger(options.name, instanceId, config.DUET_LOG_LEVEL);
  process.on('uncaughtException', (error) => {
    log.fatal({ err: error }, 'uncaught exception');
    process.exit(1);
  });
  process.on('unhandledRejection', (error) => {
    log.fatal({ err: error }, 'unhandled rejection');
    process.exit(1);
  });

  const registry = createMetricsRegistry(options.name);
  const nc = await connectNats({
    url: config.DUET_NATS_URL,
    name: `${options.name}/${instanceId}`,
    credsFile: config.DUET_NATS_CREDS,
    log,
  });
  const js = await ensureJetStream(nc, { replicas: config.DUET_JETSTREAM_REPLICAS });
  let draining = false;
  const handle = await options.start({ name: options.name, instanceId, config, log, registry, nc, js });
  const grpc = await startGrpcServer({
    host: config.DUET_BIND_HOST,
    port: config.DUET_GRPC_PORT,
    services: handle.grpc ?? [],
  });
  const ops = await startOpsServer({
    host: config.DUET_BIND_HOST,
    port: config.DUET_HTTP_PORT,
    registry,
    health: {
      live: () => !nc.isClosed(),
      ready: () => {
        if (draining) return { ready: false, reason: 'draining' };
        if (nc.isClosed()) return { ready: false, reason: 'nats connection closed' };
        return handle.ready?.() ?? { ready: true };
      },
    },
  });
  grpc.setServing(true);
  // Always printed, whatever the level: supervisors (pnpm start, tests) wait for this line.
  log.child({}, { level: 'info' }).info({ grpcPort: grpc.port, httpPort: ops.port }, 'ready');

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    draining = true;
    grpc.setServing(false);
    log.info({ signal, timeoutMs: config.DUET_DRAIN_TIMEOUT_MS }, 'draining');
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), config.DUET_DRAIN_TIMEOUT_MS);
    try {
      await handle.drain?.(abort.signal);
    } catch (error) {
      log.warn({ err: error }, 'drain failed');
    }
    clearTimeout(timer);
    await grpc.close();
    await handle.close().catch((error: unknown) => log.warn({ err: error }, 'close failed'));
    await nc.drain().catch(() => undefined);
    await ops.close();
    log.info('stopped');
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop('SIGTERM'));
  process.once('SIGINT', () => void stop('SIGINT'));
}
