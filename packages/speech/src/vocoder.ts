import * as ort from 'onnxruntime-node';
import { crossFade } from './crossFade.js';
import { ClosedError, InvalidArgumentError, SpeechModelError } from './errors.js';
import { History } from './history.js';
import type { VocoderManifest } from './manifest.js';
import { openSpeechModel, runPerItem } from './session.js';

export interface VocoderOptions {
  readonly manifestPath: string;
  /** Units per chunk (U = chunk ms / 40). */
  readonly unitsPerChunk: number;
  /** Samples over which consecutive chunks are cross-faded (default 10 ms); also the output delay. */
  readonly crossFadeSamples?: number;
  /** Remove the model's DC offset with a ~13 Hz high-pass per stream (default true). */
  readonly dcBlock?: boolean;
  /** Unit that fills the left context at the start of a call (default 0). */
  readonly silenceUnit?: number;
  readonly intraOpThreads?: number;
  readonly skipSha256?: boolean;
  /**
   * Run the manifest's chunk model when it has one (default true): the same audio, without
   * synthesising the left context (about half the work per chunk for the default vocoder).
   */
  readonly useChunkModel?: boolean;
}

/** One call's unit history and the provisional tail of its last chunk. */
export class VocoderStream {
  closed = false;
  /** State of the stream's DC blocker (last input and output sample). */
  dcIn = 0;
  dcOut = 0;
  constructor(
    readonly history: History<Int32Array>,
    readonly tail: Float32Array,
  ) {}
  close(): void {
    this.closed = true;
  }
}

export interface VocodeItem {
  readonly stream: VocoderStream;
  /** The chunk's expanded units: exactly U unit ids. */
  readonly units: readonly number[];
}

/**
 * The streaming unit vocoder (`duet.vocoder/1`): each call's chunk of U units, with the left
 * context its stream keeps, becomes exactly one chunk of audio. The last `crossFadeSamples`
 * of each chunk are provisional (computed without the next units): they are held back and
 * cross-faded with the same samples recomputed at the next chunk, so edges never click; the
 * output is therefore delayed by `crossFadeSamples`. Chunks of several calls run as one batch;
 * a bad chunk is refused on its own.
 */
export class Vocoder {
  readonly manifest: VocoderManifest;
  readonly unitsPerChunk: number;
  readonly chunkSamples: number;
  readonly leftContextUnits: number;
  readonly crossFadeSamples: number;
  private readonly silenceUnit: number;
  private readonly dcBlock: boolean;
  /** Samples at the start of each row that the model does not return (its chunk model's trim). */
  readonly trimmedSamples: number;
  private readonly session: ort.InferenceSession;
  private closed = false;

  static async load(options: VocoderOptions): Promise<Vocoder> {
    const u = options.unitsPerChunk;
    if (!Number.isSafeInteger(u) || u < 1)
      throw new InvalidArgumentError(`unitsPerChunk must be a positive integer, got ${u}`);
    const { manifest, session, chunkModel } = await openSpeechModel(
      options.manifestPath,
      'duet.vocoder',
      { input: ['units', 'int64'], output: ['audio', 'float32'] },
      options,
    );
    const fade = options.crossFadeSamples ?? Math.round(manifest.sampleRate / 100);
    if (!Number.isSafeInteger(fade) || fade < 0 || fade > u * manifest.samplesPerUnit) {
      await session.release();
      throw new InvalidArgumentError(`crossFadeSamples (${fade}) must be between 0 and one chunk`);
    }
    const silence = options.silenceUnit ?? 0;
    if (!Number.isSafeInteger(silence) || silence < 0 || silence >= manifest.unitCount) {
      await session.release();
      throw new InvalidArgumentError(
        `silenceUnit (${silence}) is not a unit id (0..${manifest.unitCount - 1})`,
      );
    }
    const trimmed = chunkModel ? manifest.chunkModel!.trimmedSamples : 0;
    return new Vocoder(session, manifest, u, fade, silence, options.dcBlock ?? true, trimmed);
  }

