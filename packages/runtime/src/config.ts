import { z } from 'zod';

/** A configuration value that failed validation at start; lists every bad variable. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    readonly service: string,
    readonly problems: readonly string[],
  ) {
    super(`invalid ${service} configuration:\n  - ${problems.join('\n  - ')}`);
  }
}

/**
 * Reads a service's typed configuration from environment variables. `schema` maps each
 * variable name (e.g. DUET_GRPC_PORT) to a zod type; use the helpers below, which coerce
 * strings. Every problem is reported at once, naming the variable and the bad value.
 */
export function loadConfig<S extends z.ZodRawShape>(
  service: string,
  schema: S,
  env: NodeJS.ProcessEnv = process.env,
): z.infer<z.ZodObject<S>> {
  const input: Record<string, unknown> = {};
  for (const key of Object.keys(schema)) {
    const value = env[key];
    if (value !== undefined && value !== '') input[key] = value;
  }
  const result = z.object(schema).safeParse(input);
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => {
    const key = String(issue.path[0] ?? '?');
    const got = env[key];
    return `${key}: ${issue.message}${got === undefined ? '' : ` (got ${JSON.stringify(got)})`}`;
  });
  throw new ConfigError(service, problems);
}

/** Config value helpers (environment strings in, typed values out). */
export const env = {
  port: (fallback: number) => z.coerce.number().int().min(0).max(65535).default(fallback),
  int: (fallback: number, min = Number.MIN_SAFE_INTEGER, max = Number.MAX_SAFE_INTEGER) =>
    z.coerce.number().int().min(min).max(max).default(fallback),
  number: (fallback: number, min = -Infinity, max = Infinity) =>
    z.coerce.number().min(min).max(max).default(fallback),
  string: (fallback: string) => z.string().min(1).default(fallback),
  url: (fallback: string) => z.string().url().default(fallback),
  oneOf: <T extends readonly [string, ...string[]]>(values: T, fallback: T[number]) =>
    z.enum(values).default(fallback as never),
  bool: (fallback: boolean) =>
    z
      .enum(['true', 'false', '1', '0'])
      .transform((v) => v === 'true' || v === '1')
      .default(fallback),
  logLevel: () => z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
} as const;

/** Variables every service reads. */
export const commonConfig = {
  DUET_NATS_URL: env.string('nats://127.0.0.1:4222'),
  /** Path of a NATS credentials file (e.g. mounted from a Kubernetes Secret). */
  DUET_NATS_CREDS: z.string().optional(),
  DUET_HTTP_PORT: env.port(0),
  DUET_GRPC_PORT: env.port(0),
  DUET_BIND_HOST: env.string('0.0.0.0'),
  DUET_LOG_LEVEL: env.logLevel(),
  /** The replica's identity, stable across restarts (e.g. the pod name) so it reloads its calls; default <service>-<pid>. */
  DUET_INSTANCE_ID: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,64}$/, 'must be [A-Za-z0-9_-]{1,64}')
    .optional(),
  /** How long SIGTERM waits for calls to drain before closing them. */
  DUET_DRAIN_TIMEOUT_MS: env.int(10_000, 0, 600_000),
  /**
   * Replication factor of the JetStream stream and KV buckets this service creates (1 on a single
   * nats-server, 3 on a three-node cluster). Applies when they are first created.
   */
  DUET_JETSTREAM_REPLICAS: env.int(1, 1, 5),
} as const;
