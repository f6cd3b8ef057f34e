// Picks the next token from one row of logits, restricted to the ids the sequence format
// allows at this point (units, tags, or text). Runs per generated token of every call, so it
// touches only the allowed ids and reuses scratch buffers instead of allocating.
import { InvalidArgumentError } from './errors.js';
import type { Rng } from './rng.js';

export interface SamplingOptions {
  /** 0 = greedy (argmax); otherwise logits are divided by it before the softmax. */
  temperature: number;
  /** Keep only the k most likely tokens; 0 = off. */
  topK: number;
  /** Keep the smallest set of most likely tokens whose mass reaches topP; 1 = off. */
  topP: number;
  /**
   * When set, the timing decision (one of the filter's tags, or a unit at all) is drawn first,
   * at this temperature and without top-k/top-p; temperature, top-k and top-p then pick only
   * which unit. Unset: one draw over all allowed ids. Why: a speech onset is the sum of many
   * small unit probabilities, so temperature < 1 and top-p, meant to sharpen what is said,
   * mostly cut when anything is said (a model that starts speaking with probability 0.2 at a
   * turn end starts with ~0.04 at temperature 0.8, top-p 0.95). 1 keeps the model's timing.
   */
  timingTemperature?: number;
}

export interface TokenFilter {
  /** Allowed token ids as half-open [start, end) ranges, in any order, not overlapping. */
  ranges: readonly (readonly [number, number])[];
  /** Ids excluded even inside the ranges (meant to be a handful, e.g. the unit just emitted). */
  banned?: readonly number[];
  /** The unit ids [start, end): the allowed ids outside it are tags (see timingTemperature). */
  units?: readonly [number, number];
}

/** Throws InvalidArgumentError unless the options are usable; returns a frozen copy of them. */
export function validateSamplingOptions(options: SamplingOptions): Readonly<SamplingOptions> {
  checkOptions(options);
  const { temperature, topK, topP, timingTemperature } = options;
  return Object.freeze(
    timingTemperature === undefined
      ? { temperature, topK, topP }
      : { temperature, topK, topP, timingTemperature },
  );
}

function checkOptions({ temperature, topK, topP, timingTemperature }: SamplingOptions): void {
  if (!Number.isFinite(temperature) || temperature < 0) {
    throw new InvalidArgumentError(`temperature must be a finite number >= 0, got ${temperature}`);
  }
  if (timingTemperature !== undefined && !(Number.isFinite(timingTemperature) && timingTemperature >= 0)) {
    throw new InvalidArgumentError(
      `timingTemperature must be a finite number >= 0, got ${timingTemperature}`,
    );
  }
  if (!Number.isSafeInteger(topK) || topK < 0) {
    throw new InvalidArgumentError(`topK must be an integer >= 0 (0 = off), got ${topK}`);
  }
  if (!(topP > 0 && topP <= 1)) {
    throw new InvalidArgumentError(`topP must be in (0, 1] (1 = off), got ${topP}`);
  }
}

// Scratch buffers shared by all calls (sampleToken is synchronous, so never used twice at
// once); they only grow. Candidates are the allowed ids of the current row, in ascending id,
// so a candidate's position orders ties exactly as its id does.
let rangeOrder = new Int32Array(8);
let candidateIds = new Int32Array(1024);
let candidateLogits = new Float64Array(1024);
let candidateWeights = new Float64Array(1024);
// Candidate positions: the top-k heap, then the candidates still in question for top-p.
let order = new Int32Array(1024);
// Probability mass per logit bin while narrowing the top-p cutoff.
const NUCLEUS_BINS = 256;
const binMass = new Float64Array(NUCLEUS_BINS);

const NO_BANNED: readonly number[] = [];

/**
 * Samples a token id from `logits[offset .. offset + vocabSize)` among the ids the filter
 * allows. Temperature 0 is greedy (ties go to the lowest id, rng untouched). Otherwise:
 * softmax(logit / temperature) over the allowed ids, then top-k, then top-p on what top-k
 * kept (renormalised, as Hugging Face applies them in sequence), then one rng.next() draw.
 * Tokens are ranked by logit, ties by lower id; the draw walks the kept tokens by id.
 */
