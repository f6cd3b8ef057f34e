import { describe, expect, it } from 'vitest';
import { KeyedRateLimiter } from './rateLimiter.js';

describe('KeyedRateLimiter', () => {
  it('per minute: allows a burst of the budget, then one more per refill interval, per key', () => {
    const limiter = new KeyedRateLimiter(3, 60_000, 3);
    expect([1, 2, 3, 4].map(() => limiter.take('a', 0))).toEqual([true, true, true, false]);
    expect(limiter.take('b', 0)).toBe(true);
    expect(limiter.take('a', 19_000)).toBe(false);
    expect(limiter.take('a', 20_001)).toBe(true);
  });

  it('per second: allows a burst, then the sustained rate, per key', () => {
    const r = new KeyedRateLimiter(10, 1_000, 5);
    const t = 1_000;
    expect(Array.from({ length: 6 }, () => r.take('a', t))).toEqual([true, true, true, true, true, false]);
    expect(r.take('b', t)).toBe(true);
    expect(r.take('a', t + 100)).toBe(true);
    expect(r.take('a', t + 100)).toBe(false);
  });

  it('forgets refilled buckets', () => {
    const limiter = new KeyedRateLimiter(10, 60_000, 10);
    limiter.take('a', 0);
    limiter.prune(60_000);
    expect(limiter.size).toBe(0);
  });
});
