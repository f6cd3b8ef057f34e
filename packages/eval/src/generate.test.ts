import { createVocabulary, parseChunkBlocks } from '@duet/sync';
import { describe, expect, it } from 'vitest';
import { promptTokens } from './generate.js';

describe('promptTokens()', () => {
  const vocab = createVocabulary({ vocabSize: 12, unitBase: 0, unitCount: 10, s0: 10, s1: 11 });
  it('writes [S0] agent [S1] user per chunk, deduplicated across chunk boundaries, agent silent in chunk 0', () => {
    const tokens = promptTokens(
      vocab,
      [
        [1, 1, 2, 2],
        [2, 2, 2, 2],
        [3, 3, 4, 4],
      ],
      [
        [5, 5, 5, 5],
        [5, 5, 6, 6],
        [6, 6, 6, 6],
      ],
      3,
    );
    expect(tokens).toEqual([10, 11, 5, 10, 2, 11, 6, 10, 3, 4]);
    expect(parseChunkBlocks(vocab, tokens)).toEqual([
      { agent: [], user: [5] },
      { agent: [2], user: [6] },
      { agent: [3, 4], user: [] },
    ]);
  });

  it('writes nothing for a prompt of no chunks', () => {
    expect(promptTokens(vocab, [], [], 0)).toEqual([]);
  });
});
