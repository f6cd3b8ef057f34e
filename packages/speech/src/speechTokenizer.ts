import * as ort from 'onnxruntime-node';
import { ClosedError, InvalidArgumentError } from './errors.js';
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
  private readonly session: ort.InferenceSession;
  private closed = false;

  static async load(options: SpeechTokenizerOptions): Promise<SpeechTokenizer> {
    const u = options.unitsPerChunk;
    if (!Number.isSafeInteger(u) || u < 1)
      throw new InvalidArgumentError(`unitsPerChunk must be a positive integer, got ${u}`);
    const { manifest, session } = await openSpeechModel(
      options.manifestPath,
      'duet.units',
      { input: ['audio', 'float32'], output: ['units', 'int64'] },
      options,
    );
    const left = options.leftContextSamples ?? manifest.leftContextSamples;
    if (!Number.isSafeInteger(left) || left < 0 || left % manifest.samplesPerUnit !== 0) {
      await session.release();
      throw new InvalidArgumentError(
        `leftContextSamples (${left}) must be a non-negative multiple of ${manifest.samplesPerUnit}`,
      );
    }
    return new SpeechTokenizer(session, manifest, u, left);
  }

  private constructor(
    session: ort.InferenceSession,
    manifest: UnitsManifest,
    unitsPerChunk: number,
    left: number,
  ) {
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
        const audio = new Float32Array(ok.length * width);
        for (const [b, it] of ok.entries()) {
          it.stream.history.copyTo(audio, b * width);
          audio.set(it.pcm, b * width + this.leftContextSamples);
        }
        const out = await this.session.run({ audio: new ort.Tensor('float32', audio, [ok.length, width]) });
        const units = out.units!.data as BigInt64Array;
        const perRow = width / this.manifest.samplesPerUnit;
        return ok.map((it, b) => {
          it.stream.history.push(it.pcm);
          const row: number[] = [];
          for (let j = perRow - this.unitsPerChunk; j < perRow; j++) row.push(Number(units[b * perRow + j]));
          return row;
        });
      },
    );
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
