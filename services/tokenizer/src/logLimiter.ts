// Bad input must be logged, but at most now and then: a flood of garbage must not flood the logs.

export class LogLimiter {
  readonly #last = new Map<string, { atMs: number; suppressed: number }>();
  constructor(private readonly intervalMs = 10_000) {}

  /** Whether a line for `key` may be logged now; `suppressed` is how many were skipped since. */
  allow(key: string, nowMs = Date.now()): { ok: boolean; suppressed: number } {
    const entry = this.#last.get(key);
    if (entry === undefined || nowMs - entry.atMs >= this.intervalMs) {
      const suppressed = entry?.suppressed ?? 0;
      this.#last.set(key, { atMs: nowMs, suppressed: 0 });
      if (this.#last.size > 1_000) this.#last.clear();
      return { ok: true, suppressed };
    }
    entry.suppressed++;
    return { ok: false, suppressed: entry.suppressed };
  }
}
