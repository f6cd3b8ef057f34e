/**
 * A fixed-length window over the most recent values of a stream (audio samples or unit ids),
 * oldest first; it starts filled with `fill` (silence, or a silence unit) so the first chunk
 * of a call sees the same left context length as every later one, and batches stay rectangular.
 */
export class History<T extends Float32Array | Int32Array> {
  private readonly buf: T;

  constructor(buf: T, fill: number) {
    this.buf = buf;
    this.buf.fill(fill);
  }

  get length(): number {
    return this.buf.length;
  }

  /** Writes the window into `out` at `offset`. */
  copyTo(out: { set(a: ArrayLike<number>, offset: number): void }, offset: number): void {
    out.set(this.buf, offset);
  }

  /** Appends `values`, dropping the oldest. */
  push(values: ArrayLike<number>): void {
    const n = values.length;
    const len = this.buf.length;
    if (n >= len) {
      for (let i = 0; i < len; i++) this.buf[i] = values[n - len + i]!;
      return;
    }
    this.buf.copyWithin(0, n);
    for (let i = 0; i < n; i++) this.buf[len - n + i] = values[i]!;
  }
}
