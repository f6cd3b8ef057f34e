import { InvalidArgumentError, InvalidStateError } from './errors.js';
import type { ChunkGeometry } from './geometry.js';
import type { TokenFilter } from './sampling.js';
import { dedupChunk } from './unitRuns.js';
import { isTag, isUnitId, type TokenVocabulary, tokenToUnit, unitToken } from './vocabulary.js';

/**
 * The per-call state of SyncLLM's real-time loop, as a pure state machine over the call's
 * token history.
 *
 * At tick N the context holds the agent's chunks up to N and the user's chunks up to N-1
 * (real where they arrived, else the model's own prediction). During the tick the model
 *   1. predicts the user's chunk N (`[S1]` + units, or nothing: the user is silent), then
 *   2. generates its own chunk N+1 (`[S0]` + up to U units), played during chunk N+1.
 * Real user chunks may arrive late; at the next tick each one replaces its prediction and
 * the history is rewritten from the earliest changed chunk (the rollback point). The agent's
 * own chunks that followed are kept and prefilled again, as in the paper.
 */

export type AgentTokens = 'units' | 'any';

export interface CallTimelineOptions {
  readonly vocabulary: TokenVocabulary;
  readonly geometry: ChunkGeometry;
  /** Chunk index of the call's first tick. */
  readonly firstChunk: number;
  /** How many ticks a real user chunk may lag behind its own chunk and still replace the prediction. */
  readonly maxLateChunks: number;
  /**
   * Tokens placed before the first chunk: a BOS or a text prompt, or earlier chunks in the
   * chunk format (a teacher-forced prompt, a resumed call's history). The last unit after an
   * `[S0]` and the last after an `[S1]` carry deduplication into the call, as if those chunks
   * had been the call's own: neither side writes its previous unit again.
   */
  readonly prefix?: readonly number[];
  /**
   * The agent's units of the first chunk (raw, at most U; deduplicated here). Default none:
   * the agent is silent in its first chunk. A prompt that ends while the agent speaks gives the
   * agent's next chunk here, so the call goes on mid-sentence instead of breaking off.
   */
  readonly firstAgentUnits?: readonly number[];
  /** 'units': the agent may only speak unit tokens (plus closing tags); 'any': any token. */
  readonly agentTokens?: AgentTokens;
  /** Retained tokens before the oldest mutable point; older ones are dropped. */
  readonly retainTokens?: number;
}

export type UserChunkSource = 'pending' | 'predicted' | 'real';

/** Outcome of offering a real user chunk to the timeline. */
export type UserChunkAdmission = 'accepted' | 'late' | 'duplicate' | 'early';

export interface TickPlan {
  readonly chunkIndex: number;
  /**
   * Absolute token index from which the history changed since the last tick (rollback point);
   * equals `length` when nothing changed. The model cache must be truncated to at most this.
   */
  readonly dirtyFrom: number;
  /** User chunks whose real units replaced a different prediction at this tick. */
  readonly replacedChunks: readonly number[];
  /** User chunks whose real units matched the prediction exactly (no rollback needed). */
  readonly confirmedChunks: readonly number[];
  /** User chunks that became final without real units (their prediction stands for good). */
  readonly lostChunks: readonly number[];
}

export interface AcceptResult {
  /** Tokens appended by this accept that must be fed to the model to continue. */
  readonly feed: readonly number[];
  /** True once the agent's next chunk is closed; nothing more to sample this tick. */
  readonly done: boolean;
}

export interface TickOutcome {
  readonly chunkIndex: number;
  /** The user's chunk `chunkIndex` as predicted by the model (deduped unit ids). */
  readonly predictedUser: readonly number[];
  /** The agent's chunk `chunkIndex + 1`: its tokens and the deduped unit ids among them. */
  readonly agentChunkIndex: number;
  readonly agentTokens: readonly number[];
  readonly agentUnits: readonly number[];
}

type Phase = 'idle' | 'user-open' | 'user-first' | 'user-more' | 'agent' | 'done' | 'closed';

interface ChunkState {
  readonly index: number;
  /** Absolute token index of this chunk's [S0]. */
  agentStart: number;
  /** Agent tokens of this chunk (after [S0]). */
  agent: number[];
  /** Absolute token index where this chunk's user part starts (-1 before it is predicted). */
  userStart: number;
  /** Deduped user unit ids currently in the context. */
  user: number[];
  userSource: UserChunkSource;
  /** Raw real units (U of them) once they arrived. */
  realRaw: readonly number[] | undefined;
  /** Whether `realRaw` is reflected in the context. */
  realApplied: boolean;
  /** The prediction made for this chunk (kept for reporting). */
  predicted: number[];
}

