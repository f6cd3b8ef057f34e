/** A Prometheus histogram read from /metrics text: cumulative bucket counts by upper bound. */
export interface HistogramSnapshot {
  readonly buckets: readonly { readonly le: number; readonly count: number }[];
  readonly count: number;
  readonly sum: number;
}

/** Sums every series of histogram `name` (all label sets) in a /metrics text. */
export function readHistogram(text: string, name: string): HistogramSnapshot {
  const byLe = new Map<number, number>();
  let count = 0;
  let sum = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const value = Number(m[3]);
    if (m[1] === `${name}_bucket`) {
      const le = /le="([^"]+)"/.exec(m[2] ?? '')?.[1];
      if (le === undefined) continue;
      const bound = le === '+Inf' ? Number.POSITIVE_INFINITY : Number(le);
      byLe.set(bound, (byLe.get(bound) ?? 0) + value);
    } else if (m[1] === `${name}_count`) count += value;
    else if (m[1] === `${name}_sum`) sum += value;
  }
  const buckets = [...byLe.entries()].sort((a, b) => a[0] - b[0]).map(([le, c]) => ({ le, count: c }));
  return { buckets, count, sum };
}

/** after - before, bucket by bucket (the observations made between two scrapes). */
export function histogramDelta(after: HistogramSnapshot, before: HistogramSnapshot): HistogramSnapshot {
  const prev = new Map(before.buckets.map((b) => [b.le, b.count]));
  return {
    buckets: after.buckets.map((b) => ({ le: b.le, count: b.count - (prev.get(b.le) ?? 0) })),
    count: after.count - before.count,
    sum: after.sum - before.sum,
  };
}

/** The q-quantile, interpolated linearly inside its bucket (as Prometheus' histogram_quantile). */
export function histogramQuantile(h: HistogramSnapshot, q: number): number {
  if (h.count <= 0) return Number.NaN;
  const rank = q * h.count;
  let prevLe = 0;
  let prevCount = 0;
  for (const b of h.buckets) {
    if (b.count >= rank) {
      if (!Number.isFinite(b.le)) return prevLe;
      const inBucket = b.count - prevCount;
      return inBucket <= 0 ? b.le : prevLe + ((b.le - prevLe) * (rank - prevCount)) / inBucket;
    }
    prevLe = b.le;
    prevCount = b.count;
  }
  return prevLe;
}
