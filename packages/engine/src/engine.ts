import {
  type AgentTokens,
  CallTimeline,
  type ChunkGeometry,
  createRng,
  expandChunk,
  InvalidArgumentError,
  InvalidStateError,
  type Rng,
  type SamplingOptions,
  sampleToken,
  type TickPlan,
  type TokenFilter,
  type UserChunkAdmission,
  validateSamplingOptions,
} from '@duet/sync';
import type { ForwardItem, ForwardOutput, SlotId, SyncModelBackend } from './backend.js';
import { ClosedError } from './errors.js';

export type Batching = 'batched' | 'per-call';

export interface SyncEngineOptions {
  readonly geometry: ChunkGeometry;
  /** Ticks a real user chunk may lag and still replace its prediction (default 2). */
  readonly maxLateChunks?: number;
  /** 'batched' (default): one model invocation per step for all calls; 'per-call': one call at a time (baseline). */
  readonly batching?: Batching;
  /** Unit the vocoder holds before the agent's first unit (default 0). */
  readonly silenceUnit?: number;
  readonly sampling?: SamplingOptions;
  readonly agentTokens?: AgentTokens;
  /** Tokens of history each call keeps in memory beyond what can still change (default 8192). */
  readonly retainTokens?: number;
  /** Longer prefills (a long prompt, a resumed call) are fed in pieces of this many tokens (default 64). */
  readonly maxPrefillTokens?: number;
  readonly observer?: EngineObserver;
}

export interface OpenCallOptions {
  readonly callId: string;
  /** Seed of the call's sampler (default: derived from callId), for reproducible runs. */
  readonly seed?: number;
  readonly sampling?: SamplingOptions;
  /** Tokens before the first chunk, e.g. BOS or a text prompt (or a resumed call's history). */
  readonly prefix?: readonly number[];
  /**
   * The agent's last unit before this call's first chunk (a call resumed from another worker):
   * its first chunks are expanded for the vocoder as a continuation of that unit.
   */
  readonly lastAgentUnit?: number;
  /**
   * The agent's units of the call's first chunk (raw, at most U), which the engine otherwise
   * opens silent: a prompt's next agent chunk, so that speech going on at its end goes on.
   */
  readonly firstAgentUnits?: readonly number[];
}

export interface CallTickReport {
  readonly callId: string;
  readonly chunkIndex: number;
  /** The model's prediction of the user's chunk `chunkIndex` (deduped unit ids). */
  readonly predictedUser: readonly number[];
  /** The agent's chunk `chunkIndex + 1`: deduped units, and expanded to U units for the vocoder. */
  readonly agentChunk: {
    readonly index: number;
    readonly units: readonly number[];
    readonly expanded: readonly number[];
  };
  /** Tokens fed by this tick's first invocation (rollback re-prefill plus the pending token). */
  readonly prefillTokens: number;
  /** Tokens of history rewritten because real user chunks replaced predictions. */
  readonly rolledBackTokens: number;
  readonly replacedChunks: readonly number[];
  readonly confirmedChunks: readonly number[];
  readonly lostChunks: readonly number[];
}

export interface TickReport {
  readonly tick: number;
  readonly calls: readonly CallTickReport[];
  /** Calls that failed during this tick and were closed (one bad call never stalls the others). */
  readonly failed: readonly { readonly callId: string; readonly error: Error }[];
  /** Model invocations in this tick (the batched engine keeps it independent of the call count). */
  readonly invocations: number;
  /** Tokens fed to the model in this tick, all calls together (prefill and decode). */
  readonly tokens: number;
  readonly durationMs: number;
  readonly forwardMs: number;
}

