import type { CallTickReport, SyncEngine, TickReport } from '@duet/engine';
import {
  CallEvent,
  CallEventKind,
  CallHistory,
  decodeMessage,
  type HistoryChunk,
  InferenceCallRecord,
  PlaceCallReply,
  PlaceCallRequest,
  Speaker,
  Tick,
  UnitChunk,
  WorkerHeartbeat,
} from '@duet/protocol';
import { callRecordKey, type ServiceContext, subjects } from '@duet/runtime';
import { type TokenVocabulary, tokenToUnit, unitToken } from '@duet/sync';
import type { Subscription } from '@nats-io/nats-core';
import { CallHistoryTracker, planResume, type StoredChunk } from './callHistory.js';
import type { InferenceSettings } from './config.js';
import type { InferenceMetrics } from './metrics.js';
import { PeerLiveness } from './peerLiveness.js';
import type { WorkerLoad } from './placement.js';
import { TickSequencer } from './tickSequencer.js';
import { fetchRealUserChunks } from './unitsStream.js';

/** One call held by this worker. */
interface WorkerCall {
  readonly callId: string;
  readonly firstTick: number;
  readonly seed: number;
  readonly resumes: number;
  readonly openedAtMs: number;
  /** call chunk = engine chunk + shift. */
  shift: number;
  readonly tracker: CallHistoryTracker;
  sub: Subscription | undefined;
  /** While a resume is loading: user chunks that arrived, applied once the call is open. */
  buffer: UnitChunk[] | undefined;
  lastTick: number;
  lastTickAtMs: number;
  lastAgentUnit: number | undefined;
  lateUserChunks: number;
  predictedUserChunks: number;
  historyBusy: boolean;
  historyDirty: boolean;
}

export type PlaceResult =
  | { accepted: true; firstTick: number }
  | { accepted: false; reason: 'full' | 'duplicate' | 'draining' | 'no clock'; detail: string };

const LOG_EVERY_MS = 5_000;

/**
 * An inference worker: one engine stepping all its calls on each clock tick, placement of new
 * calls, durable per-call history, heartbeats, and takeover of dead peers' calls.
 */
export class InferenceWorker {
  readonly workerId: string;
  readonly calls = new Map<string, WorkerCall>();
  readonly peerLoads = new Map<string, WorkerLoad>();
  private readonly sequencer: TickSequencer;
  private readonly peers: PeerLiveness;
  private readonly vocab: TokenVocabulary;
  private readonly unitsPerChunk: number;
  private readonly chunkMs: number;
  private readonly budgetMs: number;
  /** Slots promised to placements and resumes still loading. */
  private reserved = 0;
  private busy = false;
  private pendingTick: Tick | undefined;
  private lastReceivedSeq: number | undefined;
  private lastStepMs = 0;
  private lastKvHeartbeatMs = 0;
  private draining = false;
  private stopped = false;
  private claimScanning = false;
  private claimScan: Promise<void> | undefined;
  /** Resumed calls loaded and waiting to be opened right before the next step. */
  private readonly readyResumes: (() => void)[] = [];
  /** Placed calls whose chunk 0 is still ahead (they hold a reserved slot until they start). */
  private readonly pendingStarts = new Map<string, { seed: number; firstTick: number; openedAtMs: number }>();
  private lastClaimScanMs = 0;
  private selfReclaimDone = false;
  private readonly subs: Subscription[] = [];
  /** Every inference call record (watched), so a takeover needs no scan of the bucket. */
  private readonly records = new Map<string, { record: InferenceCallRecord; revision: number }>();
  private recordsWatch: { stop(): void } | undefined;
  /** Peers read from duet_workers at start, judged at the first tick (see adoptStoredPeers). */
  private storedPeers: WorkerHeartbeat[] = [];
  private readonly logLimiter = new Map<string, number>();
  private stepIdle: Promise<void> = Promise.resolve();
  private stepIdleResolve: (() => void) | undefined;

  constructor(
    private readonly ctx: ServiceContext<InferenceSettings>,
    private readonly engine: SyncEngine,
    private readonly metrics: InferenceMetrics,
  ) {
    const c = ctx.config;
    this.workerId = ctx.instanceId;
    this.sequencer = new TickSequencer(c.DUET_INFERENCE_MAX_CATCH_UP_STEPS);
    this.peers = new PeerLiveness(this.workerId, c.DUET_INFERENCE_PEER_TIMEOUT_TICKS);
    this.vocab = engine.backend.info.vocabulary;
    this.unitsPerChunk = engine.geometry.unitsPerChunk;
    this.chunkMs = engine.geometry.chunkMs;
    this.budgetMs = this.chunkMs - c.DUET_INFERENCE_PHASE_MS - c.DUET_INFERENCE_VOCODER_LEAD_MS;
    metrics.capacitySlots.set(this.capacity);
    metrics.activeCalls.set(0);
  }

