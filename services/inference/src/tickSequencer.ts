/**
 * Maps clock sequence numbers to the engine's tick counter. The engine's ticks are
 * consecutive (each step is tick + 1); the clock's seqs may skip (a clock failover, or a tick
 * this worker missed because its previous step was still running). Policy:
 *  - a gap of up to `maxCatchUp` seqs is caught up: the engine steps once per missed seq, so
 *    every call keeps its chunk numbering and the skipped agent chunks are still produced (late);
 *  - a longer gap re-bases: seq = engineTick + offset moves by the gap, the engine steps once,
 *    and every open call's chunk shift moves by the gap (its skipped chunks are never produced);
 *  - a seq at or below the last one stepped is stale and ignored.
 */
export type TickPlan =
  | { readonly kind: 'stale' }
  | {
      readonly kind: 'step';
      /** Clock seqs to step, oldest first (the last one is the tick that arrived). */
      readonly seqs: readonly number[];
      /** Seqs skipped by a re-base (0 when none): add to every call's chunk shift. */
      readonly rebase: number;
    };

export class TickSequencer {
  /** seq = engineTick + offset, once the first tick arrived. */
  private offset: number | undefined;

  constructor(readonly maxCatchUp: number) {}

  get started(): boolean {
    return this.offset !== undefined;
  }

  /** The clock seq of engine tick `engineTick` (undefined before the first tick). */
  seqOf(engineTick: number): number | undefined {
    return this.offset === undefined ? undefined : engineTick + this.offset;
  }

  /** What to do for tick `seq`, given the engine's next tick; applies a re-base. */
  plan(seq: number, engineNextTick: number): TickPlan {
    if (this.offset === undefined) {
      this.offset = seq - engineNextTick;
      return { kind: 'step', seqs: [seq], rebase: 0 };
    }
    const expected = engineNextTick + this.offset;
    if (seq < expected) return { kind: 'stale' };
    const gap = seq - expected;
    if (gap <= this.maxCatchUp) {
      return { kind: 'step', seqs: Array.from({ length: gap + 1 }, (_, i) => expected + i), rebase: 0 };
    }
    this.offset += gap;
    return { kind: 'step', seqs: [seq], rebase: gap };
  }
}
