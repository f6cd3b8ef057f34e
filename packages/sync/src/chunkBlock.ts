// One chunk of dialogue as the model sees it: `[S0] <agent units> [S1] <user units>`.
// [S0] is always written (it is the clock); [S1] only when the user has new units.
import { InvalidArgumentError } from './errors.js';
import { type TokenVocabulary, tokenToUnit, unitToken } from './vocabulary.js';

/** A parsed chunk: deduplicated unit ids of each speaker. */
export type ChunkBlock = {
  agent: number[];
  user: number[];
  /** Only with `allowText`: the agent part's text tokens (token ids, in order). */
  agentTokens?: number[];
};

export interface ParseChunkBlocksOptions {
  /** Keep non-unit, non-tag tokens of the agent part in `agentTokens` instead of rejecting them. */
  allowText?: boolean;
}

/** Tokens of one chunk from each speaker's deduplicated unit ids. */
export function writeChunkBlock(
  vocab: TokenVocabulary,
  agent: readonly number[],
  user: readonly number[],
): number[] {
  const tokens = [vocab.s0];
  for (const unit of agent) tokens.push(unitToken(vocab, unit));
  if (user.length > 0) {
    tokens.push(vocab.s1);
    for (const unit of user) tokens.push(unitToken(vocab, unit));
  }
  return tokens;
}

/**
 * Splits a token sequence into chunk blocks. The sequence must start with [S0]; each [S1]
 * must be followed by at least one user unit and appears at most once per block. Repeated
 * units are kept as they are (deduplication is the writer's job, not a syntax rule).
 */
export function parseChunkBlocks(
  vocab: TokenVocabulary,
  tokens: readonly number[],
  options: ParseChunkBlocksOptions = {},
): ChunkBlock[] {
  const allowText = options.allowText ?? false;
  const blocks: ChunkBlock[] = [];
  let block: ChunkBlock | undefined;
  let inUser = false;
  // Index of an [S1] still waiting for its first user unit, or -1.
  let openS1 = -1;

  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i]!;
    if (!Number.isInteger(token) || token < 0 || token >= vocab.vocabSize) {
      throw malformed(i, token, `outside the vocabulary 0..${vocab.vocabSize - 1}`);
    }
    if (token === vocab.s0) {
      if (openS1 >= 0) throw malformed(openS1, vocab.s1, '[S1] is not followed by a user unit');
      block = allowText ? { agent: [], user: [], agentTokens: [] } : { agent: [], user: [] };
      blocks.push(block);
      inUser = false;
      continue;
    }
    if (block === undefined) {
      throw malformed(i, token, `a chunk block must start with [S0] (token ${vocab.s0})`);
    }
    if (token === vocab.s1) {
      if (inUser) throw malformed(i, token, 'second [S1] in one chunk block');
      inUser = true;
      openS1 = i;
      continue;
    }
    const unit = tokenToUnit(vocab, token);
    if (unit !== undefined) {
      (inUser ? block.user : block.agent).push(unit);
      openS1 = -1;
    } else if (allowText && !inUser) {
      block.agentTokens?.push(token);
    } else {
      throw malformed(i, token, `neither a unit nor a tag${inUser ? ' in the user part' : ''}`);
    }
  }
  if (openS1 >= 0) throw malformed(openS1, vocab.s1, '[S1] is not followed by a user unit');
  return blocks;
}

function malformed(index: number, token: number, why: string): InvalidArgumentError {
  return new InvalidArgumentError(`token ${token} at index ${index}: ${why}`);
}
