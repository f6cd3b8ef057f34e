// Entry of the vocoder service: agent units -> audio -> paced RTP.

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { env, runService } from '@duet/runtime';
import { z } from 'zod';
import { startVocoderService } from './vocoderService.js';

const DEFAULT_MODEL = fileURLToPath(
  new URL('../../../models/default/vocoder/manifest.json', import.meta.url),
);

const DEFAULT_UNITS = fileURLToPath(new URL('../../../models/default/units/manifest.json', import.meta.url));

/** The default units model's silence unit: the vocoder's default model was trained on its units. */
function defaultSilenceUnit(): number {
  try {
    const unit = (JSON.parse(readFileSync(DEFAULT_UNITS, 'utf8')) as { silenceUnit?: unknown }).silenceUnit;
    if (Number.isInteger(unit) && (unit as number) >= 0) return unit as number;
  } catch {
    // no default models here (an image with its own): the variable must be set
  }
  return 0;
}

await runService({
  name: 'vocoder',
  config: {
    DUET_VOCODER_MODEL: env.string(DEFAULT_MODEL),
    DUET_VOCODER_CHUNK_MS: z.coerce
      .number()
      .int()
      .refine((v) => v > 0 && v % 40 === 0, 'must be a positive multiple of 40')
      .default(160),
    DUET_VOCODER_PLAYOUT_DELAY_MS: env.int(0, 0, 10_000),
    DUET_VOCODER_MAX_CALLS: env.int(200, 1, 100_000),
    DUET_VOCODER_RTP_HOST: env.string('127.0.0.1'),
    DUET_VOCODER_RTP_PORT_MIN: env.port(41000),
    DUET_VOCODER_RTP_PORT_MAX: env.port(41999),
    DUET_VOCODER_SILENCE_UNIT: env.int(defaultSilenceUnit(), 0),
    DUET_VOCODER_BATCH_WINDOW_MS: env.int(2, 0, 100),
  },
  start: (ctx) => {
    const c = ctx.config;
    if (c.DUET_VOCODER_RTP_PORT_MIN < 1 || c.DUET_VOCODER_RTP_PORT_MAX < c.DUET_VOCODER_RTP_PORT_MIN)
      throw new Error('DUET_VOCODER_RTP_PORT_MIN..DUET_VOCODER_RTP_PORT_MAX must be a non-empty port range');
    return startVocoderService(ctx, {
      modelPath: c.DUET_VOCODER_MODEL,
      chunkMs: c.DUET_VOCODER_CHUNK_MS,
      playoutDelayMs: c.DUET_VOCODER_PLAYOUT_DELAY_MS,
      maxCalls: c.DUET_VOCODER_MAX_CALLS,
      rtpHost: c.DUET_VOCODER_RTP_HOST,
      rtpPortMin: c.DUET_VOCODER_RTP_PORT_MIN,
      rtpPortMax: c.DUET_VOCODER_RTP_PORT_MAX,
      silenceUnit: c.DUET_VOCODER_SILENCE_UNIT,
      batchWindowMs: c.DUET_VOCODER_BATCH_WINDOW_MS,
      maxChunksAhead: 25,
    });
  },
});
