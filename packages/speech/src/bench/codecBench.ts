/**
 * `pnpm bench:codec`: the default speech models on held-out speech (a fresh espeak-ng corpus
 * with a seed the recipe never trained on):
 *   (a) streaming vs offline unit agreement of the tokenizer (chunks of U units vs one pass);
 *   (b) resynthesis: unit agreement of tokenize(vocode(units)) with units, and the
 *       mel-cepstral distortion of the vocoded audio against the original;
 *   (c) speed on one core: the most concurrent real-time streams whose batched chunk has a
 *       p99 latency <= 20 ms when every stream's chunk is ready at the same instant (the
 *       conservative figure), for the tokenizer and for the vocoder; and the streams per core
 *       when chunks arrive at staggered phases (batches of that size back to back in a chunk).
 * It prints a table and, last, one JSON line. Resynthesised WAVs go to .cache/bench-codec/.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { decodeWav, encodeWav } from '@duet/audio';
import { DEFAULT_UNITS_MODEL, DEFAULT_VOCODER_MODEL, pinToOneCore, repoRoot } from '@duet/engine/tiny';
import * as ort from 'onnxruntime-node';
import { SpeechTokenizer } from '../speechTokenizer.js';
import { Vocoder } from '../vocoder.js';
import { melCepstralDistortion } from './melCepstrum.js';

const U = 4; // 160 ms chunks
const BUDGET_MS = 20;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 200);
const WARMUP_ROUNDS = 10;
const OUT = join(repoRoot, '.cache/bench-codec');
const log = (msg: string) => process.stderr.write(`[bench:codec] ${msg}\n`);

// One core (onnxruntime runs on the JS thread with 1 intra-op thread).
pinToOneCore();

async function heldOutSpeech(): Promise<Float32Array[]> {
  const dir = join(OUT, 'speech-48');
  if (!existsSync(join(dir, 'index.jsonl'))) {
    log('synthesising held-out speech (espeak-ng, seed 9001)');
    await new Promise<void>((resolve, reject) => {
      const child = spawn(
        join(repoRoot, 'tools/recipe/duet-recipe'),
        ['speech', '--out', dir, '--utterances', '48', '--seed', '9001'],
        {
          stdio: ['ignore', 'ignore', 'inherit'],
        },
      );
      child.on('error', reject);
      child.on('close', (code) =>
        code === 0 ? resolve() : reject(new Error(`duet-recipe speech exited with ${code}`)),
      );
    });
  }
  const index = (await readFile(join(dir, 'index.jsonl'), 'utf8'))
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { file: string; augmentation: { kind: string } });
  // Clean utterances: the vocoder is meant to resynthesise speech, not the noise or the phone line.
  const chosen = index.filter((e) => e.augmentation.kind === 'clean').slice(0, 12);
  if (chosen.length === 0) throw new Error(`no clean utterances in ${dir}`);
  return Promise.all(chosen.map(async (e) => decodeWav(await readFile(join(dir, e.file))).channels[0]!));
}

/** Pads to whole chunks of U units. */
function padToChunks(pcm: Float32Array, chunkSamples: number): Float32Array {
  const out = new Float32Array(Math.ceil(pcm.length / chunkSamples) * chunkSamples);
  out.set(pcm);
  return out;
}

async function offlineUnits(session: ort.InferenceSession, pcm: Float32Array): Promise<number[]> {
  const out = await session.run({ audio: new ort.Tensor('float32', pcm, [1, pcm.length]) });
  return Array.from(out.units!.data as BigInt64Array, Number);
}

async function streamingUnits(tok: SpeechTokenizer, pcm: Float32Array): Promise<number[]> {
  const s = tok.openStream();
  const units: number[] = [];
  for (let i = 0; i < pcm.length; i += tok.chunkSamples) {
    const [r] = await tok.tokenize([{ stream: s, pcm: pcm.subarray(i, i + tok.chunkSamples) }]);
    if (r instanceof Error) throw r;
    units.push(...r!);
  }
  return units;
}

