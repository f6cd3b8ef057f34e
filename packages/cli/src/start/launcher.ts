import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot, resolveDialogueModel } from '@duet/engine/tiny';
import type { DuetControlAddresses } from '@duet/runtime';
import {
  type NatsServerHandle,
  type ServiceProcess,
  startNatsServer,
  startServiceProcess,
} from '@duet/runtime/testing';

export const SERVICE_NAMES = ['clock', 'tokenizer', 'inference', 'vocoder'] as const;
export type ServiceName = (typeof SERVICE_NAMES)[number];

export interface LaunchOptions {
  /** Use this NATS (comma-separated URLs); default: start a local nats-server. */
  readonly natsUrl?: string;
  /** Port of the local nats-server (default: a free one). */
  readonly natsPort?: number;
  /** JetStream store of the local nats-server (default: temporary). */
  readonly natsStoreDir?: string;
  /** gRPC and HTTP ports per service (default 0: any free port). */
  readonly grpcPorts?: Partial<Record<ServiceName, number>>;
  readonly httpPorts?: Partial<Record<ServiceName, number>>;
  /**
   * duet.synclm manifest for inference; default: the committed default dialogue model
   * (models/default/dialogue, trained by tools/recipe `default-dialogue`), else the untrained one (built once).
   */
  readonly dialogueModel?: string;
  /** Extra environment per service (and for all under '*'). */
  readonly env?: Partial<Record<ServiceName | '*', Record<string, string>>>;
  /** Replicas per service (default 1 each). */
  readonly replicas?: Partial<Record<ServiceName, number>>;
  readonly onLog?: (service: string, entry: Record<string, unknown>) => void;
  /** Also start the WebRTC SFU (services/sfu) in front of the call services. */
  readonly sfu?: {
    readonly tokenSecret: string;
    /** Signalling + browser client port (default 0: any free port). */
    readonly port?: number;
    readonly env?: Record<string, string>;
  };
  /** Also start the SIP bridge (services/sip-bridge) in front of the call services. */
  readonly sip?: {
    /** SIP port, UDP and TCP (default 0: any free port). */
    readonly port?: number;
    readonly env?: Record<string, string>;
  };
}

export interface RunningSip {
  readonly process: ServiceProcess;
  /** The SIP port (UDP and TCP). */
  readonly port: number;
}

export interface RunningSfu {
  readonly process: ServiceProcess;
  /** The browser client and signalling port. */
  readonly port: number;
}

export interface RunningSystem {
  readonly natsUrl: string;
  readonly nats: NatsServerHandle | undefined;
  /** Every service replica, e.g. processes.inference[0]. */
  readonly processes: Record<ServiceName, ServiceProcess[]>;
  /** Control addresses of the first replica of each call service. */
  readonly addresses: DuetControlAddresses;
  /** The SFU, when LaunchOptions.sfu asked for it. */
  readonly sfu: RunningSfu | undefined;
  /** The SIP bridge, when LaunchOptions.sip asked for it. */
  readonly sip: RunningSip | undefined;
  /** Starts one more replica (or restarts one with the same instance id). */
  startReplica(
    service: ServiceName,
    instanceId: string,
    env?: Record<string, string>,
  ): Promise<ServiceProcess>;
  /** SIGTERM to every service (graceful drain), then stops the local nats-server. */
  stop(): Promise<void>;
}

export function serviceEntry(service: ServiceName): string {
  const entry = join(repoRoot, 'services', service, 'dist/main.js');
  if (!existsSync(entry)) throw new Error(`${entry} is missing: run pnpm build`);
  return entry;
}

/**
 * Brings the whole call loop up on this machine: a nats-server (unless one is given), then the
 * clock, tokenizer, inference and vocoder as separate processes with the default models.
 */
