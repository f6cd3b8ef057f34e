// Per-key fixed-budget rate limiter (a token bucket per client IP), pure: time is passed in.

export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  /** `perMinute` events per key per minute, bursts up to `perMinute`. */
  constructor(private readonly perMinute: number) {}

  /** Takes one token for `key`; false when its budget is spent. */
  take(key: string, nowMs: number): boolean {
    const b = this.buckets.get(key) ?? { tokens: this.perMinute, at: nowMs };
    b.tokens = Math.min(this.perMinute, b.tokens + ((nowMs - b.at) * this.perMinute) / 60_000);
    b.at = nowMs;
    const ok = b.tokens >= 1;
    if (ok) b.tokens -= 1;
    this.buckets.set(key, b);
    if (this.buckets.size > 10_000) this.prune(nowMs);
    return ok;
  }

  /** Forgets keys whose bucket has refilled (bounded memory). */
  prune(nowMs: number): void {
    for (const [k, b] of this.buckets) {
      if (b.tokens + ((nowMs - b.at) * this.perMinute) / 60_000 >= this.perMinute) this.buckets.delete(k);
    }
  }

  get size(): number {
    return this.buckets.size;
  }
}

/** Origin check: no Origin (not a browser), the SFU's own origin, or one on the allowlist. */
export function originAllowed(
  origin: string | undefined,
  host: string | undefined,
  allowed: readonly string[],
): boolean {
  if (origin === undefined) return true;
  if (allowed.includes('*') || allowed.includes(origin)) return true;
  try {
    return host !== undefined && new URL(origin).host === host;
  } catch {
    return false;
  }
}