export interface ForwardEvent {
  readonly tick: number;
  readonly output: ForwardOutput;
  readonly items: readonly {
    readonly callId: string;
    /** History length before this invocation (absolute position of the first token). */
    readonly position: number;
    readonly tokens: readonly number[];
    /** Index of the item in the forward() call (for output.rowOffset). */
    readonly item: number;
    /** The token sampled from the last row, and the filter it was sampled under. */
    readonly sampled: number;
    readonly filter: TokenFilter;
    /** The call's history (retained part) before this invocation. */
    readonly history: () => { readonly base: number; readonly tokens: readonly number[] };
  }[];
}

export interface EngineObserver {
  forward?(event: ForwardEvent): void;
}

const DEFAULT_SAMPLING: SamplingOptions = { temperature: 0.8, topK: 0, topP: 0.95 };

interface EngineCall {
  readonly callId: string;
  readonly slot: SlotId;
  readonly timeline: CallTimeline;
  readonly sampling: SamplingOptions;
  readonly rng: Rng;
  lastAgentUnit: number | undefined;
  closing: boolean;
  // per-tick scratch
  feed: readonly number[];
  position: number;
}

/**
 * The tick loop: on each step, every call absorbs the user's real chunks (rolling back its
 * predictions), predicts the user's current chunk and generates its own next chunk. With
 * batching, each model invocation serves all calls at once, so the number of invocations per
 * tick is at most 2U+3 whatever the number of calls.
 */
export class SyncEngine {
  readonly backend: SyncModelBackend;
  readonly geometry: ChunkGeometry;
  private readonly options: SyncEngineOptions;
  private readonly calls = new Map<string, EngineCall>();
  private nextTick = 0;
  private stepping = false;
  private closed = false;

  /** Reserve of cache entries a backend needs for rollbacks of up to `maxLateChunks` + 1 chunks. */
  static requiredReserve(geometry: ChunkGeometry, maxLateChunks = 2): number {
    // A rollback rewrites at most maxLate+1 user parts and agent parts ([tag] + U units each),
    // plus the pending token; doubled because rewritten chunks can be shorter than before.
    return 2 * ((maxLateChunks + 2) * (2 * geometry.unitsPerChunk + 2) + 1);
  }

  constructor(backend: SyncModelBackend, options: SyncEngineOptions) {
    this.backend = backend;
    this.geometry = options.geometry;
    this.options = options;
    validateSamplingOptions(options.sampling ?? DEFAULT_SAMPLING);
    const need = SyncEngine.requiredReserve(options.geometry, options.maxLateChunks ?? 2);
    if (backend.info.contextWindow.reserve < need) {
      throw new InvalidArgumentError(
        `the model's reserve (${backend.info.contextWindow.reserve}) is below ${need} entries needed for ${options.maxLateChunks ?? 2} late chunks at ${options.geometry.chunkMs} ms`,
      );
    }
  }

  /** Index of the next tick step() will run; a call opened now starts at this chunk. */
  get tick(): number {
    return this.nextTick;
  }

  get callCount(): number {
    return this.calls.size;
  }

  hasCall(callId: string): boolean {
    return this.calls.has(callId);
  }

  /** Opens a call; it takes part from the next step. Throws NoCapacityError when the backend is full. */
  openCall(options: OpenCallOptions): void {
    this.assertOpen();
    if (this.calls.has(options.callId))
      throw new InvalidArgumentError(`call ${options.callId} is already open`);
    const sampling = options.sampling ?? this.options.sampling ?? DEFAULT_SAMPLING;
    validateSamplingOptions(sampling);
    const timeline = new CallTimeline({
      vocabulary: this.backend.info.vocabulary,
      geometry: this.geometry,
      firstChunk: this.nextTick,
      maxLateChunks: this.options.maxLateChunks ?? 2,
      prefix: options.prefix ?? [],
      ...(options.firstAgentUnits ? { firstAgentUnits: options.firstAgentUnits } : {}),
      agentTokens: this.options.agentTokens ?? 'units',
      retainTokens: this.options.retainTokens ?? 8192,
    });
    const slot = this.backend.allocateSlot();
    this.calls.set(options.callId, {
      callId: options.callId,
      slot,
      timeline,
      sampling,
      rng: createRng(options.seed ?? seedOf(options.callId)),
      // The first chunk's last unit is what an empty next chunk continues (expandChunk).
      lastAgentUnit: options.firstAgentUnits?.at(-1) ?? options.lastAgentUnit,
      closing: false,
      feed: [],
      position: 0,
    });
  }