export class CallTimeline {
  readonly vocabulary: TokenVocabulary;
  readonly geometry: ChunkGeometry;
  readonly firstChunk: number;
  readonly maxLateChunks: number;
  readonly agentTokens: AgentTokens;
  private readonly retainTokens: number;

  /** Retained history; `tokens[i]` is absolute token `tokenBase + i`. */
  private tokens: number[];
  private tokenBase = 0;
  /** Mutable chunks, oldest first; chunk `chunks[i].index === chunkBase + i`. */
  private chunks: ChunkState[] = [];
  private chunkBase: number;
  /** Real user chunks that arrived before their chunk was created. */
  private readonly early = new Map<number, readonly number[]>();
  /** Last user/agent unit of the chunks already dropped from `chunks`. */
  private droppedLastUser: number | undefined;
  private droppedLastAgentToken: number | undefined;

  private phase: Phase = 'idle';
  /** filter() of the current state; sampling and accept()'s validation share it. */
  private filterCache: TokenFilter | undefined;
  /** Chunk index of the tick in progress or last finished; firstChunk - 1 before the first tick. */
  private current: number;

  constructor(options: CallTimelineOptions) {
    const { vocabulary, geometry, firstChunk, maxLateChunks } = options;
    if (!Number.isSafeInteger(firstChunk) || firstChunk < 0) {
      throw new InvalidArgumentError(`firstChunk must be a non-negative integer, got ${firstChunk}`);
    }
    if (!Number.isSafeInteger(maxLateChunks) || maxLateChunks < 0) {
      throw new InvalidArgumentError(`maxLateChunks must be a non-negative integer, got ${maxLateChunks}`);
    }
    const prefix = options.prefix ?? [];
    for (const [i, t] of prefix.entries()) {
      if (!Number.isInteger(t) || t < 0 || t >= vocabulary.vocabSize) {
        throw new InvalidArgumentError(`prefix token ${i} (${t}) is outside the vocabulary`);
      }
    }
    this.vocabulary = vocabulary;
    this.geometry = geometry;
    this.firstChunk = firstChunk;
    this.maxLateChunks = maxLateChunks;
    this.agentTokens = options.agentTokens ?? 'units';
    this.retainTokens = options.retainTokens ?? 8192;
    this.current = firstChunk - 1;
    this.chunkBase = firstChunk;
    const last = lastUnitsOf(vocabulary, prefix);
    this.droppedLastUser = last.user;
    const firstAgent = options.firstAgentUnits ?? [];
    if (firstAgent.length > geometry.unitsPerChunk) {
      throw new InvalidArgumentError(
        `firstAgentUnits has ${firstAgent.length} units, at most ${geometry.unitsPerChunk} fit a chunk`,
      );
    }
    assertUnitIds(vocabulary, firstAgent, (i) => `firstAgentUnits[${i}]`);
    this.droppedLastAgentToken = last.agent === undefined ? undefined : unitToken(vocabulary, last.agent);
    const agent = dedupChunk(firstAgent, last.agent).map((unit) => unitToken(vocabulary, unit));
    // The agent's first chunk: silent unless given (the model speaks from the chunk after it).
    this.tokens = [...prefix, vocabulary.s0, ...agent];
    const first = newChunk(firstChunk, prefix.length);
    first.agent = agent;
    this.chunks.push(first);
  }

  /** Absolute length of the token history. */
  get length(): number {
    return this.tokenBase + this.tokens.length;
  }

  /** Chunk index of the tick in progress, or of the last finished tick. */
  get chunkIndex(): number {
    return this.current;
  }

  get closed(): boolean {
    return this.phase === 'closed';
  }

  /** Tokens from absolute index `from` to the end (must still be retained). */
  tokensFrom(from: number): number[] {
    if (from < this.tokenBase || from > this.length) {
      throw new InvalidArgumentError(
        `token ${from} is not retained (retained ${this.tokenBase}..${this.length})`,
      );
    }
    return this.tokens.slice(from - this.tokenBase);
  }

  /** The retained history and the absolute index of its first token. */
  history(): { readonly base: number; readonly tokens: readonly number[] } {
    return { base: this.tokenBase, tokens: this.tokens.slice() };
  }

