import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from './errors.js';
import { createRng, type Rng } from './rng.js';

function take(rng: Rng, count: number): number[] {
  return Array.from({ length: count }, () => rng.next());
}

const TWO_POW_32 = 2 ** 32;

describe('rng', () => {
  // Reference values from an independent Python implementation of splitmix32 + sfc32.
  it('createRng() produces the known first outputs of sfc32 seeded by splitmix32', () => {
    expect(take(createRng(0), 5).map((x) => x * TWO_POW_32)).toEqual([
      464072896, 2089357934, 3193633698, 3847748371, 418018144,
    ]);
    expect(take(createRng(42), 5).map((x) => x * TWO_POW_32)).toEqual([
      3910993901, 1565048137, 3362278356, 3794119105, 1975004219,
    ]);
    expect(take(createRng(0xffffffff), 5).map((x) => x * TWO_POW_32)).toEqual([
      2635419629, 3700645628, 1368869405, 1937357769, 4127378095,
    ]);
  });

  it('state() after five draws matches the reference', () => {
    const rng = createRng(1);
    take(rng, 5);
    expect(rng.state()).toEqual([227115985, 4152398070, 1820642330, 2041432044]);
  });

  it('the same seed gives the same sequence and different seeds differ (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), (seed) => {
        const sequence = take(createRng(seed), 8);
        expect(take(createRng(seed), 8)).toEqual(sequence);
        expect(take(createRng((seed + 1) >>> 0), 8)).not.toEqual(sequence);
        for (const x of sequence) {
          expect(x).toBeGreaterThanOrEqual(0);
          expect(x).toBeLessThan(1);
        }
      }),
    );
  });

  it('restore() resumes a persisted generator exactly where it stopped (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), fc.nat({ max: 50 }), (seed, drawn) => {
        const original = createRng(seed);
        take(original, drawn);
        // Round-trip through JSON, as a persisted call would.
        const saved = JSON.parse(JSON.stringify(original.state()));
        const resumed = createRng(0);
        resumed.restore(saved);
        expect(take(resumed, 10)).toEqual(take(original, 10));
      }),
    );
  });

  it('state() returns a snapshot that later draws do not change', () => {
    const rng = createRng(7);
    const snapshot = rng.state();
    const copy = [...snapshot];
    take(rng, 3);
    expect(snapshot).toEqual(copy);
  });

  it('is roughly uniform: 10 bins over 100k draws pass a chi-square test', () => {
    const rng = createRng(2024);
    const bins = new Array<number>(10).fill(0);
    const draws = 100_000;
    let sum = 0;
    for (let i = 0; i < draws; i++) {
      const x = rng.next();
      sum += x;
      bins[Math.floor(x * 10)]! += 1;
    }
    const expected = draws / 10;
    const chiSquare = bins.reduce((acc, observed) => acc + (observed - expected) ** 2 / expected, 0);
    // 27.88 is the 0.1% critical value for 9 degrees of freedom.
    expect(chiSquare).toBeLessThan(27.88);
    expect(sum / draws).toBeCloseTo(0.5, 2);
  });

  it('createRng() rejects seeds that are not 32-bit unsigned integers', () => {
    for (const bad of [-1, 2 ** 32, 1.5, Number.NaN]) {
      expect(() => createRng(bad)).toThrow(InvalidArgumentError);
    }
    expect(() => createRng(-1)).toThrow(/got -1/);
  });

  it('restore() rejects a malformed state and leaves the generator unchanged', () => {
    const rng = createRng(3);
    const before = rng.state();
    for (const bad of [[1, 2, 3], [1, 2, 3, -4], [1, 2, 3, 2 ** 32], [1, 2, 3, 0.5], 'abcd']) {
      expect(() => rng.restore(bad as never)).toThrow(InvalidArgumentError);
    }
    expect(rng.state()).toEqual(before);
  });
});
