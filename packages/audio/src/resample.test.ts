import { describe, expect, it } from 'vitest';
import { InvalidArgumentError, InvalidStateError } from './errors.js';
import { createResampler, idleResamplers, prewarmResamplers, type SampleRate } from './resample.js';

const RATES: SampleRate[] = [8000, 16000, 24000, 48000];

function sine(rate: number, hz: number, seconds: number, amplitude = 0.5): Float32Array {
  return Float32Array.from(
    { length: Math.round(rate * seconds) },
    (_, i) => amplitude * Math.sin((2 * Math.PI * hz * i) / rate),
  );
}

/** Frequency from rising zero crossings, skipping the filter's start-up. */
function zeroCrossingHz(samples: Float32Array, rate: number): number {
  const crossings: number[] = [];
  for (let i = 1; i < samples.length; i++) {
    if (samples[i - 1]! < 0 && samples[i]! >= 0) {
      crossings.push(i - 1 + samples[i - 1]! / (samples[i - 1]! - samples[i]!));
    }
  }
  const first = crossings[2]!;
  const last = crossings[crossings.length - 1]!;
  return ((crossings.length - 3) * rate) / (last - first);
}

function rms(samples: Float32Array, from = 0, to = samples.length): number {
  let sum = 0;
  for (let i = from; i < to; i++) sum += samples[i]! ** 2;
  return Math.sqrt(sum / (to - from));
}

function concat(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let pos = 0;
  for (const part of parts) {
    out.set(part, pos);
    pos += part.length;
  }
  return out;
}

describe('resample', () => {
  it('keeps a sine frequency and amplitude and the length ratio, every rate pair', async () => {
    for (const inputRate of RATES) {
      for (const outputRate of RATES) {
        const resampler = await createResampler({ inputRate, outputRate });
        const input = sine(inputRate, 440, 0.5);
        const output = resampler.process(input);
        resampler.close();
        const expectedLength = (input.length * outputRate) / inputRate;
        // libsamplerate holds back the filter's delay (~20 input samples) until more input comes.
        expect(output.length).toBeLessThanOrEqual(expectedLength);
        expect(output.length).toBeGreaterThan(expectedLength - 32 * Math.max(1, outputRate / inputRate));
        expect(zeroCrossingHz(output, outputRate)).toBeCloseTo(440, 0);
        const settled = Math.round(outputRate * 0.05);
        expect(rms(output, settled)).toBeCloseTo(0.5 / Math.SQRT2, 2);
      }
    }
  });

  it('chunked processing equals one-shot processing (no clicks at chunk boundaries)', async () => {
    const input = sine(48000, 300, 1, 0.8);
    const oneShot = await createResampler({ inputRate: 48000, outputRate: 16000 });
    const whole = oneShot.process(input);
    const chunked = await createResampler({ inputRate: 48000, outputRate: 16000 });
    const parts: Float32Array[] = [];
    // Uneven chunk sizes, including 20 ms Opus frames and odd lengths.
    const sizes = [960, 1, 333, 960, 4801, 7, 960];
    for (let pos = 0, k = 0; pos < input.length; k++) {
      const size = sizes[k % sizes.length]!;
      parts.push(chunked.process(input.subarray(pos, pos + size)));
      pos += size;
    }
    const joined = concat(parts);
    expect(Math.abs(joined.length - whole.length)).toBeLessThanOrEqual(2);
    const n = Math.min(joined.length, whole.length);
    let maxDiff = 0;
    for (let i = 0; i < n; i++) maxDiff = Math.max(maxDiff, Math.abs(joined[i]! - whole[i]!));
    expect(maxDiff).toBeLessThan(1e-3);
    // No click: the sample-to-sample step never exceeds what a 300 Hz sine allows.
    const maxStep = (2 * Math.PI * 300 * 0.8) / 16000;
    for (let i = 1; i < joined.length; i++) {
      expect(Math.abs(joined[i]! - joined[i - 1]!)).toBeLessThan(maxStep * 1.1);
    }
  });

  it('tracks the ratio over a long stream of 20 ms chunks', async () => {
    const resampler = await createResampler({ inputRate: 8000, outputRate: 24000 });
    let produced = 0;
    for (let k = 0; k < 250; k++) produced += resampler.process(sine(8000, 200, 0.02)).length;
    expect(Math.abs(produced - 250 * 480)).toBeLessThan(64);
  });

  it('passes through (copying) when the rates are equal', async () => {
    const resampler = await createResampler({ inputRate: 16000, outputRate: 16000 });
    const input = sine(16000, 100, 0.01);
    const output = resampler.process(input);
    expect(output).toEqual(input);
    expect(output).not.toBe(input);
  });

  it('rejects unsupported rates and use after close()', async () => {
    await expect(createResampler({ inputRate: 44100 as SampleRate, outputRate: 16000 })).rejects.toThrow(
      InvalidArgumentError,
    );
    const resampler = await createResampler({ inputRate: 48000, outputRate: 16000, quality: 'medium' });
    resampler.close();
    resampler.close();
    expect(() => resampler.process(new Float32Array(10))).toThrow(InvalidStateError);
  });

  it('reuses a closed converter with nothing of its previous stream, at new rates', async () => {
    const x = sine(8000, 300, 0.5, 0.3);
    const reference = await createResampler({ inputRate: 8000, outputRate: 16000 });
    const expected = concat([reference.process(x.subarray(0, 1600)), reference.process(x.subarray(1600))]);
    // A different stream at other rates and quality, loud noise, then closed: kept for reuse.
    const previous = await createResampler({ inputRate: 48000, outputRate: 8000, quality: 'medium' });
    previous.process(Float32Array.from({ length: 4800 }, () => Math.random() * 2 - 1));
    previous.close();
    const idleBefore = idleResamplers();
    expect(idleBefore).toBeGreaterThan(0);
    const reused = await createResampler({ inputRate: 8000, outputRate: 16000 });
    expect(idleResamplers()).toBe(idleBefore - 1);
    const got = concat([reused.process(x.subarray(0, 1600)), reused.process(x.subarray(1600))]);
    expect(got.length).toBe(expected.length);
    expect(Array.from(got)).toEqual(Array.from(expected));
    reference.close();
    reused.close();
  });

  it('prewarms converters so that a call does not wait for a compile', async () => {
    await prewarmResamplers(3);
    expect(idleResamplers()).toBeGreaterThanOrEqual(3);
  });
});
