// Deduplication of unit runs and its inverse, per chunk and per speaker (the same rules apply
// to the agent and the user). Works on unit ids, not token ids.
import { InvalidArgumentError } from './errors.js';

/**
 * Drops every unit equal to the unit before it, where the unit before the chunk's first unit
 * is `previousUnit` (the previous chunk's last unit, undefined at the start of a call): the
 * paper deduplicates across chunk boundaries too, so a sound held over a boundary is not
 * written again.
 */
export function dedupChunk(units: readonly number[], previousUnit: number | undefined): number[] {
  const deduped: number[] = [];
  let last = previousUnit;
  for (const unit of units) {
    if (unit !== last) {
      deduped.push(unit);
      last = unit;
    }
  }
  return deduped;
}

/**
 * Restores a chunk's `unitsPerChunk` slots for the vocoder: unit i of n fills slots
 * floor(i*U/n) .. floor((i+1)*U/n)-1, so each unit gets one or more slots and the runs keep
 * their order inside the chunk (timing error at most one chunk). A chunk with no new units
 * holds `previousUnit`, or `fillUnit` (e.g. a silence unit) before the first unit of a call.
 */
export function expandChunk(
  deduped: readonly number[],
  previousUnit: number | undefined,
  unitsPerChunk: number,
  fillUnit: number,
): number[] {
  if (!Number.isSafeInteger(unitsPerChunk) || unitsPerChunk < 1) {
    throw new InvalidArgumentError(`unitsPerChunk must be a positive integer, got ${unitsPerChunk}`);
  }
  const n = deduped.length;
  if (n > unitsPerChunk) {
    throw new InvalidArgumentError(`a chunk of ${unitsPerChunk} slots cannot hold ${n} deduplicated units`);
  }
  if (n === 0) {
    return new Array<number>(unitsPerChunk).fill(previousUnit ?? fillUnit);
  }
  const slots = new Array<number>(unitsPerChunk);
  for (let i = 0; i < n; i++) {
    const unit = deduped[i]!;
    const end = Math.floor(((i + 1) * unitsPerChunk) / n);
    for (let slot = Math.floor((i * unitsPerChunk) / n); slot < end; slot++) {
      slots[slot] = unit;
    }
  }
  return slots;
}
