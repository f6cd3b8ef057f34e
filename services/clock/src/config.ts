import { ConfigError, env } from '@duet/runtime';

/** DUET_CLOCK_* variables (common ones come from the runtime). */
export const clockConfig = {
  /** Chunk length: one tick per chunk. A multiple of the 40 ms unit frame. */
  DUET_CLOCK_CHUNK_MS: env
    .int(160, 1, 60_000)
    .refine((v) => v % 40 === 0, 'must be a positive multiple of 40 (e.g. 160, 200, 240)'),
  /** T(seq) = epoch + seq * chunk (unix ms); every replica must agree. */
  DUET_CLOCK_EPOCH_MS: env.int(0, 0),
  /** How long after T(n) a standby waits before claiming tick n from a silent leader. */
  DUET_CLOCK_TAKEOVER_MS: env.int(40, 1, 60_000),
} as const;

export interface ClockSettings {
  readonly DUET_CLOCK_CHUNK_MS: number;
  readonly DUET_CLOCK_EPOCH_MS: number;
  readonly DUET_CLOCK_TAKEOVER_MS: number;
}

/** Checks across variables (each one alone is checked by the schema). */
export function validateClockConfig(config: ClockSettings): void {
  if (config.DUET_CLOCK_TAKEOVER_MS >= config.DUET_CLOCK_CHUNK_MS) {
    throw new ConfigError('clock', [
      `DUET_CLOCK_TAKEOVER_MS: must be below DUET_CLOCK_CHUNK_MS (${config.DUET_CLOCK_CHUNK_MS}) so failover ` +
        `happens within one chunk (got ${config.DUET_CLOCK_TAKEOVER_MS})`,
    ]);
  }
}