  /** Where chunk `index`'s user part currently comes from ('pending' before it is predicted). */
  userSource(index: number): UserChunkSource | undefined {
    return this.chunk(index)?.userSource;
  }

  /**
   * Offers the caller's real units for chunk `index` (exactly U raw units, not deduped). They
   * replace the prediction at the next tick; a chunk too old to replace is refused as 'late'.
   */
  submitUserChunk(index: number, units: readonly number[]): UserChunkAdmission {
    this.assertOpen();
    const u = this.geometry.unitsPerChunk;
    if (!Number.isSafeInteger(index))
      throw new InvalidArgumentError(`chunk index must be an integer, got ${index}`);
    if (units.length !== u) {
      throw new InvalidArgumentError(`user chunk ${index} has ${units.length} units, expected ${u}`);
    }
    assertUnitIds(this.vocabulary, units, (i) => `user chunk ${index} unit ${i}`);
    // User chunk j is due at tick j+1; the next tick (current+1) still rewrites j >= current-maxLate.
    if (index < this.firstChunk || index < this.current - this.maxLateChunks) return 'late';
    if (index > this.current + 1 + this.maxLateChunks) return 'early';
    const chunk = this.chunk(index);
    if (chunk) {
      if (chunk.realRaw) return 'duplicate';
      chunk.realRaw = units.slice();
      return 'accepted';
    }
    if (this.early.has(index)) return 'duplicate';
    this.early.set(index, units.slice());
    return 'accepted';
  }

  /**
   * Starts the next tick: applies real user chunks that arrived (rewriting the history from
   * the earliest one that differs from its prediction) and opens the prediction of the user's
   * current chunk.
   */
  beginTick(): TickPlan {
    this.assertOpen();
    if (this.phase !== 'idle') throw new InvalidStateError(`beginTick() during a tick (phase ${this.phase})`);
    const n = this.current + 1;
    this.current = n;

    // Chunk j becomes final at tick j + 2 + maxLate: from then on its prediction stands.
    const lostChunks: number[] = [];
    const finalNow = this.chunk(n - 2 - this.maxLateChunks);
    if (finalNow && finalNow.userSource === 'predicted' && !finalNow.realRaw) lostChunks.push(finalNow.index);
    const { dirtyFrom, replacedChunks, confirmedChunks } = this.applyRealChunks(n);
    this.dropFinalChunks(n);

    // Chunk n's agent part was written at the last tick (or at construction); its user part starts now.
    const chunk = this.chunk(n);
    if (!chunk) throw new InvalidStateError(`chunk ${n} is missing`);
    chunk.userStart = this.length;
    const early = this.early.get(n);
    if (early) {
      chunk.realRaw = early;
      this.early.delete(n);
    }
    this.phase = 'user-open';
    this.filterCache = undefined;
    return { chunkIndex: n, dirtyFrom, replacedChunks, confirmedChunks, lostChunks };
  }

  /** Which tokens the model may produce next. */
  filter(): TokenFilter {
    this.filterCache ??= this.computeFilter();
    return this.filterCache;
  }

  private computeFilter(): TokenFilter {
    const v = this.vocabulary;
    const units: readonly [number, number] = [v.unitBase, v.unitBase + v.unitCount];
    const s0: readonly [number, number] = [v.s0, v.s0 + 1];
    const s1: readonly [number, number] = [v.s1, v.s1 + 1];
    // `units` marks the unit ids, so that a timing temperature can draw "a tag or a unit" apart.
    switch (this.phase) {
      case 'user-open':
        return { ranges: [s0, s1], units };
      case 'user-first':
      case 'user-more': {
        const last = this.lastUserUnit();
        const banned = last === undefined ? [] : [unitToken(v, last)];
        return { ranges: this.phase === 'user-first' ? [units] : [units, s0], banned, units };
      }
      case 'agent': {
        const last = this.lastAgentUnitToken();
        const banned = last === undefined ? [] : [last];
        // With any token allowed (text too) there is no tag-or-unit decision to draw apart.
        return this.agentTokens === 'units'
          ? { ranges: [units, s0, s1], banned, units }
          : { ranges: [[0, v.vocabSize]], banned };
      }
      default:
        throw new InvalidStateError(`filter() outside of sampling (phase ${this.phase})`);
    }
  }

