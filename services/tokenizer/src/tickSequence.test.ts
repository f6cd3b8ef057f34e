import { describe, expect, it } from 'vitest';
import { TickSequence } from './tickSequence.js';

describe('TickSequence', () => {
  it('counts skipped ticks and refuses stale ones', () => {
    const t = new TickSequence();
    expect(t.observe(10)).toEqual({ kind: 'first' });
    expect(t.observe(11)).toEqual({ kind: 'next', missed: 0 });
    expect(t.observe(14)).toEqual({ kind: 'next', missed: 2 });
    expect(t.observe(14)).toEqual({ kind: 'stale' });
    expect(t.observe(12)).toEqual({ kind: 'stale' });
    expect(t.last).toBe(14);
  });
});
