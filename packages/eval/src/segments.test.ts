import { describe, expect, it } from 'vitest';
import {
  clipSegments,
  coveredSeconds,
  mergeShortGaps,
  normalizeSegments,
  segmentSpeech,
  totalDuration,
} from './segments.js';

const F = 0.032; // Silero's frame
/** Probabilities from a pattern: '#' speech (0.9), '.' silence (0.05), '-' in between (0.4). */
const probs = (pattern: string) => [...pattern].map((c) => (c === '#' ? 0.9 : c === '-' ? 0.4 : 0.05));
const round = (segs: readonly (readonly [number, number])[]) =>
  segs.map(([a, b]) => [Math.round(a * 1000) / 1000, Math.round(b * 1000) / 1000]);

describe('segmentSpeech()', () => {
  it('finds one segment per run of speech frames (no padding)', () => {
    const segs = segmentSpeech(probs('....#####..........####.....'), F, { padS: 0, minSilenceS: 0.2 });
    expect(round(segs)).toEqual([
      [0.128, 0.288],
      [0.608, 0.736],
    ]);
  });

  it('keeps speech through a short silence (below minSilenceS)', () => {
    const segs = segmentSpeech(probs('##########....##########......................'), F, {
      padS: 0,
      minSilenceS: 0.2,
    });
    expect(segs).toHaveLength(1);
    expect(segs[0]![1]).toBeCloseTo(24 * F);
  });

  it('applies hysteresis: frames between the two thresholds neither start nor end speech', () => {
    // '-' (0.4) is below the start threshold 0.5 but above the end threshold 0.35.
    expect(segmentSpeech(probs('..----------..'), F, { padS: 0 })).toEqual([]);
    const segs = segmentSpeech(probs('..####----------####..........'), F, { padS: 0, minSilenceS: 0.1 });
    expect(segs).toHaveLength(1);
    expect(segs[0]![0]).toBeCloseTo(2 * F);
    expect(segs[0]![1]).toBeCloseTo(20 * F);
  });

  it('drops segments shorter than minSpeechS', () => {
    expect(segmentSpeech(probs('....##........'), F, { padS: 0, minSpeechS: 0.1 })).toEqual([]);
    expect(segmentSpeech(probs('....####......'), F, { padS: 0, minSpeechS: 0.1 })).toHaveLength(1);
  });

  it('closes a segment still open at the end of the signal', () => {
    const segs = segmentSpeech(probs('......######'), F, { padS: 0, durationS: 12 * F });
    expect(segs[0]![1]).toBeCloseTo(12 * F);
  });

  it('pads segments, clamps to the signal and merges what the padding joins', () => {
    const segs = segmentSpeech(probs('####.........####'), F, {
      padS: 0.2,
      minSilenceS: 0.1,
      durationS: 17 * F,
    });
    expect(segs).toHaveLength(1);
    expect(segs[0]![0]).toBe(0);
    expect(segs[0]![1]).toBeCloseTo(17 * F);
  });

  it('refuses a bad frame length or inverted thresholds', () => {
    expect(() => segmentSpeech([0.9], 0)).toThrow(RangeError);
    expect(() => segmentSpeech([0.9], F, { threshold: 0.3, negThreshold: 0.6 })).toThrow(RangeError);
  });
});

describe('segment helpers', () => {
  it('normalizeSegments() sorts and merges overlapping segments and drops empty ones', () => {
    expect(
      normalizeSegments([
        [3, 4],
        [1, 2],
        [1.5, 2.5],
        [5, 5],
      ]),
    ).toEqual([
      [1, 2.5],
      [3, 4],
    ]);
  });

  it('mergeShortGaps() joins segments separated by less than the gap', () => {
    expect(
      mergeShortGaps(
        [
          [0, 1],
          [1.1, 2],
          [2.5, 3],
        ],
        0.2,
      ),
    ).toEqual([
      [0, 2],
      [2.5, 3],
    ]);
  });

  it('clipSegments() keeps the part inside the window, relative to its start', () => {
    expect(
      clipSegments(
        [
          [0, 1],
          [2, 4],
          [5, 6],
        ],
        3,
        5.5,
      ),
    ).toEqual([
      [0, 1],
      [2, 2.5],
    ]);
  });

  it('totalDuration() and coveredSeconds()', () => {
    const s = [
      [0, 1],
      [2, 4],
    ] as const;
    expect(totalDuration(s)).toBe(3);
    expect(coveredSeconds(s, 0.5, 3)).toBe(1.5);
  });
});
