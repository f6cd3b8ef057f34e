import { cp, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { chunkGeometry, createRng } from '@duet/sync';
import { beforeAll, describe, expect, it } from 'vitest';
import { type Batching, SyncEngine, type TickReport } from './engine.js';
import { ClosedError, ModelContractError, NoCapacityError } from './errors.js';
import { OnnxSyncModel } from './onnxSyncModel.js';
import { ensureTinyModel, type TinyModel } from './tiny/exportTool.js';

const geometry = chunkGeometry(160);
const maxLateChunks = 2;
const reserve = SyncEngine.requiredReserve(geometry, maxLateChunks);
let tiny: TinyModel;

beforeAll(async () => {
  tiny = await ensureTinyModel(
    {
      layers: 2,
      hidden: 64,
      heads: 4,
      kvHeads: 2,
      headDim: 16,
      intermediate: 96,
      vocab: 66,
      maxContext: 512,
      seed: 11,
    },
    { quiet: true },
  );
});

async function engineWith(slots: number, batching: Batching = 'batched', temperature = 0.9) {
  const model = await OnnxSyncModel.load({
    manifestPath: tiny.manifestPath,
    slots,
    contextTokens: 4 + 64 + reserve,
    reserve,
  });
  return new SyncEngine(model, {
    geometry,
    maxLateChunks,
    batching,
    sampling: { temperature, topK: 0, topP: 1 },
  });
}

/** Runs `ticks` ticks with every call's real chunk arriving on time (random units). */
async function drive(engine: SyncEngine, ticks: number, seed = 5): Promise<TickReport[]> {
  const rng = createRng(seed);
  const reports: TickReport[] = [];
  for (let t = 0; t < ticks; t++) {
    const report = await engine.step();
    reports.push(report);
    for (const c of report.calls) {
      engine.submitUserChunk(
        c.callId,
        c.chunkIndex,
        Array.from({ length: geometry.unitsPerChunk }, () => Math.floor(rng.next() * 64)),
      );
    }
  }
  return reports;
}

describe('SyncEngine', () => {
  it('step() runs a bounded number of model invocations per tick, whatever the number of calls', async () => {
    for (const calls of [1, 6]) {
      const engine = await engineWith(calls);
      for (let i = 0; i < calls; i++) engine.openCall({ callId: `c${i}`, seed: i });
      const reports = await drive(engine, 20);
      for (const r of reports) {
        expect(r.failed).toEqual([]);
        expect(r.calls).toHaveLength(calls);
        expect(r.invocations).toBeLessThanOrEqual(2 * geometry.unitsPerChunk + 3);
      }
      await engine.close();
    }
  });

  it('the batched engine and the one-call-at-a-time engine produce the same chunks', async () => {
    const outputs: string[] = [];
    for (const batching of ['batched', 'per-call'] as const) {
      const engine = await engineWith(3, batching);
      for (let i = 0; i < 3; i++) engine.openCall({ callId: `c${i}`, seed: 100 + i });
      const reports = await drive(engine, 15);
      outputs.push(
        JSON.stringify(reports.map((r) => r.calls.map((c) => [c.callId, c.agentChunk, c.predictedUser]))),
      );
      if (batching === 'per-call')
        expect(Math.max(...reports.map((r) => r.invocations))).toBeGreaterThan(2 * 4 + 3);
      await engine.close();
    }
    expect(outputs[0]).toBe(outputs[1]);
  });

  it('each tick yields the agent chunk N+1 expanded to U units and rolls back replaced predictions', async () => {
    const engine = await engineWith(1);
    engine.openCall({ callId: 'a' });
    const reports = await drive(engine, 12);
    for (const [t, r] of reports.entries()) {
      const c = r.calls[0]!;
      expect(c.chunkIndex).toBe(t);
      expect(c.agentChunk.index).toBe(t + 1);
      expect(c.agentChunk.expanded).toHaveLength(geometry.unitsPerChunk);
      expect(c.agentChunk.units.length).toBeLessThanOrEqual(geometry.unitsPerChunk);
      if (t > 0) expect(c.replacedChunks.length + c.confirmedChunks.length).toBe(1);
    }
    expect(reports.slice(1).some((r) => r.calls[0]!.rolledBackTokens > 0)).toBe(true);
    await engine.close();
  });

  it('refuses a call beyond capacity with NoCapacityError, and takes one again after a call leaves', async () => {
    const engine = await engineWith(2);
    engine.openCall({ callId: 'a' });
    engine.openCall({ callId: 'b' });
    expect(() => engine.openCall({ callId: 'c' })).toThrow(NoCapacityError);
    await drive(engine, 3);
    engine.closeCall('a');
    engine.openCall({ callId: 'c' });
    const reports = await drive(engine, 3);
    expect(
      reports
        .at(-1)!
        .calls.map((c) => c.callId)
        .sort(),
    ).toEqual(['b', 'c']);
    expect(() => engine.openCall({ callId: 'b' })).toThrow(/already open/);
    await engine.close();
    await expect(engine.step()).rejects.toThrow(ClosedError);
  });

  it('a call closed during a step leaves at the end of it, one opened joins the next tick', async () => {
    const engine = await engineWith(4);
    for (const id of ['a', 'b', 'c']) engine.openCall({ callId: id });
    const step = engine.step();
    engine.closeCall('b');
    await new Promise((r) => setImmediate(r)); // inside the step's first forward()
    engine.openCall({ callId: 'd' }); // joins at the next tick
    const report = await step;
    expect(report.calls.map((c) => c.callId)).toEqual(['a', 'c']);
    expect(engine.hasCall('b')).toBe(false);
    const next = await engine.step();
    expect(next.calls.map((c) => c.callId)).toEqual(['a', 'c', 'd']);
    expect(next.calls[2]!.chunkIndex).toBe(1);
    await engine.close();
  });

  it('rejects bad user chunks without harming the call or the others', async () => {
    const engine = await engineWith(2);
    engine.openCall({ callId: 'a' });
    engine.openCall({ callId: 'b' });
    await engine.step();
    expect(() => engine.submitUserChunk('a', 0, [1, 2, 3])).toThrow(/has 3 units, expected 4/);
    expect(() => engine.submitUserChunk('a', 0, [1, 2, 3, 999])).toThrow(/not a unit id/);
    expect(() => engine.submitUserChunk('nope', 0, [1, 2, 3, 4])).toThrow(/not open/);
    expect(engine.submitUserChunk('a', 0, [1, 2, 3, 4])).toBe('accepted');
    const report = await engine.step();
    expect(report.failed).toEqual([]);
    expect(report.calls).toHaveLength(2);
    await engine.close();
  });

  it('a model failure ends the calls of that invocation cleanly; the engine keeps serving', async () => {
    const engine = await engineWith(2);
    engine.openCall({ callId: 'a' });
    engine.openCall({ callId: 'b' });
    await engine.step();
    const backend = engine.backend as OnnxSyncModel;
    const forward = backend.forward.bind(backend);
    backend.forward = async () => {
      throw new Error('device lost');
    };
    const report = await engine.step();
    expect(report.calls).toEqual([]);
    expect(report.failed.map((f) => [f.callId, f.error.message])).toEqual([
      ['a', 'device lost'],
      ['b', 'device lost'],
    ]);
    expect(engine.callCount).toBe(0);
    backend.forward = forward;
    engine.openCall({ callId: 'c' });
    expect((await engine.step()).calls.map((c) => c.callId)).toEqual(['c']);
    await engine.close();
  });

  it('a resumed call expands its first chunk as a continuation of lastAgentUnit', async () => {
    const engine = await engineWith(2);
    engine.openCall({ callId: 'same', seed: 1 });
    const other = await engineWith(1);
    other.openCall({ callId: 'same', seed: 1, lastAgentUnit: 17 });
    const plain = (await drive(engine, 1))[0]?.calls[0]?.agentChunk;
    const resumed = (await drive(other, 1))[0]?.calls[0]?.agentChunk;
    if (!plain || !resumed) throw new Error('no agent chunk');
    // Same history and seed: same units; only the expansion of an empty chunk differs.
    expect(resumed.units).toEqual(plain.units);
    if (plain.units.length > 0) expect(resumed.expanded).toEqual(plain.expanded);
    else expect(resumed.expanded).toEqual(new Array(geometry.unitsPerChunk).fill(17));
    await engine.close();
    await other.close();
  });

  it('a call opened with its first agent units goes on from them', async () => {
    const engine = await engineWith(1);
    const s0 = engine.backend.info.vocabulary.s0;
    const unit = (u: number) => engine.backend.info.vocabulary.unitBase + u;
    // A prompt whose agent chunk ends on unit 9; the first chunk goes on into unit 3.
    engine.openCall({ callId: 'p', seed: 1, prefix: [s0, unit(9)], firstAgentUnits: [9, 9, 3, 3] });
    const backend = engine.backend as OnnxSyncModel;
    const forward = backend.forward.bind(backend);
    const fed: number[] = [];
    backend.forward = async (items) => {
      for (const item of items) fed.push(...item.tokens);
      return forward(items);
    };
    const report = (await drive(engine, 1))[0];
    backend.forward = forward;
    // The model read the prompt, then the first chunk deduplicated against it: [S0] 3.
    expect(fed.slice(0, 4)).toEqual([s0, unit(9), s0, unit(3)]);
    const chunk = report?.calls[0]?.agentChunk;
    if (!chunk) throw new Error('no agent chunk');
    // Dedup goes on across the opening: unit 3 is never written twice in a row.
    expect(chunk.units[0]).not.toBe(3);
    if (chunk.units.length === 0) expect(chunk.expanded).toEqual(new Array(geometry.unitsPerChunk).fill(3));
    await engine.close();
  });

  it('step() must not overlap the previous step', async () => {
    const engine = await engineWith(1);
    engine.openCall({ callId: 'a' });
    const first = engine.step();
    await expect(engine.step()).rejects.toThrow(/still running/);
    await first;
    await engine.close();
  });

  it('refuses a reserve too small for the allowed lateness', async () => {
    const model = await OnnxSyncModel.load({
      manifestPath: tiny.manifestPath,
      slots: 1,
      contextTokens: 128,
      reserve: 8,
    });
    expect(() => new SyncEngine(model, { geometry, maxLateChunks })).toThrow(/reserve \(8\) is below/);
    await model.close();
  });
});

describe('OnnxSyncModel contract checks', () => {
  async function copyWithManifest(patch: (m: Record<string, unknown>) => void): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), 'duet-contract-'));
    await cp(dirname(tiny.manifestPath), dir, { recursive: true });
    const path = join(dir, 'manifest.json');
    const manifest = JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
    patch(manifest);
    await writeFile(path, JSON.stringify(manifest));
    return path;
  }

  it('names a graph input that the manifest implies but the model lacks', async () => {
    const path = await copyWithManifest((m) => {
      (m.architecture as Record<string, number>).layers = 3;
    });
    await expect(OnnxSyncModel.load({ manifestPath: path, slots: 1 })).rejects.toThrow(
      /the graph has no input "past_key_2"/,
    );
  });

  it('names a dimension that disagrees with the manifest', async () => {
    const path = await copyWithManifest((m) => {
      (m.architecture as Record<string, number>).vocabSize = 70;
    });
    await expect(OnnxSyncModel.load({ manifestPath: path, slots: 1 })).rejects.toThrow(
      /output "logits" dimension 2 is 66, the manifest implies 70/,
    );
  });

  it('refuses a file that is not an ONNX model', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'duet-contract-'));
    const manifest = JSON.parse(await readFile(tiny.manifestPath, 'utf8')) as Record<string, unknown>;
    await writeFile(join(dir, 'model.onnx'), 'garbage');
    const { createHash } = await import('node:crypto');
    manifest.sha256 = createHash('sha256').update('garbage').digest('hex');
    await writeFile(join(dir, 'manifest.json'), JSON.stringify(manifest));
    const err = await OnnxSyncModel.load({ manifestPath: join(dir, 'manifest.json'), slots: 1 }).catch(
      (e) => e,
    );
    expect(err).toBeInstanceOf(ModelContractError);
    expect(String(err)).toMatch(/onnxruntime cannot load the model/);
  });

  it('refuses a cache that does not fit one buffer per layer, before loading anything', async () => {
    await expect(
      OnnxSyncModel.load({ manifestPath: tiny.manifestPath, slots: 2 ** 20, contextTokens: 512 }),
    ).rejects.toThrow(/GiB per layer buffer/);
  });

  it('refuses a context larger than the model was trained for', async () => {
    await expect(
      OnnxSyncModel.load({ manifestPath: tiny.manifestPath, slots: 1, contextTokens: 4096 }),
    ).rejects.toThrow(/contextTokens \(4096\) must be an integer <= the model's maxContext \(512\)/);
  });
});
