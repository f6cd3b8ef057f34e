import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { speak } from './fixture.js';
import { mergeShortGaps, totalDuration } from './segments.js';
import { SileroVad, VAD_WINDOW } from './vad.js';

const RATE = 16000;
const voice = { name: 'en-us', rate: 165, pitch: 50 };

describe('SileroVad (the Silero ONNX model on onnxruntime-node)', () => {
  let vad: SileroVad;
  let speech: Float32Array;
  let signal: Float32Array;
  const at = 0.8;
  beforeAll(async () => {
    vad = await SileroVad.load();
    speech = speak('hello, this is a short test of the voice activity detector', voice);
    // Speech placed at 0.8 s in 1.5 s of silence on both sides, with faint noise throughout.
    signal = new Float32Array(Math.round((at + speech.length / RATE + 1.5) * RATE));
    let seed = 1;
    for (let i = 0; i < signal.length; i++) {
      seed = (seed * 1103515245 + 12345) >>> 0;
      signal[i] = ((seed / 2 ** 32) * 2 - 1) * 0.002;
    }
    signal.set(
      speech.map((x, i) => x + signal[Math.round(at * RATE) + i]!),
      Math.round(at * RATE),
    );
  });
  afterAll(async () => {
    await vad.close();
  });

  it('finds synthetic speech where it was placed', async () => {
    const [segs] = await vad.detect([signal]);
    const ipus = mergeShortGaps(segs!, 0.5);
    expect(ipus).toHaveLength(1);
    const speechEnd = at + speech.length / RATE;
    expect(ipus[0]![0]).toBeGreaterThan(at - 0.15);
    expect(ipus[0]![0]).toBeLessThan(at + 0.2);
    expect(ipus[0]![1]).toBeGreaterThan(speechEnd - 0.25);
    expect(ipus[0]![1]).toBeLessThan(speechEnd + 0.25);
    expect(totalDuration(segs!)).toBeGreaterThan(0.6 * (speech.length / RATE));
  });

  it('finds nothing in silence or faint noise', async () => {
    const noise = signal.slice(0, Math.round(0.7 * RATE));
    const [a, b] = await vad.detect([new Float32Array(3 * RATE), noise]);
    expect(a).toEqual([]);
    expect(b).toEqual([]);
  });

  it('gives each signal of a batch the probabilities it gets alone', async () => {
    const short = signal.slice(0, 20 * VAD_WINDOW + 100);
    const alone = (await vad.probabilities([signal]))[0] as Float32Array;
    const [batched, other] = await vad.probabilities([signal, short]);
    expect(other?.length).toBe(21);
    for (let i = 0; i < alone.length; i++) expect(batched?.[i]).toBeCloseTo(alone[i] as number, 4);
  });
});
