import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type RopeSpec, rotateKey, writeRopeAngles } from './rope.js';

/** Applies RoPE at `position` to a raw head vector (HF rotate_half layout). */
function rotateAt(rope: RopeSpec, raw: number[], position: number): Float32Array {
  const half = rope.invFreq.length;
  const cos = new Float32Array(half);
  const sin = new Float32Array(half);
  writeRopeAngles(rope, position, cos, sin, 0);
  const out = new Float32Array(2 * half);
  for (let j = 0; j < half; j++) {
    out[j] = raw[j]! * cos[j]! - raw[j + half]! * sin[j]!;
    out[j + half] = raw[j + half]! * cos[j]! + raw[j]! * sin[j]!;
  }
  return out;
}

describe('rope', () => {
  const rope: RopeSpec = {
    invFreq: Float64Array.from({ length: 8 }, (_, j) => 10000 ** (-j / 8)),
    attentionScaling: 1,
  };

  it('rotateKey() moves a key rotated at p to the key rotated at p + delta', () => {
    fc.assert(
      fc.property(
        fc.array(fc.float({ min: -2, max: 2, noNaN: true }), { minLength: 16, maxLength: 16 }),
        fc.integer({ min: 0, max: 5000 }),
        fc.integer({ min: 0, max: 100_000 }),
        (raw, p, delta) => {
          const atP = rotateAt(rope, raw, p);
          const moved = new Float32Array(16);
          rotateKey(rope, delta, atP, 0, 1, moved, 0, 1);
          const expected = rotateAt(rope, raw, p + delta);
          for (let i = 0; i < 16; i++) expect(moved[i]).toBeCloseTo(expected[i]!, 3);
        },
      ),
    );
  });

  it('angles stay exact at positions far beyond float32 integer precision', () => {
    const cos = new Float32Array(8);
    const sin = new Float32Array(8);
    const p = 50_000_000; // ~90 days of 62.5 tokens/s
    writeRopeAngles(rope, p, cos, sin, 0);
    expect(cos[0]).toBeCloseTo(Math.cos(p), 6);
    expect(sin[0]).toBeCloseTo(Math.sin(p), 6);
  });

  it('strided keys (the transposed cache layout) rotate element by element', () => {
    const src = new Float32Array(16 * 3).map((_, i) => Math.sin(i));
    const dst = new Float32Array(16 * 5);
    rotateKey(rope, 0, src, 1, 3, dst, 2, 5);
    for (let d = 0; d < 16; d++) expect(dst[2 + d * 5]).toBeCloseTo(src[1 + d * 3]!, 6);
  });
});
