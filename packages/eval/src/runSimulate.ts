// `duet simulate`: the two-agent run end to end (clock, agents, vocoder, VAD, statistics).
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { encodeWav } from '@duet/audio';
import { resolveDialogueModel } from '@duet/engine/tiny';
import { chunkGeometry } from '@duet/sync';
import { loadCodec, tokenizeSignals, vocodeChunks } from './codec.js';
import { type EvalSet, loadEvalSet } from './evalSet.js';
import { correlationTable, fmt, markdownTable } from './report.js';
import { DEFAULT_UNITS_MODEL, DEFAULT_VOCODER_MODEL } from './runEval.js';
import { clipSegments, type Segment } from './segments.js';
import { launchClock, type SimDialogue, type SimulationRun, simulateAgents } from './simulate.js';
import {
  type TurnTakingCorrelation,
  type TurnTakingStats,
  turnTakingCorrelation,
  turnTakingStats,
} from './turnTaking.js';
import { SileroVad } from './vad.js';

export interface RunSimulateOptions {
  /** One-way latencies to run (ms), each a separate run of both agents. */
  readonly latenciesMs: readonly number[];
  /** Prompts and ground truth from the eval set's dialogue items; without it the agents start from silence. */
  readonly evalSet?: string | EvalSet;
  readonly model?: string;
  readonly units?: string;
  readonly vocoder?: string;
  /** Seconds generated after the prompt (default 20). */
  readonly seconds?: number;
  /** At most this many dialogues (default all dialogue items; 1 without an eval set). */
  readonly dialogues?: number;
  readonly chunkMs?: number;
  /** Use this NATS (with a clock already ticking at chunkMs) instead of starting nats-server + clock. */
  readonly natsUrl?: string;
  readonly outDir?: string;
  /** Sampling seed of the first run (default 1); run k uses seed + k. */
  readonly seed?: number;
  /**
   * Runs per latency (default 1), each with its own seed; r is computed over the pairs of all
   * runs together (each generated dialogue against its ground truth), which estimates the same
   * correlation as one run with less sampling noise (one run's r moves by 0.15 between seeds).
   */
  readonly runs?: number;
  readonly log?: (line: string) => void;
}

export interface LatencyResult {
  readonly latencyMs: number;
  /** The first run's engine statistics (steps, late steps, admissions). */
  readonly run: SimulationRun['stats'];
  /** Turn-taking statistics per dialogue (A = the eval set's agent side, B = its caller side), every run's in turn. */
  readonly stats: readonly TurnTakingStats[];
  /** vs the ground-truth continuations, over every run's dialogues (null without an eval set). */
  readonly r: TurnTakingCorrelation | null;
  /** Each run's seed, engine statistics and r on its own. */
  readonly runs: readonly {
    readonly seed: number;
    readonly run: SimulationRun['stats'];
    readonly r: TurnTakingCorrelation | null;
  }[];
  /** The first run's speech segments. */
  readonly segments: readonly {
    readonly id: string;
    readonly a: readonly Segment[];
    readonly b: readonly Segment[];
  }[];
}

export interface SimulateResult {
  readonly model: string;
  readonly untrained: boolean;
  readonly results: readonly LatencyResult[];
  readonly truth: readonly TurnTakingStats[] | null;
  readonly markdown: string;
  readonly json: Record<string, unknown>;
}