  private constructor(
    session: ort.InferenceSession,
    manifest: VocoderManifest,
    unitsPerChunk: number,
    fade: number,
    silenceUnit: number,
    dcBlock: boolean,
    trimmedSamples: number,
  ) {
    this.dcBlock = dcBlock;
    this.session = session;
    this.manifest = manifest;
    this.unitsPerChunk = unitsPerChunk;
    this.chunkSamples = unitsPerChunk * manifest.samplesPerUnit;
    this.crossFadeSamples = fade;
    this.silenceUnit = silenceUnit;
    this.trimmedSamples = trimmedSamples;
    // The recomputed copy of the previous tail lies in the left context's audio, which starts at
    // `trimmedSamples` (0 for the one-shot model): keep enough context for it.
    this.leftContextUnits = Math.max(
      manifest.leftContextUnits,
      Math.ceil((fade + trimmedSamples) / manifest.samplesPerUnit),
    );
  }

  /** A new call's stream; its left context starts as the silence unit. */
  openStream(): VocoderStream {
    return new VocoderStream(
      new History(new Int32Array(this.leftContextUnits), this.silenceUnit),
      new Float32Array(this.crossFadeSamples),
    );
  }

  /** Synthesises one chunk per item: `chunkSamples` of audio each, or the error for that item. */
  async vocode(items: readonly VocodeItem[]): Promise<(Float32Array | Error)[]> {
    if (this.closed) throw new ClosedError('the vocoder is closed');
    return runPerItem(
      items,
      (it) => this.check(it),
      async (ok) => {
        const n = this.leftContextUnits + this.unitsPerChunk;
        const ids = new BigInt64Array(ok.length * n);
        const scratch = new Int32Array(n);
        for (const [b, it] of ok.entries()) {
          it.stream.history.copyTo(scratch, 0);
          scratch.set(it.units, this.leftContextUnits);
          for (let j = 0; j < n; j++) ids[b * n + j] = BigInt(scratch[j]!);
        }
        const out = await this.session.run({ units: new ort.Tensor('int64', ids, [ok.length, n]) });
        const audio = out.audio!.data as Float32Array;
        const x = this.crossFadeSamples;
        const row = n * this.manifest.samplesPerUnit - this.trimmedSamples;
        if (audio.length !== ok.length * row) {
          throw new SpeechModelError(
            `the model returned ${audio.length / ok.length} samples per row for ${n} units, the manifest implies ${row}`,
            this.manifest.model,
          );
        }
        // This chunk's first sample within a row.
        const start = this.leftContextUnits * this.manifest.samplesPerUnit - this.trimmedSamples;
        return ok.map((it, b) => {
          const base = b * row;
          const chunk = new Float32Array(this.chunkSamples);
          // [start - x, start): the previous chunk's provisional tail, now with its right context.
          crossFade(it.stream.tail, audio.subarray(base + start - x, base + start), chunk.subarray(0, x));
          chunk.set(audio.subarray(base + start, base + row - x), x);
          it.stream.tail.set(audio.subarray(base + row - x, base + row));
          it.stream.history.push(it.units);
          if (this.dcBlock) removeDc(it.stream, chunk);
          return chunk;
        });
      },
    );
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.session.release();
  }

  private check(it: VocodeItem): Error | undefined {
    if (it.stream.closed) return new ClosedError('the stream is closed');
    if (it.units.length !== this.unitsPerChunk) {
      return new InvalidArgumentError(
        `a chunk must have ${this.unitsPerChunk} units, got ${it.units.length}`,
      );
    }
    for (const [j, u] of it.units.entries()) {
      if (!Number.isInteger(u) || u < 0 || u >= this.manifest.unitCount) {
        return new InvalidArgumentError(
          `unit ${j} (${u}) is not a unit id (0..${this.manifest.unitCount - 1})`,
        );
      }
    }
    return undefined;
  }
}

/** Pole of the DC blocker: a ~13 Hz high-pass at 16 kHz, far below speech. */
const DC_POLE = 0.995;

/**
 * One-pole DC blocker, `y[n] = x[n] - x[n-1] + R y[n-1]`, run per stream across chunks: small
 * vocoders leave a constant offset, which is not silence (and clicks when a call starts or ends).
 */
function removeDc(stream: VocoderStream, samples: Float32Array): void {
  let x1 = stream.dcIn;
  let y1 = stream.dcOut;
  for (let i = 0; i < samples.length; i++) {
    const x = samples[i]!;
    const y = x - x1 + DC_POLE * y1;
    samples[i] = y;
    x1 = x;
    y1 = y;
  }
  stream.dcIn = x1;
  stream.dcOut = y1;
}
