// `duet eval`: an eval set through the real tokenizer, engine and vocoder, scored from voice
// activity, written as a Markdown + JSON report.
import { mkdir, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { encodeWav } from '@duet/audio';
import {
  DEFAULT_UNITS_MODEL,
  DEFAULT_VOCODER_MODEL,
  repoRoot,
  resolveDialogueModel,
} from '@duet/engine/tiny';
import { chunkGeometry, type SamplingOptions } from '@duet/sync';
import { loadCodec, tokenizeSignals, vocodeChunks } from './codec.js';
import { type EvalSet, loadEvalSet } from './evalSet.js';
import { generateContinuations, loadDialogueEngine, SERVING_SAMPLING } from './generate.js';
import { evalMarkdown } from './report.js';
import {
  type BehaviourSummary,
  type ScoredItem,
  scoreBehaviour,
  scoreTurnTaking,
  type TurnTakingSummary,
} from './score.js';
import { SileroVad } from './vad.js';

export { DEFAULT_UNITS_MODEL, DEFAULT_VOCODER_MODEL };
export const DEFAULT_EVALSET = join(repoRoot, '.cache/recipe/evalset');

export interface RunEvalOptions {
  readonly evalSet: string | EvalSet;
  /** duet.synclm manifest (default: resolveDialogueModel()). */
  readonly model?: string;
  readonly units?: string;
  readonly vocoder?: string;
  /** Where to write report.md, report.json and (with writeAudio) the generated agent WAVs. */
  readonly outDir?: string;
  readonly writeAudio?: boolean;
  /** Calls stepped together (engine slots; default 16). */
  readonly slots?: number;
  readonly seed?: number;
  /** Sampling (default: the inference service's, SERVING_SAMPLING). */
  readonly sampling?: SamplingOptions;
  /** Only the first N items of each kind. */
  readonly limitPerKind?: number;
  readonly log?: (line: string) => void;
}

export interface EvalResult {
  readonly model: string;
  readonly untrained: boolean;
  readonly turnTaking: TurnTakingSummary;
  readonly behaviour: Readonly<Record<'generated' | 'truth', BehaviourSummary>>;
  readonly markdown: string;
  readonly json: Record<string, unknown>;
  readonly seconds: { readonly audio: number; readonly wall: number };
}

export async function runEval(options: RunEvalOptions): Promise<EvalResult> {
  const started = performance.now();
  const log = options.log ?? (() => {});
  const set = typeof options.evalSet === 'string' ? await loadEvalSet(options.evalSet) : options.evalSet;
  const perKind = new Map<string, number>();
  const items = set.items.filter((it) => {
    const n = perKind.get(it.kind) ?? 0;
    perKind.set(it.kind, n + 1);
    return options.limitPerKind === undefined || n < options.limitPerKind;
  });
  const { path: model, untrained } = await resolveDialogueModel(options.model);
  const sampling = options.sampling ?? SERVING_SAMPLING;
  const geometry = chunkGeometry(set.manifest.chunkMs);
  const chunkS = geometry.chunkMs / 1000;
  log(
    `eval: ${items.length} items, model ${relative(process.cwd(), model) || model}${untrained ? ' (untrained)' : ''}`,
  );

  const codec = await loadCodec(
    { units: options.units ?? DEFAULT_UNITS_MODEL, vocoder: options.vocoder ?? DEFAULT_VOCODER_MODEL },
    geometry.unitsPerChunk,
  );
  const vad = await SileroVad.load();
  const slots = Math.max(1, Math.min(options.slots ?? 16, items.length));
  const engine = await loadDialogueEngine({
    manifestPath: model,
    chunkMs: geometry.chunkMs,
    slots,
    silenceUnit: codec.silenceUnit,
    unitCount: codec.unitCount,
    sampling,
  });
  try {
    log('eval: tokenizing caller and ground-truth agent channels');
    const units = await tokenizeSignals(
      codec,
      items.flatMap((it) => [it.callerPcm, it.agentPcm]),
    );
    const seed = options.seed ?? 1;
    const generation = await generateContinuations(
      engine,
      items.map((it, i) => ({
        id: it.id,
        callerUnits: units[2 * i]!,
        agentUnits: units[2 * i + 1]!,
        promptChunks: Math.round(it.promptSeconds / chunkS),
        seed: seed * 1000 + i,
      })),
      { slots, silenceUnit: codec.silenceUnit, onProgress: (d, n) => log(`eval: generated ${d}/${n}`) },
    );
    // The paper's setting for the dialogues: after the prompt no real caller, the model's own
    // prediction of the caller stands (both sides generated).
    const dialogueIdx = items.flatMap((it, i) => (it.kind === 'dialogue' ? [i] : []));
    log(`eval: ${dialogueIdx.length} dialogues with both sides generated`);
    const free = await generateContinuations(
      engine,
      dialogueIdx.map((i) => ({
        id: `${items[i]!.id}-free`,
        callerUnits: units[2 * i]!,
        agentUnits: units[2 * i + 1]!,
        promptChunks: Math.round(items[i]!.promptSeconds / chunkS),
        seed: seed * 1000 + 500 + i,
      })),
      { slots, silenceUnit: codec.silenceUnit, freeRunning: true },
    );
    // Caller back-channel and interruption items again with the caller silent after the prompt
    // (same seeds): does the agent stop for the caller, or would it have stopped anyway?
    const quietIdx = items.flatMap((it, i) =>
      it.kind === 'callerbackchannel' || it.kind === 'interruption' ? [i] : [],
    );
    const silentChunk = () => new Array<number>(geometry.unitsPerChunk).fill(codec.silenceUnit);
    const quiet = await generateContinuations(
      engine,
      quietIdx.map((i) => {
        const p = Math.round(items[i]!.promptSeconds / chunkS);
        return {
          id: `${items[i]!.id}-quiet`,
          callerUnits: units[2 * i]!.map((c, k) => (k < p ? c : silentChunk())),
          agentUnits: units[2 * i + 1]!,
          promptChunks: p,
          seed: seed * 1000 + i,
        };
      }),
      { slots, silenceUnit: codec.silenceUnit },
    );
    const failed = [...generation, ...free, ...quiet].filter((g) => g.error);
    for (const f of failed) log(`eval: item ${f.id} failed in the engine: ${f.error}`);

    log('eval: vocoding');
    const audio = await vocodeChunks(codec, [
      ...generation.map((g) => g.agentChunks),
      ...items.map((_, i) => units[2 * i + 1]!),
      ...free.flatMap((g) => [g.agentChunks, g.callerChunks]),
      ...quiet.map((g) => g.agentChunks),
    ]);
    const generated = audio.slice(0, items.length);
    const resynth = audio.slice(items.length, 2 * items.length);
    const freeAudio = audio.slice(2 * items.length, 2 * items.length + 2 * free.length);
    const quietAudio = audio.slice(2 * items.length + 2 * free.length);

    log('eval: voice activity');
    const trim = (x: Float32Array, n: number) => x.subarray(0, Math.min(x.length, n));
    const segs = await vad.detect([
      ...items.flatMap((it, i) => {
        const n = it.callerPcm.length;
        return [it.callerPcm, it.agentPcm, trim(generated[i]!, n), trim(resynth[i]!, n)];
      }),
      ...dialogueIdx.flatMap((i, k) => {
        const n = items[i]!.callerPcm.length;
        return [trim(freeAudio[2 * k]!, n), trim(freeAudio[2 * k + 1]!, n)];
      }),
      ...quietIdx.map((i, k) => trim(quietAudio[k]!, items[i]!.callerPcm.length)),
    ]);
    const freeBase = 4 * items.length;
    const quietBase = freeBase + 2 * dialogueIdx.length;
    const scored: ScoredItem[] = items.map((it, i) => {
      const k = dialogueIdx.indexOf(i);
      const q = quietIdx.indexOf(i);
      return {
        item: it,
        durationS: it.durationS,
        caller: segs[4 * i]!,
        agent: { truth: segs[4 * i + 1]!, generated: segs[4 * i + 2]!, resynth: segs[4 * i + 3]! },
        ...(k >= 0 ? { free: { agent: segs[freeBase + 2 * k]!, caller: segs[freeBase + 2 * k + 1]! } } : {}),
        ...(q >= 0 ? { silentCaller: segs[quietBase + q]! } : {}),
      };
    });
    const turnTaking = scoreTurnTaking(scored);
    const behaviour = {
      generated: scoreBehaviour(scored, 'generated'),
      truth: scoreBehaviour(scored, 'truth'),
    };
    const audioSeconds = items.reduce((a, it) => a + it.durationS, 0);
    const wall = (performance.now() - started) / 1000;
    const settings = {
      'chunk ms': geometry.chunkMs,
      sampling: `temperature ${sampling.temperature}, top-p ${sampling.topP}, timing temperature ${sampling.timingTemperature ?? 'off'}${sampling === SERVING_SAMPLING ? " (the inference service's defaults)" : ''}, seed ${seed}`,
      'caller units': 'real, on time (zero latency), replacing the prediction at the next tick',
      VAD: 'Silero VAD v5 (16 kHz, 32 ms frames), threshold 0.5 / 0.35, min speech 0.1 s, IPU silence 0.2 s, pad 0.03 s',
      'audio / wall': `${audioSeconds.toFixed(1)} s / ${wall.toFixed(1)} s`,
    };
    const notes = [
      "The model continues on its own after promptSeconds; until then the ground-truth agent channel is teacher-forced (its audio here is the vocoder re-synthesis of its units), and the engine opens the call with the ground truth's next chunk (160 ms), so speech that goes on at the prompt's end goes on.",
      'Caller back-channel and interruption items run twice: with the caller, and with the caller silent after the prompt (same seed): how often the agent stops anyway is the rate to read their yield rates against.',
      'The ground-truth column applies the same scorers to the ground-truth agent channel: it checks the scorers, it is not a model.',
      ...(untrained
        ? ['The model is UNTRAINED (random weights): its figures show the harness, not a behaviour.']
        : []),
      ...failed.map((f) => `Item ${f.id} failed in the engine: ${f.error}`),
    ];
    const markdown = evalMarkdown({
      title: 'Duet evaluation',
      model,
      evalSet: set.dir,
      settings,
      turnTaking,
      behaviour,
      notes,
    });
    const json = {
      format: 'duet.eval-report',
      version: 1,
      model,
      untrained,
      evalSet: set.dir,
      settings,
      summary: evalSummary(turnTaking, behaviour.generated),
      turnTaking: {
        dialogues: turnTaking.dialogues,
        r: turnTaking.r,
        rCumulative: turnTaking.rCumulative,
        stats: turnTaking.stats,
        free: turnTaking.free,
      },
      behaviour,
      items: scored.map((s) => ({
        id: s.item.id,
        kind: s.item.kind,
        caller: s.caller,
        agent: s.agent,
        free: s.free,
      })),
    };
    if (options.outDir) {
      await mkdir(options.outDir, { recursive: true });
      await writeFile(join(options.outDir, 'report.md'), markdown);
      await writeFile(join(options.outDir, 'report.json'), `${JSON.stringify(json, null, 2)}\n`);
      if (options.writeAudio) {
        for (const [i, it] of items.entries()) {
          const n = it.callerPcm.length;
          await writeFile(
            join(options.outDir, `${it.id}.wav`),
            encodeWav({ sampleRate: 16000, channels: [trim(generated[i]!, n).slice(), it.callerPcm] }),
          );
        }
      }
    }
    return {
      model,
      untrained,
      turnTaking,
      behaviour,
      markdown,
      json,
      seconds: { audio: audioSeconds, wall },
    };
  } finally {
    await engine.close();
    await codec.close();
    await vad.close();
  }
}

/** The headline figures (the bench's JSON keys). */
export function evalSummary(tt: TurnTakingSummary, b: BehaviourSummary): Record<string, number | null> {
  return {
    pause_takeover_rate: b.pause_takeover_rate,
    pause_takeover_rate_filler: b.pause_takeover_by_cue.filler,
    pause_takeover_rate_intonation: b.pause_takeover_by_cue.intonation,
    turn_takeover_rate: b.turn_takeover_rate,
    turn_latency_s: b.turn_latency_s,
    turn_response_rate: b.turn_response_rate,
    turn_response_latency_s: b.turn_response_latency_s,
    backchannel_rate: b.backchannel_rate,
    backchannels_per_min: b.backchannels_per_min,
    interruption_takeover_rate: b.interruption_takeover_rate,
    interruption_stop_s: b.interruption_stop_s,
    interruption_takeover_rate_silent_caller: b.interruption_takeover_rate_silent_caller,
    interruption_stop_s_silent_caller: b.interruption_stop_s_silent_caller,
    caller_backchannel_yield_rate: b.caller_backchannel_yield_rate,
    caller_backchannel_yield_rate_silent_caller: b.caller_backchannel_yield_rate_silent_caller,
    talk_over_rate: b.talk_over_rate,
    turn_taking_r: tt.r.generated.average,
    turn_taking_r_both_generated: tt.free?.r.average ?? null,
    turn_taking_r_resynth: tt.r.resynth.average,
  };
}