export function sampleToken(
  logits: Float32Array,
  offset: number,
  vocabSize: number,
  filter: TokenFilter,
  options: SamplingOptions,
  rng: Rng,
): number {
  checkRow(logits, offset, vocabSize);
  checkOptions(options);
  let count = collectCandidates(logits, offset, vocabSize, filter);
  if (count === 0) {
    throw new InvalidArgumentError('no token is allowed: the filter ranges are empty or fully banned');
  }
  if (options.timingTemperature !== undefined && filter.units !== undefined) {
    const tag = drawTiming(count, filter.units, options.timingTemperature, rng);
    if (tag !== undefined) return tag;
    count = keepUnits(count, filter.units);
  }

  const best = bestCandidate(count);
  if (options.temperature === 0) return candidateIds[best]!;

  const u = rng.next();
  const total = fillWeights(count, candidateLogits[best]!, options.temperature);

  // The kept tokens are those ranked at or above `cutoff` (a position; -1 keeps all).
  let cutoff = -1;
  const topP = options.topP;
  if (options.topK > 0 && options.topK < count) {
    const topK = options.topK;
    selectTopK(count, topK);
    cutoff = order[0]!;
    if (topP < 1) {
      let kept = 0;
      for (let i = 0; i < topK; i++) {
        const position = order[i]!;
        kept += candidateWeights[position]!;
      }
      cutoff = nucleusCutoff(topK, topP * kept);
    }
  } else if (topP < 1) {
    // The nucleus lies among candidates with probability >= (1 - topP) / count: the others
    // together hold less than 1 - topP. On a large vocabulary this drops the long tail early.
    const floor = ((1 - topP) / count) * total;
    let size = 0;
    for (let i = 0; i < count; i++) {
      if (candidateWeights[i]! >= floor) order[size++] = i;
    }
    cutoff = nucleusCutoff(size, topP * total);
  }
  return drawKept(u, count, cutoff);
}

/**
 * The timing decision: one of the tags among the candidates, or "a unit" (their summed mass),
 * drawn at `temperature` (0: the most likely; ties go to the lowest id, a unit's id being its
 * best unit's). Returns the tag, or undefined for a unit. Draws once from rng unless greedy.
 */
function drawTiming(
  count: number,
  units: readonly [number, number],
  temperature: number,
  rng: Rng,
): number | undefined {
  const [start, end] = units;
  const isUnit = (i: number): boolean => candidateIds[i]! >= start && candidateIds[i]! < end;
  let hasTag = false;
  for (let i = 0; i < count && !hasTag; i++) hasTag = !isUnit(i);
  if (!hasTag) return undefined;
  const best = bestCandidate(count);
  if (temperature === 0) return isUnit(best) ? undefined : candidateIds[best]!;
  const total = fillWeights(count, candidateLogits[best]!, temperature);
  let unitMass = 0;
  for (let i = 0; i < count; i++) if (isUnit(i)) unitMass += candidateWeights[i]!;
  // Walk the tags by id, the units' mass last.
  const target = rng.next() * total;
  let cumulative = 0;
  for (let i = 0; i < count; i++) {
    if (isUnit(i) || candidateWeights[i] === 0) continue;
    cumulative += candidateWeights[i]!;
    if (cumulative > target) return candidateIds[i]!;
  }
  return unitMass > 0 ? undefined : lastTag(count, isUnit);
}

/** The position of the most likely candidate; candidates ascend by id, so ties go to the lowest id. */
function bestCandidate(count: number): number {
  let best = 0;
  for (let i = 1; i < count; i++) {
    if (candidateLogits[i]! > candidateLogits[best]!) best = i;
  }
  return best;
}

/** candidateWeights = exp((logit - maxLogit) / temperature) over the candidates; returns their sum. */
function fillWeights(count: number, maxLogit: number, temperature: number): number {
  let total = 0;
  for (let i = 0; i < count; i++) {
    const logit = candidateLogits[i]!;
    // `logit === maxLogit` keeps +-Infinity maxima at weight 1 instead of NaN.
    const weight = logit === maxLogit ? 1 : Math.exp((logit - maxLogit) / temperature);
    candidateWeights[i] = weight;
    total += weight;
  }
  return total;
}

function lastTag(count: number, isUnit: (i: number) => boolean): number {
  for (let i = count - 1; i >= 0; i--) if (!isUnit(i) && candidateWeights[i]! > 0) return candidateIds[i]!;
  return candidateIds[count - 1]!;
}

