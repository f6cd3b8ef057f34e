// The speech-unit runtimes used offline by the evaluation: streaming tokenisation of whole
// signals and streaming vocoding of whole unit sequences, chunk by chunk as the services do,
// batched across signals.
import { SpeechTokenizer, Vocoder } from '@duet/speech';

export interface Codec {
  readonly tokenizer: SpeechTokenizer;
  readonly vocoder: Vocoder;
  readonly unitsPerChunk: number;
  readonly chunkSamples: number;
  /** The unit the tokenizer gives silence. */
  readonly silenceUnit: number;
  readonly unitCount: number;
  close(): Promise<void>;
}

export async function loadCodec(
  paths: { units: string; vocoder: string },
  unitsPerChunk: number,
): Promise<Codec> {
  const tokenizer = await SpeechTokenizer.load({ manifestPath: paths.units, unitsPerChunk });
  const probe = await tokenizer.tokenize([
    { stream: tokenizer.openStream(), pcm: new Float32Array(tokenizer.chunkSamples) },
  ]);
  const first = probe[0];
  if (first instanceof Error || first === undefined) throw first ?? new Error('tokenizer gave no units');
  const silenceUnit = first[first.length - 1]!;
  const vocoder = await Vocoder.load({ manifestPath: paths.vocoder, unitsPerChunk, silenceUnit });
  if (vocoder.manifest.unitCount !== tokenizer.manifest.unitCount)
    throw new Error(
      `the vocoder has ${vocoder.manifest.unitCount} units, the tokenizer ${tokenizer.manifest.unitCount}`,
    );
  return {
    tokenizer,
    vocoder,
    unitsPerChunk,
    chunkSamples: tokenizer.chunkSamples,
    silenceUnit,
    unitCount: tokenizer.manifest.unitCount,
    async close() {
      await tokenizer.close();
      await vocoder.close();
    },
  };
}

/** Units of each signal, chunk by chunk (U per chunk; the last chunk zero-padded). */
export async function tokenizeSignals(codec: Codec, signals: readonly Float32Array[]): Promise<number[][][]> {
  const streams = signals.map(() => codec.tokenizer.openStream());
  const chunks = signals.map((s) => Math.ceil(s.length / codec.chunkSamples));
  const out: number[][][] = signals.map(() => []);
  const max = Math.max(0, ...chunks);
  for (let k = 0; k < max; k++) {
    const items = [];
    const owners: number[] = [];
    for (const [i, s] of signals.entries()) {
      if (k >= chunks[i]!) continue;
      const pcm = new Float32Array(codec.chunkSamples);
      pcm.set(s.subarray(k * codec.chunkSamples, Math.min(s.length, (k + 1) * codec.chunkSamples)));
      items.push({ stream: streams[i]!, pcm });
      owners.push(i);
    }
    const results = await codec.tokenizer.tokenize(items);
    for (const [j, r] of results.entries()) {
      if (r instanceof Error) throw r;
      const owner = owners[j] as number;
      out[owner]!.push(r);
    }
  }
  for (const s of streams) s.close();
  return out;
}

/** Audio of each unit sequence (chunks of U expanded units), vocoded chunk by chunk. */
export async function vocodeChunks(
  codec: Codec,
  sequences: readonly (readonly number[][])[],
): Promise<Float32Array[]> {
  const streams = sequences.map(() => codec.vocoder.openStream());
  const out = sequences.map((seq) => new Float32Array(seq.length * codec.vocoder.chunkSamples));
  const max = Math.max(0, ...sequences.map((s) => s.length));
  for (let k = 0; k < max; k++) {
    const items = [];
    const owners: number[] = [];
    for (const [i, seq] of sequences.entries()) {
      const units = seq[k];
      if (!units) continue;
      items.push({ stream: streams[i]!, units });
      owners.push(i);
    }
    const results = await codec.vocoder.vocode(items);
    for (const [j, r] of results.entries()) {
      if (r instanceof Error) throw r;
      const owner = owners[j] as number;
      out[owner]!.set(r, k * codec.vocoder.chunkSamples);
    }
  }
  for (const s of streams) s.close();
  return out;
}
