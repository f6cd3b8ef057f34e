import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ModelContractError } from './errors.js';
import { loadManifest, validateManifest } from './manifest.js';

const good = {
  format: 'duet.synclm',
  version: 1,
  model: 'model.onnx',
  sha256: '0'.repeat(64),
  architecture: {
    family: 'llama',
    layers: 2,
    hidden: 64,
    heads: 4,
    kvHeads: 2,
    headDim: 16,
    vocabSize: 66,
    maxContext: 256,
    rmsNormEps: 1e-5,
    tiedEmbeddings: false,
  },
  rope: { type: 'default', invFreq: [1, 0.5, 0.25, 0.125, 0.06, 0.03, 0.01, 0.005], attentionScaling: 1 },
  tokens: { unitBase: 0, unitCount: 64, s0: 64, s1: 65 },
};

function withPatch(path: string[], value: unknown): unknown {
  const copy = structuredClone(good) as Record<string, unknown>;
  let o = copy;
  for (const k of path.slice(0, -1)) o = o[k] as Record<string, unknown>;
  o[path.at(-1)!] = value;
  return copy;
}

describe('manifest', () => {
  it('accepts a valid manifest', () => {
    expect(validateManifest(good, 'm.json').architecture.layers).toBe(2);
  });

  it.each([
    [['format'], 'onnx', /format must be "duet.synclm"/],
    [['version'], 2, /version 2 is not supported/],
    [['sha256'], 'xyz', /sha256 must be 64/],
    [['architecture', 'heads'], 3, /multiple of kvHeads/],
    [['architecture', 'layers'], 0, /architecture.layers must be an integer >= 1/],
    [['rope', 'invFreq'], [1, 2], /rope.invFreq must be 8 finite numbers/],
    [['tokens', 's0'], 10, /tokens.s0 \(10\) lies inside the unit range/],
    [['tokens', 's1'], 64, /must differ/],
    [['tokens', 'unitCount'], 100, /exceed vocabSize/],
    [['tokens', 's1'], 70, /outside the vocabulary/],
  ])('refuses %j = %j, naming the problem', (path, value, message) => {
    expect(() => validateManifest(withPatch(path as string[], value), 'm.json')).toThrow(ModelContractError);
    expect(() => validateManifest(withPatch(path as string[], value), 'm.json')).toThrow(message as RegExp);
  });

  it('refuses a model file whose sha256 differs from the manifest', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'duet-manifest-'));
    await writeFile(join(dir, 'model.onnx'), 'not really a model');
    await writeFile(join(dir, 'manifest.json'), JSON.stringify(good));
    await expect(loadManifest(join(dir, 'manifest.json'))).rejects.toThrow(
      /sha256 of model.onnx is [0-9a-f]{64}, manifest says/,
    );
  });

  it('refuses a manifest that is not JSON', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'duet-manifest-'));
    await writeFile(join(dir, 'manifest.json'), '{ nope');
    await expect(loadManifest(join(dir, 'manifest.json'))).rejects.toThrow(/cannot read manifest/);
  });
});
