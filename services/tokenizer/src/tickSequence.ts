// Checks the clock's tick sequence numbers as they arrive: gaps (ticks never seen) are counted;
// a tick at or below the last one is stale (a duplicate or a replay) and must be ignored.

export type TickVerdict =
  | { readonly kind: 'first' }
  | { readonly kind: 'next'; readonly missed: number }
  | { readonly kind: 'stale' };

export class TickSequence {
  #last: number | undefined;

  get last(): number | undefined {
    return this.#last;
  }

  observe(seq: number): TickVerdict {
    const last = this.#last;
    if (last === undefined) {
      this.#last = seq;
      return { kind: 'first' };
    }
    if (seq <= last) return { kind: 'stale' };
    this.#last = seq;
    return { kind: 'next', missed: seq - last - 1 };
  }
}
