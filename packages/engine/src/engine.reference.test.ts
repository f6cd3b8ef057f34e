import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chunkGeometry, createRng, type TokenFilter } from '@duet/sync';
import { describe, expect, it } from 'vitest';
import { SyncEngine } from './engine.js';
import { OnnxSyncModel } from './onnxSyncModel.js';
import { ensureTinyModel, runExportTool, type TinyLlamaSpec } from './tiny/exportTool.js';

/**
 * The correctness proof: the engine's greedy decoding, batched over several calls with
 * rollbacks (late and differing user chunks) and context slides, equals Hugging Face
 * transformers run on the same token history, token for token, logits within 1e-3.
 */

interface TraceRecord {
  past: number[];
  new: number[];
  logits: number[][];
  picks: { row: number; allowed: number[]; token: number }[];
}

function allowedIds(filter: TokenFilter): number[] {
  const out: number[] = [];
  for (const [a, b] of filter.ranges)
    for (let t = a; t < b; t++) if (!filter.banned?.includes(t)) out.push(t);
  return out;
}

const cases: { name: string; chunkMs: number; spec: TinyLlamaSpec }[] = [
  {
    name: 'multi-head attention, untied, 160 ms chunks',
    chunkMs: 160,
    spec: {
      layers: 2,
      hidden: 64,
      heads: 4,
      kvHeads: 4,
      headDim: 16,
      intermediate: 128,
      vocab: 66,
      maxContext: 256,
      seed: 1,
    },
  },
  {
    name: 'grouped-query attention, tied embeddings, llama3 rope scaling, 200 ms chunks',
    chunkMs: 200,
    spec: {
      layers: 2,
      hidden: 64,
      heads: 4,
      kvHeads: 2,
      headDim: 16,
      intermediate: 96,
      vocab: 66,
      maxContext: 256,
      tied: true,
      ropeScaling: 'llama3',
      seed: 2,
    },
  },
  {
    name: 'GQA 8:2, head_dim != hidden/heads, attention bias, units after a text vocabulary, 240 ms chunks',
    chunkMs: 240,
    spec: {
      layers: 3,
      hidden: 48,
      heads: 8,
      kvHeads: 2,
      headDim: 8,
      intermediate: 64,
      vocab: 120,
      maxContext: 256,
      attentionBias: true,
      ropeScaling: 'linear',
      unitBase: 40,
      unitCount: 64,
      s0: 110,
      s1: 111,
      seed: 3,
    },
  },
];

describe('engine vs Hugging Face transformers', () => {
  for (const c of cases) {
    it(`greedy decoding matches token for token: ${c.name}`, async () => {
      const tiny = await ensureTinyModel(c.spec, { quiet: true });
      const geometry = chunkGeometry(c.chunkMs);
      const maxLateChunks = 1;
      const reserve = SyncEngine.requiredReserve(geometry, maxLateChunks);
      const sinks = 4;
      const window = 40; // small, so the context slides many times within the run
      const model = await OnnxSyncModel.load({
        manifestPath: tiny.manifestPath,
        slots: 4,
        contextTokens: sinks + window + reserve,
        sinks,
        reserve,
      });
      const records: TraceRecord[] = [];
      const engine = new SyncEngine(model, {
        geometry,
        maxLateChunks,
        sampling: { temperature: 0, topK: 0, topP: 1 },
        retainTokens: Number.POSITIVE_INFINITY,
        observer: {
          forward(event) {
            const v = event.output.vocabSize;
            for (const item of event.items) {
              const history = item.history();
              expect(history.base).toBe(0);
              const logits: number[][] = [];
              for (let r = 0; r < item.tokens.length; r++) {
                const at = event.output.rowOffset(item.item, r);
                logits.push(Array.from(event.output.logits.subarray(at, at + v)));
              }
              records.push({
                past: history.tokens.slice(0, item.position),
                new: [...item.tokens],
                logits,
                picks: [
                  { row: item.tokens.length - 1, allowed: allowedIds(item.filter), token: item.sampled },
                ],
              });
            }
          },
        },
      });

      const u = geometry.unitsPerChunk;
      const unitCount = model.info.vocabulary.unitCount;
      const rng = createRng(c.spec.seed ?? 0);
      const rand = (n: number) => Math.floor(rng.next() * n);
      const pendingReal: { callId: string; index: number; dueTick: number; units: number[] }[] = [];
      let invocations = 0;
      let replaced = 0;
      let slid = false;

      engine.openCall({ callId: 'a' });
      engine.openCall({ callId: 'b', prefix: [0, 1, 2] });
      for (let tick = 0; tick < 36; tick++) {
        if (tick === 5) engine.openCall({ callId: 'c' });
        if (tick === 22) engine.closeCall('b'); // leaves mid-run: its slot is compacted away
        for (const p of pendingReal.filter((q) => q.dueTick === tick)) {
          if (engine.hasCall(p.callId)) engine.submitUserChunk(p.callId, p.index, p.units);
        }
        const report = await engine.step();
        invocations += report.invocations;
        expect(report.failed).toEqual([]);
        expect(report.invocations).toBeLessThanOrEqual(2 * u + 3);
        for (const call of report.calls) {
          replaced += call.replacedChunks.length;
          // The caller's real chunk for this tick: on time, one tick late, or lost; sometimes
          // exactly the prediction (no rollback needed).
          const roll = rand(10);
          if (roll >= 8) continue;
          const units =
            roll === 0 && call.predictedUser.length === u
              ? [...call.predictedUser]
              : Array.from({ length: u }, () => rand(unitCount));
          pendingReal.push({
            callId: call.callId,
            index: call.chunkIndex,
            dueTick: tick + 1 + (roll >= 6 ? 1 : 0),
            units,
          });
        }
        if (model.length(1) > sinks + window) slid = true;
      }
      await engine.close();
      expect(slid).toBe(true);
      expect(replaced).toBeGreaterThan(10);
      expect(invocations).toBeGreaterThanOrEqual(200);

      const dir = await mkdtemp(join(tmpdir(), 'duet-ref-'));
      const tracePath = join(dir, 'trace.json');
      const outPath = join(dir, 'result.json');
      await writeFile(
        tracePath,
        JSON.stringify({ checkpoint: tiny.checkpoint, window: { sinks, window }, records }),
      );
      await runExportTool(['reference', '--trace', tracePath, '--out', outPath], { quiet: true });
      const result = JSON.parse(await readFile(outPath, 'utf8')) as {
        records: number;
        maxAbsDiff: number;
        picks: number;
        pickMismatches: unknown[];
        mode: string;
        fallbacks: number;
      };
      // Streaming: HF keeps each token's keys/values from when it was fed, as a KV cache does.
      expect(result.mode).toBe('streaming');
      expect(result.fallbacks).toBe(0);
      expect(result.records).toBe(records.length);
      expect(result.pickMismatches).toEqual([]);
      expect(result.maxAbsDiff).toBeLessThan(1e-3);
    });
  }
});
