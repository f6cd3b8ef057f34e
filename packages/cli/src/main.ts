#!/usr/bin/env node
import { Command, InvalidArgumentError, Option } from 'commander';
import { runCallCommand } from './call/callCommand.js';
import { runEvalCommand, runSimulateCommand } from './eval/evalCommands.js';
import { runStartCommand } from './start/startCommand.js';
import { runTokenCommand } from './token/tokenCommand.js';

const program = new Command('duet').description('Duet: serving full-duplex voice agents');

program
  .command('start')
  .description('start nats-server (unless --nats) and every service with the default models, until Ctrl-C')
  .option('--nats <url>', 'use this NATS instead of a local nats-server (also DUET_NATS_URL / NATS_URL)')
  .option('--quiet', 'print only warnings and errors of the services')
  .action(async (opts: { nats?: string; quiet?: boolean }) => {
    await runStartCommand({ ...(opts.nats ? { natsUrl: opts.nats } : {}), quiet: opts.quiet ?? false });
  });

const upTo =
  (max: number, what = 'a number') =>
  (v: string) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0 || n > max)
      throw new InvalidArgumentError(`${what} between 0 and ${max}`);
    return n;
  };

const seconds = upTo(3600, 'seconds');

program
  .command('call')
  .description(
    "send a WAV (or espeak-ng text) as RTP through the running system and record the agent's audio",
  )
  .option('--wav <file>', 'caller audio (WAV, 8/16/24/48 kHz)')
  .option('--say <text>', 'synthesise the caller with espeak-ng instead')
  .requiredOption('--out <file>', "where to write the agent's audio (WAV)")
  .addOption(
    new Option('--codec <codec>', 'codec on the wire').choices(['pcmu', 'pcma', 'opus']).default('pcmu'),
  )
  .option('--tail <seconds>', "keep listening this long after the caller's audio ends", seconds, 3)
  .option('--inference <addr>', 'inference gRPC', process.env.DUET_INFERENCE_ADDR ?? '127.0.0.1:50051')
  .option('--tokenizer <addr>', 'tokenizer gRPC', process.env.DUET_TOKENIZER_ADDR ?? '127.0.0.1:50052')
  .option('--vocoder <addr>', 'vocoder gRPC', process.env.DUET_VOCODER_ADDR ?? '127.0.0.1:50053')
  .option('--call-id <id>', 'call id (default: random)')
  .action(async (opts) => {
    await runCallCommand(opts);
  });

const ttl = (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 7 * 24 * 3600)
    throw new InvalidArgumentError('seconds between 1 and 604800');
  return n;
};

program
  .command('token')
  .description('mint a caller token for the SFU (browser client) from the configured secret')
  .option('--call <id>', 'call id the token opens (default: random)')
  .option('--agent <name>', 'agent that answers', 'default')
  .option('--ttl <seconds>', 'lifetime', ttl, 600)
  .option('--secret <secret>', 'HS256 secret (default: DUET_SFU_TOKEN_SECRET)')
  .option('--url <url>', "print the browser client's link on this SFU instead (e.g. http://localhost:8088)")
  .option('--json', 'print token, call id and link as JSON')
  .action(
    async (opts: {
      call?: string;
      agent: string;
      ttl: number;
      secret?: string;
      url?: string;
      json?: boolean;
    }) => {
      await runTokenCommand(opts);
    },
  );

const positiveInt = (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 1_000_000) throw new InvalidArgumentError('a positive integer');
  return n;
};

program
  .command('eval')
  .description('run a dialogue model over an eval set (tokenizer -> engine -> vocoder) and write a report')
  .option(
    '--model <manifest>',
    'duet.synclm manifest (default: models/default/dialogue, else the untrained model)',
  )
  .option('--evalset <dir>', 'eval set (tools/recipe/duet-recipe eval-set)', '.cache/recipe/evalset')
  .option('--synthetic', 'write a small synthetic eval set (espeak-ng) into --evalset if it has none')
  .option('--out <dir>', 'where to write report.md and report.json', '.cache/eval/report')
  .option('--audio', "also write each item's generated agent + caller as a stereo WAV")
  .option('--slots <n>', 'items stepped together', positiveInt, 16)
  .option('--seed <n>', 'sampling seed', positiveInt, 1)
  .option(
    '--temperature <t>',
    'sampling temperature of the units (default: the inference service, 0.8)',
    upTo(10),
  )
  .option('--top-p <p>', 'nucleus sampling (default: the inference service, 0.95)', upTo(1))
  .option(
    '--timing-temperature <t>',
    "temperature of the timing decision, or 'off' (default: the inference service, off)",
    (v: string) => (v === 'off' ? 'off' : upTo(10)(v)),
  )
  .option('--limit <n>', 'at most n items of each kind', positiveInt)
  .action(async (opts) => {
    await runEvalCommand(opts);
  });

const latencies = (v: string) =>
  v.split(',').map((x) => {
    const n = Number(x);
    if (!Number.isInteger(n) || n < 0 || n > 480)
      throw new InvalidArgumentError('milliseconds 0..480, e.g. 0,240');
    return n;
  });

program
  .command('simulate')
  .description('two agents talking through nats-server and the clock service with a one-way latency')
  .option('--latency <ms>', 'one-way latency in ms, or a list (e.g. 0,80,160,240)', latencies, [160])
  .option(
    '--evalset <dir>',
    "prompts and ground truth from the eval set's dialogues (default: .cache/recipe/evalset if present)",
  )
  .option(
    '--model <manifest>',
    'duet.synclm manifest (default: models/default/dialogue, else the untrained model)',
  )
  .option('--seconds <s>', 'seconds generated after the prompt', seconds, 20)
  .option('--dialogues <n>', 'at most n dialogues (run together)', positiveInt)
  .option('--out <dir>', 'where to write the stereo WAVs and simulate.md/json', '.cache/eval/simulate')
  .option('--nats <url>', 'use this NATS, with a clock already ticking (default: start nats-server + clock)')
  .option('--seed <n>', 'sampling seed (of the first run)', positiveInt, 1)
  .option('--runs <n>', 'runs per latency (seeds seed, seed+1, ...); r over all of them', positiveInt, 1)
  .action(async (opts) => {
    await runSimulateCommand(opts);
  });

program.parseAsync().catch((error: unknown) => {
  console.error(`duet: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
