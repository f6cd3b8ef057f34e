// kill -9 of the worker holding a call: a peer claims it and continues it; then a SIGTERM drain
// hands it over again, and the killed worker restarts under its id and takes new calls.
import { CallHistory } from '@duet/protocol';
import { connectNats, createLogger, jetstream, type NatsConnection } from '@duet/runtime';
import {
  metricValue,
  type NatsServerHandle,
  type ServiceProcess,
  startNatsServer,
} from '@duet/runtime/testing';
import { Kvm } from '@nats-io/kv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CHUNK_MS,
  ClockPlayer,
  control,
  dialogueModel,
  sleep,
  startWorker,
  type TestCall,
} from './testHarness.js';

let nats: NatsServerHandle;
let nc: NatsConnection;
let clock: ClockPlayer;
let model: string;
const workers: ServiceProcess[] = [];

beforeAll(async () => {
  model = await dialogueModel();
  nats = await startNatsServer();
  nc = await connectNats({ url: nats.url, name: 'test', log: createLogger('test', 'test', 'silent') });
  clock = new ClockPlayer(nc);
  clock.start();
});

afterAll(async () => {
  clock?.stop();
  for (const w of workers) await w.kill();
  await nc?.close();
  await nats?.stop();
});

/** Agent chunks missing between the last one before `atMs` and the first one after it. */
function gapAfter(call: TestCall, atMs: number): { last: number; next: number; missing: number } {
  const before = call.agent.filter((a) => a.at <= atMs).map((a) => a.index);
  const last = Math.max(...before);
  const next = Math.min(...call.agent.filter((a) => a.index > last).map((a) => a.index));
  return { last, next, missing: next - last - 1 };
}

describe('inference failover', () => {
  it('a peer resumes the call of a killed worker within 2 chunks, with the gap units real', async () => {
    const w1 = await startWorker(nats.url, 'fo-1', model, { DUET_INFERENCE_SLOTS: '2' });
    const w2 = await startWorker(nats.url, 'fo-2', model, {
      DUET_INFERENCE_SLOTS: '2',
      DUET_DRAIN_TIMEOUT_MS: '1000',
    });
    workers.push(w1, w2);
    const api1 = control(w1.grpcPort);
    const api2 = control(w2.grpcPort);
    await sleep(6 * CHUNK_MS);
    const reply = await api1.open({ callId: 'fo-call', seed: 3 });
    expect(reply.workerId).toBe('fo-1');
    const call = clock.follow(reply);
    await sleep(15 * CHUNK_MS);

    const killedAt = Date.now();
    await w1.kill();
    await sleep(12 * CHUNK_MS);
    const gap = gapAfter(call, killedAt);
    const resumedAt = call.agent.find((a) => a.index === gap.next)!.at;
    console.log(
      `[inference] kill -9: last agent chunk ${gap.last} from the dead worker, next ${gap.next} from its peer ` +
        `(${gap.missing} chunks missing, ${resumedAt - killedAt} ms after the kill)`,
    );
    const resumed = w2.logs.find((e) => e.msg === 'call resumed');
    console.log(`[inference] resume: ${JSON.stringify(resumed)}`);
    expect(gap.missing).toBeLessThanOrEqual(2);
    // From the resume on, agent chunks are consecutive again.
    const after = call.agent.filter((a) => a.index >= gap.next).map((a) => a.index);
    expect(after).toEqual(after.map((_, i) => gap.next + i));

    const d = await api2.describe({ callId: 'fo-call' });
    expect(d.resumes).toBe(1);
    expect(d.workerId).toBe('fo-2');
    expect(metricValue(await w2.metrics(), 'duet_inference_resumes_total')).toBe(1);

    // User chunks published while nobody stepped the call are real in its history.
    const gapUser = [...call.userSent].filter(([, at]) => at > killedAt && at < resumedAt).map(([k]) => k);
    expect(gapUser.length).toBeGreaterThan(0);
    const kv = await new Kvm(nc).open(jetstream.historyBucket);
    const history = CallHistory.decode((await kv.get('fo-call'))!.value);
    const real = new Map(history.chunks.map((c) => [Number(c.chunkIndex), c.userReal]));
    console.log(`[inference] user chunks sent during the gap: ${gapUser.join(',')}`);
    for (const k of gapUser) expect(real.get(k), `user chunk ${k}`).toBe(true);

    // SIGTERM: fo-2 drains (1 s, the call does not end), leaves, and fo-3 takes the call at once.
    const w3 = await startWorker(nats.url, 'fo-3', model, { DUET_INFERENCE_SLOTS: '2' });
    workers.push(w3);
    await sleep(4 * CHUNK_MS);
    const stopAt = Date.now();
    expect(await w2.stop()).toBe(0);
    const leftAt = Date.now();
    await sleep(8 * CHUNK_MS);
    const handover = gapAfter(call, leftAt);
    console.log(
      `[inference] SIGTERM drain: stopped ${leftAt - stopAt} ms after the signal, ${handover.missing} chunks missing at handover`,
    );
    expect(handover.missing).toBeLessThanOrEqual(2);
    const api3 = control(w3.grpcPort);
    const d3 = await api3.describe({ callId: 'fo-call' });
    expect(d3.workerId).toBe('fo-3');
    expect(d3.resumes).toBe(2);

    // The killed worker restarts under its id and takes new calls.
    const w1b = await startWorker(nats.url, 'fo-1', model, { DUET_INFERENCE_SLOTS: '2' });
    workers.push(w1b);
    const api1b = control(w1b.grpcPort);
    await sleep(4 * CHUNK_MS);
    const fresh = await api1b.open({ callId: 'fo-new', seed: 0 });
    expect(fresh.workerId).toBe('fo-1');
    for (const api of [api1, api2, api3, api1b]) api.dispose();
  });
});
