// Where speech units and the [S0]/[S1] tags live among a model's token ids
// (the manifest's `tokens` block plus the model's vocabulary size).
import { InvalidArgumentError } from './errors.js';

/** Unit `u` (0 <= u < unitCount) is token `unitBase + u`; `s0`/`s1` are the [S0]/[S1] tags. */
export interface TokenVocabulary {
  readonly unitBase: number;
  readonly unitCount: number;
  readonly s0: number;
  readonly s1: number;
  readonly vocabSize: number;
}

/** Validates a vocabulary layout and returns a frozen copy (the spec itself is left untouched). */
export function createVocabulary(spec: TokenVocabulary): TokenVocabulary {
  const { unitBase, unitCount, s0, s1, vocabSize } = spec;
  for (const [key, value] of Object.entries({ unitBase, unitCount, s0, s1, vocabSize })) {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new InvalidArgumentError(`vocabulary ${key} must be a non-negative integer, got ${value}`);
    }
  }
  if (unitCount < 1) {
    throw new InvalidArgumentError('vocabulary unitCount must be at least 1, got 0');
  }
  if (unitBase + unitCount > vocabSize) {
    throw new InvalidArgumentError(
      `vocabulary units ${unitBase}..${unitBase + unitCount - 1} do not fit in vocabSize ${vocabSize}`,
    );
  }
  for (const [key, tag] of [
    ['s0', s0],
    ['s1', s1],
  ] as const) {
    if (tag >= vocabSize) {
      throw new InvalidArgumentError(`vocabulary ${key} ${tag} is outside vocabSize ${vocabSize}`);
    }
    if (tag >= unitBase && tag < unitBase + unitCount) {
      throw new InvalidArgumentError(
        `vocabulary ${key} ${tag} lies inside the unit range ${unitBase}..${unitBase + unitCount - 1}`,
      );
    }
  }
  if (s0 === s1) {
    throw new InvalidArgumentError(`vocabulary s0 and s1 must differ, both are ${s0}`);
  }
  return Object.freeze({ unitBase, unitCount, s0, s1, vocabSize });
}

/** Whether `unit` is a unit id of this vocabulary (0..unitCount-1). */
export function isUnitId(vocab: TokenVocabulary, unit: number): boolean {
  return Number.isInteger(unit) && unit >= 0 && unit < vocab.unitCount;
}

/** Token id of unit `unit`; throws if `unit` is not a unit id of this vocabulary. */
export function unitToken(vocab: TokenVocabulary, unit: number): number {
  if (!isUnitId(vocab, unit)) {
    throw new InvalidArgumentError(`unit ${unit} is outside 0..${vocab.unitCount - 1}`);
  }
  return vocab.unitBase + unit;
}

/** Unit id of `token`, or undefined when the token is not a unit (a tag, a text token, junk). */
export function tokenToUnit(vocab: TokenVocabulary, token: number): number | undefined {
  return isUnitToken(vocab, token) ? token - vocab.unitBase : undefined;
}

export function isUnitToken(vocab: TokenVocabulary, token: number): boolean {
  return Number.isInteger(token) && token >= vocab.unitBase && token < vocab.unitBase + vocab.unitCount;
}

/** True for [S0] and [S1]. */
export function isTag(vocab: TokenVocabulary, token: number): boolean {
  return token === vocab.s0 || token === vocab.s1;
}
