// `pnpm bench:eval`: the behaviour suite and turn-taking correlation of the dialogue model, then
// two agents over the clock at 0 and 240 ms one-way latency. Progress on stderr, tables on
// stdout, last line one JSON object.
//   --quick            fewer items and a shorter two-agent run (about a minute on 2 cores)
//   --model <path>     duet.synclm manifest (default: models/default/dialogue, else the untrained model)
//   --evalset <dir>    eval set (default: .cache/recipe/evalset, else a synthetic one made once)
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { repoRoot } from '@duet/engine/tiny';
import { writeSyntheticEvalSet } from '../fixture.js';
import { DEFAULT_EVALSET, runEval } from '../runEval.js';
import { runSimulate, speechPerSide } from '../runSimulate.js';
import type { TurnTakingStats } from '../turnTaking.js';

const { values } = parseArgs({
  // `pnpm bench:eval -- --model m` hands the script a literal `--` first: skip it.
  args: process.argv.slice(2).filter((a, i) => !(i === 0 && a === '--')),
  options: {
    quick: { type: 'boolean', default: false },
    model: { type: 'string' },
    evalset: { type: 'string' },
  },
});
const quick = values.quick ?? false;
const log = (line: string) => process.stderr.write(`${line}\n`);
const started = performance.now();

let evalset = values.evalset;
let synthetic = false;
if (!evalset) {
  if (existsSync(join(DEFAULT_EVALSET, 'manifest.json'))) evalset = DEFAULT_EVALSET;
  else {
    synthetic = true;
    evalset = join(repoRoot, '.cache/eval/evalset-synthetic');
    if (!existsSync(join(evalset, 'manifest.json'))) {
      log(
        `bench:eval: no recipe eval set at ${DEFAULT_EVALSET}; writing a synthetic one (espeak-ng) to ${evalset}`,
      );
      await writeSyntheticEvalSet(evalset, {
        counts: { dialogue: 8, pause: 4, turn: 4, backchannel: 3, interruption: 4, callerbackchannel: 3 },
        seed: 7,
      });
    }
  }
}

const evaluation = await runEval({
  evalSet: evalset,
  ...(values.model ? { model: values.model } : {}),
  ...(quick ? { limitPerKind: 3 } : {}),
  outDir: join(repoRoot, '.cache/eval/bench'),
  log,
});
process.stdout.write(`${evaluation.markdown}\n`);

const sim = await runSimulate({
  latenciesMs: [0, 240],
  evalSet: evalset,
  model: evaluation.model,
  seconds: quick ? 6 : 20,
  // All of the recipe set's dialogues (24): with 8, r moved by 0.1-0.2 between runs; and with
  // 24, one run's r still moves by 0.15 between seeds, so r is over four runs' dialogues.
  dialogues: quick ? 3 : 24,
  runs: quick ? 1 : 4,
  outDir: join(repoRoot, '.cache/eval/bench-simulate'),
  log,
});
process.stdout.write(`${sim.markdown}\n`);

const atLatency = (ms: number) => sim.results.find((r) => r.latencyMs === ms);
const r0 = atLatency(0)?.r?.average ?? null;
const r240 = atLatency(240)?.r?.average ?? null;
const round = (x: number | null) => (x === null ? null : Math.round(x * 1000) / 1000);
function bothSides(stats: readonly TurnTakingStats[]): number | null {
  const a = speechPerSide(stats, 'agent');
  const b = speechPerSide(stats, 'caller');
  return a === null || b === null ? null : (a + b) / 2;
}
function speechAt(ms: number): number | null {
  const r = atLatency(ms);
  return r ? bothSides(r.stats) : null;
}
function perRunDifference(): (number | null)[] {
  const runs240 = atLatency(240)?.runs ?? [];
  return (atLatency(0)?.runs ?? []).map((run, k) => {
    const a = run.r?.average ?? null;
    const b = runs240[k]?.r?.average ?? null;
    return a === null || b === null ? null : round(b - a);
  });
}
const s = evaluation.json.summary as Record<string, number | null>;
console.log(
  JSON.stringify({
    model: evaluation.model,
    untrained: evaluation.untrained,
    evalset,
    synthetic_evalset: synthetic,
    quick,
    items: evaluation.behaviour.generated.items,
    dialogues: evaluation.turnTaking.dialogues,
    pause_takeover_rate: round(s.pause_takeover_rate ?? null),
    pause_takeover_rate_filler: round(s.pause_takeover_rate_filler ?? null),
    pause_takeover_rate_intonation: round(s.pause_takeover_rate_intonation ?? null),
    turn_takeover_rate: round(s.turn_takeover_rate ?? null),
    turn_latency_s: round(s.turn_latency_s ?? null),
    turn_response_rate: round(s.turn_response_rate ?? null),
    turn_response_latency_s: round(s.turn_response_latency_s ?? null),
    backchannel_rate: round(s.backchannel_rate ?? null),
    interruption_takeover_rate: round(s.interruption_takeover_rate ?? null),
    interruption_stop_s: round(s.interruption_stop_s ?? null),
    // The interruption items with the caller silent after the prompt: how often the agent stops anyway.
    interruption_takeover_rate_silent_caller: round(s.interruption_takeover_rate_silent_caller ?? null),
    interruption_stop_s_silent_caller: round(s.interruption_stop_s_silent_caller ?? null),
    // A caller's "mm-hm" over the agent, taken for an interruption (lower is better; ground truth 0).
    caller_backchannel_yield_rate: round(s.caller_backchannel_yield_rate ?? null),
    // The same items with the caller silent after the prompt: how often the agent stops anyway.
    caller_backchannel_yield_rate_silent_caller: round(s.caller_backchannel_yield_rate_silent_caller ?? null),
    talk_over_rate: round(s.talk_over_rate ?? null),
    turn_taking_r: round(s.turn_taking_r ?? null),
    turn_taking_r_resynth: round(s.turn_taking_r_resynth ?? null),
    turn_taking_r_both_generated: round(s.turn_taking_r_both_generated ?? null),
    two_agent_r_0: round(r0),
    two_agent_r_240: round(r240),
    // r at 240 ms minus r at 0 ms (the goal: within 0.05 of it).
    two_agent_r_240_vs_0: r0 === null || r240 === null ? null : round(r240 - r0),
    two_agent_runs: sim.results[0]?.runs.length ?? 0,
    // Seconds each side speaks per dialogue (20 s generated): at 0 and 240 ms, and the ground truth.
    two_agent_speech_s_0: round(speechAt(0)),
    two_agent_speech_s_240: round(speechAt(240)),
    two_agent_speech_s_truth: sim.truth ? round(bothSides(sim.truth)) : null,
    // Each run's own difference (the runs at 0 and 240 ms share their seeds).
    two_agent_r_240_vs_0_per_run: perRunDifference(),
    two_agent_late_steps: sim.results.map((r) => r.runs.reduce((a, x) => a + x.run.lateSteps, 0)),
    wall_s: Math.round((performance.now() - started) / 100) / 10,
  }),
);
