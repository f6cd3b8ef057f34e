import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from './errors.js';
import { chunkGeometry, chunkStartMs, UNIT_MS, UNIT_RATE_HZ } from './geometry.js';

describe('geometry', () => {
  it('one unit lasts 40 ms at 25 Hz', () => {
    expect(UNIT_MS).toBe(40);
    expect(UNIT_RATE_HZ).toBe(25);
    expect(UNIT_MS * UNIT_RATE_HZ).toBe(1000);
  });

  it("chunkGeometry() gives 4, 5 and 6 units for the paper's 160, 200 and 240 ms chunks", () => {
    expect(chunkGeometry(160)).toEqual({ chunkMs: 160, unitsPerChunk: 4 });
    expect(chunkGeometry(200)).toEqual({ chunkMs: 200, unitsPerChunk: 5 });
    expect(chunkGeometry(240)).toEqual({ chunkMs: 240, unitsPerChunk: 6 });
  });

  it('chunkGeometry() accepts the bounds 40 and 1000 ms', () => {
    expect(chunkGeometry(40).unitsPerChunk).toBe(1);
    expect(chunkGeometry(1000).unitsPerChunk).toBe(25);
  });

  it('chunkGeometry() rejects sizes that are not a multiple of 40 in 40..1000, naming the value', () => {
    for (const bad of [0, -160, 20, 150, 161, 160.5, 1040, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => chunkGeometry(bad)).toThrow(InvalidArgumentError);
      expect(() => chunkGeometry(bad)).toThrow(String(bad));
    }
  });

  it('chunkGeometry() accepts exactly the multiples of 40 in range (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: -100, max: 2000 }), (chunkMs) => {
        const valid = chunkMs >= 40 && chunkMs <= 1000 && chunkMs % 40 === 0;
        if (valid) {
          expect(chunkGeometry(chunkMs).unitsPerChunk * UNIT_MS).toBe(chunkMs);
        } else {
          expect(() => chunkGeometry(chunkMs)).toThrow(InvalidArgumentError);
        }
      }),
    );
  });

  it('chunkStartMs() schedules from the origin without accumulating', () => {
    const geometry = chunkGeometry(160);
    expect(chunkStartMs(geometry, 1000, 0)).toBe(1000);
    expect(chunkStartMs(geometry, 1000, 3)).toBe(1480);
    // A fractional origin (performance.now()) is carried exactly, not rounded per chunk.
    expect(chunkStartMs(geometry, 0.25, 1_000_000)).toBe(160_000_000.25);
  });

  it('chunkStartMs() spaces consecutive chunks exactly one chunk apart (property)', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(160, 200, 240),
        fc.integer({ min: 0, max: 2 ** 40 }),
        fc.integer({ min: 0, max: 10_000_000 }),
        (chunkMs, originMs, index) => {
          const geometry = chunkGeometry(chunkMs);
          expect(chunkStartMs(geometry, originMs, index + 1) - chunkStartMs(geometry, originMs, index)).toBe(
            chunkMs,
          );
        },
      ),
    );
  });

  it('chunkStartMs() rejects a negative or fractional chunk index and a non-finite origin', () => {
    const geometry = chunkGeometry(200);
    expect(() => chunkStartMs(geometry, 0, -1)).toThrow(InvalidArgumentError);
    expect(() => chunkStartMs(geometry, 0, 1.5)).toThrow(/1\.5/);
    expect(() => chunkStartMs(geometry, Number.NaN, 1)).toThrow(InvalidArgumentError);
  });
});
