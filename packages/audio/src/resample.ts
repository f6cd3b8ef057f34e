// Streaming sample-rate conversion of mono float audio through libsamplerate (Erik de Castro
// Lopo's Secret Rabbit Code) compiled for JavaScript by @alexanderolsen/libsamplerate-js. Each
// Resampler owns one libsamplerate state and feeds it with the `full` API (end_of_input = 0), so
// consecutive chunks are filtered as one continuous signal: no clicks at chunk boundaries, and
// the output of many small calls equals the output of one big call.

import libsamplerate from '@alexanderolsen/libsamplerate-js';
import { InvalidArgumentError, InvalidStateError } from './errors.js';

/** The rates the media plane uses: G.711 (8k), the unit model (16k), the vocoder (24k), Opus (48k). */
export type SampleRate = 8000 | 16000 | 24000 | 48000;
const SAMPLE_RATES: readonly number[] = [8000, 16000, 24000, 48000];

/** libsamplerate converters, fastest last-to-first; `fastest` is plenty for speech (see README). */
export type ResamplerQuality = 'best' | 'medium' | 'fastest';

export interface ResamplerOptions {
  readonly inputRate: SampleRate;
  readonly outputRate: SampleRate;
  /** Default 'fastest' (SRC_SINC_FASTEST: ~97 dB SNR, 80% bandwidth; ~5 ms CPU per second of 48k audio). */
  readonly quality?: ResamplerQuality;
}

export interface Resampler {
  readonly inputRate: SampleRate;
  readonly outputRate: SampleRate;
  /**
   * Resamples the next chunk of the stream. The output may be a few samples shorter or longer
   * than chunk.length x ratio (the filter's delay is filled on the first calls); over a stream the
   * total tracks the ratio. Returns a new array the caller owns.
   */
  process(chunk: Float32Array): Float32Array;
  /** Frees the converter. Idempotent; process() after close() throws InvalidStateError. */
  close(): void;
}

const CONVERTER: Record<ResamplerQuality, 0 | 1 | 2> = { best: 0, medium: 1, fastest: 2 };
// libsamplerate-js copies through a fixed transfer buffer; larger inputs are split by it into
// chunks it then resamples correctly, but we keep calls below it to get one allocation per call.
const MAX_INPUT_PER_CALL = 8192;

class PassThrough implements Resampler {
  #closed = false;
  constructor(
    readonly inputRate: SampleRate,
    readonly outputRate: SampleRate,
  ) {}
  process(chunk: Float32Array): Float32Array {
    if (this.#closed) throw new InvalidStateError('Resampler is closed');
    return chunk.slice();
  }
  close(): void {
    this.#closed = true;
  }
}

type Src = Awaited<ReturnType<typeof libsamplerate.create>>;

// libsamplerate-js instantiates its WebAssembly module anew on every create(): ~25 MB of memory
// and 10-60 ms on this machine (200+ ms under load), which a call's setup should not wait for.
// So a closed converter is kept (up to IDLE_MAX, a worker's worth of calls) and re-initialised
// for the next resampler: setting its rates runs src_delete + src_new in the module, so nothing
// of the previous stream is carried over.
const IDLE_MAX = 16;
const idle: Src[] = [];

function reuse(converterType: 0 | 1 | 2, inputRate: SampleRate, outputRate: SampleRate): Src | undefined {
  const src = idle.pop();
  if (src === undefined) return undefined;
  src._converterType = converterType;
  src._inputSampleRate = inputRate;
  src.outputSampleRate = outputRate; // the setter re-initialises with all three
  src.ratio = outputRate / inputRate; // the library's setters leave the ratio as it was
  return src;
}

function release(src: Src): void {
  if (idle.length < IDLE_MAX) idle.push(src);
  else src.destroy();
}

/** Converters ready for reuse (for tests and warm-up checks). */
export function idleResamplers(): number {
  return idle.length;
}

/**
 * Compiles `count` converters ahead of the first calls (a service calls this while starting), so
 * that opening a call does not wait for libsamplerate's WebAssembly compile.
 */
export async function prewarmResamplers(count: number): Promise<void> {
  const need = Math.min(IDLE_MAX, count) - idle.length;
  for (let i = 0; i < need; i++) release(await libsamplerate.create(1, 8000, 16000, { converterType: 2 }));
}

class SrcResampler implements Resampler {
  #src: Src | undefined;
  readonly #ratio: number;
  constructor(
    readonly inputRate: SampleRate,
    readonly outputRate: SampleRate,
    src: Src,
  ) {
    this.#src = src;
    this.#ratio = outputRate / inputRate;
  }

  process(chunk: Float32Array): Float32Array {
    const src = this.#src;
    if (src === undefined) throw new InvalidStateError('Resampler is closed');
    if (chunk.length === 0) return new Float32Array(0);
    const parts: Float32Array[] = [];
    let total = 0;
    for (let offset = 0; offset < chunk.length; offset += MAX_INPUT_PER_CALL) {
      const piece = chunk.subarray(offset, offset + MAX_INPUT_PER_CALL);
      // +16: libsamplerate may emit a few samples of its delay line in one call.
      const out = new Float32Array(Math.ceil(piece.length * this.#ratio) + 16);
      const written = { frames: 0 };
      src.full(piece, out, written);
      parts.push(out.subarray(0, written.frames));
      total += written.frames;
    }
    if (parts.length === 1) return parts[0]!.slice();
    const joined = new Float32Array(total);
    let pos = 0;
    for (const part of parts) {
      joined.set(part, pos);
      pos += part.length;
    }
    return joined;
  }

  close(): void {
    if (this.#src !== undefined) release(this.#src);
    this.#src = undefined;
  }
}

/**
 * Creates a streaming mono resampler. Async because a new converter compiles libsamplerate's
 * WebAssembly; a closed one is reused instead when there is one. Equal rates give a pass-through.
 */
export async function createResampler(options: ResamplerOptions): Promise<Resampler> {
  const { inputRate, outputRate, quality = 'fastest' } = options;
  for (const [name, rate] of [
    ['inputRate', inputRate],
    ['outputRate', outputRate],
  ] as const) {
    if (!SAMPLE_RATES.includes(rate)) {
      throw new InvalidArgumentError(`${name} ${rate} is not one of ${SAMPLE_RATES.join(', ')}`);
    }
  }
  const converterType = CONVERTER[quality];
  if (converterType === undefined)
    throw new InvalidArgumentError(`unknown resampler quality ${String(quality)}`);
  if (inputRate === outputRate) return new PassThrough(inputRate, outputRate);
  const src =
    reuse(converterType, inputRate, outputRate) ??
    (await libsamplerate.create(1, inputRate, outputRate, { converterType }));
  return new SrcResampler(inputRate, outputRate, src);
}
