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
  /** The manifest's chunk model, when it names one. */
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
  checkModelFile(raw, '', fail);
  const int = (key: string, min: number): number => intField(raw, key, '', min, undefined, fail);
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
      intField(c, 'trimmedUnits', 'chunkModel.', 0, undefined, fail);
      const min = intField(c, 'minLeftContextSamples', 'chunkModel.', 0, undefined, fail);
      if (min % samplesPerUnit !== 0)
        fail(`chunkModel.minLeftContextSamples (${min}) must be a multiple of samplesPerUnit`);
    }
  } else {
    const left = int('leftContextUnits', 0);
    if (raw.chunkModel !== undefined) {
      const c = checkChunkModel(raw.chunkModel, fail);
      intField(c, 'trimmedSamples', 'chunkModel.', 0, left * samplesPerUnit, fail);
      intField(c, 'minUnits', 'chunkModel.', 1, left + 1, fail);
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
  checkModelFile(c, 'chunkModel.', fail);
  return c;
}

/** `model` (the ONNX file's name) and its `sha256`, of the manifest or of its chunk model. */
function checkModelFile(o: Record<string, unknown>, label: string, fail: (m: string) => never): void {
  if (typeof o.model !== 'string' || o.model.length === 0) fail(`${label}model must name the ONNX file`);
  if (typeof o.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(o.sha256))
    fail(`${label}sha256 must be 64 lowercase hex digits`);
}

function intField(
  o: Record<string, unknown>,
  key: string,
  label: string,
  min: number,
  max: number | undefined,
  fail: (m: string) => never,
): number {
  const v = o[key];
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= min && (max === undefined || v <= max))
    return v;
  const range = max === undefined ? `>= ${min}` : `in ${min}..${max}`;
  return fail(`${label}${key} must be an integer ${range}, got ${JSON.stringify(v)}`);
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