function agreement(a: readonly number[], b: readonly number[]): number {
  const n = Math.min(a.length, b.length);
  let same = 0;
  for (let i = 0; i < n; i++) if (a[i] === b[i]) same++;
  return n === 0 ? 0 : same / n;
}

function p99(xs: number[]): number {
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.ceil(0.99 * s.length) - 1)]!;
}

/** Most streams whose batched chunk keeps p99 <= budget (doubling, then bisection). */
async function streamsPerCore(
  prepare: (n: number) => () => Promise<unknown>,
  label: string,
): Promise<{ streams: number; p99: number }> {
  const trial = async (n: number) => {
    const step = prepare(n); // the streams of this trial, opened once
    const times: number[] = [];
    for (let r = 0; r < ROUNDS + WARMUP_ROUNDS; r++) {
      const t0 = performance.now();
      await step();
      if (r >= WARMUP_ROUNDS) times.push(performance.now() - t0);
    }
    const q = p99(times);
    log(`${label} streams=${String(n).padStart(4)} p99=${q.toFixed(2)} ms`);
    return q;
  };
  let good = 0;
  let goodP99 = Number.NaN;
  let bad = 0;
  for (let n = 1; n <= 4096; n *= 2) {
    const q = await trial(n);
    if (q <= BUDGET_MS) {
      good = n;
      goodP99 = q;
    } else {
      bad = n;
      break;
    }
  }
  while (bad - good > Math.max(1, good / 16)) {
    const mid = Math.floor((good + bad) / 2);
    const q = await trial(mid);
    if (q <= BUDGET_MS) {
      good = mid;
      goodP99 = q;
    } else bad = mid;
  }
  return { streams: good, p99: goodP99 };
}

