import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from './errors.js';
import { createRng, type Rng } from './rng.js';
import { type SamplingOptions, sampleToken, type TokenFilter, validateSamplingOptions } from './sampling.js';

const GREEDY: SamplingOptions = { temperature: 0, topK: 0, topP: 1 };
const PLAIN: SamplingOptions = { temperature: 1, topK: 0, topP: 1 };

/** An Rng that always returns `u` and counts its draws. */
function fixedRng(u: number): Rng & { draws: number } {
  return {
    draws: 0,
    next() {
      this.draws++;
      return u;
    },
    state: () => [0, 0, 0, 0],
    restore: () => {},
  };
}

function row(values: readonly number[]): Float32Array {
  return Float32Array.from(values);
}

/** Softmax of logits/temperature over `ids`, in float64. */
function softmax(logits: Float32Array, ids: readonly number[], temperature: number): number[] {
  const max = Math.max(...ids.map((id) => logits[id]!));
  const weights = ids.map((id) => Math.exp((logits[id]! - max) / temperature));
  const total = weights.reduce((a, b) => a + b, 0);
  return weights.map((w) => w / total);
}

/** Draws `draws` samples and returns the chi-square statistic against `probabilities` of `ids`. */
function chiSquare(
  logits: Float32Array,
  filter: TokenFilter,
  options: SamplingOptions,
  ids: readonly number[],
  probabilities: readonly number[],
  draws: number,
): number {
  const rng = createRng(12345);
  const counts = new Map<number, number>();
  for (let i = 0; i < draws; i++) {
    const token = sampleToken(logits, 0, logits.length, filter, options, rng);
    counts.set(token, (counts.get(token) ?? 0) + 1);
  }
  for (const token of counts.keys()) expect(ids).toContain(token);
  return ids.reduce((acc, id, i) => {
    const expected = probabilities[i]! * draws;
    return acc + ((counts.get(id) ?? 0) - expected) ** 2 / expected;
  }, 0);
}

/**
 * A straightforward reference: ranks every allowed id (logit, then lower id), applies top-k
 * then top-p, and draws by walking the kept ids in ascending order, as sampleToken() does.
 */
function referenceSample(
  logits: Float32Array,
  filter: TokenFilter,
  options: SamplingOptions,
  u: number,
): number {
  const ids = filter.ranges
    .flatMap(([start, end]) => Array.from({ length: end - start }, (_, i) => start + i))
    .filter((id) => !filter.banned?.includes(id));
  const logit = (id: number) => logits[id]!;
  let kept = [...ids].sort((a, b) => (logit(a) === logit(b) ? a - b : logit(b) > logit(a) ? 1 : -1));
  if (options.temperature === 0) return kept[0]!;
  const max = logit(kept[0]!);
  const weight = (id: number) => (logit(id) === max ? 1 : Math.exp((logit(id) - max) / options.temperature));
  const mass = (some: number[]) => some.reduce((sum, id) => sum + weight(id), 0);
  if (options.topK > 0) kept = kept.slice(0, options.topK);
  if (options.topP < 1) {
    const goal = options.topP * mass(kept);
    let cumulative = 0;
    const last = kept.findIndex((id) => {
      cumulative += weight(id);
      return cumulative >= goal;
    });
    if (last >= 0) kept = kept.slice(0, last + 1);
  }
  kept.sort((a, b) => a - b);
  const target = u * mass(kept);
  let cumulative = 0;
  for (const id of kept) {
    cumulative += weight(id);
    if (cumulative > target) return id;
  }
  return kept.filter((id) => weight(id) > 0).at(-1)!;
}

