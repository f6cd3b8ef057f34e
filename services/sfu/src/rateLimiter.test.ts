import { describe, expect, it } from 'vitest';
import { originAllowed, RateLimiter } from './rateLimiter.js';

describe('per-IP connection rate limit', () => {
  it('allows a burst of the budget, then one more per refill interval, per IP', () => {
    const limiter = new RateLimiter(3);
    expect([1, 2, 3, 4].map(() => limiter.take('a', 0))).toEqual([true, true, true, false]);
    expect(limiter.take('b', 0)).toBe(true);
    expect(limiter.take('a', 19_000)).toBe(false);
    expect(limiter.take('a', 20_001)).toBe(true);
  });

  it('forgets refilled buckets', () => {
    const limiter = new RateLimiter(10);
    limiter.take('a', 0);
    limiter.prune(60_000);
    expect(limiter.size).toBe(0);
  });
});

describe('origin allowlist', () => {
  it('allows no Origin, the same origin and listed origins only', () => {
    expect(originAllowed(undefined, 'sfu:8088', [])).toBe(true);
    expect(originAllowed('http://sfu:8088', 'sfu:8088', [])).toBe(true);
    expect(originAllowed('https://evil.example', 'sfu:8088', [])).toBe(false);
    expect(originAllowed('https://app.example', 'sfu:8088', ['https://app.example'])).toBe(true);
    expect(originAllowed('https://x.example', 'sfu:8088', ['*'])).toBe(true);
    expect(originAllowed('garbage', 'sfu:8088', [])).toBe(false);
  });
});
