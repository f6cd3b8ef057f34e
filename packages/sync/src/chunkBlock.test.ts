import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type ChunkBlock, parseChunkBlocks, writeChunkBlock } from './chunkBlock.js';
import { InvalidArgumentError } from './errors.js';
import { dedupChunk } from './unitRuns.js';
import { createVocabulary, type TokenVocabulary } from './vocabulary.js';

// Units 0..511 are tokens 0..511, [S0] = 512, [S1] = 513.
const vocab = createVocabulary({ unitBase: 0, unitCount: 512, s0: 512, s1: 513, vocabSize: 514 });
// Text model: units after the text ids, tags in the middle of the text ids.
const textVocab = createVocabulary({ unitBase: 1000, unitCount: 501, s0: 7, s1: 8, vocabSize: 1600 });
const S0 = 512;
const S1 = 513;

const vocabularies: TokenVocabulary[] = [
  vocab,
  textVocab,
  createVocabulary({ unitBase: 2, unitCount: 3, s0: 0, s1: 6, vocabSize: 7 }),
];

/** Deduplicated speaker content for one chunk of up to 6 units. */
const sideArb = (unitCount: number) =>
  fc
    .array(fc.integer({ min: 0, max: Math.min(unitCount, 6) - 1 }), { maxLength: 6 })
    .map((raw) => dedupChunk(raw, undefined));

const blocksArb = fc
  .constantFrom(...vocabularies)
  .chain((v) =>
    fc.tuple(
      fc.constant(v),
      fc.array(fc.record({ agent: sideArb(v.unitCount), user: sideArb(v.unitCount) }), { maxLength: 20 }),
    ),
  );

function writeAll(v: TokenVocabulary, blocks: readonly ChunkBlock[]): number[] {
  return blocks.flatMap((block) => writeChunkBlock(v, block.agent, block.user));
}

describe('chunkBlock', () => {
  it('writeChunkBlock() writes [S0] agent [S1] user', () => {
    expect(writeChunkBlock(vocab, [17, 338], [89])).toEqual([S0, 17, 338, S1, 89]);
    expect(writeChunkBlock(textVocab, [0, 500], [1])).toEqual([7, 1000, 1500, 8, 1001]);
  });

  it('writeChunkBlock() drops [S1] when the user has nothing new but always writes [S0]', () => {
    expect(writeChunkBlock(vocab, [75], [])).toEqual([S0, 75]);
    expect(writeChunkBlock(vocab, [], [])).toEqual([S0]);
    expect(writeChunkBlock(vocab, [], [89])).toEqual([S0, S1, 89]);
  });

  it('writeChunkBlock() rejects a unit id outside the vocabulary', () => {
    expect(() => writeChunkBlock(vocab, [512], [])).toThrow(InvalidArgumentError);
    expect(() => writeChunkBlock(vocab, [], [-1])).toThrow(/unit -1/);
  });

  it("parseChunkBlocks() reads the paper's example", () => {
    expect(parseChunkBlocks(vocab, [S0, 75, S1, 89, S0, 17, 338])).toEqual([
      { agent: [75], user: [89] },
      { agent: [17, 338], user: [] },
    ]);
    expect(parseChunkBlocks(vocab, [])).toEqual([]);
  });

  it('parseChunkBlocks() keeps repeated units as written', () => {
    expect(parseChunkBlocks(vocab, [S0, 5, 5, S1, 6, 6])).toEqual([{ agent: [5, 5], user: [6, 6] }]);
  });

  it('parseChunkBlocks() rejects input that does not start with [S0]', () => {
    expect(() => parseChunkBlocks(vocab, [75, S0])).toThrow(
      'token 75 at index 0: a chunk block must start with [S0]',
    );
    expect(() => parseChunkBlocks(vocab, [S1, 89])).toThrow(/token 513 at index 0/);
  });

  it('parseChunkBlocks() rejects [S1] without user units, naming the [S1]', () => {
    expect(() => parseChunkBlocks(vocab, [S0, 1, S1])).toThrow(
      'token 513 at index 2: [S1] is not followed by a user unit',
    );
    expect(() => parseChunkBlocks(vocab, [S0, S1, S0, 2])).toThrow(/index 1: \[S1\] is not followed/);
  });

  it('parseChunkBlocks() rejects a second [S1] in one block', () => {
    expect(() => parseChunkBlocks(vocab, [S0, 1, S1, 2, S1, 3])).toThrow('token 513 at index 4: second [S1]');
    expect(() => parseChunkBlocks(vocab, [S0, S1, S1, 3])).toThrow(/index 2: second \[S1\]/);
  });

  it('parseChunkBlocks() rejects tokens outside the vocabulary', () => {
    expect(() => parseChunkBlocks(vocab, [S0, 514])).toThrow(
      'token 514 at index 1: outside the vocabulary 0..513',
    );
    expect(() => parseChunkBlocks(vocab, [S0, 1, -3])).toThrow(/token -3 at index 2/);
    expect(() => parseChunkBlocks(vocab, [S0, 1.5])).toThrow(InvalidArgumentError);
  });

  it('parseChunkBlocks() rejects a text token unless allowText is set', () => {
    expect(() => parseChunkBlocks(textVocab, [7, 1000, 42])).toThrow(
      'token 42 at index 2: neither a unit nor a tag',
    );
  });

  it("parseChunkBlocks({ allowText }) keeps the agent part's text tokens in agentTokens", () => {
    expect(parseChunkBlocks(textVocab, [7, 42, 1000, 43, 1001, 8, 1002, 7], { allowText: true })).toEqual([
      { agent: [0, 1], user: [2], agentTokens: [42, 43] },
      { agent: [], user: [], agentTokens: [] },
    ]);
  });

  it('parseChunkBlocks({ allowText }) still rejects text in the user part and junk tokens', () => {
    expect(() => parseChunkBlocks(textVocab, [7, 8, 1000, 42], { allowText: true })).toThrow(
      'token 42 at index 3: neither a unit nor a tag in the user part',
    );
    expect(() => parseChunkBlocks(textVocab, [7, 1600], { allowText: true })).toThrow(
      /outside the vocabulary/,
    );
  });

  it('parseChunkBlocks() reads back any written blocks (property)', () => {
    fc.assert(
      fc.property(blocksArb, ([v, blocks]) => {
        expect(parseChunkBlocks(v, writeAll(v, blocks))).toEqual(blocks);
      }),
    );
  });

  it('written blocks hold exactly one [S0] per chunk and one [S1] per chunk with user units (property)', () => {
    fc.assert(
      fc.property(blocksArb, ([v, blocks]) => {
        const tokens = writeAll(v, blocks);
        expect(tokens.filter((t) => t === v.s0)).toHaveLength(blocks.length);
        expect(tokens.filter((t) => t === v.s1)).toHaveLength(blocks.filter((b) => b.user.length > 0).length);
        expect(tokens).toHaveLength(
          blocks.reduce((n, b) => n + 1 + b.agent.length + (b.user.length > 0 ? 1 + b.user.length : 0), 0),
        );
      }),
    );
  });

  it('parseChunkBlocks() either parses or throws InvalidArgumentError on arbitrary tokens (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: -2, max: 16 }), { maxLength: 30 }), (tokens) => {
        const tiny = vocabularies[2]!;
        try {
          const blocks = parseChunkBlocks(tiny, tokens);
          // Whatever parses is exactly what writing the blocks gives back.
          expect(writeAll(tiny, blocks)).toEqual(tokens);
        } catch (error) {
          expect(error).toBeInstanceOf(InvalidArgumentError);
        }
      }),
    );
  });
});
