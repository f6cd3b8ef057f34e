// Named instants of one call's setup, for the connect-time breakdown: the browser client marks
// its steps from the click on Call, the SFU its own from the signalling socket's opening. Pure
// (no DOM, no Node): the client bundle and the service share it.

const defaultClock = (): number => performance.now();

/** Milliseconds, one decimal. */
const round = (ms: number): number => Math.round(ms * 10) / 10;

export class Timeline {
  private readonly marks = new Map<string, number>();

  /** `startedAt` and the clock in the same unit (ms); the clock defaults to performance.now(). */
  constructor(
    readonly startedAt: number = defaultClock(),
    private readonly clock: () => number = defaultClock,
  ) {}

  /**
   * Records `name` at `at` (default now) as ms since the start; the first mark of a name wins,
   * so a step that can happen twice (a retry, a second event) keeps its first time. Returns the
   * recorded offset.
   */
  mark(name: string, at: number = this.clock()): number {
    const known = this.marks.get(name);
    if (known !== undefined) return known;
    const offset = round(at - this.startedAt);
    this.marks.set(name, offset);
    return offset;
  }

  has(name: string): boolean {
    return this.marks.has(name);
  }

  /** `name`'s offset (ms since the start), if marked. */
  get(name: string): number | undefined {
    return this.marks.get(name);
  }

  /** Every mark as ms since the start, in the order they happened (ties: in marking order). */
  toJSON(): Record<string, number> {
    const sorted = [...this.marks.entries()].sort((a, b) => a[1] - b[1]);
    return Object.fromEntries(sorted);
  }
}

/**
 * The time each step added: for marks in time order, `{name: ms since the previous mark}` (the
 * first one: since the start). Offsets need not be sorted.
 */
export function stepDurations(marks: Record<string, number>): Record<string, number> {
  const sorted = Object.entries(marks).sort((a, b) => a[1] - b[1]);
  const out: Record<string, number> = {};
  let previous = 0;
  for (const [name, at] of sorted) {
    out[name] = round(at - previous);
    previous = at;
  }
  return out;
}
