/**
 * The context-window policy of a slot: attention sinks + a sliding window, stored in a ring.
 *
 * A slot holds `capacity = sinks + window + reserve` cache entries. Tokens 0..sinks-1 of the
 * history live in entries 0..sinks-1 for good (attention sinks, as in StreamingLLM); token
 * k >= sinks lives in entry `sinks + (k - sinks) mod (window + reserve)`. A model call with
 * history length L attends to the sinks and to the last `window` tokens; the `reserve` keeps
 * the entries of evicted tokens intact long enough that a rollback of up to `reserve` tokens
 * finds its window still in place. Nothing is ever moved: a long call costs the same per step
 * as a short one once the window is full.
 *
 * Keys are cached already rotated (RoPE) at their absolute positions; attention only sees
 * position differences, so a sliding window is exact. Sinks are re-rotated so that they sit
 * right before the window (`sinkBase`), which keeps every distance within the trained range.
 */
export interface ContextWindowSpec {
  readonly sinks: number;
  readonly window: number;
  readonly reserve: number;
}

export function windowCapacity(spec: ContextWindowSpec): number {
  return spec.sinks + spec.window + spec.reserve;
}

/** Cache entry that holds history token `k`. */
export function entryOf(spec: ContextWindowSpec, k: number): number {
  if (k < spec.sinks) return k;
  return spec.sinks + ((k - spec.sinks) % (spec.window + spec.reserve));
}

/** Position offset the sinks are rotated to for a call with history length L. */
export function sinkBase(spec: ContextWindowSpec, length: number): number {
  return Math.max(0, length - spec.window - spec.sinks);
}

/** First history token of the sliding part visible at history length L. */
export function windowStart(spec: ContextWindowSpec, length: number): number {
  return Math.max(spec.sinks, length - spec.window);
}

/**
 * Calls `visit(startEntry, endEntry)` for each contiguous run of cache entries visible at
 * history length L (at most three runs: the sinks and the ring's two halves).
 */
export function forEachVisibleRun(
  spec: ContextWindowSpec,
  length: number,
  visit: (start: number, end: number) => void,
): void {
  const sinkEnd = Math.min(length, spec.sinks);
  if (sinkEnd > 0) visit(0, sinkEnd);
  const from = windowStart(spec, length);
  if (from >= length) return;
  const ring = spec.window + spec.reserve;
  const a = entryOf(spec, from);
  const count = length - from; // <= window < ring
  const firstLen = Math.min(count, spec.sinks + ring - a);
  visit(a, a + firstLen);
  if (count > firstLen) visit(spec.sinks, spec.sinks + count - firstLen);
}