export async function runSimulate(options: RunSimulateOptions): Promise<SimulateResult> {
  const log = options.log ?? (() => {});
  const set =
    options.evalSet === undefined
      ? undefined
      : typeof options.evalSet === 'string'
        ? await loadEvalSet(options.evalSet)
        : options.evalSet;
  const chunkMs = options.chunkMs ?? set?.manifest.chunkMs ?? 160;
  const geometry = chunkGeometry(chunkMs);
  const chunkS = chunkMs / 1000;
  const { path: model, untrained } = await resolveDialogueModel(options.model);
  const codec = await loadCodec(
    { units: options.units ?? DEFAULT_UNITS_MODEL, vocoder: options.vocoder ?? DEFAULT_VOCODER_MODEL },
    geometry.unitsPerChunk,
  );
  const vad = await SileroVad.load();
  const clock = options.natsUrl ? undefined : await launchClock({ chunkMs });
  const natsUrl = options.natsUrl ?? clock!.natsUrl;
  try {
    const seconds = options.seconds ?? 20;
    const chunks = Math.max(3, Math.round(seconds / chunkS));
    const items = (set?.items.filter((it) => it.kind === 'dialogue') ?? []).slice(
      0,
      options.dialogues ?? Infinity,
    );
    if (set && items.length === 0) throw new Error(`the eval set ${set.dir} has no dialogue items`);
    let dialogues: SimDialogue[];
    let truthSegments: { a: Segment[]; b: Segment[]; from: number; to: number }[] = [];
    if (items.length > 0) {
      const units = await tokenizeSignals(
        codec,
        items.flatMap((it) => [it.agentPcm, it.callerPcm]),
      );
      dialogues = items.map((it, i) => ({
        id: it.id,
        aUnits: units[2 * i]!,
        bUnits: units[2 * i + 1]!,
        promptChunks: Math.round(it.promptSeconds / chunkS),
      }));
      const segs = await vad.detect(items.flatMap((it) => [it.agentPcm, it.callerPcm]));
      truthSegments = items.map((it, i) => {
        const from = Math.round(it.promptSeconds / chunkS) * chunkS;
        return {
          a: segs[2 * i]!,
          b: segs[2 * i + 1]!,
          from,
          to: Math.min(it.durationS, from + chunks * chunkS),
        };
      });
    } else {
      dialogues = Array.from({ length: options.dialogues ?? 1 }, (_, i) => ({
        id: `d${i}`,
        aUnits: [],
        bUnits: [],
        promptChunks: 0,
      }));
    }
    const windowOf = (i: number, promptChunks: number) =>
      truthSegments[i] ?? { from: promptChunks * chunkS, to: (promptChunks + chunks) * chunkS };
    const truth = truthSegments.length
      ? truthSegments.map((t) =>
          turnTakingStats(clipSegments(t.a, t.from, t.to), clipSegments(t.b, t.from, t.to)),
        )
      : null;

    const runs = options.runs ?? 1;
    if (!Number.isSafeInteger(runs) || runs < 1)
      throw new Error(`runs must be a positive integer, got ${runs}`);
    const firstSeed = options.seed ?? 1;
    const results: LatencyResult[] = [];
    for (const latencyMs of options.latenciesMs) {
      const perRun: LatencyResult['runs'][number][] = [];
      const stats: TurnTakingStats[] = [];
      let segments: LatencyResult['segments'] = [];
      for (let k = 0; k < runs; k++) {
        const seed = firstSeed + k;
        log(
          `simulate: ${dialogues.length} dialogue(s), ${seconds} s, one-way latency ${latencyMs} ms` +
            (runs > 1 ? `, run ${k + 1}/${runs} (seed ${seed})` : ''),
        );
        const run = await simulateAgents({
          natsUrl,
          model,
          latencyMs,
          chunkMs,
          dialogues,
          chunks,
          silenceUnit: codec.silenceUnit,
          unitCount: codec.unitCount,
          seed,
          log,
        });
        const audio = await vocodeChunks(
          codec,
          run.channels.flatMap((c) => [c.a, c.b]),
        );
        const segs = await vad.detect(audio);
        const runSegments = run.channels.map((c, i) => ({ id: c.id, a: segs[2 * i]!, b: segs[2 * i + 1]! }));
        const runStats = runSegments.map((s, i) => {
          const w = windowOf(i, dialogues[i]!.promptChunks);
          return turnTakingStats(clipSegments(s.a, w.from, w.to), clipSegments(s.b, w.from, w.to));
        });
        stats.push(...runStats);
        perRun.push({ seed, run: run.stats, r: truth ? turnTakingCorrelation(runStats, truth) : null });
        if (k > 0) continue;
        segments = runSegments;
        if (options.outDir) {
          await mkdir(options.outDir, { recursive: true });
          for (const [i, c] of run.channels.entries())
            await writeFile(
              join(options.outDir, `${c.id}-latency${latencyMs}.wav`),
              encodeWav({ sampleRate: 16000, channels: [audio[2 * i]!, audio[2 * i + 1]!] }),
            );
        }
      }
      const r = truth ? turnTakingCorrelation(stats, Array.from({ length: runs }, () => truth).flat()) : null;
      results.push({ latencyMs, run: perRun[0]!.run, stats, r, runs: perRun, segments });
    }
    const markdown = simulateMarkdown(model, untrained, results, seconds, truth);
    const json = {
      format: 'duet.simulate-report',
      version: 1,
      model,
      untrained,
      seconds,
      chunkMs,
      results: results.map((r) => ({
        latencyMs: r.latencyMs,
        run: r.run,
        r: r.r,
        runs: r.runs,
        stats: r.stats,
        segments: r.segments,
      })),
      truth,
    };
    if (options.outDir) {
      await writeFile(join(options.outDir, 'simulate.md'), markdown);
      await writeFile(join(options.outDir, 'simulate.json'), `${JSON.stringify(json, null, 2)}\n`);
    }
    return { model, untrained, results, truth, markdown, json };
  } finally {
    await clock?.stop();
    await codec.close();
    await vad.close();
  }
}

