import { describe, expect, it } from 'vitest';
import { histogramDelta, histogramQuantile, readHistogram } from './promHistogram.js';

const text = `# HELP x_ms a histogram
# TYPE x_ms histogram
x_ms_bucket{le="10",service="a"} 50
x_ms_bucket{le="20",service="a"} 90
x_ms_bucket{le="+Inf",service="a"} 100
x_ms_sum{service="a"} 1200
x_ms_count{service="a"} 100
x_ms_bucket{le="10",service="b"} 0
x_ms_bucket{le="20",service="b"} 0
x_ms_bucket{le="+Inf",service="b"} 0
x_ms_sum{service="b"} 0
x_ms_count{service="b"} 0
`;

describe('prometheus histograms', () => {
  it('reads and sums series, interpolates quantiles like histogram_quantile', () => {
    const h = readHistogram(text, 'x_ms');
    expect(h.count).toBe(100);
    expect(h.sum).toBe(1200);
    expect(histogramQuantile(h, 0.5)).toBe(10);
    expect(histogramQuantile(h, 0.7)).toBe(15);
    expect(histogramQuantile(h, 0.99)).toBe(20);
  });
  it('subtracts an earlier scrape', () => {
    const before = readHistogram(text, 'x_ms');
    const after = readHistogram(
      text
        .replace('le="10",service="a"} 50', 'le="10",service="a"} 60')
        .replace(/_count\{service="a"\} 100/, '_count{service="a"} 110')
        .replace('le="20",service="a"} 90', 'le="20",service="a"} 100')
        .replace('le="+Inf",service="a"} 100', 'le="+Inf",service="a"} 110'),
      'x_ms',
    );
    const d = histogramDelta(after, before);
    expect(d.count).toBe(10);
    expect(histogramQuantile(d, 0.5)).toBe(5);
  });
  it('is NaN without observations', () => {
    expect(histogramQuantile(readHistogram('', 'x'), 0.5)).toBeNaN();
  });
});
