import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { applyingStep, deliveryTimeMs } from './latency.js';

describe('applyingStep()', () => {
  it('gives the table of docs/EVAL.md at 160 ms chunks and a 30 ms phase', () => {
    const j = 10;
    expect(applyingStep(j, 0, 160, 30)).toBe(j + 1); // on time
    expect(applyingStep(j, 80, 160, 30)).toBe(j + 2); // one step on the prediction
    expect(applyingStep(j, 160, 160, 30)).toBe(j + 2);
    expect(applyingStep(j, 240, 160, 30)).toBe(j + 3); // two steps
  });

  it('is the first step that starts (after the phase) at or after the delivery', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 1000 }),
        fc.integer({ min: 0, max: 480 }),
        fc.constantFrom(160, 200, 240),
        fc.integer({ min: 0, max: 100 }),
        (j, latency, chunk, phase) => {
          const n = applyingStep(j, latency, chunk, phase);
          const due = deliveryTimeMs(j, latency, chunk);
          expect(n).toBeGreaterThanOrEqual(j + 1);
          expect(n * chunk + phase >= due || n === j + 1).toBe(true);
          if (n > j + 1) expect((n - 1) * chunk + phase).toBeLessThan(due);
        },
      ),
    );
  });
});
