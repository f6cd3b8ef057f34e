// Speech segments as [startS, endS) pairs in seconds, sorted and disjoint, and the pure rules
// that turn frame-wise speech probabilities into them (Silero's get_speech_timestamps rules).

export type Segment = readonly [startS: number, endS: number];

export interface SegmentOptions {
  /** A frame at or above this probability starts (or keeps) speech (default 0.5). */
  readonly threshold?: number;
  /** Speech ends only below this (hysteresis; default threshold - 0.15, at least 0.01). */
  readonly negThreshold?: number;
  /** Segments shorter than this are dropped (default 0.1 s). */
  readonly minSpeechS?: number;
  /** Silence shorter than this does not end a segment (default 0.2 s: dGSLM's IPU rule). */
  readonly minSilenceS?: number;
  /** Padding added on both sides, clamped to the signal and merged (default 0.03 s). */
  readonly padS?: number;
  /** Length of the signal (default: frames x frame length). */
  readonly durationS?: number;
}

/** Speech segments from per-frame speech probabilities (frame i spans [i*frameS, (i+1)*frameS)). */
export function segmentSpeech(
  probabilities: ArrayLike<number>,
  frameS: number,
  options: SegmentOptions = {},
): Segment[] {
  if (!(frameS > 0)) throw new RangeError(`frameS must be positive, got ${frameS}`);
  const threshold = options.threshold ?? 0.5;
  const neg = options.negThreshold ?? Math.max(threshold - 0.15, 0.01);
  if (!(neg <= threshold))
    throw new RangeError(`negThreshold (${neg}) must not exceed threshold (${threshold})`);
  const minSpeech = options.minSpeechS ?? 0.1;
  const minSilence = options.minSilenceS ?? 0.2;
  const pad = options.padS ?? 0.03;
  const duration = options.durationS ?? probabilities.length * frameS;
  const raw: [number, number][] = [];
  let start: number | undefined;
  let tempEnd: number | undefined;
  const close = (end: number) => {
    if (start !== undefined && end - start >= minSpeech - 1e-9) raw.push([start, end]);
    start = undefined;
    tempEnd = undefined;
  };
  for (let i = 0; i < probabilities.length; i++) {
    const p = probabilities[i]!;
    const t = i * frameS;
    if (p >= threshold) {
      tempEnd = undefined;
      if (start === undefined) start = t;
    } else if (p < neg && start !== undefined) {
      tempEnd ??= t;
      if ((i + 1) * frameS - tempEnd >= minSilence - 1e-9) close(tempEnd);
    }
  }
  if (start !== undefined) close(tempEnd ?? Math.min(duration, probabilities.length * frameS));
  const padded: [number, number][] = [];
  for (const [a, b] of raw) {
    const s = Math.max(0, a - pad);
    const e = Math.min(duration, b + pad);
    const last = padded[padded.length - 1];
    if (last && s <= last[1]) last[1] = Math.max(last[1], e);
    else padded.push([s, e]);
  }
  return padded;
}

/** Sorted, disjoint segments from any list (overlapping or touching ones merged). */
export function normalizeSegments(segments: readonly Segment[]): Segment[] {
  const sorted = segments.filter(([a, b]) => b > a).sort((x, y) => x[0] - y[0]);
  const out: [number, number][] = [];
  for (const [a, b] of sorted) {
    const last = out[out.length - 1];
    if (last && a <= last[1]) last[1] = Math.max(last[1], b);
    else out.push([a, b]);
  }
  return out;
}

/** Merges segments separated by less than `minGapS`. */
export function mergeShortGaps(segments: readonly Segment[], minGapS: number): Segment[] {
  const out: [number, number][] = [];
  for (const [a, b] of normalizeSegments(segments)) {
    const last = out[out.length - 1];
    if (last && a - last[1] < minGapS) last[1] = b;
    else out.push([a, b]);
  }
  return out;
}

/** The parts of the segments inside [fromS, toS), shifted so that fromS becomes 0. */
export function clipSegments(segments: readonly Segment[], fromS: number, toS: number): Segment[] {
  const out: Segment[] = [];
  for (const [a, b] of segments) {
    const s = Math.max(a, fromS);
    const e = Math.min(b, toS);
    if (e > s) out.push([s - fromS, e - fromS]);
  }
  return out;
}

/** Total duration of (disjoint) segments. */
export function totalDuration(segments: readonly Segment[]): number {
  let sum = 0;
  for (const [a, b] of segments) sum += b - a;
  return sum;
}

/** Seconds of [fromS, toS) covered by the (disjoint) segments. */
export function coveredSeconds(segments: readonly Segment[], fromS: number, toS: number): number {
  return totalDuration(clipSegments(segments, fromS, toS));
}