  /** Closes a call; during a step it leaves at the end of the step. Idempotent. */
  closeCall(callId: string): void {
    const call = this.calls.get(callId);
    if (!call) return;
    call.closing = true;
    if (!this.stepping) this.release(call);
  }

  /** Offers the caller's real units for a chunk (U raw units); applied at the next step. */
  submitUserChunk(callId: string, chunkIndex: number, units: readonly number[]): UserChunkAdmission {
    const call = this.calls.get(callId);
    if (!call || call.closing) throw new InvalidArgumentError(`call ${callId} is not open`);
    return call.timeline.submitUserChunk(chunkIndex, units);
  }

  /** Runs one tick for every open call. Must not overlap the previous step. */
  async step(): Promise<TickReport> {
    this.assertOpen();
    if (this.stepping) throw new InvalidStateError('step() while the previous step is still running');
    this.stepping = true;
    const started = performance.now();
    const tick = this.nextTick++;
    const work: StepWork = { tick, failed: [], invocations: 0, tokens: 0, forwardMs: 0 };
    try {
      const begun = this.beginCalls(work);
      const calls = begun.map((b) => b.call);
      const groups = this.options.batching === 'per-call' ? calls.map((c) => [c]) : [calls];
      for (const group of groups) {
        try {
          await this.runGroup(group, work);
        } catch (error) {
          // The model itself failed: the calls of this invocation cannot go on; others can.
          for (const c of group) if (!c.closing) this.fail(c, error, work.failed);
        }
      }
      const reports = this.finishCalls(begun, work);
      const { failed, invocations, tokens, forwardMs } = work;
      return {
        tick,
        calls: reports,
        failed,
        invocations,
        tokens,
        durationMs: performance.now() - started,
        forwardMs,
      };
    } finally {
      this.stepping = false;
      for (const call of [...this.calls.values()]) if (call.closing) this.release(call);
    }
  }

  /** Begins the tick of every call: applies real user chunks and rolls its slot back. */
  private beginCalls(work: StepWork): BegunCall[] {
    const begun: BegunCall[] = [];
    for (const call of this.calls.values()) {
      if (call.closing) continue;
      try {
        const plan = call.timeline.beginTick();
        const cached = this.backend.length(call.slot);
        const keep = Math.min(cached, plan.dirtyFrom);
        this.backend.truncate(call.slot, keep);
        call.feed = call.timeline.tokensFrom(keep);
        begun.push({
          call,
          plan,
          prefill: call.feed.length,
          rolledBack: Math.max(0, cached - plan.dirtyFrom),
        });
      } catch (error) {
        this.fail(call, error, work.failed);
      }
    }
    return begun;
  }

