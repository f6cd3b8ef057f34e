import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { env } from '@duet/runtime';
import { z } from 'zod';

const DEFAULT_UNITS = fileURLToPath(new URL('../../../models/default/units/manifest.json', import.meta.url));

/** The default units model's silence unit (the default dialogue model speaks those units). */
function defaultSilenceUnit(): number {
  try {
    const unit = (JSON.parse(readFileSync(DEFAULT_UNITS, 'utf8')) as { silenceUnit?: unknown }).silenceUnit;
    if (Number.isInteger(unit) && (unit as number) >= 0) return unit as number;
  } catch {
    // no default models next to the service: the variable must be set for the model served
  }
  return 0;
}

/** DUET_INFERENCE_* variables (common ones come from the runtime). */
export const inferenceConfig = {
  /** Path of the dialogue model's duet.synclm manifest.json. */
  DUET_INFERENCE_MODEL: z.string().min(1),
  /** Calls this worker serves at once (preallocated KV slots). */
  DUET_INFERENCE_SLOTS: env.int(16, 1, 4096),
  /** KV cache entries per slot (sinks + window + reserve). */
  DUET_INFERENCE_CONTEXT_TOKENS: env.int(1024, 64, 1 << 20),
  /** Chunk length; ticks with another chunk_ms are refused. */
  DUET_INFERENCE_CHUNK_MS: env
    .int(160, 40, 1000)
    .refine((v) => v % 40 === 0, 'must be a multiple of 40 (e.g. 160, 200, 240)'),
  /** Ticks a real user chunk may lag and still replace its prediction. */
  DUET_INFERENCE_MAX_LATE_CHUNKS: env.int(2, 0, 16),
  /** Wait after T(n) for user chunks before stepping. */
  DUET_INFERENCE_PHASE_MS: env.int(30, 0, 1000),
  /** Agent chunk j is a deadline miss if published after T(f+j) minus this lead. */
  DUET_INFERENCE_VOCODER_LEAD_MS: env.int(30, 0, 1000),
  /** Sampling temperature of the units (and of the timing, unless the timing temperature is set). */
  DUET_INFERENCE_TEMPERATURE: env.number(0.8, 0, 10),
  DUET_INFERENCE_TOP_P: env.number(0.95, 0, 1),
  /**
   * Temperature of the timing decision (start or go on speaking, or not), drawn apart from which
   * unit (SamplingOptions.timingTemperature); 1 keeps the model's own timing, `off` (default)
   * draws both at DUET_INFERENCE_TEMPERATURE / DUET_INFERENCE_TOP_P, which makes the default
   * model speak less often and suits it best (tools/recipe/README.md, "Timing temperature").
   */
  DUET_INFERENCE_TIMING_TEMPERATURE: z
    .union([z.literal('off'), z.coerce.number().min(0).max(10)])
    .default('off')
    .transform((v) => (v === 'off' ? undefined : v)),
  /** Chunks of each call's history kept in duet_history for resume. */
  DUET_INFERENCE_HISTORY_CHUNKS: env.int(32, 1, 1024),
  /** A peer silent for this many ticks (or leaving) is dead: its calls are claimed. */
  DUET_INFERENCE_PEER_TIMEOUT_TICKS: env.int(2, 1, 1000),
  /**
   * A new call's chunk 0 starts this many ticks after placement, so the edge has opened the
   * tokenizer and vocoder before the agent's first chunk is published (0: the next tick).
   */
  DUET_INFERENCE_START_DELAY_TICKS: env.int(2, 0, 50),
  /** Unit that fills an agent chunk with no unit to repeat (a call's first chunk): silence. */
  DUET_INFERENCE_SILENCE_UNIT: env.int(defaultSilenceUnit(), 0),
  /** Missed clock seqs up to this many are caught up with extra steps; longer gaps re-base. */
  DUET_INFERENCE_MAX_CATCH_UP_STEPS: env.int(2, 0, 16),
} as const;

export type InferenceSettings = z.infer<z.ZodObject<typeof inferenceConfig>>;
