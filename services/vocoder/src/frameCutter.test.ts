import { describe, expect, it } from 'vitest';
import { FrameCutter } from './frameCutter.js';

const ramp = (n: number, from = 0) => Float32Array.from({ length: n }, (_, i) => from + i);

describe('FrameCutter', () => {
  it('cuts a chunk into whole frames on the chunk grid', () => {
    const cutter = new FrameCutter(160);
    const frames = cutter.push(16, ramp(1280), 1280);
    expect(frames.map((f) => f.frameIndex)).toEqual([16, 17, 18, 19, 20, 21, 22, 23]);
    expect(frames[1]!.samples[0]).toBe(160);
  });

  it('pads the first chunk of a run that the resampler delay made short, in front', () => {
    const cutter = new FrameCutter(160);
    const frames = cutter.push(8, ramp(1261, 1), 1280);
    expect(frames.length).toBe(8);
    expect(frames[0]!.samples[18]).toBe(0);
    expect(frames[0]!.samples[19]).toBe(1);
  });

  it('carries a partial frame into the next chunk of the same run', () => {
    const cutter = new FrameCutter(160);
    expect(cutter.push(0, ramp(1290), 1280).length).toBe(8);
    const next = cutter.push(8, ramp(1280, 1290), 1280);
    expect(next.map((f) => f.frameIndex)).toEqual([8, 9, 10, 11, 12, 13, 14, 15]);
    expect(next[0]!.samples[0]).toBe(1280);
    expect(cutter.nextFrame).toBe(16);
  });

  it('restarts at the new chunk after a gap, dropping the old remainder', () => {
    const cutter = new FrameCutter(160);
    cutter.push(0, ramp(1290), 1280);
    const frames = cutter.push(24, ramp(1280, 5000), 1280);
    expect(frames[0]!.frameIndex).toBe(24);
    expect(frames[0]!.samples[0]).toBe(5000);
    expect(frames.length).toBe(8);
  });
});
