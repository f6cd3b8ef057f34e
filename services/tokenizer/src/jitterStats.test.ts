import { describe, expect, it } from 'vitest';
import { InterarrivalJitter } from './jitterStats.js';

describe('InterarrivalJitter (RFC 3550)', () => {
  it('is zero for perfectly paced packets, across a timestamp wrap', () => {
    const j = new InterarrivalJitter(8000);
    let ts = 0xffffffff - 160 * 5;
    for (let i = 0; i < 20; i++) {
      j.update(1000 + i * 20, ts >>> 0);
      ts += 160;
    }
    expect(j.units).toBeCloseTo(0, 9);
  });

  it('follows J += (|D| - J) / 16', () => {
    const j = new InterarrivalJitter(8000);
    j.update(0, 0);
    j.update(30, 160); // 10 ms late: D = 80 units
    expect(j.units).toBeCloseTo(80 / 16, 9);
    j.update(40, 320); // back on time: D = 80
    expect(j.units).toBeCloseTo(80 / 16 + (80 - 80 / 16) / 16, 9);
    expect(j.ms).toBeCloseTo((j.units * 1000) / 8000, 9);
  });

  it('converges near the mean absolute transit difference for alternating delay', () => {
    const j = new InterarrivalJitter(48000);
    for (let i = 0; i < 500; i++) j.update(i * 20 + (i % 2 ? 5 : 0), i * 960);
    expect(j.ms).toBeGreaterThan(4.5);
    expect(j.ms).toBeLessThan(5.01);
    j.reset();
    expect(j.ms).toBe(0);
  });
});
