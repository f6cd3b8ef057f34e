import { describe, expect, it } from 'vitest';
import { tickSchedule } from './tickSchedule.js';

describe('tickSchedule', () => {
  it('round-trips seq and time', () => {
    const s = tickSchedule(160, 1_000);
    for (const seq of [0, 1, 2, 999, 11_000_000_000]) {
      expect(s.timeOf(seq)).toBe(1_000 + seq * 160);
      expect(s.seqAt(s.timeOf(seq))).toBe(seq);
    }
  });

  it('puts a tick boundary exactly at T(seq)', () => {
    const s = tickSchedule(200, 0);
    expect(s.seqAt(199)).toBe(0);
    expect(s.seqAt(200)).toBe(1);
    expect(s.seqAt(399)).toBe(1);
    expect(s.seqAt(400)).toBe(2);
  });

  it('numbers the time before the epoch negatively', () => {
    const s = tickSchedule(240, 10_000);
    expect(s.seqAt(9_999)).toBe(-1);
    expect(s.seqAt(10_000)).toBe(0);
  });

  it('agrees across replicas at current wall-clock times', () => {
    const now = 1_750_000_000_123;
    const a = tickSchedule(160);
    const b = tickSchedule(160);
    expect(a.seqAt(now)).toBe(b.seqAt(now));
    expect(a.timeOf(a.seqAt(now))).toBeLessThanOrEqual(now);
    expect(a.timeOf(a.seqAt(now) + 1)).toBeGreaterThan(now);
  });

  it('rejects a non-positive chunk or negative epoch', () => {
    expect(() => tickSchedule(0)).toThrow(RangeError);
    expect(() => tickSchedule(160, -1)).toThrow(RangeError);
  });
});
