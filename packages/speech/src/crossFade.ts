/**
 * Equal-power cross-fade of `from` into `to` over their common length, written into `out`.
 * The vocoder uses it to join the provisional tail of one chunk (computed without right
 * context) with the same samples recomputed once the next chunk is known, so chunk edges
 * never click.
 */
export function crossFade(from: Float32Array, to: Float32Array, out: Float32Array): void {
  const n = Math.min(from.length, to.length, out.length);
  for (let i = 0; i < n; i++) {
    const t = (i + 0.5) / n;
    const fadeIn = Math.sin((t * Math.PI) / 2);
    const fadeOut = Math.cos((t * Math.PI) / 2);
    out[i] = from[i]! * fadeOut + to[i]! * fadeIn;
  }
}