/** Compacts the candidates to the units (ascending id kept); returns their count. */
function keepUnits(count: number, [start, end]: readonly [number, number]): number {
  let kept = 0;
  for (let i = 0; i < count; i++) {
    const id = candidateIds[i]!;
    if (id < start || id >= end) continue;
    candidateIds[kept] = id;
    candidateLogits[kept] = candidateLogits[i]!;
    kept++;
  }
  return kept;
}

function checkRow(logits: Float32Array, offset: number, vocabSize: number): void {
  if (!Number.isSafeInteger(vocabSize) || vocabSize < 1) {
    throw new InvalidArgumentError(`vocabSize must be a positive integer, got ${vocabSize}`);
  }
  if (!Number.isSafeInteger(offset) || offset < 0 || offset + vocabSize > logits.length) {
    throw new InvalidArgumentError(
      `logits row at offset ${offset} of size ${vocabSize} does not fit in ${logits.length} logits`,
    );
  }
}

/** Copies the allowed, non-banned ids and their logits into the scratch arrays; returns their count. */
function collectCandidates(
  logits: Float32Array,
  offset: number,
  vocabSize: number,
  filter: TokenFilter,
): number {
  const ranges = filter.ranges;
  const banned = filter.banned ?? NO_BANNED;
  sortRanges(ranges, vocabSize);
  let capacity = 0;
  for (const [start, end] of ranges) capacity += end - start;
  ensureCandidateCapacity(capacity);

  let count = 0;
  for (let r = 0; r < ranges.length; r++) {
    const rangeIndex = rangeOrder[r]!;
    const [start, end] = ranges[rangeIndex]!;
    for (let id = start; id < end; id++) {
      if (banned.length > 0 && banned.includes(id)) continue;
      const logit = logits[offset + id]!;
      if (Number.isNaN(logit)) {
        throw new InvalidArgumentError(`logit of allowed token ${id} is NaN`);
      }
      candidateIds[count] = id;
      candidateLogits[count] = logit;
      count++;
    }
  }
  return count;
}

/** Validates the ranges and fills rangeOrder with their indices by ascending start. */
function sortRanges(ranges: TokenFilter['ranges'], vocabSize: number): void {
  if (rangeOrder.length < ranges.length) rangeOrder = new Int32Array(grow(ranges.length));
  for (let r = 0; r < ranges.length; r++) {
    const range = ranges[r]!;
    const [start, end] = range;
    if (
      !Number.isSafeInteger(start) ||
      !Number.isSafeInteger(end) ||
      start < 0 ||
      start > end ||
      end > vocabSize
    ) {
      throw new InvalidArgumentError(
        `token range [${start}, ${end}) must satisfy 0 <= start <= end <= vocabSize ${vocabSize}`,
      );
    }
    // Insertion sort: filters hold a handful of ranges, usually already in order.
    let j = r;
    for (; j > 0; j--) {
      const before = rangeOrder[j - 1]!;
      if (ranges[before]![0] <= start) break;
      rangeOrder[j] = before;
    }
    rangeOrder[j] = r;
  }
  let previousEnd = 0;
  for (let r = 0; r < ranges.length; r++) {
    const rangeIndex = rangeOrder[r]!;
    const [start, end] = ranges[rangeIndex]!;
    if (start === end) continue;
    // Overlaps would count an id twice and double its probability.
    if (start < previousEnd) {
      throw new InvalidArgumentError(`token range [${start}, ${end}) overlaps another range`);
    }
    previousEnd = end;
  }
}

function ensureCandidateCapacity(capacity: number): void {
  if (candidateIds.length >= capacity) return;
  const size = grow(capacity);
  candidateIds = new Int32Array(size);
  candidateLogits = new Float64Array(size);
  candidateWeights = new Float64Array(size);
  order = new Int32Array(size);
}

function grow(capacity: number): number {
  return 2 ** Math.ceil(Math.log2(capacity));
}