  /** Appends a token the model produced; returns what must be fed next. */
  accept(token: number): AcceptResult {
    const v = this.vocabulary;
    const u = this.geometry.unitsPerChunk;
    const n = this.current;
    const chunk = this.chunk(n);
    if (!chunk) throw new InvalidStateError(`chunk ${n} is missing`);
    if (!this.isAllowed(token)) {
      throw new InvalidArgumentError(`token ${token} is not allowed in phase ${this.phase}`);
    }
    this.filterCache = undefined; // every branch below changes what may come next
    switch (this.phase) {
      case 'user-open':
        chunk.userSource = 'predicted';
        chunk.user = [];
        if (token === v.s1) {
          this.tokens.push(token);
          this.phase = 'user-first';
          return { feed: [token], done: false };
        }
        return { feed: this.openAgentChunk(), done: false };
      case 'user-first':
      case 'user-more': {
        if (token === v.s0) return { feed: this.openAgentChunk(), done: false };
        chunk.user.push(tokenToUnit(v, token)!);
        this.tokens.push(token);
        if (chunk.user.length === u) return { feed: [token, ...this.openAgentChunk()], done: false };
        this.phase = 'user-more';
        return { feed: [token], done: false };
      }
      case 'agent': {
        if (isTag(v, token)) {
          this.phase = 'done';
          return { feed: [], done: true };
        }
        const next = this.chunk(n + 1)!;
        next.agent.push(token);
        this.tokens.push(token);
        if (next.agent.length === u) {
          this.phase = 'done';
          return { feed: [], done: true };
        }
        return { feed: [token], done: false };
      }
      default:
        throw new InvalidStateError(`accept() outside of sampling (phase ${this.phase})`);
    }
  }

  /** Whether `token` is allowed by the current filter (used to validate accept()). */
  isAllowed(token: number): boolean {
    if (!Number.isInteger(token)) return false;
    const f = this.filter();
    if (f.banned?.includes(token)) return false;
    return f.ranges.some(([a, b]) => token >= a && token < b);
  }

  /** Ends the tick; returns the predicted user chunk and the agent's next chunk. */
  endTick(): TickOutcome {
    if (this.phase !== 'done')
      throw new InvalidStateError(`endTick() before the agent chunk closed (phase ${this.phase})`);
    this.phase = 'idle';
    this.filterCache = undefined;
    const n = this.current;
    const chunk = this.chunk(n)!;
    chunk.predicted = chunk.user.slice();
    const next = this.chunk(n + 1)!;
    const agentUnits: number[] = [];
    for (const t of next.agent) {
      const unit = tokenToUnit(this.vocabulary, t);
      if (unit !== undefined) agentUnits.push(unit);
    }
    return {
      chunkIndex: n,
      predictedUser: chunk.predicted,
      agentChunkIndex: n + 1,
      agentTokens: next.agent.slice(),
      agentUnits,
    };
  }

  /** Ends the call; further use throws. Idempotent. */
  close(): void {
    this.phase = 'closed';
    this.filterCache = undefined;
    this.early.clear();
  }

  // --- internals ---

  private openAgentChunk(): number[] {
    const v = this.vocabulary;
    const n = this.current;
    const next = newChunk(n + 1, this.length);
    this.chunks.push(next);
    this.tokens.push(v.s0);
    this.phase = 'agent';
    return [v.s0];
  }

  private applyRealChunks(n: number): {
    dirtyFrom: number;
    replacedChunks: number[];
    confirmedChunks: number[];
  } {
    const replacedChunks: number[] = [];
    const confirmedChunks: number[] = [];
    let dirtyIndex = -1;
    let prevUser = this.droppedLastUser;
    for (const [i, c] of this.chunks.entries()) {
      if (c.index >= n) break;
      if (c.realRaw && (!c.realApplied || dirtyIndex >= 0)) {
        const real = dedupChunk(c.realRaw, prevUser);
        if (dirtyIndex < 0 && sameUnits(real, c.user)) {
          confirmedChunks.push(c.index);
        } else {
          if (dirtyIndex < 0) dirtyIndex = i;
          if (!c.realApplied) replacedChunks.push(c.index);
        }
        c.user = real;
        c.userSource = 'real';
        c.realApplied = true;
      } else if (dirtyIndex >= 0 && c.user.length > 0 && c.user[0] === prevUser) {
        // A predicted chunk after a replaced one must stay deduped against its new predecessor.
        c.user = c.user.slice(1);
      }
      const last = c.user[c.user.length - 1];
      if (last !== undefined) prevUser = last;
    }
    if (dirtyIndex < 0) return { dirtyFrom: this.length, replacedChunks, confirmedChunks };

    const first = this.chunks[dirtyIndex]!;
    const dirtyFrom = first.userStart;
    this.tokens.length = dirtyFrom - this.tokenBase;
    const v = this.vocabulary;
    for (let i = dirtyIndex; i < this.chunks.length; i++) {
      const c = this.chunks[i]!;
      if (c.index >= n) break;
      c.userStart = this.length;
      if (c.user.length > 0) {
        this.tokens.push(v.s1);
        for (const unit of c.user) this.tokens.push(unitToken(v, unit));
      }
      const next = this.chunks[i + 1];
      if (!next) throw new InvalidStateError(`chunk ${c.index + 1} is missing`);
      next.agentStart = this.length;
      this.tokens.push(v.s0, ...next.agent);
    }
    return { dirtyFrom, replacedChunks, confirmedChunks };
  }

