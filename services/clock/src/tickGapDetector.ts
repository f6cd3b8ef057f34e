// Consumer-side view of the tick stream: classifies each received seq so a consumer can count
// ticks the clock skipped (a suspended or failed-over clock) and drop duplicates or stale ones.
// Pure, no I/O.

export type TickObservationKind = 'first' | 'next' | 'gap' | 'duplicate' | 'old';

export interface TickObservation {
  readonly kind: TickObservationKind;
  /** Seqs skipped between the last seen seq and this one (non-zero only for 'gap'). */
  readonly missed: number;
}

export class TickGapDetector {
  #last: number | undefined;

  /** The highest seq observed so far (undefined before the first). */
  get last(): number | undefined {
    return this.#last;
  }

  observe(seq: number | bigint): TickObservation {
    const s = Number(seq);
    const last = this.#last;
    if (last === undefined) {
      this.#last = s;
      return { kind: 'first', missed: 0 };
    }
    if (s === last) return { kind: 'duplicate', missed: 0 };
    if (s < last) return { kind: 'old', missed: 0 };
    this.#last = s;
    if (s === last + 1) return { kind: 'next', missed: 0 };
    return { kind: 'gap', missed: s - last - 1 };
  }

  reset(): void {
    this.#last = undefined;
  }
}
