import * as ort from 'onnxruntime-node';
import { ClosedError, InvalidArgumentError, SpeechModelError } from './errors.js';
import { History } from './history.js';
import type { UnitsManifest } from './manifest.js';
import { openSpeechModel, runPerItem } from './session.js';

export interface SpeechTokenizerOptions {
  readonly manifestPath: string;
  /** Units per chunk (U = chunk ms / 40). */
  readonly unitsPerChunk: number;
  /** Left context fed with each chunk; defaults to the manifest's measured figure. */
  readonly leftContextSamples?: number;
  readonly intraOpThreads?: number;
  readonly skipSha256?: boolean;
  /**
   * Run the manifest's chunk model when it has one and the left context allows (default true):
   * the same units, without tokenising the left context.
   */
  readonly useChunkModel?: boolean;
}

/** One call's audio history. */
export class TokenizerStream {
  closed = false;
  constructor(readonly history: History<Float32Array>) {}
  close(): void {
    this.closed = true;
  }
}

export interface TokenizeItem {
  readonly stream: TokenizerStream;
  /** The chunk's PCM: exactly `chunkSamples` float samples at the model's rate, in [-1, 1]. */
  readonly pcm: Float32Array;
}

/**
 * The streaming speech-units tokenizer (`duet.units/1`): each call's chunk, with the left
 * context its stream keeps, becomes exactly U units. Chunks of several calls that are ready
 * together run as one batch. A bad chunk is refused on its own; the others go through.
 */
export class SpeechTokenizer {
  readonly manifest: UnitsManifest;
  readonly unitsPerChunk: number;
  readonly chunkSamples: number;
  readonly leftContextSamples: number;
  /** Units at the start of each row that the model does not return (its chunk model's trim). */
  readonly trimmedUnits: number;
  private readonly session: ort.InferenceSession;
  /** A free input buffer (taken while a batch runs, so overlapping calls never share one). */
  private input: Float32Array | undefined;
  private closed = false;

  static async load(options: SpeechTokenizerOptions): Promise<SpeechTokenizer> {
    const u = options.unitsPerChunk;
    if (!Number.isSafeInteger(u) || u < 1)
      throw new InvalidArgumentError(`unitsPerChunk must be a positive integer, got ${u}`);
    const leftFor = (m: UnitsManifest) => options.leftContextSamples ?? m.leftContextSamples;
    const { manifest, session, chunkModel } = await openSpeechModel(
      options.manifestPath,
      'duet.units',
      { input: ['audio', 'float32'], output: ['units', 'int64'] },
      {
        ...options,
        useChunkModel: (m) =>
          (options.useChunkModel ?? true) && leftFor(m) >= (m.chunkModel?.minLeftContextSamples ?? 0),
      },
    );
    const left = leftFor(manifest);
    if (!Number.isSafeInteger(left) || left < 0 || left % manifest.samplesPerUnit !== 0) {
      await session.release();
      throw new InvalidArgumentError(
        `leftContextSamples (${left}) must be a non-negative multiple of ${manifest.samplesPerUnit}`,
      );
    }
    return new SpeechTokenizer(
      session,
      manifest,
      u,
      left,
      chunkModel ? manifest.chunkModel!.trimmedUnits : 0,
    );
  }

  private constructor(
    session: ort.InferenceSession,
    manifest: UnitsManifest,
    unitsPerChunk: number,
    left: number,
    trimmedUnits: number,
  ) {
    this.trimmedUnits = trimmedUnits;
    this.session = session;
    this.manifest = manifest;
    this.unitsPerChunk = unitsPerChunk;
    this.chunkSamples = unitsPerChunk * manifest.samplesPerUnit;
    this.leftContextSamples = left;
  }

  /** A new call's stream; its left context starts as silence. */
  openStream(): TokenizerStream {
    return new TokenizerStream(new History(new Float32Array(this.leftContextSamples), 0));
  }

  /** Tokenizes one chunk per item; each result is U unit ids, or the error for that item. */
  async tokenize(items: readonly TokenizeItem[]): Promise<(number[] | Error)[]> {
    if (this.closed) throw new ClosedError('the tokenizer is closed');
    return runPerItem(
      items,
      (it) => this.check(it),
      async (ok) => {
        const width = this.leftContextSamples + this.chunkSamples;
        const audio = this.takeInput(ok.length * width);
        for (const [b, it] of ok.entries()) {
          it.stream.history.copyTo(audio, b * width);
          audio.set(it.pcm, b * width + this.leftContextSamples);
        }
        let out: ort.InferenceSession.OnnxValueMapType;
        try {
          out = await this.session.run({ audio: new ort.Tensor('float32', audio, [ok.length, width]) });
        } finally {
          this.returnInput(audio);
        }
        const units = out.units!.data as BigInt64Array;
        const perRow = width / this.manifest.samplesPerUnit - this.trimmedUnits;
        if (units.length !== ok.length * perRow) {
          throw new SpeechModelError(
            `the model returned ${units.length / ok.length} units per row for ${width} samples, the manifest implies ${perRow}`,
            this.manifest.model,
          );
        }
        return ok.map((it, b) => {
          it.stream.history.push(it.pcm);
          const row: number[] = [];
          for (let j = perRow - this.unitsPerChunk; j < perRow; j++) row.push(Number(units[b * perRow + j]));
          return row;
        });
      },
    );
  }

  /**
   * The batch's input buffer: one is kept and reused, because a fresh one per tick (megabytes at
   * a few hundred calls) makes the garbage collector pause the tick at its worst moments.
   */
  private takeInput(length: number): Float32Array {
    const kept = this.input;
    if (kept && kept.length >= length) {
      this.input = undefined;
      return kept.subarray(0, length);
    }
    return new Float32Array(length);
  }

  private returnInput(buf: Float32Array): void {
    if (!this.input || this.input.length < buf.buffer.byteLength / 4) {
      this.input = new Float32Array(buf.buffer as ArrayBuffer);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.session.release();
  }

  private check(it: TokenizeItem): Error | undefined {
    if (it.stream.closed) return new ClosedError('the stream is closed');
    if (!(it.pcm instanceof Float32Array) || it.pcm.length !== this.chunkSamples) {
      return new InvalidArgumentError(
        `a chunk must be ${this.chunkSamples} samples at ${this.manifest.sampleRate} Hz, got ${it.pcm?.length ?? 'none'}`,
      );
    }
    for (let i = 0; i < it.pcm.length; i++) {
      if (!Number.isFinite(it.pcm[i]!))
        return new InvalidArgumentError(`sample ${i} of the chunk is not finite`);
    }
    return undefined;
  }
}
