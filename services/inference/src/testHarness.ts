// Shared by the integration tests: the test plays the clock and the tokenizer itself.
import { fileURLToPath } from 'node:url';
import { ensureTinyModel, UNTRAINED_DIALOGUE_MODEL } from '@duet/engine/tiny';
import {
  decodeMessage,
  type InferenceCallDescription,
  InferenceControlClient,
  type OpenInferenceCallResponse,
  Speaker,
  Tick,
  UnitChunk,
} from '@duet/protocol';
import { type NatsConnection, subjects } from '@duet/runtime';
import { type ServiceProcess, startServiceProcess } from '@duet/runtime/testing';
import { credentials } from '@grpc/grpc-js';

export const ENTRY = fileURLToPath(new URL('../dist/main.js', import.meta.url));
export const CHUNK_MS = 160;
export const U = CHUNK_MS / 40;

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

export async function dialogueModel(): Promise<string> {
  return (await ensureTinyModel(UNTRAINED_DIALOGUE_MODEL, { quiet: true })).manifestPath;
}

export function startWorker(
  natsUrl: string,
  id: string,
  model: string,
  env: Record<string, string> = {},
): Promise<ServiceProcess> {
  return startServiceProcess({
    name: id,
    entry: ENTRY,
    timeoutMs: 60_000,
    env: {
      DUET_NATS_URL: natsUrl,
      DUET_INSTANCE_ID: id,
      DUET_INFERENCE_MODEL: model,
      DUET_LOG_LEVEL: 'info',
      ...env,
    },
  });
}

/** A test call: the user chunks the test plays, the agent chunks it sees. */
export interface TestCall {
  readonly callId: string;
  readonly firstTick: number;
  /** Agent chunks: index, units, arrival (ms) and the T(n) of the tick that produced it. */
  readonly agent: { index: number; units: number; at: number; tickAt: number }[];
  /** User chunk index -> publish time. */
  readonly userSent: Map<number, number>;
  playing: boolean;
}

/**
 * Publishes a Tick every CHUNK_MS (T(seq) = seq * CHUNK_MS, seq from Date.now()) and, after each
 * tick n, every playing call's user chunk n - f - 1 (random units, as the tokenizer would).
 */
export class ClockPlayer {
  readonly calls = new Map<string, TestCall>();
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private readonly subs: { unsubscribe(): void }[] = [];
  lastSeq = 0;

  constructor(private readonly nc: NatsConnection) {}

  start(): void {
    this.running = true;
    const next = () => {
      if (!this.running) return;
      const seq = Math.floor(Date.now() / CHUNK_MS) + 1;
      this.timer = setTimeout(
        () => {
          this.publish(seq);
          next();
        },
        seq * CHUNK_MS - Date.now(),
      );
    };
    next();
  }

  stop(): void {
    this.running = false;
    clearTimeout(this.timer);
    for (const s of this.subs) s.unsubscribe();
  }

  private publish(seq: number): void {
    this.lastSeq = seq;
    this.nc.publish(
      subjects.tick,
      Tick.encode({
        seq: BigInt(seq),
        scheduledAtMs: BigInt(seq * CHUNK_MS),
        chunkMs: CHUNK_MS,
        publisher: 'test',
      }).finish(),
    );
    for (const call of this.calls.values()) {
      const k = seq - call.firstTick - 1;
      if (!call.playing || k < 0) continue;
      this.nc.publish(subjects.userUnits(call.callId), userChunk(call.callId, k));
      call.userSent.set(k, Date.now());
    }
  }

  /** Follows a call placed with `reply`: records its agent chunks, plays its user chunks. */
  follow(reply: OpenInferenceCallResponse): TestCall {
    const call: TestCall = {
      callId: reply.callId,
      firstTick: Number(reply.firstTick),
      agent: [],
      userSent: new Map(),
      playing: true,
    };
    this.calls.set(call.callId, call);
    this.subs.push(
      this.nc.subscribe(subjects.agentUnits(call.callId), {
        callback: (_e, msg) => {
          const c = decodeMessage(UnitChunk, 'UnitChunk', msg.data);
          const index = Number(c.chunkIndex);
          call.agent.push({
            index,
            units: c.units.length,
            at: Date.now(),
            tickAt: (call.firstTick + index - 1) * CHUNK_MS,
          });
        },
      }),
    );
    return call;
  }
}

export function userChunk(callId: string, index: number): Uint8Array {
  return UnitChunk.encode({
    callId,
    speaker: Speaker.SPEAKER_USER,
    chunkIndex: BigInt(index),
    units: Array.from({ length: U }, () => Math.floor(Math.random() * 128)),
    producedAtMs: BigInt(Date.now()),
  }).finish();
}

/** The gRPC InferenceControl of one replica, promisified. */
export function control(port: number) {
  const client = new InferenceControlClient(`127.0.0.1:${port}`, credentials.createInsecure());
  const call =
    <Q, R>(method: (req: Q, cb: (e: Error | null, r: R) => void) => unknown) =>
    (req: Q) =>
      new Promise<R>((resolve, reject) =>
        method.call(client, req, (e: Error | null, r: R) => (e ? reject(e) : resolve(r))),
      );
  return {
    open: call<{ callId: string; seed: number }, OpenInferenceCallResponse>(client.openCall),
    close: call<{ callId: string; reason: string }, { wasOpen: boolean }>(client.closeCall),
    describe: call<{ callId: string }, InferenceCallDescription>(client.describeCall),
    dispose: () => client.close(),
  };
}