async function main(): Promise<void> {
  await mkdir(OUT, { recursive: true });
  const unitsManifest = DEFAULT_UNITS_MODEL;
  const vocoderManifest = DEFAULT_VOCODER_MODEL;
  const hasVocoder = existsSync(vocoderManifest);
  const tok = await SpeechTokenizer.load({ manifestPath: unitsManifest, unitsPerChunk: U });
  const offline = await ort.InferenceSession.create(join(dirname(unitsManifest), 'model.onnx'), {
    intraOpNumThreads: 1,
  });
  const speech = (await heldOutSpeech()).map((p) => padToChunks(p, tok.chunkSamples));
  log(
    `${speech.length} held-out utterances, ${(speech.reduce((s, p) => s + p.length, 0) / 16000).toFixed(1)} s`,
  );

  // (a) streaming vs offline
  let same = 0;
  let total = 0;
  const allUnits: number[][] = [];
  for (const pcm of speech) {
    const off = await offlineUnits(offline, pcm);
    const str = await streamingUnits(tok, pcm);
    same += agreement(off, str) * off.length;
    total += off.length;
    allUnits.push(str);
  }
  const streamVsOffline = same / total;

  // (b) resynthesis
  let resynth: number | null = null;
  let mcd: number | null = null;
  let voc: Vocoder | undefined;
  if (hasVocoder) {
    voc = await Vocoder.load({ manifestPath: vocoderManifest, unitsPerChunk: U });
    let agreeSum = 0;
    let agreeN = 0;
    const mcds: number[] = [];
    for (const [k, units] of allUnits.entries()) {
      const s = voc.openStream();
      const audio = new Float32Array(units.length * 640 + tok.chunkSamples);
      for (let c = 0; c * U < units.length; c++) {
        const [chunk] = await voc.vocode([{ stream: s, units: units.slice(c * U, c * U + U) }]);
        if (chunk instanceof Error) throw chunk;
        audio.set(chunk!, c * tok.chunkSamples);
      }
      // Flush the held-back tail with one chunk of silence, then undo the cross-fade delay.
      const silence = Array(U).fill(
        (JSON.parse(await readFile(unitsManifest, 'utf8')) as { silenceUnit?: number }).silenceUnit ?? 0,
      );
      const [last] = await voc.vocode([{ stream: s, units: silence }]);
      audio.set(last as Float32Array, units.length * 640);
      const aligned = audio.subarray(voc.crossFadeSamples, voc.crossFadeSamples + units.length * 640);
      const again = await offlineUnits(offline, Float32Array.from(aligned));
      agreeSum += agreement(units, again) * units.length;
      agreeN += units.length;
      mcds.push(melCepstralDistortion(speech[k]!.subarray(0, aligned.length), aligned));
      if (k < 3)
        await writeFile(
          join(OUT, `resynth-${k}.wav`),
          encodeWav({ sampleRate: 16000, channels: [Float32Array.from(aligned)] }, 'pcm16'),
        );
      if (k < 3)
        await writeFile(
          join(OUT, `original-${k}.wav`),
          encodeWav({ sampleRate: 16000, channels: [speech[k]!] }, 'pcm16'),
        );
    }
    resynth = agreeSum / agreeN;
    mcd = mcds.reduce((s, x) => s + x, 0) / mcds.length;
  } else {
    log('models/default/vocoder is missing: resynthesis and vocoder speed are not measured');
  }

  // (c) speed
  const pcm = speech[0]!.subarray(0, tok.chunkSamples);
  const tokStreams = await streamsPerCore((n) => {
    const items = Array.from({ length: n }, () => ({ stream: tok.openStream(), pcm }));
    return () => tok.tokenize(items);
  }, 'tokenizer');
  let vocStreams: { streams: number; p99: number } | null = null;
  if (voc) {
    const v = voc;
    vocStreams = await streamsPerCore((n) => {
      const items = Array.from({ length: n }, (_, i) => ({
        stream: v.openStream(),
        units: allUnits[0]!.slice(4 * (i % 4), 4 * (i % 4) + 4),
      }));
      return () => v.vocode(items);
    }, 'vocoder');
  }

  const rows = [
    ['figure', 'measured', 'goal'],
    ['streaming vs offline unit agreement', streamVsOffline.toFixed(4), '>= 0.95'],
    ['resynthesis unit agreement', resynth === null ? 'n/a' : resynth.toFixed(3), '>= 0.7'],
    ['mel-cepstral distortion (dB)', mcd === null ? 'n/a' : mcd.toFixed(2), '-'],
    [
      'tokenizer streams per core (p99 <= 20 ms)',
      `${tokStreams.streams} (p99 ${tokStreams.p99.toFixed(1)} ms)`,
      '>= 200',
    ],
    [
      'vocoder streams per core (p99 <= 20 ms)',
      vocStreams ? `${vocStreams.streams} (p99 ${vocStreams.p99.toFixed(1)} ms)` : 'n/a',
      '>= 30',
    ],
    ['tokenizer streams per core, staggered chunks', String(staggered(tokStreams)), '-'],
    ['vocoder streams per core, staggered chunks', vocStreams ? String(staggered(vocStreams)) : 'n/a', '-'],
  ];
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows) console.log(r.map((c, i) => c.padEnd(w[i]!)).join('  '));
  if (hasVocoder) console.log(`resynthesised examples: ${OUT}/resynth-{0,1,2}.wav (originals beside them)`);
  console.log(
    JSON.stringify({
      stream_vs_offline_agreement: round(streamVsOffline, 4),
      resynth_unit_agreement: resynth === null ? null : round(resynth, 3),
      mcd_db: mcd === null ? null : round(mcd, 2),
      tokenizer_streams_per_core: tokStreams.streams,
      vocoder_streams_per_core: vocStreams?.streams ?? null,
      tokenizer_streams_per_core_staggered: staggered(tokStreams),
      vocoder_streams_per_core_staggered: vocStreams ? staggered(vocStreams) : null,
    }),
  );
  await tok.close();
  await voc?.close();
}

/**
 * Streams per core when calls' chunks arrive at staggered phases (as RTP streams do): batches of
 * the size that stays within the latency budget, back to back within one chunk period.
 */
function staggered(r: { streams: number; p99: number }): number {
  return r.streams === 0 ? 0 : Math.floor(((U * 40) / r.p99) * r.streams);
}

function round(x: number, digits: number): number {
  return Math.round(x * 10 ** digits) / 10 ** digits;
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
