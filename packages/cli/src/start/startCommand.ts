import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '@duet/engine/tiny';
import { freePort } from '@duet/runtime/testing';
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
  const system = await launchSystem({
    ...(natsUrl ? { natsUrl } : { natsPort: natsPort!, natsStoreDir: storeDir }),
    grpcPorts: GRPC,
    httpPorts: HTTP,
    onLog: (service, entry) => {
      if (!options.quiet || entry.level === 'warn' || entry.level === 'error' || entry.level === 'fatal')
        printLog(service, entry);
    },
  });
  const lines = [
    '',
    'Duet is running (the dialogue model is untrained until a trained default ships; see README).',
    `  NATS                ${system.natsUrl}`,
    `  inference  gRPC     ${system.addresses.inference}`,
    `  tokenizer  gRPC     ${system.addresses.tokenizer}`,
    `  vocoder    gRPC     ${system.addresses.vocoder}`,
    ...SERVICE_NAMES.map(
      (s) => `  ${s.padEnd(10)} metrics  http://127.0.0.1:${system.processes[s][0]!.httpPort}/metrics`,
    ),
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
  for (const s of SERVICE_NAMES)
    for (const p of system.processes[s])
      p.child.once('exit', (code, signal) => {
        if (!stopping) {
          console.error(`${p.name} exited (${code ?? signal}); stopping`);
          void stop();
        }
      });
}

async function isFree(port: number): Promise<boolean> {
  const { createServer } = await import('node:net');
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}
