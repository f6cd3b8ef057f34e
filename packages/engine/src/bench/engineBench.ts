/**
 * `pnpm bench:engine`: how many concurrent calls one CPU core sustains with the tick step's
 * p99 within budget, for the batched engine, the same engine stepping calls one at a time,
 * and a Hugging Face transformers eager loop with the same weights (run in the same bench).
 *
 * Bench model: Llama, 4 layers, hidden 256, 4 heads, 2 KV heads, 512 units + 2 tags,
 * 160 ms chunks, context filled to 1024 tokens; per tick a ~10-token prefill (the real user
 * chunk replaces the prediction, so every tick rolls back) and ~10 decode steps.
 */
import { chunkGeometry, createRng } from '@duet/sync';
import { SyncEngine } from '../engine.js';
import { OnnxSyncModel } from '../onnxSyncModel.js';
import { BENCH_MODEL, ensureTinyModel, pinToOneCore, runExportTool } from '../tiny/exportTool.js';

const BUDGET_MS = Number(process.env.BENCH_BUDGET_MS ?? 100);
const CONTEXT = 1024;
const TICKS = Number(process.env.BENCH_TICKS ?? 30);
const WARMUP = 3;
const MAX_CALLS = Number(process.env.BENCH_MAX_CALLS ?? 64);

const log = (msg: string) => process.stderr.write(`[bench:engine] ${msg}\n`);

// One core (onnxruntime runs on the JS thread with 1 intra-op thread).
pinToOneCore();

interface Trial {
  calls: number;
  p50: number;
  p99: number;
  maxInvocations: number;
  tokensPerTick: number;
  meanMs: number;
}

const geometry = chunkGeometry(160);
const maxLateChunks = 2;

async function trial(
  manifestPath: string,
  calls: number,
  batching: 'batched' | 'per-call',
  ticks = TICKS,
): Promise<Trial & { times: number[] }> {
  const reserve = SyncEngine.requiredReserve(geometry, maxLateChunks);
  const model = await OnnxSyncModel.load({
    manifestPath,
    slots: calls,
    contextTokens: CONTEXT,
    sinks: 4,
    reserve,
    skipSha256: true,
  });
  const engine = new SyncEngine(model, {
    geometry,
    maxLateChunks,
    batching,
    sampling: { temperature: 0.8, topK: 0, topP: 0.95 },
    maxPrefillTokens: 128,
  });
  const rng = createRng(calls);
  const unitCount = model.info.vocabulary.unitCount;
  for (let i = 0; i < calls; i++) {
    // Fill the context: the window is full from the first tick on, as in a long call.
    const prefix = Array.from({ length: CONTEXT - 16 }, () => Math.floor(rng.next() * unitCount));
    engine.openCall({ callId: `call-${i}`, prefix, seed: i });
  }
  const times: number[] = [];
  let maxInvocations = 0;
  let tokens = 0;
  const series: number[] = [];
  for (let tick = 0; tick < WARMUP + ticks; tick++) {
    const report = await engine.step();
    if (report.failed.length) throw report.failed[0]!.error;
    for (const c of report.calls) {
      // The caller's real chunk arrives on time and differs from the prediction: a rollback
      // and a ~10-token prefill at the next tick.
      const units = Array.from({ length: geometry.unitsPerChunk }, () => Math.floor(rng.next() * unitCount));
      engine.submitUserChunk(c.callId, c.chunkIndex, units);
    }
    if (tick >= WARMUP) {
      times.push(report.durationMs);
      series.push(report.durationMs);
      maxInvocations = Math.max(maxInvocations, report.invocations);
      tokens += report.tokens;
    }
  }
  await engine.close();
  times.sort((a, b) => a - b);
  const pct = (q: number) => times[Math.min(times.length - 1, Math.ceil(q * times.length) - 1)]!;
  return {
    calls,
    p50: pct(0.5),
    p99: pct(0.99),
    maxInvocations,
    tokensPerTick: tokens / ticks,
    meanMs: times.reduce((s, x) => s + x, 0) / times.length,
    times: series,
  };
}

/** Largest call count whose p99 stays within budget: doubling, then bisection. */
async function capacity(
  manifestPath: string,
  batching: 'batched' | 'per-call',
): Promise<{ best: Trial | undefined; trials: Trial[] }> {
  const trials: Trial[] = [];
  const run = async (n: number) => {
    const t = await trial(manifestPath, n, batching);
    trials.push(t);
    log(
      `${batching.padEnd(8)} calls=${String(n).padStart(3)} p50=${t.p50.toFixed(1)}ms p99=${t.p99.toFixed(1)}ms invocations/tick<=${t.maxInvocations}`,
    );
    return t;
  };
  let good: Trial | undefined;
  let bad = MAX_CALLS + 1;
  for (let n = 1; n <= MAX_CALLS; n *= 2) {
    const t = await run(n);
    if (t.p99 <= BUDGET_MS) good = t;
    else {
      bad = n;
      break;
    }
  }
  let lo = good?.calls ?? 0;
  let hi = Math.min(bad, MAX_CALLS + 1);
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    const t = await run(mid);
    if (t.p99 <= BUDGET_MS) {
      good = t;
      lo = mid;
    } else hi = mid;
  }
  return { best: good, trials };
}

