// Time geometry of a call: HuBERT units arrive at 25 Hz, and time is cut into chunks of U units.
import { InvalidArgumentError } from './errors.js';

/** Speech units per second (HuBERT at 25 Hz). */
export const UNIT_RATE_HZ = 25;
/** Duration of one unit. */
export const UNIT_MS = 40;

// One unit is the smallest chunk; a second is far beyond the paper's 160-240 ms and would
// make the agent answer a second late.
const MIN_CHUNK_MS = UNIT_MS;
const MAX_CHUNK_MS = 1000;

export type ChunkGeometry = { chunkMs: number; unitsPerChunk: number };

/** Geometry of a chunk of `chunkMs` (a multiple of 40 ms in 40..1000; the paper uses 160, 200, 240). */
export function chunkGeometry(chunkMs: number): ChunkGeometry {
  if (
    !Number.isInteger(chunkMs) ||
    chunkMs < MIN_CHUNK_MS ||
    chunkMs > MAX_CHUNK_MS ||
    chunkMs % UNIT_MS !== 0
  ) {
    throw new InvalidArgumentError(
      `chunkMs must be a multiple of ${UNIT_MS} between ${MIN_CHUNK_MS} and ${MAX_CHUNK_MS}, got ${chunkMs}`,
    );
  }
  return { chunkMs, unitsPerChunk: chunkMs / UNIT_MS };
}

/**
 * Scheduled start of chunk `chunkIndex` of a call that started at `originMs`.
 * Computed from the origin every time, never by adding chunkMs to the previous start,
 * so late ticks and rounding never drift the clock.
 */
export function chunkStartMs(geometry: ChunkGeometry, originMs: number, chunkIndex: number): number {
  if (!Number.isFinite(originMs)) {
    throw new InvalidArgumentError(`originMs must be a finite number, got ${originMs}`);
  }
  if (!Number.isSafeInteger(chunkIndex) || chunkIndex < 0) {
    throw new InvalidArgumentError(`chunkIndex must be a non-negative integer, got ${chunkIndex}`);
  }
  return originMs + chunkIndex * geometry.chunkMs;
}
