import { randomBytes } from 'node:crypto';
import { accessSync, constants, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_DIALOGUE_MODEL, repoRoot } from '@duet/engine/tiny';
import { freePort } from '@duet/runtime/testing';
import { defaultWorkerBin } from '@duet/sfu';
import { mintCallToken } from '@duet/sfu/token';
import { launchSystem, SERVICE_NAMES } from './launcher.js';

const GRPC = { clock: 0, inference: 50051, tokenizer: 50052, vocoder: 50053 } as const;
const HTTP = { clock: 9400, tokenizer: 9401, inference: 9402, vocoder: 9403 } as const;

/** One line per service log entry: time, replica, level, message and the rest as key=value. */
function printLog(service: string, entry: Record<string, unknown>): void {
  const { level, time, msg, service: _s, instance: _i, ...rest } = entry;
  const extra = Object.entries(rest)
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
  const t = typeof time === 'string' ? time.slice(11, 23) : '';
  console.log(
    `${t} ${service.padEnd(12)} ${String(level).padEnd(5)} ${String(msg)}${extra ? `  ${extra}` : ''}`,
  );
}

/** `pnpm start`: the embedded default system on this machine, until Ctrl-C. */
export async function runStartCommand(options: { natsUrl?: string; quiet?: boolean }): Promise<void> {
  const natsUrl = options.natsUrl ?? process.env.DUET_NATS_URL ?? process.env.NATS_URL;
  const storeDir = join(repoRoot, '.cache/nats');
  mkdirSync(storeDir, { recursive: true });
  console.log(
    natsUrl ? `using NATS at ${natsUrl}` : 'starting a local nats-server (JetStream in .cache/nats) ...',
  );
  const natsPort = natsUrl ? undefined : (await isFree(4222)) ? 4222 : await freePort();
  // The WebRTC SFU runs too when its mediasoup worker is built (scripts/setup.sh builds it).
  const workerBin = process.env.MEDIASOUP_WORKER_BIN ?? defaultWorkerBin();
  const withSfu = canExecute(workerBin);
  const tokenSecret = process.env.DUET_SFU_TOKEN_SECRET ?? randomBytes(24).toString('base64url');
  const sfuPort = Number(process.env.DUET_SFU_PORT ?? 8088);
  // The SIP bridge (same mediasoup worker) on 5060 UDP/TCP, or any free port when 5060 is taken.
  const sipPort = Number(process.env.DUET_SIP_PORT ?? ((await isFree(5060)) ? 5060 : 0));
  const system = await launchSystem({
    ...(natsUrl ? { natsUrl } : { natsPort: natsPort!, natsStoreDir: storeDir }),
    grpcPorts: GRPC,
    httpPorts: HTTP,
    ...(withSfu ? { sfu: { tokenSecret, port: sfuPort, env: { DUET_HTTP_PORT: '9404' } } } : {}),
    ...(withSfu ? { sip: { port: sipPort, env: { DUET_HTTP_PORT: '9405' } } } : {}),
    onLog: (service, entry) => {
      if (!options.quiet || entry.level === 'warn' || entry.level === 'error' || entry.level === 'fatal')
        printLog(service, entry);
    },
  });
  const lines = [
    '',
    existsSync(DEFAULT_DIALOGUE_MODEL)
      ? 'Duet is running (dialogue model: models/default/dialogue: trained timing, words not meaningful; see README).'
      : 'Duet is running (the dialogue model is untrained: models/default/dialogue is missing; see README).',
    `  NATS                ${system.natsUrl}`,
    `  inference  gRPC     ${system.addresses.inference}`,
    `  tokenizer  gRPC     ${system.addresses.tokenizer}`,
    `  vocoder    gRPC     ${system.addresses.vocoder}`,
    ...SERVICE_NAMES.map(
      (s) => `  ${s.padEnd(10)} metrics  http://127.0.0.1:${system.processes[s][0]!.httpPort}/metrics`,
    ),
    ...(system.sfu
      ? [
          `  sfu        browser  http://localhost:${system.sfu.port}/?token=${await mintCallToken({ secret: tokenSecret, callId: `web-${randomBytes(4).toString('hex')}`, ttlSeconds: 3600 })}`,
          `             (a new link: DUET_SFU_TOKEN_SECRET=${process.env.DUET_SFU_TOKEN_SECRET ? '...' : tokenSecret} pnpm duet token --url http://localhost:${system.sfu.port})`,
        ]
      : [
          `  sfu        not started: no mediasoup worker at ${workerBin} (run scripts/build-mediasoup-worker.sh)`,
        ]),
    ...(system.sip
      ? [
          `  sip-bridge SIP      sip:duet@127.0.0.1:${system.sip.port} (UDP and TCP; callers from 127.0.0.0/8, see services/sip-bridge/README.md)`,
        ]
      : []),
    '',
    'Place a call from another terminal:',
    '  pnpm duet call --say "hello, can you hear me?" --out agent.wav',
    '  pnpm duet call --wav my-voice.wav --codec opus --out agent.wav',
    '',
    'Ctrl-C drains and stops everything.',
    '',
  ];
  console.log(lines.join('\n'));
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    console.log('stopping ...');
    await system.stop();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop());
  process.on('SIGTERM', () => void stop());
  // Any service dying on its own ends the whole embedded system loudly.
  for (const p of [
    ...SERVICE_NAMES.flatMap((s) => system.processes[s]),
    ...(system.sfu ? [system.sfu.process] : []),
    ...(system.sip ? [system.sip.process] : []),
  ])
    p.child.once('exit', (code, signal) => {
      if (!stopping) {
        console.error(`${p.name} exited (${code ?? signal}); stopping`);
        void stop();
      }
    });
}

function canExecute(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

async function isFree(port: number): Promise<boolean> {
  const { createServer } = await import('node:net');
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}
