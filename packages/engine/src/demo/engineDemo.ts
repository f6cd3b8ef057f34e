/**
 * `pnpm demo`: the tick loop on a small random-weight model with simulated callers, in real
 * time (one step per 160 ms chunk). Shows what a worker does each tick: rollbacks when the
 * caller's real units replace the prediction, the agent's next chunk, step time vs budget.
 */
import { chunkGeometry, createRng } from '@duet/sync';
import { SyncEngine } from '../engine.js';
import { OnnxSyncModel } from '../onnxSyncModel.js';
import { BENCH_MODEL, ensureTinyModel } from '../tiny/exportTool.js';

const CALLS = Number(process.env.DEMO_CALLS ?? 4);
const TICKS = Number(process.env.DEMO_TICKS ?? 40);
const geometry = chunkGeometry(Number(process.env.DEMO_CHUNK_MS ?? 160));

async function main(): Promise<void> {
  console.log('preparing a small random-weight Llama model (tools/export) ...');
  const tiny = await ensureTinyModel(BENCH_MODEL);
  const maxLateChunks = 2;
  const model = await OnnxSyncModel.load({
    manifestPath: tiny.manifestPath,
    slots: CALLS,
    contextTokens: 1024,
    reserve: SyncEngine.requiredReserve(geometry, maxLateChunks),
  });
  const engine = new SyncEngine(model, { geometry, maxLateChunks });
  const rng = createRng(42);
  const late: { callId: string; index: number; units: number[] }[] = [];
  for (let i = 0; i < CALLS; i++) engine.openCall({ callId: `caller-${i}` });
  console.log(
    `${CALLS} calls, ${geometry.chunkMs} ms chunks (U=${geometry.unitsPerChunk}), ${TICKS} ticks\n`,
  );
  console.log('tick  step ms  invocations  tokens  rollbacks  agent chunk of caller-0');
  const origin = performance.now();
  for (let tick = 0; tick < TICKS; tick++) {
    // Hold the wall clock: tick k starts at origin + k * chunk.
    const wait = origin + tick * geometry.chunkMs - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    for (const l of late.splice(0)) engine.submitUserChunk(l.callId, l.index, l.units);
    const report = await engine.step();
    let rollbacks = 0;
    for (const c of report.calls) {
      rollbacks += c.replacedChunks.length;
      const units = Array.from({ length: geometry.unitsPerChunk }, () => Math.floor(rng.next() * 512));
      // Most real chunks arrive on time; one in five arrives a tick late.
      if (rng.next() < 0.2) late.push({ callId: c.callId, index: c.chunkIndex, units });
      else engine.submitUserChunk(c.callId, c.chunkIndex, units);
    }
    const first = report.calls[0];
    console.log(
      `${String(report.tick).padStart(4)}  ${report.durationMs.toFixed(1).padStart(7)}  ${String(report.invocations).padStart(11)}  ${String(report.tokens).padStart(6)}  ${String(rollbacks).padStart(9)}  ${first ? `#${first.agentChunk.index} [${first.agentChunk.expanded.join(' ')}]` : '-'}`,
    );
  }
  await engine.close();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
