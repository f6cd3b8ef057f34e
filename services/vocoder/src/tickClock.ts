// The shared clock as the vocoder learns it from ticks: T(seq) = scheduled_at_ms of tick seq.
// Ticks are scheduled on an absolute grid, so a seq not seen yet is extrapolated from the last
// tick (T(last) + (seq - last) x chunk_ms): the vocoder keeps pacing through missed ticks.

export interface TickObservation {
  readonly seq: number;
  readonly scheduledAtMs: number;
  readonly chunkMs: number;
}

export class TickClock {
  #last: TickObservation | undefined;

  /** Takes a tick; returns false for a stale or duplicate one (seq not after the last). */
  observe(tick: TickObservation): boolean {
    if (!Number.isSafeInteger(tick.seq) || tick.chunkMs <= 0 || !Number.isFinite(tick.scheduledAtMs))
      return false;
    if (this.#last !== undefined && tick.seq <= this.#last.seq) return false;
    this.#last = tick;
    return true;
  }

  get known(): boolean {
    return this.#last !== undefined;
  }

  get last(): TickObservation | undefined {
    return this.#last;
  }

  /** Wall time (unix ms) of tick `seq`; undefined before the first tick. */
  timeOf(seq: number): number | undefined {
    const last = this.#last;
    if (last === undefined) return undefined;
    return last.scheduledAtMs + (seq - last.seq) * last.chunkMs;
  }
}
