/**
 * Rotary position embedding angles, computed on the host in float64 so that positions can
 * grow without bound (a call of hours) without losing precision; the graph only multiplies.
 */
export interface RopeSpec {
  /** One inverse frequency per rotated pair (head_dim / 2), rope scaling already applied. */
  readonly invFreq: Float64Array;
  readonly attentionScaling: number;
}

/** Writes cos/sin for `position` into `cos`/`sin` at `offset` (invFreq.length values each). */
export function writeRopeAngles(
  rope: RopeSpec,
  position: number,
  cos: Float32Array,
  sin: Float32Array,
  offset: number,
): void {
  const { invFreq, attentionScaling } = rope;
  for (let j = 0; j < invFreq.length; j++) {
    const a = position * invFreq[j]!;
    cos[offset + j] = Math.cos(a) * attentionScaling;
    sin[offset + j] = Math.sin(a) * attentionScaling;
  }
}

/**
 * Rotates a cached key (HF rotate_half layout, stored transposed: element d at
 * `src[srcOffset + d * srcStride]`) by `delta` positions into `dst`. Used to move attention sinks
 * next to the sliding window; always rotates from the key as first produced so that errors do
 * not accumulate.
 */
export function rotateKey(
  rope: RopeSpec,
  delta: number,
  src: Float32Array,
  srcOffset: number,
  srcStride: number,
  dst: Float32Array,
  dstOffset: number,
  dstStride: number,
): void {
  const half = rope.invFreq.length;
  for (let j = 0; j < half; j++) {
    const a = delta * rope.invFreq[j]!;
    const c = Math.cos(a);
    const s = Math.sin(a);
    const x1 = src[srcOffset + j * srcStride]!;
    const x2 = src[srcOffset + (j + half) * srcStride]!;
    dst[dstOffset + j * dstStride] = x1 * c - x2 * s;
    dst[dstOffset + (j + half) * dstStride] = x2 * c + x1 * s;
  }
}