async function main(): Promise<void> {
  log('preparing the bench model (4 layers, hidden 256, 4 heads / 2 KV heads, 514 tokens)');
  const bench = await ensureTinyModel(BENCH_MODEL);

  log('warming up (process, onnxruntime and CPU caches)');
  await trial(bench.manifestPath, 2, 'batched', 10);

  log(`batched engine (budget ${BUDGET_MS} ms p99, ${TICKS} ticks per trial, context ${CONTEXT})`);
  const batched = await capacity(bench.manifestPath, 'batched');
  log('same engine, one call at a time');
  const perCall = await capacity(bench.manifestPath, 'per-call');
  const one = batched.trials.find((t) => t.calls === 1);

  // A long call: the window slides every tick; the step time must not grow with the call's age.
  const longTicks = Number(process.env.BENCH_LONG_TICKS ?? 150);
  const longCalls = batched.best?.calls ?? 1;
  log(
    `long calls: ${longCalls} calls for ${longTicks} ticks (${((longTicks * geometry.chunkMs) / 1000).toFixed(0)} s of audio each)`,
  );
  const long = await trial(bench.manifestPath, longCalls, 'batched', longTicks);
  const thirds = [0, 1, 2].map((i) =>
    median(long.times.slice((i * longTicks) / 3, ((i + 1) * longTicks) / 3)),
  );

  log('Hugging Face transformers eager loop (PyTorch, 1 thread)');
  const hfOut = await runExportTool(
    [
      'bench-hf',
      '--checkpoint',
      bench.checkpoint,
      '--context',
      String(CONTEXT),
      '--prefill',
      '10',
      '--decode',
      '10',
      '--ticks',
      String(TICKS),
      '--threads',
      '1',
      '--max-calls',
      '16',
      '--budget-ms',
      String(BUDGET_MS),
    ],
    { pinCpu: 0 },
  );
  const hf = JSON.parse(hfOut.trim().split('\n').at(-1)!) as {
    calls: number;
    p99_step_ms: number;
    per_call_ms: number;
  };

  const best = batched.best;
  const rows: [string, string, string, string][] = [
    ['loop', 'calls/core', 'p99 step ms', 'ms per call per tick'],
    [
      'batched engine',
      String(best?.calls ?? 0),
      fmt(best?.p99),
      fmt(best ? best.meanMs / best.calls : undefined),
    ],
    [
      'engine, one call at a time',
      String(perCall.best?.calls ?? 0),
      fmt(perCall.best?.p99),
      fmt(perCall.best ? perCall.best.meanMs / perCall.best.calls : undefined),
    ],
    ['HF transformers eager', String(hf.calls), fmt(hf.p99_step_ms), fmt(hf.per_call_ms)],
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows) console.log(r.map((cell, i) => cell.padEnd(widths[i]!)).join('  '));
  // Compute throughput at the largest sustained call count: tokens fed per second of step time.
  const tokensPerS = best ? (best.tokensPerTick * 1000) / best.meanMs : 0;
  console.log(
    `model invocations per tick: ${one?.maxInvocations ?? '-'} at 1 call, ${best?.maxInvocations ?? '-'} at ${best?.calls ?? '-'} calls (bound 2U+3 = ${2 * geometry.unitsPerChunk + 3})`,
  );
  console.log(
    `step p50 by call age at ${longCalls} calls (thirds of ${longTicks} ticks, window sliding throughout): ${thirds.map((x) => `${x.toFixed(1)} ms`).join(', ')}`,
  );
  console.log(
    JSON.stringify({
      calls_per_core: best?.calls ?? 0,
      calls_per_core_unbatched: perCall.best?.calls ?? 0,
      calls_per_core_hf: hf.calls,
      p99_step_ms: round(best?.p99),
      tokens_per_s: Math.round(tokensPerS),
      backend_calls_per_tick_1: one?.maxInvocations ?? 0,
      backend_calls_per_tick_max: best?.maxInvocations ?? 0,
      long_call_p50_ms: thirds.map((x) => round(x)),
      budget_ms: BUDGET_MS,
      context_tokens: CONTEXT,
      chunk_ms: geometry.chunkMs,
    }),
  );
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? Number.NaN;
}

function fmt(x: number | undefined): string {
  return x === undefined ? '-' : x.toFixed(1);
}
function round(x: number | undefined): number | null {
  return x === undefined ? null : Math.round(x * 10) / 10;
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