  get context(): ServiceContext<InferenceSettings> {
    return this.ctx;
  }

  get capacity(): number {
    return this.engine.backend.slotCapacity;
  }

  get freeSlots(): number {
    return this.capacity - this.engine.callCount - this.reserved;
  }

  get clockStarted(): boolean {
    return this.sequencer.started;
  }

  /** Subscribes to ticks, heartbeats, call events and placement requests. */
  async start(): Promise<void> {
    const { nc, js } = this.ctx;
    // Peers known from the workers bucket: one that died while we were down is found dead too.
    try {
      for await (const key of await js.workers.keys()) {
        const entry = await js.workers.get(key);
        if (!entry || entry.operation !== 'PUT') continue;
        this.storedPeers.push(WorkerHeartbeat.decode(entry.value));
      }
    } catch (error) {
      this.warn('workers-load', { err: error }, 'cannot read the workers bucket');
    }
    const watch = await js.calls.watch({ key: '*.inference' });
    this.recordsWatch = watch;
    void (async () => {
      for await (const e of watch) {
        const callId = e.key.slice(0, -'.inference'.length);
        if (e.operation !== 'PUT') {
          this.records.delete(callId);
          continue;
        }
        try {
          this.records.set(callId, { record: InferenceCallRecord.decode(e.value), revision: e.revision });
        } catch {
          this.bad('call_record');
        }
      }
    })().catch((error: unknown) => this.warn('watch', { err: error }, 'call record watch ended'));
    this.subs.push(nc.subscribe(subjects.tick, { callback: (_e, msg) => this.onTickMessage(msg.data) }));
    this.subs.push(
      nc.subscribe(subjects.inferenceHeartbeat, {
        callback: (_e, msg) => {
          try {
            this.notePeer(decodeMessage(WorkerHeartbeat, 'WorkerHeartbeat', msg.data));
          } catch {
            this.bad('heartbeat');
          }
        },
      }),
    );
    this.subs.push(
      nc.subscribe(subjects.allCallEvents, { callback: (_e, msg) => this.onCallEvent(msg.data) }),
    );
    this.subs.push(
      nc.subscribe(subjects.placeCall(this.workerId), {
        callback: (_e, msg) => {
          let request: PlaceCallRequest;
          try {
            request = decodeMessage(PlaceCallRequest, 'PlaceCallRequest', msg.data);
          } catch {
            this.bad('place_request');
            msg.respond(PlaceCallReply.encode({ ...PlaceCallReply.create(), reason: 'malformed' }).finish());
            return;
          }
          void this.place(request.callId, request.seed)
            .catch(
              (error: unknown): PlaceResult => ({
                accepted: false,
                reason: 'full',
                detail: String((error as Error)?.message ?? error),
              }),
            )
            .then((r) =>
              msg.respond(
                PlaceCallReply.encode({
                  accepted: r.accepted,
                  reason: r.accepted ? '' : `${r.reason}: ${r.detail}`,
                  firstTick: BigInt(r.accepted ? r.firstTick : 0),
                  workerId: this.workerId,
                }).finish(),
              ),
            );
        },
      }),
    );
    await nc.flush();
  }

  // --- placement ---

  /** Takes a new call here if a slot is free and the call was never placed (create-only record). */
  async place(callId: string, seed: number): Promise<PlaceResult> {
    if (this.draining || this.stopped) {
      this.metrics.placements.inc({ result: 'declined_full' });
      return { accepted: false, reason: 'draining', detail: this.workerId };
    }
    if (!this.sequencer.started) {
      this.metrics.placements.inc({ result: 'declined_full' });
      return { accepted: false, reason: 'no clock', detail: 'no tick received yet' };
    }
    if (this.calls.has(callId) || this.pendingStarts.has(callId)) {
      this.metrics.placements.inc({ result: 'duplicate' });
      return { accepted: false, reason: 'duplicate', detail: `already placed on ${this.workerId}` };
    }
    if (this.freeSlots <= 0) {
      this.metrics.placements.inc({ result: 'declined_full' });
      return { accepted: false, reason: 'full', detail: this.workerId };
    }
    this.reserved++;
    const key = callRecordKey(callId, 'inference');
    const openedAtMs = Date.now();
    const startDelay = this.ctx.config.DUET_INFERENCE_START_DELAY_TICKS;
    let firstTick = this.nextStepSeq() + startDelay;
    const record: InferenceCallRecord = {
      callId,
      workerId: this.workerId,
      firstTick: BigInt(firstTick),
      seed,
      openedAtMs: BigInt(openedAtMs),
      resumes: 0,
    };
    let revision: number;
    try {
      revision = await this.ctx.js.calls.create(key, InferenceCallRecord.encode(record).finish());
    } catch {
      this.reserved--;
      this.metrics.placements.inc({ result: 'duplicate' });
      return { accepted: false, reason: 'duplicate', detail: 'the call is already placed' };
    }
    if (startDelay > 0) {
      // Chunk 0 lies ahead, so the edge can open the tokenizer and vocoder before the agent's
      // first chunk is published; the call keeps its reserved slot until then.
      this.pendingStarts.set(callId, { seed, firstTick, openedAtMs });
      this.metrics.placements.inc({ result: 'accepted' });
      this.publishEvent(callId, CallEventKind.CALL_EVENT_KIND_OPENED, '');
      return { accepted: true, firstTick };
    }
    this.reserved--;
    // A step may have begun while the record was written: the call starts at the step after it.
    const actual = this.nextStepSeq();
    try {
      this.openInEngine({ callId, seed, firstTick: actual, resumes: 0, openedAtMs, resumeChunk: 0 });
    } catch (error) {
      await this.ctx.js.calls.delete(key).catch(() => undefined);
      throw error;
    }
    if (actual !== firstTick) {
      firstTick = actual;
      record.firstTick = BigInt(actual);
      await this.ctx.js.calls
        .update(key, InferenceCallRecord.encode(record).finish(), revision)
        .catch((error: unknown) => this.warn('record', { err: error, callId }, 'cannot fix the first tick'));
    }
    this.metrics.placements.inc({ result: 'accepted' });
    this.publishEvent(callId, CallEventKind.CALL_EVENT_KIND_OPENED, '');
    return { accepted: true, firstTick };
  }

