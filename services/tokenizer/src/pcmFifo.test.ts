import { describe, expect, it } from 'vitest';
import { ChunkCutter, SampleFifo } from './pcmFifo.js';

const ramp = (from: number, n: number) => Float32Array.from({ length: n }, (_, i) => from + i);

describe('SampleFifo', () => {
  it('keeps order across wrap-around and growth', () => {
    const fifo = new SampleFifo(16);
    fifo.push(ramp(0, 10));
    const out = new Float32Array(6);
    fifo.shiftInto(out, 6);
    expect([...out]).toEqual([0, 1, 2, 3, 4, 5]);
    fifo.push(ramp(10, 40)); // wraps and grows
    expect(fifo.length).toBe(44);
    const all = new Float32Array(44);
    fifo.shiftInto(all, 44);
    expect([...all]).toEqual([...ramp(6, 44)]);
  });

  it('prepends silence and drops the oldest', () => {
    const fifo = new SampleFifo(16);
    fifo.push([1, 2, 3]);
    fifo.prependSilence(2);
    fifo.drop(1);
    const out = new Float32Array(4);
    fifo.shiftInto(out, 4);
    expect([...out]).toEqual([0, 1, 2, 3]);
    fifo.drop(10);
    expect(fifo.length).toBe(0);
  });
});

describe('ChunkCutter', () => {
  const chunk = 100;
  const cushion = 20;

  it('gives silence before any audio, without counting an underrun', () => {
    const cutter = new ChunkCutter({ chunkSamples: chunk, cushionSamples: cushion });
    const cut = cutter.cut();
    expect(cut.pcm.length).toBe(chunk);
    expect(cut.silent).toBe(true);
    expect(cut.underrunSamples).toBe(0);
    expect(cut.pcm.every((x) => x === 0)).toBe(true);
  });

  it('lines audio up to chunk + cushion when it starts, then cuts exactly one chunk per tick', () => {
    const cutter = new ChunkCutter({ chunkSamples: chunk, cushionSamples: cushion });
    cutter.push(ramp(1, 60));
    const first = cutter.cut();
    // 60 samples of audio: 60 zeros in front (120 - 60), chunk takes 100, 20 stay.
    expect(first.pcm.slice(0, 60).every((x) => x === 0)).toBe(true);
    expect([...first.pcm.slice(60)]).toEqual([...ramp(1, 40)]);
    expect(cutter.fifo.length).toBe(cushion);
    // Steady flow with +-1 frame of wobble never underruns.
    let underruns = 0;
    for (const n of [80, 120, 100, 90, 110, 100]) {
      cutter.push(new Float32Array(n).fill(0.5));
      const cut = cutter.cut();
      expect(cut.pcm.length).toBe(chunk);
      if (cut.underrunSamples > 0) underruns++;
    }
    expect(underruns).toBe(0);
  });

  it('pads the end on underrun and lines up again when audio resumes', () => {
    const cutter = new ChunkCutter({ chunkSamples: chunk, cushionSamples: cushion });
    cutter.push(new Float32Array(120).fill(1));
    cutter.cut();
    cutter.push(new Float32Array(30).fill(1)); // 20 + 30 = 50 < 100
    const short = cutter.cut();
    expect(short.underrunSamples).toBe(50);
    expect(short.pcm.slice(0, 50).every((x) => x === 1)).toBe(true);
    expect(short.pcm.slice(50).every((x) => x === 0)).toBe(true);
    expect(cutter.primed).toBe(false);
    cutter.push(new Float32Array(10).fill(1));
    const resumed = cutter.cut();
    expect(resumed.underrunSamples).toBe(0);
    expect(cutter.fifo.length).toBe(cushion);
  });

  it('drops the oldest samples beyond two chunks (overrun) back to chunk + cushion', () => {
    const cutter = new ChunkCutter({ chunkSamples: chunk, cushionSamples: cushion });
    cutter.push(new Float32Array(120));
    cutter.cut();
    cutter.push(ramp(1, 250)); // 270 > 200
    const cut = cutter.cut();
    expect(cut.overrunSamples).toBe(270 - 120);
    // Newest 120 kept: ramp values 131..250; chunk is the first 100 of them.
    expect(cut.pcm[0]).toBe(131);
    expect(cutter.fifo.length).toBe(cushion);
  });

  it('holds at most four chunks between cuts, the newest', () => {
    const cutter = new ChunkCutter({ chunkSamples: chunk, cushionSamples: cushion });
    cutter.push(ramp(1, 1000));
    expect(cutter.fifo.length).toBe(4 * chunk);
    const cut = cutter.cut(); // not primed yet: lined up to the newest chunk + cushion
    expect(cut.pcm[0]).toBe(1000 - 120 + 1);
  });

  it('rejects a nonsensical geometry', () => {
    expect(() => new ChunkCutter({ chunkSamples: 0, cushionSamples: 0 })).toThrow(RangeError);
    expect(() => new ChunkCutter({ chunkSamples: 10, cushionSamples: 11 })).toThrow(RangeError);
  });
});
