import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeWav } from '@duet/audio';
import { afterAll, describe, expect, it } from 'vitest';
import { EvalSetError, loadEvalSet, parseEvalSetManifest } from './evalSet.js';

const item = (over: Record<string, unknown> = {}) => ({
  id: 'turn-000',
  kind: 'turn',
  caller: 'c.wav',
  agent: 'a.wav',
  promptSeconds: 0.32,
  callerSpeech: [[0.5, 1.5]],
  agentSpeech: [],
  events: { callerEndS: 1.5 },
  ...over,
});
const manifest = (items: unknown[] = [item()], over: Record<string, unknown> = {}) => ({
  format: 'duet.evalset',
  version: 1,
  sampleRate: 16000,
  chunkMs: 160,
  items,
  ...over,
});

describe('parseEvalSetManifest()', () => {
  it('accepts the recipe format', () => {
    expect(parseEvalSetManifest(manifest()).items[0]!.kind).toBe('turn');
  });

  it('names every wrong field by its path', () => {
    const bad = manifest([item({ kind: 'chat', promptSeconds: -1 })], { sampleRate: 8000 });
    expect(() => parseEvalSetManifest(bad)).toThrow(EvalSetError);
    try {
      parseEvalSetManifest(bad);
    } catch (error) {
      const msg = (error as Error).message;
      expect(msg).toContain('sampleRate');
      expect(msg).toContain('items.0.kind');
      expect(msg).toContain('items.0.promptSeconds');
    }
  });

  it('requires the events each kind is scored on', () => {
    expect(() =>
      parseEvalSetManifest(manifest([item({ kind: 'pause', events: { pauseStartS: 1 } })])),
    ).toThrow(/events.pauseEndS/);
    expect(() => parseEvalSetManifest(manifest([item({ kind: 'interruption', events: {} })]))).toThrow(
      /events.interruptS/,
    );
  });

  it("reads a pause item's cue and refuses an unknown one", () => {
    const pause = { kind: 'pause', events: { pauseStartS: 1, pauseEndS: 2 } };
    expect(parseEvalSetManifest(manifest([item({ ...pause, pauseCue: 'filler' })])).items[0]!.pauseCue).toBe(
      'filler',
    );
    expect(parseEvalSetManifest(manifest([item(pause)])).items[0]!.pauseCue).toBeUndefined();
    expect(() => parseEvalSetManifest(manifest([item({ ...pause, pauseCue: 'sigh' })]))).toThrow(/pauseCue/);
  });

  it('rejects unknown keys, reversed spans and duplicate ids', () => {
    expect(() => parseEvalSetManifest(manifest([item({ extra: 1 })]))).toThrow(/extra|Unrecognized/);
    expect(() => parseEvalSetManifest(manifest([item({ callerSpeech: [[2, 1]] })]))).toThrow(/callerSpeech/);
    expect(() => parseEvalSetManifest(manifest([item(), item()]))).toThrow(/duplicate id/);
    expect(() => parseEvalSetManifest(manifest([]))).toThrow(/items/);
  });
});

describe('loadEvalSet()', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });
  const setUp = async (m: unknown, wavs: Record<string, { rate: number; samples: number }>) => {
    const dir = await mkdtemp(join(tmpdir(), 'evalset-'));
    dirs.push(dir);
    await writeFile(join(dir, 'manifest.json'), JSON.stringify(m));
    for (const [name, w] of Object.entries(wavs))
      await writeFile(
        join(dir, name),
        encodeWav({ sampleRate: w.rate, channels: [new Float32Array(w.samples)] }),
      );
    return dir;
  };

  it('reads the WAVs and pads the shorter channel', async () => {
    const dir = await setUp(manifest(), {
      'c.wav': { rate: 16000, samples: 32000 },
      'a.wav': { rate: 16000, samples: 16000 },
    });
    const set = await loadEvalSet(dir);
    expect(set.items[0]!.agentPcm.length).toBe(32000);
    expect(set.items[0]!.durationS).toBe(2);
  });

  it('says how to make an eval set when there is none', async () => {
    await expect(loadEvalSet(join(tmpdir(), 'no-such-evalset'))).rejects.toThrow(/duet-recipe eval-set/);
  });

  it('refuses audio that is not 16 kHz mono, a missing file and a prompt past the end', async () => {
    const d1 = await setUp(manifest(), {
      'c.wav': { rate: 8000, samples: 800 },
      'a.wav': { rate: 16000, samples: 16000 },
    });
    await expect(loadEvalSet(d1)).rejects.toThrow(/16 kHz mono/);
    const d2 = await setUp(manifest(), { 'c.wav': { rate: 16000, samples: 1600 } });
    await expect(loadEvalSet(d2)).rejects.toThrow(/a\.wav/);
    const d3 = await setUp(manifest([item({ promptSeconds: 5 })]), {
      'c.wav': { rate: 16000, samples: 1600 },
      'a.wav': { rate: 16000, samples: 1600 },
    });
    await expect(loadEvalSet(d3)).rejects.toThrow(/promptSeconds/);
  });
});