  /** Opens the placed calls whose chunk 0 is the step for `seq` (or already passed). */
  private startPending(seq: number): void {
    for (const [callId, p] of this.pendingStarts) {
      if (p.firstTick > seq) continue;
      this.pendingStarts.delete(callId);
      this.reserved--;
      try {
        this.openInEngine({
          callId,
          seed: p.seed,
          firstTick: p.firstTick,
          resumes: 0,
          openedAtMs: p.openedAtMs,
          resumeChunk: seq - p.firstTick,
        });
      } catch (error) {
        this.warn('start', { err: error, callId }, 'cannot start a placed call');
        void this.endCall(callId, `inference could not start the call: ${(error as Error).message}`, true);
      }
    }
  }

  /** The clock seq of the engine's next step. */
  private nextStepSeq(): number {
    return this.sequencer.seqOf(this.engine.tick)!;
  }

  private openInEngine(options: {
    callId: string;
    seed: number;
    firstTick: number;
    resumes: number;
    openedAtMs: number;
    resumeChunk: number;
    prefix?: number[];
    lastAgentUnit?: number;
    firstAgentUnits?: number[];
    tracker?: CallHistoryTracker;
    sub?: Subscription;
    counters?: { late: number; predicted: number };
  }): WorkerCall {
    const engineFirst = this.engine.tick;
    this.engine.openCall({
      callId: options.callId,
      seed: options.seed,
      ...(options.prefix ? { prefix: options.prefix } : {}),
      ...(options.lastAgentUnit !== undefined ? { lastAgentUnit: options.lastAgentUnit } : {}),
      ...(options.firstAgentUnits?.length ? { firstAgentUnits: options.firstAgentUnits } : {}),
    });
    const call: WorkerCall = {
      callId: options.callId,
      firstTick: options.firstTick,
      seed: options.seed,
      resumes: options.resumes,
      openedAtMs: options.openedAtMs,
      shift: options.resumeChunk - engineFirst,
      tracker: options.tracker ?? new CallHistoryTracker(this.ctx.config.DUET_INFERENCE_HISTORY_CHUNKS),
      sub: options.sub,
      buffer: undefined,
      lastTick: options.firstTick + options.resumeChunk - 1,
      lastTickAtMs: 0,
      lastAgentUnit: options.firstAgentUnits?.at(-1) ?? options.lastAgentUnit,
      lateUserChunks: options.counters?.late ?? 0,
      predictedUserChunks: options.counters?.predicted ?? 0,
      historyBusy: false,
      historyDirty: false,
    };
    this.calls.set(options.callId, call);
    call.sub ??= this.subscribeUser(options.callId);
    this.metrics.activeCalls.set(this.calls.size);
    return call;
  }

  private subscribeUser(callId: string): Subscription {
    return this.ctx.nc.subscribe(subjects.userUnits(callId), {
      callback: (_e, msg) => this.onUserChunk(callId, msg.data),
    });
  }

  // --- user units ---

