import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { DEFAULT_EVALSET, runEval, runSimulate, SERVING_SAMPLING, writeSyntheticEvalSet } from '@duet/eval';

export interface EvalCommandOptions {
  readonly model?: string;
  readonly evalset: string;
  readonly out: string;
  readonly synthetic?: boolean;
  readonly audio?: boolean;
  readonly slots: number;
  readonly seed: number;
  readonly limit?: number;
  readonly units?: string;
  readonly vocoder?: string;
  readonly temperature?: number;
  readonly topP?: number;
  readonly timingTemperature?: number | 'off';
}

const log = (line: string) => process.stderr.write(`${line}\n`);

/** `duet eval`: the eval set through tokenizer -> engine -> vocoder, scored; writes report.md and report.json. */
export async function runEvalCommand(o: EvalCommandOptions): Promise<void> {
  const evalset = resolve(o.evalset);
  if (!existsSync(join(evalset, 'manifest.json')) && o.synthetic) {
    log(`eval: no eval set at ${evalset}: writing a synthetic one (espeak-ng)`);
    await writeSyntheticEvalSet(evalset);
  }
  const timing = o.timingTemperature ?? SERVING_SAMPLING.timingTemperature;
  const custom = o.temperature !== undefined || o.topP !== undefined || o.timingTemperature !== undefined;
  const sampling = {
    temperature: o.temperature ?? SERVING_SAMPLING.temperature,
    topK: 0,
    topP: o.topP ?? SERVING_SAMPLING.topP,
    ...(timing === undefined || timing === 'off' ? {} : { timingTemperature: timing }),
  };
  const result = await runEval({
    evalSet: evalset,
    ...(custom ? { sampling } : {}),
    ...(o.model ? { model: o.model } : {}),
    ...(o.units ? { units: o.units } : {}),
    ...(o.vocoder ? { vocoder: o.vocoder } : {}),
    ...(o.limit !== undefined ? { limitPerKind: o.limit } : {}),
    outDir: o.out,
    writeAudio: o.audio ?? false,
    slots: o.slots,
    seed: o.seed,
    log,
  });
  process.stdout.write(result.markdown);
  log(`eval: wrote ${join(o.out, 'report.md')} and report.json`);
}

export interface SimulateCommandOptions {
  readonly latency: number[];
  readonly evalset?: string;
  readonly model?: string;
  readonly seconds: number;
  readonly dialogues?: number;
  readonly out: string;
  readonly nats?: string;
  readonly seed: number;
  readonly runs: number;
}

/** `duet simulate`: two agents over nats-server + the clock service with a one-way latency. */
export async function runSimulateCommand(o: SimulateCommandOptions): Promise<void> {
  const evalset =
    o.evalset ?? (existsSync(join(DEFAULT_EVALSET, 'manifest.json')) ? DEFAULT_EVALSET : undefined);
  const result = await runSimulate({
    latenciesMs: o.latency,
    ...(evalset ? { evalSet: evalset } : {}),
    ...(o.model ? { model: o.model } : {}),
    ...(o.dialogues !== undefined ? { dialogues: o.dialogues } : {}),
    ...(o.nats ? { natsUrl: o.nats } : {}),
    seconds: o.seconds,
    outDir: o.out,
    seed: o.seed,
    runs: o.runs,
    log,
  });
  process.stdout.write(result.markdown);
  log(
    `simulate: wrote stereo WAVs (left: agent A, right: agent B), simulate.md and simulate.json to ${o.out}`,
  );
}