// Random rows of up to 40 logits (small integers half the time, so ties are common) with
// disjoint ranges in any order and a few banned ids.
const logitArb = fc.oneof(fc.integer({ min: -3, max: 3 }), fc.float({ min: -20, max: 20, noNaN: true }));
const caseArb = fc
  .array(logitArb, { minLength: 1, maxLength: 40 })
  .chain((values) =>
    fc.record({
      logits: fc.constant(row(values)),
      cuts: fc.uniqueArray(fc.integer({ min: 0, max: values.length }), { minLength: 2, maxLength: 8 }),
      keep: fc.array(fc.boolean(), { minLength: 4, maxLength: 4 }),
      reverse: fc.boolean(),
      banned: fc.array(fc.integer({ min: 0, max: values.length - 1 }), { maxLength: 3 }),
    }),
  )
  .map(({ logits, cuts, keep, reverse, banned }) => {
    const sorted = [...cuts].sort((a, b) => a - b);
    const ranges: [number, number][] = [];
    for (let i = 0; i + 1 < sorted.length; i++) {
      if (keep[i % keep.length]) ranges.push([sorted[i]!, sorted[i + 1]!]);
    }
    if (reverse) ranges.reverse();
    const filter: TokenFilter = { ranges, banned };
    const allowed = ranges.flatMap(([s, e]) => Array.from({ length: e - s }, (_, i) => s + i));
    return { logits, filter, allowed: allowed.filter((id) => !banned.includes(id)) };
  })
  .filter(({ allowed }) => allowed.length > 0);

const optionsArb = fc.record({
  temperature: fc.oneof(fc.constant(0), fc.double({ min: 0.05, max: 5, noNaN: true })),
  topK: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 50 })),
  topP: fc.oneof(fc.constant(1), fc.double({ min: 0.01, max: 1, noNaN: true })),
});

describe('validateSamplingOptions', () => {
  it('accepts greedy, plain and truncated settings and returns a frozen copy of just the options', () => {
    const options = { temperature: 0.8, topK: 50, topP: 0.95, extra: 'ignored' };
    const valid = validateSamplingOptions(options);
    expect(valid).toEqual({ temperature: 0.8, topK: 50, topP: 0.95 });
    expect(Object.isFrozen(valid)).toBe(true);
    expect(validateSamplingOptions(GREEDY)).toEqual(GREEDY);
    expect(validateSamplingOptions(PLAIN)).toEqual(PLAIN);
  });

  it('rejects a negative or non-finite temperature, a bad topK and topP outside (0, 1]', () => {
    const bad: Partial<SamplingOptions>[] = [
      { temperature: -0.1 },
      { temperature: Number.NaN },
      { temperature: Number.POSITIVE_INFINITY },
      { topK: -1 },
      { topK: 1.5 },
      { topP: 0 },
      { topP: 1.01 },
      { topP: Number.NaN },
    ];
    for (const change of bad) {
      const [key, value] = Object.entries(change)[0]!;
      expect(() => validateSamplingOptions({ ...PLAIN, ...change })).toThrow(InvalidArgumentError);
      expect(() => validateSamplingOptions({ ...PLAIN, ...change })).toThrow(`${key} must`);
      expect(() => validateSamplingOptions({ ...PLAIN, ...change })).toThrow(String(value));
    }
  });
});

