import { describe, expect, it } from 'vitest';
import { TickGapDetector } from './tickGapDetector.js';

describe('TickGapDetector', () => {
  it('classifies first, next, gap, duplicate and old seqs', () => {
    const d = new TickGapDetector();
    expect(d.last).toBeUndefined();
    expect(d.observe(10)).toEqual({ kind: 'first', missed: 0 });
    expect(d.observe(11)).toEqual({ kind: 'next', missed: 0 });
    expect(d.observe(11)).toEqual({ kind: 'duplicate', missed: 0 });
    expect(d.observe(14)).toEqual({ kind: 'gap', missed: 2 });
    expect(d.last).toBe(14);
    expect(d.observe(12)).toEqual({ kind: 'old', missed: 0 });
    // An old seq does not move the high-water mark.
    expect(d.observe(15)).toEqual({ kind: 'next', missed: 0 });
  });

  it('accepts bigint seqs as carried by duet.v1.Tick', () => {
    const d = new TickGapDetector();
    expect(d.observe(11_000_000_000n).kind).toBe('first');
    expect(d.observe(11_000_000_001n)).toEqual({ kind: 'next', missed: 0 });
    expect(d.observe(11_000_000_005n)).toEqual({ kind: 'gap', missed: 3 });
  });

  it('starts over after reset', () => {
    const d = new TickGapDetector();
    d.observe(5);
    d.reset();
    expect(d.observe(1)).toEqual({ kind: 'first', missed: 0 });
  });
});