export async function launchSystem(options: LaunchOptions = {}): Promise<RunningSystem> {
  const nats = options.natsUrl
    ? undefined
    : await startNatsServer({
        prefer: 'auto',
        ...(options.natsPort !== undefined ? { port: options.natsPort } : {}),
        ...(options.natsStoreDir !== undefined ? { storeDir: options.natsStoreDir } : {}),
      });
  const natsUrl = options.natsUrl ?? nats!.url;
  const dialogueModel = (await resolveDialogueModel(options.dialogueModel)).path;
  const processes = Object.fromEntries(SERVICE_NAMES.map((s) => [s, [] as ServiceProcess[]])) as Record<
    ServiceName,
    ServiceProcess[]
  >;
  const startReplica = async (
    service: ServiceName,
    instanceId: string,
    extra: Record<string, string> = {},
  ) => {
    const first = processes[service].length === 0;
    const proc = await startServiceProcess({
      name: instanceId,
      entry: serviceEntry(service),
      timeoutMs: 120_000,
      env: {
        DUET_NATS_URL: natsUrl,
        DUET_INSTANCE_ID: instanceId,
        DUET_GRPC_PORT: String(first ? (options.grpcPorts?.[service] ?? 0) : 0),
        DUET_HTTP_PORT: String(first ? (options.httpPorts?.[service] ?? 0) : 0),
        ...(service === 'inference' ? { DUET_INFERENCE_MODEL: dialogueModel } : {}),
        ...options.env?.['*'],
        ...options.env?.[service],
        ...extra,
      },
      ...(options.onLog
        ? { onLog: (entry: Record<string, unknown>) => options.onLog!(instanceId, entry) }
        : {}),
    });
    const list = processes[service];
    const existing = list.findIndex((p) => p.name === instanceId);
    if (existing >= 0) list[existing] = proc;
    else list.push(proc);
    return proc;
  };
  try {
    // The clock first (everything runs on its ticks), then the services in call-setup order.
    for (const service of SERVICE_NAMES) {
      const n = options.replicas?.[service] ?? 1;
      await Promise.all(Array.from({ length: n }, (_, i) => startReplica(service, `${service}-${i + 1}`)));
    }
  } catch (error) {
    await Promise.all(SERVICE_NAMES.flatMap((s) => processes[s].map((p) => p.kill())));
    await nats?.stop();
    throw error;
  }
  const addr = (s: ServiceName) => `127.0.0.1:${processes[s][0]!.grpcPort}`;
  const addresses = { inference: addr('inference'), tokenizer: addr('tokenizer'), vocoder: addr('vocoder') };
  let sfu: RunningSfu | undefined;
  if (options.sfu) {
    try {
      sfu = await startSfuProcess(natsUrl, addresses, options.sfu, options.onLog);
    } catch (error) {
      await Promise.all(SERVICE_NAMES.flatMap((s) => processes[s].map((p) => p.kill())));
      await nats?.stop();
      throw error;
    }
  }
  let sip: RunningSip | undefined;
  if (options.sip) {
    try {
      sip = await startSipProcess(natsUrl, addresses, options.sip, options.onLog);
    } catch (error) {
      await sfu?.process.kill();
      await Promise.all(SERVICE_NAMES.flatMap((s) => processes[s].map((p) => p.kill())));
      await nats?.stop();
      throw error;
    }
  }
  return {
    natsUrl,
    nats,
    processes,
    addresses,
    sfu,
    sip,
    startReplica,
    async stop() {
      await Promise.all([sfu?.process.stop(), sip?.process.stop()]);
      // Edges first, clock last, so calls drain while ticks still come.
      for (const s of ['vocoder', 'tokenizer', 'inference', 'clock'] as const) {
        await Promise.all(processes[s].map((p) => p.stop()));
      }
      await nats?.stop();
    },
  };
}

async function startSfuProcess(
  natsUrl: string,
  addresses: DuetControlAddresses,
  options: NonNullable<LaunchOptions['sfu']>,
  onLog: LaunchOptions['onLog'],
): Promise<RunningSfu> {
  const entry = join(repoRoot, 'services', 'sfu', 'dist/main.js');
  if (!existsSync(entry)) throw new Error(`${entry} is missing: run pnpm build`);
  let port = 0;
  const proc = await startServiceProcess({
    name: 'sfu-1',
    entry,
    timeoutMs: 60_000,
    env: {
      DUET_NATS_URL: natsUrl,
      DUET_INSTANCE_ID: 'sfu-1',
      DUET_SFU_PORT: String(options.port ?? 0),
      DUET_SFU_INFERENCE_ADDR: addresses.inference,
      DUET_SFU_TOKENIZER_ADDR: addresses.tokenizer,
      DUET_SFU_VOCODER_ADDR: addresses.vocoder,
      DUET_SFU_TOKEN_SECRET: options.tokenSecret,
      ...options.env,
    },
    onLog: (e) => {
      if (e.msg === 'signalling listening') port = Number(e.sfuPort);
      onLog?.('sfu-1', e);
    },
  });
  return { process: proc, port };
}

async function startSipProcess(
  natsUrl: string,
  addresses: DuetControlAddresses,
  options: NonNullable<LaunchOptions['sip']>,
  onLog: LaunchOptions['onLog'],
): Promise<RunningSip> {
  const entry = join(repoRoot, 'services', 'sip-bridge', 'dist/main.js');
  if (!existsSync(entry)) throw new Error(`${entry} is missing: run pnpm build`);
  let port = 0;
  const proc = await startServiceProcess({
    name: 'sip-bridge-1',
    entry,
    timeoutMs: 60_000,
    env: {
      DUET_NATS_URL: natsUrl,
      DUET_INSTANCE_ID: 'sip-bridge-1',
      DUET_SIP_PORT: String(options.port ?? 0),
      DUET_SIP_INFERENCE_ADDR: addresses.inference,
      DUET_SIP_TOKENIZER_ADDR: addresses.tokenizer,
      DUET_SIP_VOCODER_ADDR: addresses.vocoder,
      ...options.env,
    },
    onLog: (e) => {
      if (e.msg === 'sip listening') port = Number(e.sipPort);
      onLog?.('sip-bridge-1', e);
    },
  });
  return { process: proc, port };
}
