import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { ModelContractError } from './errors.js';

/** The manifest beside a `duet.synclm/1` model (see docs/synclm-contract.md). */
export interface SyncModelManifest {
  readonly format: 'duet.synclm';
  readonly version: 1;
  readonly model: string;
  readonly sha256: string;
  readonly architecture: {
    readonly family: string;
    readonly layers: number;
    readonly hidden: number;
    readonly heads: number;
    readonly kvHeads: number;
    readonly headDim: number;
    readonly vocabSize: number;
    readonly maxContext: number;
    readonly rmsNormEps: number;
    readonly tiedEmbeddings: boolean;
    readonly intermediate?: number;
  };
  readonly rope: {
    readonly type: string;
    readonly invFreq: readonly number[];
    readonly attentionScaling: number;
  };
  readonly tokens: {
    readonly unitBase: number;
    readonly unitCount: number;
    readonly s0: number;
    readonly s1: number;
  };
  readonly source?: Record<string, unknown>;
  readonly externalData?: unknown;
}

export interface LoadedManifest {
  readonly manifest: SyncModelManifest;
  readonly manifestPath: string;
  /** Absolute path of the ONNX file. */
  readonly modelPath: string;
}

/**
 * Reads and validates a manifest; names the first field that is wrong. With `verifySha256`
 * the ONNX file is hashed and compared (streamed: real checkpoints are large).
 */
export async function loadManifest(
  manifestPath: string,
  options: { verifySha256?: boolean } = {},
): Promise<LoadedManifest> {
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(manifestPath, 'utf8'));
  } catch (cause) {
    throw new ModelContractError(`cannot read manifest: ${(cause as Error).message}`, manifestPath, {
      cause,
    });
  }
  const manifest = validateManifest(raw, manifestPath);
  const modelPath = join(dirname(manifestPath), manifest.model);
  if (options.verifySha256 ?? true) {
    let actual: string;
    try {
      actual = await sha256File(modelPath);
    } catch (cause) {
      throw new ModelContractError(
        `cannot read model file ${manifest.model}: ${(cause as Error).message}`,
        manifestPath,
        {
          cause,
        },
      );
    }
    if (actual !== manifest.sha256) {
      throw new ModelContractError(
        `sha256 of ${manifest.model} is ${actual}, manifest says ${manifest.sha256} (file changed or corrupt)`,
        manifestPath,
      );
    }
  }
  return { manifest, manifestPath, modelPath };
}

export function validateManifest(raw: unknown, path: string): SyncModelManifest {
  const fail = (msg: string): never => {
    throw new ModelContractError(msg, path);
  };
  const obj = (v: unknown, name: string): Record<string, unknown> =>
    typeof v === 'object' && v !== null && !Array.isArray(v)
      ? (v as Record<string, unknown>)
      : fail(`${name} must be an object`);
  const int = (o: Record<string, unknown>, key: string, scope: string, min = 0): number => {
    const v = o[key];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) {
      return fail(`${scope}.${key} must be an integer >= ${min}, got ${JSON.stringify(v)}`);
    }
    return v;
  };
  const root = obj(raw, 'manifest');
  if (root.format !== 'duet.synclm') fail(`format must be "duet.synclm", got ${JSON.stringify(root.format)}`);
  if (root.version !== 1)
    fail(`version ${JSON.stringify(root.version)} is not supported (this engine reads version 1)`);
  if (typeof root.model !== 'string' || root.model.length === 0) fail('model must name the ONNX file');
  if (typeof root.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(root.sha256))
    fail('sha256 must be 64 lowercase hex digits');

  const a = obj(root.architecture, 'architecture');
  int(a, 'layers', 'architecture', 1);
  const heads = int(a, 'heads', 'architecture', 1);
  const kvHeads = int(a, 'kvHeads', 'architecture', 1);
  const headDim = int(a, 'headDim', 'architecture', 2);
  const vocabSize = int(a, 'vocabSize', 'architecture', 3);
  int(a, 'maxContext', 'architecture', 1);
  int(a, 'hidden', 'architecture', 1);
  if (heads % kvHeads !== 0) fail(`architecture.heads (${heads}) must be a multiple of kvHeads (${kvHeads})`);
  if (headDim % 2 !== 0) fail(`architecture.headDim (${headDim}) must be even for rotary embeddings`);
  if (typeof a.rmsNormEps !== 'number') fail('architecture.rmsNormEps must be a number');

  const r = obj(root.rope, 'rope');
  const invFreq = r.invFreq;
  if (
    !Array.isArray(invFreq) ||
    invFreq.length !== headDim / 2 ||
    !invFreq.every((x) => typeof x === 'number' && Number.isFinite(x))
  ) {
    fail(`rope.invFreq must be ${headDim / 2} finite numbers (headDim / 2)`);
  }
  if (typeof r.attentionScaling !== 'number' || !Number.isFinite(r.attentionScaling))
    fail('rope.attentionScaling must be a number');

  const t = obj(root.tokens, 'tokens');
  const unitBase = int(t, 'unitBase', 'tokens');
  const unitCount = int(t, 'unitCount', 'tokens', 2);
  const s0 = int(t, 's0', 'tokens');
  const s1 = int(t, 's1', 'tokens');
  if (unitBase + unitCount > vocabSize)
    fail(`tokens: units ${unitBase}..${unitBase + unitCount - 1} exceed vocabSize ${vocabSize}`);
  for (const [name, id] of [
    ['s0', s0],
    ['s1', s1],
  ] as const) {
    if (id >= vocabSize) fail(`tokens.${name} (${id}) is outside the vocabulary (${vocabSize})`);
    if (id >= unitBase && id < unitBase + unitCount)
      fail(`tokens.${name} (${id}) lies inside the unit range`);
  }
  if (s0 === s1) fail('tokens.s0 and tokens.s1 must differ');
  return root as unknown as SyncModelManifest;
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
