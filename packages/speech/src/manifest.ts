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
}

export interface VocoderManifest extends SpeechManifestBase {
  readonly format: 'duet.vocoder';
  readonly leftContextUnits: number;
  readonly rightReceptiveUnits?: number;
}

export interface Loaded<M> {
  readonly manifest: M;
  readonly modelPath: string;
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
  } else {
    int('leftContextUnits', 0);
  }
  const modelPath = join(dirname(path), raw.model as string);
  if (options.verifySha256 ?? true) {
    let actual: string;
    try {
      const hash = createHash('sha256');
      for await (const chunk of createReadStream(modelPath)) hash.update(chunk as Buffer);
      actual = hash.digest('hex');
    } catch (cause) {
      throw new SpeechModelError(
        `cannot read model file ${String(raw.model)}: ${(cause as Error).message}`,
        path,
        { cause },
      );
    }
    if (actual !== raw.sha256)
      fail(`sha256 of ${String(raw.model)} is ${actual}, manifest says ${String(raw.sha256)}`);
  }
  return { manifest: raw as never, modelPath };
}
