import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { SpeechModelError } from './errors.js';

/** Geometry shared by both speech contracts (docs/units-contract.md). */
interface SpeechManifestBase {
  readonly version: 1;
  readonly model: string;
  readonly sha256: string;
  readonly sampleRate: number;
  readonly unitRate: number;
  readonly samplesPerUnit: number;
  readonly unitCount: number;
}

export interface UnitsManifest extends SpeechManifestBase {
  readonly format: 'duet.units';
  readonly leftContextSamples: number;
  readonly chunkModel?: UnitsChunkModel;
}

/** A second ONNX file beside the model: the same model trimmed to what one chunk needs. */
interface ChunkModelBase {
  readonly model: string;
  readonly sha256: string;
}

/**
 * The tokenizer per chunk (optional): for input that starts with at least
 * `minLeftContextSamples` of left context it returns the model's units from unit
 * `trimmedUnits` on (it does not tokenise the left context).
 */
export interface UnitsChunkModel extends ChunkModelBase {
  readonly trimmedUnits: number;
  readonly minLeftContextSamples: number;
}

/**
 * The vocoder per chunk (optional): same weights, but it does not synthesise the left
 * context. For N >= `minUnits` units it returns the model's audio from sample
 * `trimmedSamples` on.
 */
export interface VocoderChunkModel extends ChunkModelBase {
  readonly trimmedSamples: number;
  readonly minUnits: number;
}

export interface VocoderManifest extends SpeechManifestBase {
  readonly format: 'duet.vocoder';
  readonly leftContextUnits: number;
  readonly rightReceptiveUnits?: number;
  readonly chunkModel?: VocoderChunkModel;
}

export interface Loaded<M> {
  readonly manifest: M;
  readonly modelPath: string;
  /** The vocoder's chunk model, when the manifest names one. */
  readonly chunkModelPath?: string;
}

/**
 * Reads a `duet.units/1` or `duet.vocoder/1` manifest, validates it and the model's sha256;
 * names the first thing that is wrong.
 */
export async function loadSpeechManifest<F extends 'duet.units' | 'duet.vocoder'>(
  path: string,
  format: F,
  options: { verifySha256?: boolean } = {},
): Promise<Loaded<F extends 'duet.units' ? UnitsManifest : VocoderManifest>> {
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
  } catch (cause) {
    throw new SpeechModelError(`cannot read manifest: ${(cause as Error).message}`, path, { cause });
  }
  const fail = (msg: string): never => {
    throw new SpeechModelError(msg, path);
  };
  if (typeof raw !== 'object' || raw === null) fail('manifest must be a JSON object');
  if (raw.format !== format) fail(`format must be "${format}", got ${JSON.stringify(raw.format)}`);
  if (raw.version !== 1)
    fail(`version ${JSON.stringify(raw.version)} is not supported (this runtime reads version 1)`);
  if (typeof raw.model !== 'string' || raw.model.length === 0) fail('model must name the ONNX file');
  if (typeof raw.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(raw.sha256))
    fail('sha256 must be 64 lowercase hex digits');
  const int = (key: string, min: number): number => {
    const v = raw[key];
    return typeof v === 'number' && Number.isSafeInteger(v) && v >= min
      ? v
      : fail(`${key} must be an integer >= ${min}, got ${JSON.stringify(v)}`);
  };
  const sampleRate = int('sampleRate', 1);
  const unitRate = int('unitRate', 1);
  const samplesPerUnit = int('samplesPerUnit', 1);
  int('unitCount', 2);
  if (sampleRate !== unitRate * samplesPerUnit) {
    fail(`sampleRate (${sampleRate}) must equal unitRate (${unitRate}) x samplesPerUnit (${samplesPerUnit})`);
  }
  if (format === 'duet.units') {
    const left = int('leftContextSamples', 0);
    if (left % samplesPerUnit !== 0)
      fail(`leftContextSamples (${left}) must be a multiple of samplesPerUnit`);
    if (raw.chunkModel !== undefined) {
      const c = checkChunkModel(raw.chunkModel, fail);
      chunkInt(c, 'trimmedUnits', 0, Number.MAX_SAFE_INTEGER, fail);
      const min = chunkInt(c, 'minLeftContextSamples', 0, Number.MAX_SAFE_INTEGER, fail);
      if (min % samplesPerUnit !== 0)
        fail(`chunkModel.minLeftContextSamples (${min}) must be a multiple of samplesPerUnit`);
    }
  } else {
    const left = int('leftContextUnits', 0);
    if (raw.chunkModel !== undefined) {
      const c = checkChunkModel(raw.chunkModel, fail);
      chunkInt(c, 'trimmedSamples', 0, left * samplesPerUnit, fail);
      chunkInt(c, 'minUnits', 1, left + 1, fail);
    }
  }
  const modelPath = join(dirname(path), raw.model as string);
  const chunk = raw.chunkModel as ChunkModelBase | undefined;
  const chunkModelPath = chunk ? join(dirname(path), chunk.model) : undefined;
  if (options.verifySha256 ?? true) {
    await verifySha256(path, modelPath, raw.model as string, raw.sha256 as string);
    if (chunk && chunkModelPath) await verifySha256(path, chunkModelPath, chunk.model, chunk.sha256);
  }
  return { manifest: raw as never, modelPath, ...(chunkModelPath ? { chunkModelPath } : {}) };
}

function checkChunkModel(v: unknown, fail: (m: string) => never): Record<string, unknown> {
  if (typeof v !== 'object' || v === null) fail('chunkModel must be an object');
  const c = v as Record<string, unknown>;
  if (typeof c.model !== 'string' || c.model.length === 0) fail('chunkModel.model must name the ONNX file');
  if (typeof c.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(c.sha256))
    fail('chunkModel.sha256 must be 64 lowercase hex digits');
  return c;
}

function chunkInt(
  c: Record<string, unknown>,
  key: string,
  min: number,
  max: number,
  fail: (m: string) => never,
): number {
  const v = c[key];
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= min && v <= max
    ? v
    : fail(`chunkModel.${key} must be an integer in ${min}..${max}, got ${JSON.stringify(v)}`);
}

async function verifySha256(
  manifestPath: string,
  file: string,
  name: string,
  expected: string,
): Promise<void> {
  let actual: string;
  try {
    const hash = createHash('sha256');
    for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
    actual = hash.digest('hex');
  } catch (cause) {
    throw new SpeechModelError(`cannot read model file ${name}: ${(cause as Error).message}`, manifestPath, {
      cause,
    });
  }
  if (actual !== expected) {
    throw new SpeechModelError(`sha256 of ${name} is ${actual}, manifest says ${expected}`, manifestPath);
  }
}