  /** Drops chunks that can no longer change, and old tokens beyond the retention bound. */
  private dropFinalChunks(n: number): void {
    // Chunk j is final once j < n - 1 - maxLate; keep one final chunk for the dedup context.
    while (this.chunks.length > 1 && this.chunks[1]!.index < n - 1 - this.maxLateChunks) {
      const c = this.chunks.shift()!;
      this.chunkBase = c.index + 1;
      const lastUser = c.user[c.user.length - 1];
      if (lastUser !== undefined) this.droppedLastUser = lastUser;
      const lastAgent = [...c.agent].reverse().find((t) => tokenToUnit(this.vocabulary, t) !== undefined);
      if (lastAgent !== undefined) this.droppedLastAgentToken = lastAgent;
    }
    const oldestMutable = this.chunks[0]!.agentStart;
    const excess = oldestMutable - this.tokenBase - this.retainTokens;
    if (excess > 0) {
      this.tokens = this.tokens.slice(excess);
      this.tokenBase += excess;
    }
  }

  private chunk(index: number): ChunkState | undefined {
    return this.chunks[index - this.chunkBase];
  }

  private lastUserUnit(): number | undefined {
    for (let i = this.chunks.length - 1; i >= 0; i--) {
      const c = this.chunks[i]!;
      const last = c.user[c.user.length - 1];
      if (last !== undefined) return last;
    }
    return this.droppedLastUser;
  }

  private lastAgentUnitToken(): number | undefined {
    for (let i = this.chunks.length - 1; i >= 0; i--) {
      const agent = this.chunks[i]!.agent;
      for (let j = agent.length - 1; j >= 0; j--) {
        if (tokenToUnit(this.vocabulary, agent[j]!) !== undefined) return agent[j];
      }
    }
    return this.droppedLastAgentToken;
  }

  private assertOpen(): void {
    if (this.phase === 'closed') throw new InvalidStateError('the call timeline is closed');
  }
}

/** Throws InvalidArgumentError naming the first entry of `units` that is not a unit id. */
function assertUnitIds(v: TokenVocabulary, units: readonly number[], name: (i: number) => string): void {
  for (const [i, unit] of units.entries()) {
    if (!isUnitId(v, unit)) throw new InvalidArgumentError(`${name(i)} (${unit}) is not a unit id`);
  }
}

/** The last agent (`[S0]`) and user (`[S1]`) unit in a prefix; tokens before any tag are neither's. */
function lastUnitsOf(
  v: TokenVocabulary,
  prefix: readonly number[],
): { agent: number | undefined; user: number | undefined } {
  let speaker: 'agent' | 'user' | undefined;
  let agent: number | undefined;
  let user: number | undefined;
  for (const t of prefix) {
    if (t === v.s0) speaker = 'agent';
    else if (t === v.s1) speaker = 'user';
    else {
      const unit = tokenToUnit(v, t);
      if (unit === undefined || speaker === undefined) continue;
      if (speaker === 'agent') agent = unit;
      else user = unit;
    }
  }
  return { agent, user };
}

function newChunk(index: number, agentStart: number): ChunkState {
  return {
    index,
    agentStart,
    agent: [],
    userStart: -1,
    user: [],
    userSource: 'pending',
    realRaw: undefined,
    realApplied: false,
    predicted: [],
  };
}

function sameUnits(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