describe('sampleToken', () => {
  const logits = row([5, 1, 3, 9, 2, 3, 0, 8]);

  it('greedy picks the largest allowed logit and ignores a larger one out of range', () => {
    expect(sampleToken(logits, 0, 8, { ranges: [[0, 3]] }, GREEDY, fixedRng(0))).toBe(0);
    expect(sampleToken(logits, 0, 8, { ranges: [[4, 7]] }, GREEDY, fixedRng(0))).toBe(5);
  });

  it('greedy ignores a larger banned logit', () => {
    expect(sampleToken(logits, 0, 8, { ranges: [[0, 8]], banned: [3] }, GREEDY, fixedRng(0))).toBe(7);
    expect(sampleToken(logits, 0, 8, { ranges: [[0, 8]], banned: [3, 7] }, GREEDY, fixedRng(0))).toBe(0);
  });

  it('greedy breaks ties toward the lowest id, whatever the order of the ranges, without drawing', () => {
    const rng = fixedRng(0.5);
    expect(
      sampleToken(
        logits,
        0,
        8,
        {
          ranges: [
            [4, 8],
            [0, 3],
          ],
        },
        GREEDY,
        rng,
      ),
    ).toBe(7);
    expect(
      sampleToken(
        logits,
        0,
        8,
        {
          ranges: [
            [5, 6],
            [2, 3],
          ],
        },
        GREEDY,
        rng,
      ),
    ).toBe(2);
    expect(rng.draws).toBe(0);
  });

  it('reads the row at the given offset of a batch of rows', () => {
    const batch = row([9, 0, 0, /* row 1: */ 0, 0, 7]);
    expect(sampleToken(batch, 3, 3, { ranges: [[0, 3]] }, GREEDY, fixedRng(0))).toBe(2);
  });

  it('draws exactly once per sampled token', () => {
    for (const options of [
      PLAIN,
      { ...PLAIN, topK: 3 },
      { ...PLAIN, topP: 0.5 },
      { temperature: 0.7, topK: 2, topP: 0.9 },
    ]) {
      const rng = fixedRng(0.3);
      sampleToken(logits, 0, 8, { ranges: [[0, 8]] }, options, rng);
      expect(rng.draws).toBe(1);
    }
  });

  it('is deterministic for a seed', () => {
    const options = { temperature: 1.2, topK: 5, topP: 0.9 };
    const sample = (seed: number) => {
      const rng = createRng(seed);
      return Array.from({ length: 50 }, () => sampleToken(logits, 0, 8, { ranges: [[0, 8]] }, options, rng));
    };
    expect(sample(99)).toEqual(sample(99));
    expect(sample(99)).not.toEqual(sample(100));
  });

  it('with temperature 1 the frequencies match softmax of the allowed logits', () => {
    const filter: TokenFilter = {
      ranges: [
        [4, 8],
        [0, 3],
      ],
      banned: [6],
    };
    const ids = [0, 1, 2, 4, 5, 7];
    const statistic = chiSquare(logits, filter, PLAIN, ids, softmax(logits, ids, 1), 40_000);
    // 20.52 is the 0.1% critical value for 5 degrees of freedom.
    expect(statistic).toBeLessThan(20.52);
  });

  it('with temperature 3 the frequencies match the flattened softmax', () => {
    const ids = [0, 1, 2, 3, 4, 5, 6, 7];
    const statistic = chiSquare(
      logits,
      { ranges: [[0, 8]] },
      { ...PLAIN, temperature: 3 },
      ids,
      softmax(logits, ids, 3),
      40_000,
    );
    // 24.32 is the 0.1% critical value for 7 degrees of freedom.
    expect(statistic).toBeLessThan(24.32);
  });

  it('top-k keeps the k most likely tokens, renormalised', () => {
    const ids = [3, 7, 0];
    const statistic = chiSquare(
      logits,
      { ranges: [[0, 8]] },
      { ...PLAIN, topK: 3 },
      ids,
      softmax(logits, ids, 1),
      30_000,
    );
    expect(statistic).toBeLessThan(13.82); // 2 degrees of freedom
  });

  it('top-k breaks ties at its boundary toward the lowest ids', () => {
    const tied = row([0, 1, 1, 1, 1]);
    const options = { ...PLAIN, topK: 2 };
    expect(sampleToken(tied, 0, 5, { ranges: [[0, 5]] }, options, fixedRng(0.1))).toBe(1);
    expect(sampleToken(tied, 0, 5, { ranges: [[0, 5]] }, options, fixedRng(0.9))).toBe(2);
  });

  it('top-p keeps the smallest most likely set reaching the mass, renormalised', () => {
    // Probabilities over ids 0..3: 0.5, 0.3, 0.15, 0.05 -> top-p 0.75 keeps ids 0 and 1.
    const probabilities = row([Math.log(0.5), Math.log(0.3), Math.log(0.15), Math.log(0.05)]);
    const statistic = chiSquare(
      probabilities,
      { ranges: [[0, 4]] },
      { ...PLAIN, topP: 0.75 },
      [0, 1],
      [0.625, 0.375],
      20_000,
    );
    expect(statistic).toBeLessThan(10.83); // 1 degree of freedom
  });

  it('top-p over a large text vocabulary picks what the sort-everything reference picks', () => {
    // 20k ids with a few likely ones; exercises the pruning of the long tail before sorting.
    const large = new Float32Array(20_000).map((_, id) => (id % 997 === 0 ? 6 - id / 4_000 : Math.sin(id)));
    const filter: TokenFilter = { ranges: [[0, large.length]] };
    for (const options of [
      { temperature: 1, topK: 0, topP: 0.9 },
      { temperature: 0.5, topK: 0, topP: 0.5 },
      { temperature: 1, topK: 40, topP: 0.8 },
    ]) {
      for (const u of [0, 0.37, 0.77, 0.999999]) {
        expect(sampleToken(large, 0, large.length, filter, options, fixedRng(u))).toBe(
          referenceSample(large, filter, options, u),
        );
      }
    }
  });

  it('never reads logits outside the allowed ranges (a 128k text vocabulary with 503 allowed ids)', () => {
    // NaN anywhere the sampler looked would throw; only the 501 units and 2 tags are finite.
    const vocabSize = 128_759;
    const big = new Float32Array(vocabSize).fill(Number.NaN);
    for (let id = 128_256; id < vocabSize; id++) big[id] = Math.cos(id);
    const filter: TokenFilter = {
      ranges: [
        [128_256, 128_757],
        [128_757, 128_759],
      ],
    };
    const rng = createRng(1);
    for (const options of [GREEDY, PLAIN, { temperature: 0.8, topK: 20, topP: 0.9 }]) {
      const token = sampleToken(big, 0, vocabSize, filter, options, rng);
      expect(token).toBeGreaterThanOrEqual(128_256);
    }
  });

  it('an infinite logit takes all the mass and a -Infinity logit is never drawn', () => {
    const infinite = row([0, Number.POSITIVE_INFINITY, 5, Number.NEGATIVE_INFINITY]);
    for (const u of [0, 0.5, 0.999]) {
      expect(sampleToken(infinite, 0, 4, { ranges: [[0, 4]] }, PLAIN, fixedRng(u))).toBe(1);
      expect(sampleToken(infinite, 0, 4, { ranges: [[2, 4]] }, PLAIN, fixedRng(u))).toBe(2);
    }
  });

  it('rejects a NaN logit among the allowed ids, naming the token', () => {
    const nan = row([0, Number.NaN, 1]);
    expect(() => sampleToken(nan, 0, 3, { ranges: [[0, 3]] }, PLAIN, fixedRng(0))).toThrow(/token 1 is NaN/);
    expect(
      sampleToken(
        nan,
        0,
        3,
        {
          ranges: [
            [0, 1],
            [2, 3],
          ],
        },
        PLAIN,
        fixedRng(0.9),
      ),
    ).toBe(2);
  });

  it('rejects a filter that allows nothing', () => {
    const rng = fixedRng(0);
    expect(() => sampleToken(logits, 0, 8, { ranges: [] }, PLAIN, rng)).toThrow(InvalidArgumentError);
    expect(() => sampleToken(logits, 0, 8, { ranges: [[2, 2]] }, PLAIN, rng)).toThrow(/no token is allowed/);
    expect(() => sampleToken(logits, 0, 8, { ranges: [[2, 4]], banned: [2, 3] }, GREEDY, rng)).toThrow(
      /no token is allowed/,
    );
    expect(rng.draws).toBe(0);
  });

  it('rejects ranges outside the vocabulary, reversed or overlapping', () => {
    const check = (ranges: [number, number][], message: RegExp) =>
      expect(() => sampleToken(logits, 0, 8, { ranges }, PLAIN, fixedRng(0))).toThrow(message);
    check([[0, 9]], /\[0, 9\) must satisfy/);
    check([[-1, 2]], /\[-1, 2\)/);
    check([[3, 2]], /\[3, 2\)/);
    check([[0, 1.5]], /\[0, 1\.5\)/);
    check(
      [
        [4, 8],
        [0, 5],
      ],
      /\[4, 8\) overlaps/,
    );
  });

  it('rejects a row that does not fit in the logits, and invalid options', () => {
    expect(() => sampleToken(logits, 1, 8, { ranges: [[0, 1]] }, PLAIN, fixedRng(0))).toThrow(
      /offset 1 of size 8/,
    );
    expect(() => sampleToken(logits, 0, 0, { ranges: [] }, PLAIN, fixedRng(0))).toThrow(/vocabSize/);
    expect(() => sampleToken(logits, 0, 8, { ranges: [[0, 8]] }, { ...PLAIN, topP: 0 }, fixedRng(0))).toThrow(
      /topP/,
    );
  });

  it('always returns an allowed, non-banned id (property)', () => {
    fc.assert(
      fc.property(
        caseArb,
        optionsArb,
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (c, options, u) => {
          const token = sampleToken(c.logits, 0, c.logits.length, c.filter, options, fixedRng(u));
          expect(c.allowed).toContain(token);
        },
      ),
    );
  });

  it('matches a sort-everything reference for the same draw (property)', () => {
    fc.assert(
      fc.property(
        caseArb,
        optionsArb,
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (c, options, u) => {
          expect(sampleToken(c.logits, 0, c.logits.length, c.filter, options, fixedRng(u))).toBe(
            referenceSample(c.logits, c.filter, options, u),
          );
        },
      ),
    );
  });

  it('matches the reference on rows long enough to narrow the nucleus by bins (property)', () => {
    fc.assert(
      fc.property(
        fc.array(logitArb, { minLength: 33, maxLength: 400 }),
        fc.double({ min: 0.1, max: 3, noNaN: true }),
        fc.oneof(fc.constant(0), fc.integer({ min: 33, max: 300 })),
        fc.double({ min: 0.05, max: 0.999, noNaN: true }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (values, temperature, topK, topP, u) => {
          const logits = row(values);
          const filter: TokenFilter = { ranges: [[0, values.length]] };
          const options = { temperature, topK, topP };
          expect(sampleToken(logits, 0, values.length, filter, options, fixedRng(u))).toBe(
            referenceSample(logits, filter, options, u),
          );
        },
      ),
      { numRuns: 200 },
    );
  });

  it('top-k = 1 equals greedy (property)', () => {
    fc.assert(
      fc.property(
        caseArb,
        fc.double({ min: 0.01, max: 100, noNaN: true }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (c, temperature, u) => {
          const greedy = sampleToken(c.logits, 0, c.logits.length, c.filter, GREEDY, fixedRng(u));
          expect(
            sampleToken(
              c.logits,
              0,
              c.logits.length,
              c.filter,
              { temperature, topK: 1, topP: 1 },
              fixedRng(u),
            ),
          ).toBe(greedy);
        },
      ),
    );
  });

  it('a tiny top-p equals greedy (property)', () => {
    fc.assert(
      fc.property(
        caseArb,
        fc.double({ min: 0.01, max: 100, noNaN: true }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (c, temperature, u) => {
          const greedy = sampleToken(c.logits, 0, c.logits.length, c.filter, GREEDY, fixedRng(u));
          expect(
            sampleToken(
              c.logits,
              0,
              c.logits.length,
              c.filter,
              { temperature, topK: 0, topP: 1e-9 },
              fixedRng(u),
            ),
          ).toBe(greedy);
        },
      ),
    );
  });
});

describe('sampleToken with a timing temperature', () => {
  // ids 0..5 are units, 6 and 7 tags ([S0], [S1]); a silent agent: the tags hold most of the mass.
  const UNITS: readonly [number, number] = [0, 6];
  const logits = row([0.2, 0.1, 0, -0.1, -0.2, -0.3, 1.5, 0.4]);
  const filter: TokenFilter = { ranges: [UNITS, [6, 8]], units: UNITS };
  const ids = [0, 1, 2, 3, 4, 5, 6, 7];

  it('keeps the model own chance of "some unit" at timingTemperature 1 while temperature and top-p shape the unit', () => {
    const options: SamplingOptions = { temperature: 0.5, topK: 0, topP: 0.6, timingTemperature: 1 };
    const p1 = softmax(logits, ids, 1);
    const unitMass = p1.slice(0, 6).reduce((a, b) => a + b, 0);
    // Within the units: temperature 0.5, then top-p 0.6 over them alone.
    const within = softmax(logits, [0, 1, 2, 3, 4, 5], 0.5);
    let cumulative = 0;
    const kept = within.map((p) => {
      const keep = cumulative < 0.6;
      cumulative += p;
      return keep ? p : 0;
    });
    const keptMass = kept.reduce((a, b) => a + b, 0);
    const expected = [...kept.map((p) => (unitMass * p) / keptMass), p1[6]!, p1[7]!];
    const present = ids.filter((_, i) => expected[i]! > 0);
    const stat = chiSquare(
      logits,
      filter,
      options,
      present,
      present.map((id) => expected[id]!),
      20000,
    );
    expect(stat).toBeLessThan(25); // df <= 5; p ~ 1e-4
  });

  it('one draw at temperature 0.8 with top-p 0.95 says far less often than the model that a unit comes', () => {
    const rng = createRng(7);
    const draw = (options: SamplingOptions) => {
      let some = 0;
      for (let i = 0; i < 20000; i++) if (sampleToken(logits, 0, 8, filter, options, rng) < 6) some++;
      return some / 20000;
    };
    const model = softmax(logits, ids, 1)
      .slice(0, 6)
      .reduce((a, b) => a + b, 0);
    const tempered = draw({ temperature: 0.8, topK: 0, topP: 0.95 });
    const timed = draw({ temperature: 0.8, topK: 0, topP: 0.95, timingTemperature: 1 });
    expect(Math.abs(timed - model)).toBeLessThan(0.015);
    expect(tempered).toBeLessThan(model - 0.05);
  });

  it('draws between tags alone at the timing temperature, and leaves unit-only rows to the unit draw', () => {
    const tagsOnly: TokenFilter = { ranges: [[6, 8]], units: UNITS };
    const options: SamplingOptions = { temperature: 0.1, topK: 0, topP: 0.5, timingTemperature: 1 };
    const stat = chiSquare(logits, tagsOnly, options, [6, 7], softmax(logits, [6, 7], 1), 20000);
    expect(stat).toBeLessThan(15);
    const unitsOnly: TokenFilter = { ranges: [UNITS], units: UNITS };
    const rng = fixedRng(0.3);
    const reference = referenceSample(logits, unitsOnly, options, 0.3);
    expect(sampleToken(logits, 0, 8, unitsOnly, options, rng)).toBe(reference);
    expect(rng.draws).toBe(1); // no timing draw: nothing to decide
  });

  it('timingTemperature 0 takes the likelier of a tag and the best unit; then the unit is drawn as usual', () => {
    const options: SamplingOptions = { temperature: 0, topK: 0, topP: 1, timingTemperature: 0 };
    expect(sampleToken(logits, 0, 8, filter, options, fixedRng(0.5))).toBe(6);
    const speaking = row([2, 0.1, 0, -0.1, -0.2, -0.3, 1.5, 0.4]);
    expect(sampleToken(speaking, 0, 8, filter, options, fixedRng(0.5))).toBe(0);
  });

  it('without a units range in the filter, or unset, it is the single draw (same ids for the same draws)', () => {
    const noUnits: TokenFilter = { ranges: filter.ranges };
    fc.assert(
      fc.property(optionsArb, fc.integer({ min: 1, max: 1000 }), (options, seed) => {
        const a = createRng(seed);
        const b = createRng(seed);
        const timed = { ...options, timingTemperature: 1 };
        for (let i = 0; i < 20; i++) {
          expect(sampleToken(logits, 0, 8, noUnits, timed, a)).toBe(
            sampleToken(logits, 0, 8, filter, options, b),
          );
        }
      }),
    );
  });

  it('validates it: a negative or non-finite timing temperature is refused, a valid one kept', () => {
    for (const bad of [-1, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => validateSamplingOptions({ ...PLAIN, timingTemperature: bad })).toThrow(
        InvalidArgumentError,
      );
      expect(() =>
        sampleToken(logits, 0, 8, filter, { ...PLAIN, timingTemperature: bad }, createRng(1)),
      ).toThrow(/timingTemperature/);
    }
    expect(validateSamplingOptions({ ...PLAIN, timingTemperature: 1 })).toEqual({
      ...PLAIN,
      timingTemperature: 1,
    });
  });
});
