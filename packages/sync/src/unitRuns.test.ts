import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from './errors.js';
import { dedupChunk, expandChunk } from './unitRuns.js';

// Few distinct ids so that repeats (the interesting case) are common.
const unitArb = fc.integer({ min: 0, max: 4 });
const previousArb = fc.option(unitArb, { nil: undefined });
const unitsPerChunkArb = fc.integer({ min: 1, max: 25 });
const FILL = 99;

/** A valid output of dedupChunk() for `previous` and a chunk of `unitsPerChunk` units. */
const dedupedArb = fc.tuple(previousArb, unitsPerChunkArb).chain(([previous, unitsPerChunk]) =>
  fc.array(unitArb, { maxLength: unitsPerChunk * 2 }).map((units) => ({
    previous,
    unitsPerChunk,
    deduped: dedupChunk(units, previous).slice(0, unitsPerChunk),
  })),
);

/** Units of each distinct run, in order: [7, 7, 3, 7] -> [7, 3, 7]. */
function runs(units: readonly number[]): number[] {
  return dedupChunk(units, undefined);
}

describe('unitRuns', () => {
  it('dedupChunk() removes consecutive repeats inside the chunk', () => {
    expect(dedupChunk([75, 75, 89, 89, 89, 75], undefined)).toEqual([75, 89, 75]);
  });

  it("dedupChunk() drops a unit that repeats the previous chunk's last unit", () => {
    expect(dedupChunk([17, 17, 338, 338], 17)).toEqual([338]);
    expect(dedupChunk([17, 17, 17, 17], 17)).toEqual([]);
    expect(dedupChunk([338, 17], 17)).toEqual([338, 17]);
  });

  it('dedupChunk() keeps everything new at the start of a call and returns a fresh array', () => {
    const units = [1, 2, 3, 4];
    const deduped = dedupChunk(units, undefined);
    expect(deduped).toEqual(units);
    expect(deduped).not.toBe(units);
    expect(dedupChunk([], 5)).toEqual([]);
  });

  it('expandChunk() repeats the units evenly over the chunk', () => {
    expect(expandChunk([1, 2], 0, 4, FILL)).toEqual([1, 1, 2, 2]);
    expect(expandChunk([1, 2], 0, 5, FILL)).toEqual([1, 1, 2, 2, 2]);
    expect(expandChunk([1, 2, 3], 0, 4, FILL)).toEqual([1, 2, 3, 3]);
    expect(expandChunk([1, 2, 3], 0, 6, FILL)).toEqual([1, 1, 2, 2, 3, 3]);
    expect(expandChunk([1, 2, 3, 4], 0, 4, FILL)).toEqual([1, 2, 3, 4]);
    expect(expandChunk([7], undefined, 6, FILL)).toEqual([7, 7, 7, 7, 7, 7]);
  });

  it('expandChunk() holds the previous unit through a chunk with no new units', () => {
    expect(expandChunk([], 42, 4, FILL)).toEqual([42, 42, 42, 42]);
  });

  it('expandChunk() fills an empty chunk with fillUnit at the very start of a call', () => {
    expect(expandChunk([], undefined, 5, FILL)).toEqual([FILL, FILL, FILL, FILL, FILL]);
  });

  it('expandChunk() rejects more deduplicated units than slots, and a bad unitsPerChunk', () => {
    expect(() => expandChunk([1, 2, 3, 4, 5], 0, 4, FILL)).toThrow(InvalidArgumentError);
    expect(() => expandChunk([1, 2, 3, 4, 5], 0, 4, FILL)).toThrow(/4 slots cannot hold 5/);
    expect(() => expandChunk([], 0, 0, FILL)).toThrow(/unitsPerChunk/);
    expect(() => expandChunk([], 0, 2.5, FILL)).toThrow(InvalidArgumentError);
  });

  it('expandChunk() always returns exactly unitsPerChunk units (property)', () => {
    fc.assert(
      fc.property(dedupedArb, ({ previous, unitsPerChunk, deduped }) => {
        expect(expandChunk(deduped, previous, unitsPerChunk, FILL)).toHaveLength(unitsPerChunk);
      }),
    );
  });

  it('dedupChunk() undoes expandChunk() for any valid deduplicated chunk (property)', () => {
    fc.assert(
      fc.property(dedupedArb, ({ previous, unitsPerChunk, deduped }) => {
        // The one exception: an empty first chunk of a call is filled with new content (fillUnit).
        fc.pre(!(previous === undefined && deduped.length === 0));
        const expanded = expandChunk(deduped, previous, unitsPerChunk, FILL);
        expect(dedupChunk(expanded, previous)).toEqual(deduped);
      }),
    );
  });

  it('dedupChunk() of an empty first chunk after expansion is the fill unit alone', () => {
    expect(dedupChunk(expandChunk([], undefined, 4, FILL), undefined)).toEqual([FILL]);
  });

  it('expanding a deduplicated raw chunk restores its runs in order within the chunk (property)', () => {
    fc.assert(
      fc.property(
        unitsPerChunkArb.chain((u) =>
          fc.tuple(fc.constant(u), fc.array(unitArb, { minLength: u, maxLength: u })),
        ),
        previousArb,
        ([unitsPerChunk, raw], previous) => {
          const expanded = expandChunk(dedupChunk(raw, previous), previous, unitsPerChunk, FILL);
          // Seen after the previous chunk, the raw and the restored chunk change units at the same
          // points in the same order; only where inside the chunk a change happens may differ.
          const context = previous === undefined ? [] : [previous];
          expect(runs([...context, ...expanded])).toEqual(runs([...context, ...raw]));
          expect(expanded.at(-1)).toBe(raw.at(-1));
        },
      ),
    );
  });

  it('deduplicating a stream chunk by chunk equals deduplicating the whole stream (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.array(unitArb, { maxLength: 8 }), { maxLength: 12 }), (chunks) => {
        let previous: number | undefined;
        const chunked: number[] = [];
        for (const chunk of chunks) {
          chunked.push(...dedupChunk(chunk, previous));
          previous = chunk.at(-1) ?? previous;
        }
        expect(chunked).toEqual(dedupChunk(chunks.flat(), undefined));
      }),
    );
  });

  it('a stream survives deduplication and expansion chunk by chunk with the same runs (property)', () => {
    fc.assert(
      fc.property(
        fc
          .integer({ min: 1, max: 6 })
          .chain((u) =>
            fc.tuple(
              fc.constant(u),
              fc.array(fc.array(unitArb, { minLength: u, maxLength: u }), { minLength: 1, maxLength: 10 }),
            ),
          ),
        ([unitsPerChunk, chunks]) => {
          let previous: number | undefined;
          const restored: number[] = [];
          for (const chunk of chunks) {
            const expanded = expandChunk(dedupChunk(chunk, previous), previous, unitsPerChunk, FILL);
            restored.push(...expanded);
            previous = expanded.at(-1);
          }
          expect(restored).toHaveLength(chunks.flat().length);
          expect(runs(restored)).toEqual(runs(chunks.flat()));
        },
      ),
    );
  });
});