  private onUserChunk(callId: string, data: Uint8Array): void {
    let chunk: UnitChunk;
    try {
      chunk = decodeMessage(UnitChunk, 'UnitChunk', data);
    } catch {
      this.bad('user_chunk_malformed');
      return;
    }
    if (chunk.callId !== callId) {
      this.bad('user_chunk_call_id');
      return;
    }
    if (chunk.speaker !== Speaker.SPEAKER_USER) {
      this.bad('user_chunk_speaker');
      return;
    }
    if (chunk.units.length !== this.unitsPerChunk) {
      this.bad('user_chunk_units');
      return;
    }
    const call = this.calls.get(callId);
    if (!call) return;
    if (call.buffer) {
      call.buffer.push(chunk);
      return;
    }
    this.submitUser(call, chunk);
  }

  private submitUser(call: WorkerCall, chunk: UnitChunk): void {
    const index = Number(chunk.chunkIndex);
    let admission: string;
    try {
      admission = this.engine.submitUserChunk(call.callId, index - call.shift, chunk.units);
    } catch {
      this.bad('user_chunk_units');
      return;
    }
    switch (admission) {
      case 'accepted':
        call.tracker.submitted(index, chunk.units);
        this.metrics.userChunks.inc({ result: 'on_time' });
        break;
      case 'late':
        call.lateUserChunks++;
        this.metrics.userChunks.inc({ result: 'late' });
        break;
      case 'duplicate':
        this.metrics.userChunks.inc({ result: 'duplicate' });
        break;
      case 'early':
        this.metrics.userChunks.inc({ result: 'early' });
        break;
    }
  }

  // --- ticks ---

  private onTickMessage(data: Uint8Array): void {
    if (this.stopped) return;
    let tick: Tick;
    try {
      tick = decodeMessage(Tick, 'Tick', data);
    } catch {
      this.bad('tick_malformed');
      return;
    }
    if (tick.chunkMs !== this.chunkMs) {
      this.bad('tick_chunk_ms');
      return;
    }
    const seq = Number(tick.seq);
    if (this.lastReceivedSeq !== undefined) {
      if (seq <= this.lastReceivedSeq) {
        this.bad('tick_stale');
        return;
      }
      if (seq > this.lastReceivedSeq + 1) this.metrics.tickGaps.inc(seq - this.lastReceivedSeq - 1);
    }
    this.lastReceivedSeq = seq;
    this.adoptStoredPeers(seq);
    this.checkPeers(seq);
    if (this.busy) {
      // The previous step overran: this tick runs right after it (caught up as a gap).
      this.metrics.missedTicks.inc();
      this.pendingTick = tick;
      return;
    }
    void this.runTick(tick);
  }

  private async runTick(tick: Tick): Promise<void> {
    this.busy = true;
    this.stepIdle = new Promise((resolve) => {
      this.stepIdleResolve = resolve;
    });
    try {
      const seq = Number(tick.seq);
      const tMs = Number(tick.scheduledAtMs);
      const wait = tMs + this.ctx.config.DUET_INFERENCE_PHASE_MS - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      if (this.stopped) return;
      const plan = this.sequencer.plan(seq, this.engine.tick);
      if (plan.kind === 'stale') return;
      if (plan.rebase > 0) {
        for (const call of this.calls.values()) call.shift += plan.rebase;
        this.warn('rebase', { gap: plan.rebase, seq }, 'clock gap too long to catch up: re-based');
      }
      await this.awaitClaims(tMs);
      for (const open of this.readyResumes.splice(0)) open();
      for (const s of plan.seqs) {
        this.startPending(s);
        await this.stepOnce(s, tMs - (seq - s) * this.chunkMs);
      }
    } catch (error) {
      this.warn('step', { err: error }, 'step failed');
    } finally {
      this.busy = false;
      this.stepIdleResolve?.();
      const next = this.pendingTick;
      this.pendingTick = undefined;
      if (next && !this.stopped) void this.runTick(next);
    }
  }

