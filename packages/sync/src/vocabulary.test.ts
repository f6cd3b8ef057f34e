import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from './errors.js';
import {
  createVocabulary,
  isTag,
  isUnitToken,
  type TokenVocabulary,
  tokenToUnit,
  unitToken,
} from './vocabulary.js';

// The contract's example layout: 512 units first, then the two tags.
const small: TokenVocabulary = { unitBase: 0, unitCount: 512, s0: 512, s1: 513, vocabSize: 514 };
// A text model's layout: Llama3's 128256 text ids, then 501 units, then the tags.
const llama: TokenVocabulary = {
  unitBase: 128_256,
  unitCount: 501,
  s0: 128_757,
  s1: 128_758,
  vocabSize: 128_759,
};

/** Any valid layout: units in one block, tags anywhere outside it. */
const vocabularyArb: fc.Arbitrary<TokenVocabulary> = fc
  .record({
    unitBase: fc.integer({ min: 0, max: 300 }),
    unitCount: fc.integer({ min: 1, max: 600 }),
    extra: fc.integer({ min: 2, max: 300 }),
    tagA: fc.nat(),
    tagB: fc.nat(),
  })
  .map(({ unitBase, unitCount, extra, tagA, tagB }) => {
    const vocabSize = unitBase + unitCount + extra;
    const outside = vocabSize - unitCount;
    // Map an index over the non-unit ids to a token id.
    const nonUnit = (i: number) => (i < unitBase ? i : i + unitCount);
    const a = tagA % outside;
    const b = (a + 1 + (tagB % (outside - 1))) % outside;
    return { unitBase, unitCount, s0: nonUnit(a), s1: nonUnit(b), vocabSize };
  });

describe('vocabulary', () => {
  it('createVocabulary() accepts the contract layout and a text-model layout, returning frozen copies', () => {
    for (const spec of [small, llama]) {
      const vocab = createVocabulary(spec);
      expect(vocab).toEqual(spec);
      expect(vocab).not.toBe(spec);
      expect(Object.isFrozen(vocab)).toBe(true);
    }
  });

  it('createVocabulary() accepts every valid layout (property)', () => {
    fc.assert(
      fc.property(vocabularyArb, (spec) => {
        expect(createVocabulary(spec)).toEqual(spec);
      }),
    );
  });

  it('createVocabulary() rejects non-integer and negative fields, naming the field', () => {
    expect(() => createVocabulary({ ...small, unitBase: 1.5 })).toThrow(/unitBase.*1\.5/);
    expect(() => createVocabulary({ ...small, s1: -1 })).toThrow(/s1.*-1/);
    expect(() => createVocabulary({ ...small, vocabSize: Number.NaN })).toThrow(/vocabSize/);
  });

  it('createVocabulary() rejects an empty unit range and units beyond vocabSize', () => {
    expect(() => createVocabulary({ ...small, unitCount: 0 })).toThrow(/unitCount/);
    expect(() => createVocabulary({ ...small, vocabSize: 511 })).toThrow(/do not fit in vocabSize 511/);
  });

  it('createVocabulary() rejects a tag outside the vocabulary or inside the unit range', () => {
    expect(() => createVocabulary({ ...small, s1: 514 })).toThrow(/s1 514 is outside vocabSize 514/);
    expect(() => createVocabulary({ ...small, s0: 7 })).toThrow(/s0 7 lies inside the unit range 0\.\.511/);
  });

  it('createVocabulary() rejects equal tags', () => {
    expect(() => createVocabulary({ ...small, s1: 512 })).toThrow(/s0 and s1 must differ/);
    expect(() => createVocabulary({ ...small, s1: 512 })).toThrow(InvalidArgumentError);
  });

  it('unitToken() and tokenToUnit() are inverse on the unit range (property)', () => {
    fc.assert(
      fc.property(vocabularyArb, fc.nat(), (vocab, n) => {
        const unit = n % vocab.unitCount;
        const token = unitToken(vocab, unit);
        expect(isUnitToken(vocab, token)).toBe(true);
        expect(isTag(vocab, token)).toBe(false);
        expect(tokenToUnit(vocab, token)).toBe(unit);
      }),
    );
  });

  it('unitToken() rejects ids outside the unit range', () => {
    expect(unitToken(llama, 0)).toBe(128_256);
    expect(unitToken(llama, 500)).toBe(128_756);
    expect(() => unitToken(llama, 501)).toThrow(/unit 501 is outside 0\.\.500/);
    expect(() => unitToken(llama, -1)).toThrow(InvalidArgumentError);
    expect(() => unitToken(llama, 2.5)).toThrow(InvalidArgumentError);
  });

  it('tokenToUnit() returns undefined for tags, text tokens and junk', () => {
    for (const token of [llama.s0, llama.s1, 0, 128_255, 128_759, -1, 128_300.5]) {
      expect(tokenToUnit(llama, token)).toBeUndefined();
      expect(isUnitToken(llama, token)).toBe(false);
    }
  });

  it('isTag() is true exactly for s0 and s1', () => {
    expect(isTag(small, 512)).toBe(true);
    expect(isTag(small, 513)).toBe(true);
    expect(isTag(small, 511)).toBe(false);
    expect(isTag(small, 0)).toBe(false);
  });
});
