import { describe, expect, it } from 'vitest';
import { stepDurations, Timeline } from './timeline.js';

describe('call setup timeline', () => {
  it('records marks as ms since the start, the first mark of a name winning', () => {
    let now = 1_000;
    const t = new Timeline(1_000, () => now);
    now = 1_012.34;
    expect(t.mark('mic')).toBe(12.3);
    now = 1_050;
    expect(t.mark('mic')).toBe(12.3); // a second mark of the same step keeps the first time
    expect(t.mark('ws', 1_020)).toBe(20);
    expect(t.has('mic')).toBe(true);
    expect(t.get('ws')).toBe(20);
    expect(t.get('nope')).toBeUndefined();
  });

  it('lists the marks in time order, whatever the marking order', () => {
    const t = new Timeline(0, () => 0);
    t.mark('late', 30);
    t.mark('early', 5);
    t.mark('middle', 10);
    expect(Object.keys(t.toJSON())).toEqual(['early', 'middle', 'late']);
    expect(JSON.parse(JSON.stringify(t))).toEqual({ early: 5, middle: 10, late: 30 });
  });

  it('gives the time each step added', () => {
    expect(stepDurations({ c: 130.5, a: 10, b: 40 })).toEqual({ a: 10, b: 30, c: 90.5 });
    expect(stepDurations({})).toEqual({});
  });
});