  /** Prefill, then decode until every call of the group closed its next agent chunk. */
  private async runGroup(group: readonly EngineCall[], work: StepWork): Promise<void> {
    const limit = this.options.maxPrefillTokens ?? 64;
    // Long prefills first, in pieces, so one call's long history never blows up a batch.
    for (let long = group.filter((c) => c.feed.length > limit); long.length > 0; ) {
      await this.forward(
        long.map((c) => ({ slot: c.slot, tokens: c.feed.slice(0, limit) })),
        work,
      );
      for (const c of long) c.feed = c.feed.slice(limit);
      long = long.filter((c) => c.feed.length > limit);
    }
    let live = group.filter((c) => !c.closing);
    while (live.length > 0) {
      for (const c of live) c.position = this.backend.length(c.slot);
      const output = await this.forward(
        live.map((c) => ({ slot: c.slot, tokens: c.feed })),
        work,
      );
      const observed: Mutable<ForwardEvent['items']> = [];
      for (const [i, c] of live.entries()) {
        try {
          const filter = c.timeline.filter();
          const row = output.rowOffset(i, c.feed.length - 1);
          const token = sampleToken(output.logits, row, output.vocabSize, filter, c.sampling, c.rng);
          if (this.options.observer?.forward) {
            const timeline = c.timeline;
            const history = () => timeline.history();
            observed.push({
              callId: c.callId,
              position: c.position,
              tokens: c.feed,
              item: i,
              sampled: token,
              filter,
              history,
            });
          }
          const result = c.timeline.accept(token);
          c.feed = result.done ? [] : result.feed;
        } catch (error) {
          this.fail(c, error, work.failed);
        }
      }
      this.options.observer?.forward?.({ tick: work.tick, output, items: observed });
      live = live.filter((c) => !c.closing && c.feed.length > 0);
    }
  }

  private async forward(items: readonly ForwardItem[], work: StepWork): Promise<ForwardOutput> {
    const t0 = performance.now();
    const output = await this.backend.forward(items);
    work.forwardMs += performance.now() - t0;
    work.invocations++;
    for (const it of items) work.tokens += it.tokens.length;
    return output;
  }

  /** Ends the tick of every call still open: its predicted user chunk and next agent chunk. */
  private finishCalls(begun: readonly BegunCall[], work: StepWork): CallTickReport[] {
    const reports: CallTickReport[] = [];
    for (const { call, plan, prefill, rolledBack } of begun) {
      if (call.closing) continue;
      try {
        const outcome = call.timeline.endTick();
        // Keep the last token pending so the next tick always has something to feed.
        const len = this.backend.length(call.slot);
        this.backend.truncate(call.slot, Math.min(len, call.timeline.length - 1));
        const expanded = expandChunk(
          outcome.agentUnits,
          call.lastAgentUnit,
          this.geometry.unitsPerChunk,
          this.options.silenceUnit ?? 0,
        );
        call.lastAgentUnit = expanded[expanded.length - 1];
        reports.push({
          callId: call.callId,
          chunkIndex: outcome.chunkIndex,
          predictedUser: outcome.predictedUser,
          agentChunk: { index: outcome.agentChunkIndex, units: outcome.agentUnits, expanded },
          prefillTokens: prefill,
          rolledBackTokens: rolledBack,
          replacedChunks: plan.replacedChunks,
          confirmedChunks: plan.confirmedChunks,
          lostChunks: plan.lostChunks,
        });
      } catch (error) {
        this.fail(call, error, work.failed);
      }
    }
    return reports;
  }

  /** Closes every call and the backend. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const call of [...this.calls.values()]) {
      call.closing = true;
      if (!this.stepping) this.release(call);
    }
    await this.backend.close();
  }

  private fail(call: EngineCall, error: unknown, failed: { callId: string; error: Error }[]): void {
    call.closing = true;
    failed.push({ callId: call.callId, error: error instanceof Error ? error : new Error(String(error)) });
  }

  private release(call: EngineCall): void {
    if (this.calls.get(call.callId) !== call) return;
    this.calls.delete(call.callId);
    call.timeline.close();
    this.backend.releaseSlot(call.slot);
  }

  private assertOpen(): void {
    if (this.closed) throw new ClosedError('the engine is closed');
  }
}

interface StepWork {
  readonly tick: number;
  readonly failed: { callId: string; error: Error }[];
  invocations: number;
  tokens: number;
  forwardMs: number;
}

interface BegunCall {
  readonly call: EngineCall;
  readonly plan: TickPlan;
  readonly prefill: number;
  readonly rolledBack: number;
}

type Mutable<T> = T extends readonly (infer U)[] ? U[] : T;

/** FNV-1a of the call id: a stable default seed. */
function seedOf(callId: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < callId.length; i++) {
    h ^= callId.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}
