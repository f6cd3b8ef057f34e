// A token bucket per key (a client's IP, a SIP source), pure: time is passed in. The edges
// (SFU signalling, SIP bridge) use it to bound connections and requests per source.

export class KeyedRateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  /** `tokens` per `perMs` milliseconds per key, bursts up to `burst`. */
  constructor(
    private readonly tokens: number,
    private readonly perMs: number,
    private readonly burst: number,
  ) {}

  /** Takes one token for `key`; false when its budget is spent. */
  take(key: string, nowMs: number): boolean {
    const b = this.buckets.get(key) ?? { tokens: this.burst, at: nowMs };
    b.tokens = Math.min(this.burst, this.refilled(b, nowMs));
    b.at = nowMs;
    const ok = b.tokens >= 1;
    if (ok) b.tokens -= 1;
    this.buckets.set(key, b);
    if (this.buckets.size > 10_000) this.prune(nowMs);
    return ok;
  }

  /** Forgets keys whose bucket has refilled (bounded memory). */
  prune(nowMs: number): void {
    for (const [k, b] of this.buckets) if (this.refilled(b, nowMs) >= this.burst) this.buckets.delete(k);
  }

  get size(): number {
    return this.buckets.size;
  }

  private refilled(b: { tokens: number; at: number }, nowMs: number): number {
    return b.tokens + ((nowMs - b.at) * this.tokens) / this.perMs;
  }
}
