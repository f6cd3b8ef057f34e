// The tokenizer's environment variables (the common DUET_* ones are added by the shell).

import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { env } from '@duet/runtime';
import { z } from 'zod';

/** The repository root: the nearest folder above this module that holds pnpm-workspace.yaml. */
export function repoRoot(from = dirname(fileURLToPath(import.meta.url))): string {
  let dir = from;
  for (;;) {
    if (existsSync(join(dir, 'pnpm-workspace.yaml'))) return dir;
    const up = dirname(dir);
    // No workspace marker (an installed copy): services/tokenizer/{src,dist} sits 3 levels down.
    if (up === dir) return resolve(from, '..', '..', '..');
    dir = up;
  }
}

export const DEFAULT_MODEL = (): string => join(repoRoot(), 'models', 'default', 'units', 'manifest.json');

export const tokenizerConfig = {
  /** The units model's manifest (duet.units/1). */
  DUET_TOKENIZER_MODEL: z.string().min(1).optional(),
  /** Chunk length on the clock; ticks announcing another length are counted as bad. */
  DUET_TOKENIZER_CHUNK_MS: env.int(160, 40, 2_000).refine((v) => v % 40 === 0, 'must be a multiple of 40'),
  DUET_TOKENIZER_RTP_HOST: env.string('127.0.0.1'),
  /** Host put in the RtpEndpoint returned by OpenCall (default: DUET_TOKENIZER_RTP_HOST). */
  DUET_TOKENIZER_RTP_ADVERTISE_HOST: z.string().min(1).optional(),
  DUET_TOKENIZER_RTP_PORT_MIN: env.port(40_000),
  DUET_TOKENIZER_RTP_PORT_MAX: env.port(40_999),
  DUET_TOKENIZER_JITTER_MS: env.int(40, 0, 1_000),
  DUET_TOKENIZER_MAX_CALLS: env.int(200, 1, 100_000),
  DUET_TOKENIZER_RTP_TIMEOUT_MS: env.int(30_000, 100, 3_600_000),
  /** onnxruntime intra-op threads for the units model. */
  DUET_TOKENIZER_THREADS: env.int(1, 1, 64),
} as const;

export type TokenizerConfig = z.infer<z.ZodObject<typeof tokenizerConfig>>;
