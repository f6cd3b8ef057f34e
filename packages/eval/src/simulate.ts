// `duet simulate`: two agent instances talking to each other over NATS, stepping on the ticks
// of the real clock service, each one's units delivered to the other with a one-way latency.
//
// How latency is applied (SyncLLM, section "latency tolerant interaction"): both agents share
// one clock, and every chunk keeps its chunk index (its time slot). Agent A's chunk j is played
// during slot j, i.e. it is complete at T(j+1); the network hands it to B at T(j+1) + latency as
// B's user chunk j (same slot). B's worker steps at T(n) + phase with whatever arrived: with
// latency 0 chunk j is there for step j+1 (on time); with 80-160 ms it misses step j+1, where
// B's own prediction of A's chunk j stands in, and replaces it at step j+2 (the KV cache rolls
// back to the prediction and is prefilled again); 240 ms lands it at step j+3. So the latency
// shows up as predicted chunks in the context, never as a shift of the other side's speech in
// time; the model's prediction of the other side is what covers it.
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { SyncEngine } from '@duet/engine';
import { repoRoot } from '@duet/engine/tiny';
import { decodeMessage, Speaker, Tick, UnitChunk } from '@duet/protocol';
import { subjects } from '@duet/runtime';
import {
  type NatsServerHandle,
  type ServiceProcess,
  startNatsServer,
  startServiceProcess,
} from '@duet/runtime/testing';
import { chunkGeometry, type UserChunkAdmission } from '@duet/sync';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { loadDialogueEngine, promptNextAgentChunk, promptTokens } from './generate.js';
import { applyingStep, deliveryTimeMs } from './latency.js';

export interface ClockHandle {
  readonly natsUrl: string;
  readonly nats: NatsServerHandle | undefined;
  readonly clock: ServiceProcess;
  stop(): Promise<void>;
}

/** A local nats-server (unless `natsUrl`) and the clock service, as `duet start` runs them. */
export async function launchClock(options: { natsUrl?: string; chunkMs: number }): Promise<ClockHandle> {
  const nats = options.natsUrl ? undefined : await startNatsServer({ prefer: 'auto' });
  const natsUrl = options.natsUrl ?? nats!.url;
  let clock: ServiceProcess;
  try {
    clock = await startServiceProcess({
      name: 'clock-sim',
      entry: join(repoRoot, 'services/clock/dist/main.js'),
      timeoutMs: 60_000,
      env: {
        DUET_NATS_URL: natsUrl,
        DUET_INSTANCE_ID: `clock-sim-${process.pid}`,
        DUET_CLOCK_CHUNK_MS: String(options.chunkMs),
        DUET_LOG_LEVEL: 'warn',
      },
    });
  } catch (error) {
    await nats?.stop();
    throw error;
  }
  return {
    natsUrl,
    nats,
    clock,
    async stop() {
      await clock.stop();
      await nats?.stop();
    },
  };
}

export interface SimDialogue {
  readonly id: string;
  /** Raw units per chunk of the two sides' prompts (side A speaks first in the [S0] position of its own model). */
  readonly aUnits: readonly (readonly number[])[];
  readonly bUnits: readonly (readonly number[])[];
  readonly promptChunks: number;
}

export interface SimulateOptions {
  readonly natsUrl: string;
  readonly model: string;
  /** One-way network latency between the agents (ms). */
  readonly latencyMs: number;
  readonly chunkMs: number;
  readonly dialogues: readonly SimDialogue[];
  /** Chunks generated after the prompt. */
  readonly chunks: number;
  readonly silenceUnit: number;
  readonly unitCount: number;
  /** Wait after T(n) before stepping, as the inference worker (default 30 ms). */
  readonly phaseMs?: number;
  readonly seed?: number;
  readonly log?: (line: string) => void;
}