  /**
   * Calls being taken over join this step if they load in time: the step may wait for them
   * while the last step's duration (doubled) still fits before T(n+1) - vocoder lead.
   */
  private async awaitClaims(tMs: number): Promise<void> {
    const scan = this.claimScan;
    if (!scan) return;
    const lead = this.ctx.config.DUET_INFERENCE_VOCODER_LEAD_MS;
    const latest = tMs + this.chunkMs - lead - 2 * this.lastStepMs - 10;
    const wait = latest - Date.now();
    if (wait <= 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      scan,
      new Promise((r) => {
        timer = setTimeout(r, wait);
      }),
    ]);
    clearTimeout(timer);
  }

  private async stepOnce(seq: number, tMs: number): Promise<void> {
    const started = Date.now();
    this.metrics.tickLatenessMs.observe(started - tMs);
    const report: TickReport = await this.engine.step();
    this.lastStepMs = report.durationMs;
    this.metrics.stepMs.observe(report.durationMs);
    this.metrics.stepHeadroomMs.set(this.budgetMs - report.durationMs);
    this.metrics.batchSize.observe(report.calls.length);
    const lead = this.ctx.config.DUET_INFERENCE_VOCODER_LEAD_MS;
    for (const r of report.calls) {
      const call = this.calls.get(r.callId);
      if (!call) continue;
      const j = r.agentChunk.index + call.shift;
      const now = Date.now();
      this.ctx.nc.publish(
        subjects.agentUnits(call.callId),
        UnitChunk.encode({
          callId: call.callId,
          speaker: Speaker.SPEAKER_AGENT,
          chunkIndex: BigInt(j),
          units: [...r.agentChunk.expanded],
          producedAtMs: BigInt(now),
        }).finish(),
      );
      this.metrics.agentChunkLatencyMs.observe(now - tMs);
      const due = tMs + (call.firstTick + j - seq) * this.chunkMs - lead;
      if (now > due) this.metrics.deadlineMisses.inc();
      this.afterStep(call, r, seq, tMs);
    }
    for (const f of report.failed) {
      this.warn('call-failed', { callId: f.callId, err: f.error }, 'call failed in the engine');
      void this.endCall(f.callId, `inference failed: ${f.error.message}`, true);
    }
    this.heartbeat(seq, false);
  }

  private afterStep(call: WorkerCall, r: CallTickReport, seq: number, tMs: number): void {
    const applied = [...r.replacedChunks, ...r.confirmedChunks].map((k) => k + call.shift);
    this.metrics.userChunks.inc({ result: 'replaced' }, r.replacedChunks.length);
    this.metrics.userChunks.inc({ result: 'confirmed' }, r.confirmedChunks.length);
    this.metrics.userChunks.inc({ result: 'lost' }, r.lostChunks.length);
    call.predictedUserChunks += r.lostChunks.length;
    call.tracker.apply({
      chunkIndex: r.chunkIndex + call.shift,
      predictedUser: r.predictedUser,
      agentIndex: r.agentChunk.index + call.shift,
      agentUnits: r.agentChunk.units,
      appliedReal: applied,
    });
    call.lastTick = seq;
    call.lastTickAtMs = tMs;
    call.lastAgentUnit = r.agentChunk.expanded[r.agentChunk.expanded.length - 1];
    this.saveHistory(call);
  }

  /** Writes the call's history to KV off the tick path; one write in flight per call. */
  private saveHistory(call: WorkerCall): void {
    if (call.historyBusy) {
      call.historyDirty = true;
      return;
    }
    call.historyBusy = true;
    call.historyDirty = false;
    const bytes = CallHistory.encode(this.historyOf(call)).finish();
    this.ctx.js.history
      .put(call.callId, bytes)
      .catch((error: unknown) => {
        this.metrics.historyErrors.inc();
        this.warn('history', { err: error }, 'cannot write a call history');
      })
      .finally(() => {
        call.historyBusy = false;
        if (call.historyDirty && this.calls.get(call.callId) === call) this.saveHistory(call);
      });
  }

  historyOf(call: WorkerCall): CallHistory {
    return {
      callId: call.callId,
      chunks: call.tracker.chunks.map(
        (e): HistoryChunk => ({
          chunkIndex: BigInt(e.index),
          agentTokens: e.agent.map((u) => unitToken(this.vocab, u)),
          userUnits: [...e.user],
          userReal: e.real,
        }),
      ),
      lastTick: BigInt(call.lastTick),
      lastAgentUnit: call.lastAgentUnit ?? 0,
      hasLastAgentUnit: call.lastAgentUnit !== undefined,
      lastTickAtMs: BigInt(call.lastTickAtMs),
      firstTick: BigInt(call.firstTick),
      chunkMs: this.chunkMs,
      lateUserChunks: BigInt(call.lateUserChunks),
      predictedUserChunks: BigInt(call.predictedUserChunks),
    };
  }

  private heartbeat(seq: number, leaving: boolean): void {
    const hb: WorkerHeartbeat = {
      workerId: this.workerId,
      tick: BigInt(seq),
      capacity: this.capacity,
      // A draining worker reports itself full: placement skips it; peers still see it alive.
      activeCalls: this.draining ? this.capacity : this.engine.callCount + this.reserved,
      stepMs: this.lastStepMs,
      budgetMs: this.budgetMs,
      atMs: BigInt(Date.now()),
      leaving,
    };
    const bytes = WorkerHeartbeat.encode(hb).finish();
    this.ctx.nc.publish(subjects.inferenceHeartbeat, bytes);
    const now = Date.now();
    if (leaving || now - this.lastKvHeartbeatMs >= 1000) {
      this.lastKvHeartbeatMs = now;
      this.ctx.js.workers.put(this.workerId, bytes).catch(() => this.metrics.historyErrors.inc());
    }
  }

  /**
   * The workers bucket is written about once a second, so a stored tick lags a live peer's:
   * a peer stored recently counts as heard at the tick before our first one (it must then go
   * silent like any other to be found dead); an old entry keeps its tick (found dead at once).
   */
  private adoptStoredPeers(seq: number): void {
    if (this.storedPeers.length === 0) return;
    const recentMs = 1_000 + (this.ctx.config.DUET_INFERENCE_PEER_TIMEOUT_TICKS + 1) * this.chunkMs;
    for (const hb of this.storedPeers.splice(0)) {
      if (hb.workerId === this.workerId || this.peerLoads.has(hb.workerId)) continue;
      const recent = Date.now() - Number(hb.atMs) < recentMs;
      this.notePeer({ ...hb, tick: recent ? BigInt(seq - 1) : hb.tick });
    }
  }

  private notePeer(hb: WorkerHeartbeat): void {
    if (hb.workerId === this.workerId) return;
    this.peerLoads.set(hb.workerId, {
      workerId: hb.workerId,
      capacity: hb.capacity,
      activeCalls: hb.activeCalls,
      atMs: Number(hb.atMs),
      leaving: hb.leaving,
    });
    this.peers.heard(hb.workerId, Number(hb.tick), hb.leaving);
  }

  // --- call events and closing ---

  private onCallEvent(data: Uint8Array): void {
    let event: CallEvent;
    try {
      event = decodeMessage(CallEvent, 'CallEvent', data);
    } catch {
      this.bad('call_event');
      return;
    }
    if (event.kind === CallEventKind.CALL_EVENT_KIND_CLOSED && this.pendingStarts.has(event.callId)) {
      this.dropLocal(event.callId);
      return;
    }
    const call = this.calls.get(event.callId);
    if (!call) return;
    if (event.kind === CallEventKind.CALL_EVENT_KIND_CLOSED) {
      this.dropLocal(event.callId);
    } else if (
      event.kind === CallEventKind.CALL_EVENT_KIND_RESUMED &&
      event.source !== `inference/${this.workerId}`
    ) {
      // Another worker took the call over (it thought we were dead): never serve it twice.
      this.warn('taken-over', { callId: event.callId, by: event.source }, 'call taken over by a peer');
      this.dropLocal(event.callId);
    }
  }

  /** Forgets a call here (engine slot, subscription); no KV or events. */
  dropLocal(callId: string): boolean {
    if (this.pendingStarts.delete(callId)) {
      this.reserved--;
      return true;
    }
    const call = this.calls.get(callId);
    if (!call) return false;
    this.calls.delete(callId);
    call.sub?.unsubscribe();
    this.engine.closeCall(callId);
    this.metrics.activeCalls.set(this.calls.size);
    return true;
  }

  /** Ends a call everywhere: record and history deleted, CLOSED published. */
  async endCall(callId: string, reason: string, publish: boolean): Promise<boolean> {
    const wasLocal = this.dropLocal(callId);
    const key = callRecordKey(callId, 'inference');
    const entry = await this.ctx.js.calls.get(key).catch(() => null);
    const existed = !!entry && entry.operation === 'PUT';
    if (existed) await this.ctx.js.calls.delete(key).catch(() => undefined);
    await this.ctx.js.history.delete(callId).catch(() => undefined);
    if (publish && (existed || wasLocal))
      this.publishEvent(callId, CallEventKind.CALL_EVENT_KIND_CLOSED, reason);
    return existed || wasLocal;
  }

  private publishEvent(callId: string, kind: CallEventKind, detail: string): void {
    if (this.ctx.nc.isClosed()) return;
    this.ctx.nc.publish(
      subjects.callEvent(callId),
      CallEvent.encode({
        callId,
        kind,
        source: `inference/${this.workerId}`,
        detail,
        atMs: BigInt(Date.now()),
      }).finish(),
    );
  }

  // --- failover ---

  private checkPeers(seq: number): void {
    if (this.draining || this.stopped || this.claimScanning) return;
    const dead = new Set(this.peers.dead(seq));
    const reclaimSelf = !this.selfReclaimDone && this.sequencer.started;
    if (dead.size === 0 && !reclaimSelf) return;
    if (this.freeSlots <= 0) return;
    // Rescan at most twice a second while a dead peer still has calls nobody took.
    const now = Date.now();
    if (!reclaimSelf && now - this.lastClaimScanMs < 500) return;
    this.lastClaimScanMs = now;
    if (reclaimSelf) {
      // Our own calls from before a restart (same instance id) are resumed like a dead peer's.
      this.selfReclaimDone = true;
      dead.add(this.workerId);
    }
    this.claimScanning = true;
    this.claimScan = this.claimCalls(dead)
      .catch((error: unknown) => this.warn('claim', { err: error }, 'claim scan failed'))
      .finally(() => {
        this.claimScanning = false;
        this.claimScan = undefined;
      });
  }

  private async claimCalls(dead: Set<string>): Promise<void> {
    const kv = this.ctx.js.calls;
    const remaining = new Set<string>();
    const claims: Promise<void>[] = [];
    for (const [callId, { record, revision }] of this.records) {
      if (!dead.has(record.workerId) || this.calls.has(callId) || this.pendingStarts.has(callId)) continue;
      if (this.freeSlots <= 0 || this.draining) {
        remaining.add(record.workerId);
        continue;
      }
      // The slot is ours from now; released if the CAS fails or the resume cannot load.
      this.reserved++;
      const claimed: InferenceCallRecord = {
        ...record,
        workerId: this.workerId,
        resumes: record.resumes + 1,
      };
      claims.push(
        kv
          .update(callRecordKey(callId, 'inference'), InferenceCallRecord.encode(claimed).finish(), revision)
          .then(
            () =>
              this.prepareResume(claimed, record.workerId).then(
                (open) => {
                  this.readyResumes.push(open);
                },
                (error: unknown) => {
                  this.reserved--;
                  this.warn('resume', { err: error, callId }, 'resume failed');
                  void this.endCall(callId, 'resume failed', true);
                },
              ),
            () => {
              this.reserved--; // another worker won the CAS (or the record changed)
            },
          ),
      );
    }
    await Promise.all(claims);
    for (const id of dead) if (!remaining.has(id) && id !== this.workerId) this.peers.forget(id);
  }

  /**
   * Loads a claimed call's stored history and the real units from DUET_UNITS; returns the
   * opening, which the tick loop runs right before its next step (after the phase wait, so the
   * user chunk cut at this tick is in the prefix too).
   */
  private async prepareResume(record: InferenceCallRecord, from: string): Promise<() => void> {
    const callId = record.callId;
    const t0 = Date.now();
    const buffered: UnitChunk[] = [];
    // Subscribe first so no unit falls between the stream read and the live subscription.
    const sub = this.ctx.nc.subscribe(subjects.userUnits(callId), {
      callback: (_e, msg) => {
        const call = this.calls.get(callId);
        if (call) this.onUserChunk(callId, msg.data);
        else buffered.push(...this.decodeUserSafe(callId, msg.data));
      },
    });
    try {
      // History and stream are read together; the stream from far enough back to cover every
      // chunk the history can hold (older chunks are ignored by planResume).
      const c = this.ctx.config;
      const backChunks = c.DUET_INFERENCE_HISTORY_CHUNKS + c.DUET_INFERENCE_PEER_TIMEOUT_TICKS + 4;
      const startMs = Math.max(Number(record.openedAtMs) - this.chunkMs, t0 - backChunks * this.chunkMs);
      // A read that does not answer in time (JetStream electing a new leader after a node loss
      // can take seconds) must not cost the caller the call: resume without it, on predictions.
      const [entryRead, realRead] = await Promise.allSettled([
        withinMs(this.ctx.js.history.get(callId), RESUME_READ_MS, 'history read'),
        withinMs(
          fetchRealUserChunks(this.ctx.nc, callId, startMs, this.unitsPerChunk),
          RESUME_READ_MS,
          'units stream read',
        ),
      ]);
      if (entryRead.status === 'rejected') {
        this.metrics.resumesDegraded.inc({ missing: 'history' });
        this.warn('resume', { err: entryRead.reason, callId }, 'resuming without the stored history');
      }
      if (realRead.status === 'rejected') {
        this.metrics.resumesDegraded.inc({ missing: 'units' });
        this.warn('resume', { err: realRead.reason, callId }, 'resuming without the real user units');
      }
      const entry = entryRead.status === 'fulfilled' ? entryRead.value : null;
      const real =
        realRead.status === 'fulfilled' ? realRead.value : { chunks: new Map<number, number[]>(), bad: 0 };
      const history = entry && entry.operation === 'PUT' ? CallHistory.decode(entry.value) : undefined;
      this.metrics.badMessages.inc({ reason: 'user_chunk_stream' }, real.bad);
      const stored = (history?.chunks ?? []).map((c) => ({
        index: Number(c.chunkIndex),
        agentUnits: c.agentTokens
          .map((t) => tokenToUnit(this.vocab, t))
          .filter((u): u is number => u !== undefined),
        userUnits: c.userUnits,
        userReal: c.userReal,
      }));
      const loadedMs = Date.now() - t0;
      return () => {
        this.reserved--;
        try {
          this.openResumed(record, from, history, stored, real.chunks, buffered, sub, loadedMs);
        } catch (error) {
          sub.unsubscribe();
          this.warn('resume', { err: error, callId }, 'resume failed');
          void this.endCall(callId, 'resume failed', true);
        }
      };
    } catch (error) {
      sub.unsubscribe();
      throw error;
    }
  }

  /** Opens a resumed call in the engine at the step about to run (synchronous). */
  private openResumed(
    record: InferenceCallRecord,
    from: string,
    history: CallHistory | undefined,
    stored: StoredChunk[],
    real: Map<number, number[]>,
    buffered: UnitChunk[],
    sub: Subscription,
    loadedMs: number,
  ): void {
    const callId = record.callId;
    const firstTick = Number(record.firstTick);
    if (this.stopped || this.calls.has(callId)) {
      sub.unsubscribe();
      return;
    }
    for (const b of buffered.splice(0)) {
      if (!real.has(Number(b.chunkIndex))) real.set(Number(b.chunkIndex), b.units);
    }
    if (this.nextStepSeq() < firstTick) {
      // The dead worker placed the call but its chunk 0 is still ahead: start it here then.
      sub.unsubscribe();
      this.reserved++;
      this.pendingStarts.set(callId, { seed: record.seed, firstTick, openedAtMs: Number(record.openedAtMs) });
      return;
    }
    {
      const resumeChunk = this.nextStepSeq() - firstTick;
      const plan = planResume(this.vocab, stored, real, resumeChunk);
      const tracker = new CallHistoryTracker(this.ctx.config.DUET_INFERENCE_HISTORY_CHUNKS, plan.chunks);
      const call = this.openInEngine({
        callId,
        seed: record.seed,
        firstTick,
        resumes: record.resumes,
        openedAtMs: Number(record.openedAtMs),
        resumeChunk,
        prefix: plan.prefix,
        ...(history?.hasLastAgentUnit ? { lastAgentUnit: history.lastAgentUnit } : {}),
        firstAgentUnits: plan.firstAgentUnits,
        tracker,
        sub,
        counters: {
          late: Number(history?.lateUserChunks ?? 0n),
          predicted: Number(history?.predictedUserChunks ?? 0n),
        },
      });
      for (const [index, units] of real) {
        if (index >= resumeChunk)
          this.submitUser(call, {
            ...UnitChunk.create(),
            callId,
            chunkIndex: BigInt(index),
            units,
            speaker: Speaker.SPEAKER_USER,
          });
      }
      this.saveHistory(call);
      this.metrics.resumes.inc();
      this.publishEvent(callId, CallEventKind.CALL_EVENT_KIND_RESUMED, `from ${from}`);
      this.ctx.log.info(
        {
          callId,
          from,
          resumeChunk,
          lastTick: history ? Number(history.lastTick) : undefined,
          prefixTokens: plan.prefix.length,
          // > 0 on a handover: the resume chunk goes on with what the caller already heard.
          firstAgentUnits: plan.firstAgentUnits.length,
          realFromStream: plan.fromStream,
          loadedMs,
        },
        'call resumed',
      );
    }
  }

  private decodeUserSafe(callId: string, data: Uint8Array): UnitChunk[] {
    try {
      const c = decodeMessage(UnitChunk, 'UnitChunk', data);
      if (
        c.callId !== callId ||
        c.speaker !== Speaker.SPEAKER_USER ||
        c.units.length !== this.unitsPerChunk
      ) {
        this.bad('user_chunk_units');
        return [];
      }
      return [c];
    } catch {
      this.bad('user_chunk_malformed');
      return [];
    }
  }

  // --- life cycle ---

  /** SIGTERM: take no new calls; keep stepping until the calls end or the drain times out. */
  async drain(signal: AbortSignal): Promise<void> {
    this.draining = true;
    while (this.calls.size > 0 && !signal.aborted) {
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Stops stepping and heartbeats a last time with `leaving`, so peers claim the calls left. */
  async close(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await this.stepIdle;
    for (const s of this.subs) s.unsubscribe();
    this.recordsWatch?.stop();
    const seq = this.sequencer.seqOf(this.engine.tick - 1);
    if (seq !== undefined) this.heartbeat(seq, true);
    for (const call of this.calls.values()) call.sub?.unsubscribe();
    await this.ctx.nc.flush().catch(() => undefined);
    await this.engine.close();
  }

  describeLocal(callId: string): WorkerCall | undefined {
    return this.calls.get(callId);
  }

  private bad(reason: string): void {
    this.metrics.badMessages.inc({ reason });
    this.warn(`bad:${reason}`, { reason }, 'bad message');
  }

  /** Logs at most once per LOG_EVERY_MS per key. */
  private warn(key: string, fields: Record<string, unknown>, msg: string): void {
    const now = Date.now();
    if (now - (this.logLimiter.get(key) ?? 0) < LOG_EVERY_MS) return;
    this.logLimiter.set(key, now);
    this.ctx.log.warn(fields, msg);
  }
}

/** How long a resume waits for the stored history and the stream's user units. */
const RESUME_READ_MS = 1_000;

function withinMs<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms);
    promise.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(timer);
        reject(e);
      },
    );
  });
}
