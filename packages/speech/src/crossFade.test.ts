import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { crossFade } from './crossFade.js';
import { History } from './history.js';

describe('crossFade', () => {
  it('keeps a constant signal constant in power and silence silent', () => {
    const n = 64;
    const out = new Float32Array(n);
    crossFade(new Float32Array(n), new Float32Array(n), out);
    expect(out.every((x) => x === 0)).toBe(true);
    const ones = new Float32Array(n).fill(1);
    crossFade(ones, ones, out);
    // equal power: sin + cos >= 1 in between, exactly 1 at the ends
    for (const x of out) expect(x).toBeGreaterThanOrEqual(0.999);
    expect(out[0]).toBeCloseTo(1, 1);
  });

  it('starts on the old signal and ends on the new one', () => {
    const n = 100;
    const out = new Float32Array(n);
    crossFade(new Float32Array(n).fill(1), new Float32Array(n).fill(-1), out);
    expect(out[0]).toBeGreaterThan(0.95);
    expect(out[n - 1]).toBeLessThan(-0.95);
  });
});

describe('History', () => {
  it('keeps the last N values, oldest first, whatever the push sizes', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 20 }),
        fc.array(fc.array(fc.integer({ min: -100, max: 100 }), { maxLength: 30 }), { maxLength: 20 }),
        (n, pushes) => {
          const h = new History(new Int32Array(n), 7);
          const all: number[] = Array(n).fill(7);
          for (const p of pushes) {
            h.push(p);
            all.push(...p);
          }
          const out = new Int32Array(n);
          h.copyTo(out, 0);
          expect(Array.from(out)).toEqual(all.slice(-n));
        },
      ),
    );
  });
});