/** Mean seconds of speech (IPUs) of one side per dialogue. */
export function speechPerSide(stats: readonly TurnTakingStats[], side: 'agent' | 'caller'): number | null {
  if (stats.length === 0) return null;
  return stats.reduce((a, s) => a + s[side].ipu.totalS, 0) / stats.length;
}

export function simulateMarkdown(
  model: string,
  untrained: boolean,
  results: readonly LatencyResult[],
  seconds: number,
  truth: readonly TurnTakingStats[] | null = null,
): string {
  const speech = (stats: readonly TurnTakingStats[]) =>
    `A ${fmt(speechPerSide(stats, 'agent'), 1)} s, B ${fmt(speechPerSide(stats, 'caller'), 1)} s`;
  const lines = [
    '# Two agents over the clock',
    '',
    `- model: \`${model}\`${untrained ? ' (UNTRAINED: random weights)' : ''}`,
    `- ${seconds} s generated after the prompt per dialogue; A = the eval set's agent side, B = its caller side`,
    '',
    markdownTable(
      [
        'one-way latency',
        'steps',
        'late steps',
        'step ms p50 / max',
        'peer chunks accepted / too late',
        'applied a step late (process behind)',
        'replaced / confirmed / lost',
      ],
      results.map((r) => [
        `${r.latencyMs} ms`,
        String(r.run.steps),
        String(r.run.lateSteps),
        `${fmt(r.run.stepMsP50, 1)} / ${fmt(r.run.stepMsMax, 1)}`,
        `${r.run.admissions.accepted} / ${r.run.admissions.late}`,
        String(r.run.heldUp),
        `${r.run.replaced} / ${r.run.confirmed} / ${r.run.lost}`,
      ]),
    ),
  ];
  // How much each side speaks: r compares the shape of turn-taking, not whether anyone talks.
  lines.push(
    '',
    `Speech per side and dialogue in the ${seconds} s: ` +
      [
        ...results.map((r) => `${r.latencyMs} ms ${speech(r.stats)}`),
        ...(truth ? [`ground truth ${speech(truth)}`] : []),
      ].join('; '),
  );
  const withR = results.filter((r) => r.r);
  if (withR.length) {
    lines.push(
      '',
      'Turn-taking vs the ground-truth continuation (Pearson r of mean durations):',
      '',
      correlationTable(
        withR.flatMap((r) => [
          {
            label: r.runs.length > 1 ? `${r.latencyMs} ms, ${r.runs.length} runs` : `${r.latencyMs} ms`,
            r: r.r!,
          },
          // Each run on its own, when there are several: how much one run's r moves.
          ...(r.runs.length > 1
            ? r.runs.map((x) => ({ label: `${r.latencyMs} ms, seed ${x.seed}`, r: x.r! }))
            : []),
        ]),
      ),
    );
  }
  return `${lines.join('\n')}\n`;
}
