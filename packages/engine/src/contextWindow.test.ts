import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type ContextWindowSpec,
  entryOf,
  forEachVisibleRun,
  sinkBase,
  windowCapacity,
} from './contextWindow.js';

const specArb = fc.record({
  sinks: fc.integer({ min: 0, max: 6 }),
  window: fc.integer({ min: 1, max: 40 }),
  reserve: fc.integer({ min: 0, max: 20 }),
});

function visibleEntries(spec: ContextWindowSpec, length: number): number[] {
  const out: number[] = [];
  forEachVisibleRun(spec, length, (a, b) => {
    for (let e = a; e < b; e++) out.push(e);
  });
  return out;
}

describe('context window', () => {
  it('visible entries are exactly the sinks and the last `window` tokens of the history', () => {
    fc.assert(
      fc.property(specArb, fc.integer({ min: 0, max: 300 }), (spec, length) => {
        const expected = new Set<number>();
        for (let k = 0; k < Math.min(length, spec.sinks); k++) expected.add(entryOf(spec, k));
        for (let k = Math.max(spec.sinks, length - spec.window); k < length; k++)
          expected.add(entryOf(spec, k));
        const got = visibleEntries(spec, length);
        expect(new Set(got).size).toBe(got.length); // runs never overlap
        expect(new Set(got)).toEqual(expected);
        for (const e of got) expect(e).toBeLessThan(windowCapacity(spec));
      }),
    );
  });

  it('a rollback of up to `reserve` tokens finds its window untouched by later tokens', () => {
    fc.assert(
      fc.property(specArb, fc.integer({ min: 0, max: 300 }), fc.nat(), (spec, length, back) => {
        const rollback = Math.min(length, back % (spec.reserve + 1));
        const after = length - rollback;
        // Entries visible after the rollback were last written by the same tokens as before.
        for (let k = Math.max(spec.sinks, after - spec.window); k < after; k++) {
          const e = entryOf(spec, k);
          for (let later = k + 1; later < length; later++) {
            if (later >= spec.sinks) expect(entryOf(spec, later)).not.toBe(e);
          }
        }
      }),
    );
  });

  it('sinks sit right before the window once it slides', () => {
    const spec = { sinks: 4, window: 10, reserve: 3 };
    expect(sinkBase(spec, 14)).toBe(0);
    expect(sinkBase(spec, 20)).toBe(6);
    // window starts at token 10, sinks at positions 6..9
    expect(visibleEntries(spec, 20)).toHaveLength(14);
  });
});