/** Draws with `u` among the candidates ranked at or above `cutoff` (-1: all), walking by id. */
function drawKept(u: number, count: number, cutoff: number): number {
  // Ranked at or above the cutoff: a larger logit, or the same logit and a lower or equal id.
  const cutoffLogit = cutoff < 0 ? Number.NEGATIVE_INFINITY : candidateLogits[cutoff]!;
  const lastTied = cutoff < 0 ? count : cutoff;
  let mass = 0;
  for (let i = 0; i < count; i++) {
    const logit = candidateLogits[i]!;
    if (logit > cutoffLogit || (logit === cutoffLogit && i <= lastTied)) mass += candidateWeights[i]!;
  }
  const target = u * mass;
  let cumulative = 0;
  let lastPositive = 0;
  for (let i = 0; i < count; i++) {
    const logit = candidateLogits[i]!;
    const weight = candidateWeights[i]!;
    if (weight === 0 || logit < cutoffLogit || (logit === cutoffLogit && i > lastTied)) continue;
    cumulative += weight;
    lastPositive = i;
    if (cumulative > target) return candidateIds[i]!;
  }
  // Rounding left the target at the very end: the last kept token that has any weight.
  return candidateIds[lastPositive]!;
}

/**
 * Position of the last token of the nucleus among the candidates order[0..size): walking
 * them best first, the first at which the mass reaches `goal`. Instead of sorting them all,
 * it buckets their logits into bins, keeps only the bin where the mass crosses the goal, and
 * repeats; only a small (or all-equal) remainder is sorted.
 */
function nucleusCutoff(size: number, goal: number): number {
  let remaining = goal;
  for (let round = 0; size > 32 && round < 8; round++) {
    let high = Number.NEGATIVE_INFINITY;
    let low = Number.POSITIVE_INFINITY;
    for (let i = 0; i < size; i++) {
      const position = order[i]!;
      const logit = candidateLogits[position]!;
      if (logit > high) high = logit;
      if (logit < low) low = logit;
    }
    const span = high - low;
    if (!(span > 0 && Number.isFinite(span))) break;
    const scale = NUCLEUS_BINS / span;
    const binOf = (position: number): number =>
      Math.min(NUCLEUS_BINS - 1, Math.floor((high - candidateLogits[position]!) * scale));

    binMass.fill(0);
    for (let i = 0; i < size; i++) {
      const position = order[i]!;
      binMass[binOf(position)]! += candidateWeights[position]!;
    }
    let before = 0;
    let bin = 0;
    while (bin < NUCLEUS_BINS && before + binMass[bin]! < remaining) before += binMass[bin++]!;
    if (bin === NUCLEUS_BINS) return worstOf(size); // rounding: all of them are needed

    let inBin = 0;
    for (let i = 0; i < size; i++) {
      const position = order[i]!;
      if (binOf(position) === bin) order[inBin++] = position;
    }
    size = inBin;
    remaining -= before;
  }
  order.subarray(0, size).sort(compareBestFirst);
  let mass = 0;
  for (let i = 0; i < size; i++) {
    const position = order[i]!;
    mass += candidateWeights[position]!;
    if (mass >= remaining) return position;
  }
  return order[size - 1]!;
}

/** The lowest-ranked of order[0..size). */
function worstOf(size: number): number {
  let worst = order[0]!;
  for (let i = 1; i < size; i++) {
    const position = order[i]!;
    if (compareBestFirst(position, worst) > 0) worst = position;
  }
  return worst;
}

/** Higher logit first; equal logits by lower id (candidate positions ascend with id). */
function compareBestFirst(a: number, b: number): number {
  const la = candidateLogits[a]!;
  const lb = candidateLogits[b]!;
  return la > lb ? -1 : la < lb ? 1 : a - b;
}

/** Puts the k best candidates into order[0..k) (unsorted) with a min-heap on quality. */
function selectTopK(count: number, k: number): void {
  for (let i = 0; i < k; i++) order[i] = i;
  for (let i = (k >> 1) - 1; i >= 0; i--) siftDown(i, k);
  for (let i = k; i < count; i++) {
    // A later candidate with an equal logit has a higher id, so only a strictly larger logit wins.
    const worst = order[0]!;
    if (candidateLogits[i]! > candidateLogits[worst]!) {
      order[0] = i;
      siftDown(0, k);
    }
  }
}

function siftDown(index: number, size: number): void {
  let i = index;
  for (;;) {
    const left = 2 * i + 1;
    if (left >= size) return;
    const right = left + 1;
    const worst = right < size && compareBestFirst(order[right]!, order[left]!) > 0 ? right : left;
    if (compareBestFirst(order[worst]!, order[i]!) <= 0) return;
    const swap = order[i]!;
    order[i] = order[worst]!;
    order[worst] = swap;
    i = worst;
  }
}