export interface SimulationRun {
  /** Expanded units per chunk for each dialogue and side, prompt included. */
  readonly channels: readonly { readonly id: string; readonly a: number[][]; readonly b: number[][] }[];
  readonly stats: {
    readonly steps: number;
    /** Steps that ended after the next tick's scheduled time. */
    readonly lateSteps: number;
    readonly stepMsP50: number;
    readonly stepMsMax: number;
    /** Admission of the delivered user chunks, and how they were applied. */
    readonly admissions: Record<UserChunkAdmission, number>;
    readonly replaced: number;
    readonly confirmed: number;
    readonly lost: number;
    readonly tickGaps: number;
    /** Chunks that reached the peer's process after the step they were due for (applied one step late). */
    readonly heldUp: number;
  };
}

interface Side {
  readonly engine: SyncEngine;
  readonly name: 'a' | 'b';
}

/**
 * Runs the two agents for `chunks` chunks after the prompt. Each agent is its own engine
 * (model instance) with one call per dialogue; its agent chunks go out on NATS
 * (`duet.call.<id>.agent`), a relay holds each for the latency and publishes it as the other
 * side's user chunk (`duet.call.<peer>.user`), which the other agent submits to its engine.
 */
export async function simulateAgents(options: SimulateOptions): Promise<SimulationRun> {
  const log = options.log ?? (() => {});
  const geometry = chunkGeometry(options.chunkMs);
  const u = geometry.unitsPerChunk;
  const phaseMs = options.phaseMs ?? 30;
  const slots = Math.max(1, options.dialogues.length);
  const load = () =>
    loadDialogueEngine({
      manifestPath: options.model,
      chunkMs: options.chunkMs,
      slots,
      silenceUnit: options.silenceUnit,
      unitCount: options.unitCount,
    });
  // Call ids unique to this run (several runs may share one NATS): sim-<run>-<dialogue #>-<side>.
  const run = randomBytes(4).toString('hex');
  const index = new Map(options.dialogues.map((d, i) => [d.id, i]));
  const callId = (dialogue: string, side: 'a' | 'b') => `sim-${run}-${index.get(dialogue)}-${side}`;
  const ours = new Set(options.dialogues.flatMap((d) => [callId(d.id, 'a'), callId(d.id, 'b')]));
  const sides: Side[] = [
    { engine: await load(), name: 'a' },
    { engine: await load(), name: 'b' },
  ];
  const nc: NatsConnection = await connect({ servers: options.natsUrl.split(','), name: 'duet-simulate' });
  const admissions: Record<UserChunkAdmission, number> = { accepted: 0, late: 0, duplicate: 0, early: 0 };
  // Set when the run ends: late deliveries and chunks still in flight are dropped.
  let stopped = false;
  const inbox: { callId: string; side: 'a' | 'b'; index: number; units: number[]; arrivedAt: number }[] = [];
  const stepMs: number[] = [];
  let replaced = 0;
  let confirmed = 0;
  let lost = 0;
  let lateSteps = 0;
  let tickGaps = 0;
  let heldUp = 0;
  // An error in a NATS callback ends the run (through the tick loop) instead of the process.
  let callbackError: unknown;
  const guard = (f: () => void) => {
    try {
      f();
    } catch (error) {
      callbackError ??= error;
    }
  };
  const channels = options.dialogues.map((d) => {
    const p = d.promptChunks;
    const fill = () => new Array<number>(u).fill(options.silenceUnit);
    const a = d.aUnits.slice(0, p).map((c) => c.slice());
    const b = d.bUnits.slice(0, p).map((c) => c.slice());
    while (a.length < p) a.push(fill());
    while (b.length < p) b.push(fill());
    // Each engine's first chunk: the dialogue's next chunk after a prompt (it goes on), else silent.
    const opening = (units: SimDialogue['aUnits']) => {
      const first = promptNextAgentChunk(units, p);
      return first.length > 0 ? first.slice() : fill();
    };
    a.push(opening(d.aUnits));
    b.push(opening(d.bUnits));
    return { id: d.id, a, b };
  });
  try {
    // 1. The clock: the first tick tells where the schedule is.
    const first = await new Promise<Tick>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no clock tick within 5 s')), 5000);
      const sub = nc.subscribe(subjects.tick, {
        max: 1,
        callback: (_e, msg) => {
          clearTimeout(timer);
          try {
            resolve(decodeMessage(Tick, 'Tick', msg.data));
          } catch (error) {
            reject(error);
          } finally {
            sub.unsubscribe();
          }
        },
      });
    });
    if (first.chunkMs !== options.chunkMs)
      throw new Error(`the clock ticks every ${first.chunkMs} ms, the simulation needs ${options.chunkMs}`);
    const firstSeq = Number(first.seq);
    const timeOf = (seq: number) => Number(first.scheduledAtMs) + (seq - firstSeq) * options.chunkMs;
    // Call chunk 0 is two ticks ahead, so the calls are open and subscribed before it begins.
    const startSeq = firstSeq + 2;

    // 2. The calls: A speaks as the dialogue's side A ([S0]) and hears B ([S1]); B the reverse.
    for (const [i, d] of options.dialogues.entries()) {
      for (const side of sides) {
        const own = side.name === 'a' ? d.aUnits : d.bUnits;
        const other = side.name === 'a' ? d.bUnits : d.aUnits;
        side.engine.openCall({
          callId: callId(d.id, side.name),
          seed: (options.seed ?? 1) * 7919 + i * 2 + (side.name === 'a' ? 0 : 1),
          prefix: promptTokens(side.engine.backend.info.vocabulary, own, other, d.promptChunks),
          firstAgentUnits: promptNextAgentChunk(own, d.promptChunks),
        });
      }
    }

    // 3. Each agent hears its peer on its user subject.
    for (const side of sides) {
      for (const d of options.dialogues) {
        const id = callId(d.id, side.name);
        nc.subscribe(subjects.userUnits(id), {
          callback: (_e, msg) =>
            guard(() => {
              if (stopped) return;
              const chunk = decodeMessage(UnitChunk, 'UnitChunk', msg.data);
              // Held until the step it is due for (see stepTo).
              inbox.push({
                callId: id,
                side: side.name,
                index: Number(chunk.chunkIndex),
                units: chunk.units,
                arrivedAt: Number(chunk.producedAtMs),
              });
            }),
        });
      }
    }

    // 4. The network: an agent chunk j is heard by the peer from T(j+1) + latency.
    const peerOf = (id: string) => (id.endsWith('-a') ? `${id.slice(0, -2)}-b` : `${id.slice(0, -2)}-a`);
    nc.subscribe(subjects.allAgentUnits, {
      callback: (_e, msg) =>
        guard(() => {
          if (stopped) return;
          const chunk = decodeMessage(UnitChunk, 'UnitChunk', msg.data);
          if (!ours.has(chunk.callId)) return; // another call on a shared NATS
          // Chunk j is heard in full at T(j+1); the network hands it over `latency` later. The
          // relay forwards it at once, stamped with that delivery time, and the receiving agent
          // holds it until then (a timer here would add the event loop's own delays under load).
          const due =
            timeOf(startSeq) + deliveryTimeMs(Number(chunk.chunkIndex), options.latencyMs, options.chunkMs);
          nc.publish(
            subjects.userUnits(peerOf(chunk.callId)),
            UnitChunk.encode({
              ...chunk,
              callId: peerOf(chunk.callId),
              speaker: Speaker.SPEAKER_USER,
              producedAtMs: BigInt(due),
            }).finish(),
          );
        }),
    });
    const publishAgent = (id: string, index: number, units: readonly number[]) =>
      nc.publish(
        subjects.agentUnits(id),
        UnitChunk.encode({
          callId: id,
          speaker: Speaker.SPEAKER_AGENT,
          chunkIndex: BigInt(index),
          units: [...units],
          producedAtMs: BigInt(Date.now()),
        }).finish(),
      );
    // Each agent's first chunk (channels[i].a / .b at the prompt's end), heard by the peer as usual.
    for (const [i, d] of options.dialogues.entries()) {
      const channel = channels[i]!;
      for (const s of sides) publishAgent(callId(d.id, s.name), 0, channel[s.name][d.promptChunks]!);
    }
    await nc.flush();

    // 5. The tick loop: one step of both agents per clock tick, after the phase wait.
    const lastStep = options.chunks - 2;
    let stepped = -1;
    let chain = Promise.resolve();
    let finish: () => void = () => {};
    let fail: (e: unknown) => void = () => {};
    const finished = new Promise<void>((resolve, reject) => {
      finish = resolve;
      fail = reject;
    });
    const stepTo = async (seq: number) => {
      if (callbackError !== undefined) throw callbackError;
      const target = seq - startSeq;
      if (target <= stepped || stepped >= lastStep) return;
      if (target > stepped + 1) tickGaps += target - stepped - 1;
      const wait = timeOf(seq) + phaseMs - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      while (stepped < Math.min(target, lastStep)) {
        // The chunks that had arrived by T(n) + phase go in, whenever this step really runs: a
        // step that runs late (CPU load) must not see chunks that would still be in flight.
        const cutoff = timeOf(startSeq + stepped + 1) + phaseMs;
        for (let i = 0; i < inbox.length; ) {
          const m = inbox[i]!;
          if (m.arrivedAt > cutoff) {
            i++;
            continue;
          }
          inbox.splice(i, 1);
          // Physically later than its delivery time (this process fell behind): counted.
          if (stepped + 1 > applyingStep(m.index, options.latencyMs, options.chunkMs, phaseMs)) heldUp++;
          const engine = sides.find((x) => x.name === m.side)!.engine;
          if (engine.hasCall(m.callId)) admissions[engine.submitUserChunk(m.callId, m.index, m.units)]++;
        }
        const t0 = performance.now();
        const reports = await Promise.all(sides.map((s) => s.engine.step()));
        stepMs.push(performance.now() - t0);
        stepped++;
        if (Date.now() > timeOf(startSeq + stepped + 1)) lateSteps++;
        for (const [k, report] of reports.entries()) {
          const side = sides[k]!;
          if (report.failed.length) throw report.failed[0]!.error;
          for (const call of report.calls) {
            publishAgent(call.callId, call.agentChunk.index, call.agentChunk.expanded);
            replaced += call.replacedChunks.length;
            confirmed += call.confirmedChunks.length;
            lost += call.lostChunks.length;
            const ch = channels.find((c) => callId(c.id, side.name) === call.callId)!;
            const d = options.dialogues.find((x) => x.id === ch.id)!;
            const target = side.name === 'a' ? ch.a : ch.b;
            target[d.promptChunks + call.agentChunk.index] = call.agentChunk.expanded.slice();
          }
        }
        if (stepped % 25 === 0) log(`simulate: latency ${options.latencyMs} ms, step ${stepped}/${lastStep}`);
      }
      if (stepped >= lastStep) finish();
    };
    const tickSub = nc.subscribe(subjects.tick, {
      callback: (_e, msg) => {
        let tick: Tick;
        try {
          tick = decodeMessage(Tick, 'Tick', msg.data);
        } catch {
          return;
        }
        const seq = Number(tick.seq);
        if (seq < startSeq || stopped) return;
        chain = chain.then(() => stepTo(seq)).catch(fail);
      },
    });
    // A clock that stops ticking must not hang the run.
    let progress = { stepped, at: Date.now() };
    const watchdog = setInterval(() => {
      if (stepped !== progress.stepped) progress = { stepped, at: Date.now() };
      else if (Date.now() - progress.at > 10_000) fail(new Error('no clock tick for 10 s'));
    }, 1000);
    try {
      await finished;
    } finally {
      clearInterval(watchdog);
      tickSub.unsubscribe();
    }
  } finally {
    stopped = true;
    await nc.drain().catch(() => {});
    for (const s of sides) await s.engine.close();
  }
  const sorted = stepMs.slice().sort((x, y) => x - y);
  return {
    channels,
    stats: {
      steps: stepMs.length,
      lateSteps,
      stepMsP50: sorted[Math.floor(sorted.length / 2)] ?? 0,
      stepMsMax: sorted[sorted.length - 1] ?? 0,
      admissions,
      replaced,
      confirmed,
      lost,
      tickGaps,
      heldUp,
    },
  };
}
