#!/usr/bin/env node
import { Command, InvalidArgumentError, Option } from 'commander';
import { runCallCommand } from './call/callCommand.js';
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

const seconds = (v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0 || n > 3600) throw new InvalidArgumentError('seconds between 0 and 3600');
  return n;
};

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

program.parseAsync().catch((error: unknown) => {
  console.error(`duet: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
