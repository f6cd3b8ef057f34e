// The shared tick schedule: T(seq) = epoch + seq * chunk (unix ms). Every replica derives the
// seq from absolute time, so replicas agree without talking to each other. Pure, no I/O.

export interface TickSchedule {
  readonly chunkMs: number;
  readonly epochMs: number;
  /** The seq of the chunk in progress at `nowMs` (the last tick with T(seq) <= nowMs). */
  seqAt(nowMs: number): number;
  /** Scheduled wall time (unix ms) of tick `seq`. */
  timeOf(seq: number): number;
}

export function tickSchedule(chunkMs: number, epochMs = 0): TickSchedule {
  if (!Number.isInteger(chunkMs) || chunkMs <= 0) throw new RangeError(`chunk_ms ${chunkMs} is not > 0`);
  if (!Number.isInteger(epochMs) || epochMs < 0) throw new RangeError(`epoch_ms ${epochMs} is not >= 0`);
  return {
    chunkMs,
    epochMs,
    seqAt: (nowMs) => Math.floor((nowMs - epochMs) / chunkMs),
    timeOf: (seq) => epochMs + seq * chunkMs,
  };
}
