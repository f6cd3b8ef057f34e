import { dedupChunk, type TokenVocabulary, unitToken } from '@duet/sync';

/** One chunk of a call as the context holds it (call-relative index). */
export interface HistoryEntry {
  readonly index: number;
  /** The agent's unit ids of this chunk (deduplicated, as generated). */
  agent: number[];
  /** The user's deduplicated unit ids as in the context (real or predicted). */
  user: number[];
  real: boolean;
}

/** What one engine step says about one call, in call chunk indices. */
export interface CallStepOutcome {
  readonly chunkIndex: number;
  readonly predictedUser: readonly number[];
  readonly agentIndex: number;
  readonly agentUnits: readonly number[];
  /** Chunks whose real units were applied at this step (replaced or confirmed). */
  readonly appliedReal: readonly number[];
}

/**
 * Mirrors a call's recent context (the last `keep` chunks) from the engine's step reports, so
 * it can be stored for another worker to resume from. Real user chunks are deduplicated the
 * way the timeline does it: against the previous chunk's last user unit, and a predicted chunk
 * after a rewritten one drops a leading unit equal to its new predecessor.
 */
export class CallHistoryTracker {
  private entries: HistoryEntry[] = [];
  /** Raw real units by chunk, until the chunk leaves the history. */
  private readonly raw = new Map<number, readonly number[]>();

  constructor(
    readonly keep: number,
    initial: readonly HistoryEntry[] = [],
  ) {
    this.entries = initial.map((e) => ({ ...e, agent: [...e.agent], user: [...e.user] }));
  }

  /** Remembers the raw units of a real user chunk the engine accepted. */
  submitted(index: number, units: readonly number[]): void {
    this.raw.set(index, units.slice());
  }

  get chunks(): readonly HistoryEntry[] {
    return this.entries;
  }

  apply(step: CallStepOutcome): void {
    const applied = new Set(step.appliedReal);
    let dirty = false;
    let prev: number | undefined;
    for (const e of this.entries) {
      if (e.index >= step.chunkIndex) break;
      const raw = this.raw.get(e.index);
      if (raw && (applied.has(e.index) || (dirty && e.real))) {
        e.user = dedupChunk(raw, prev);
        e.real = true;
        dirty = true;
      } else if (dirty && e.user.length > 0 && e.user[0] === prev) {
        e.user = e.user.slice(1);
      }
      const last = e.user[e.user.length - 1];
      if (last !== undefined) prev = last;
    }
    this.entry(step.chunkIndex).user = [...step.predictedUser];
    this.entry(step.chunkIndex).real = false;
    this.entry(step.agentIndex).agent = [...step.agentUnits];
    while (this.entries.length > this.keep) {
      const dropped = this.entries.shift()!;
      this.raw.delete(dropped.index);
    }
  }

  private entry(index: number): HistoryEntry {
    const last = this.entries[this.entries.length - 1];
    if (last && last.index >= index) {
      const found = this.entries.find((e) => e.index === index);
      if (found) return found;
    }
    const e: HistoryEntry = { index, agent: [], user: [], real: false };
    this.entries.push(e);
    this.entries.sort((a, b) => a.index - b.index);
    return e;
  }
}

/** A stored history chunk (from CallHistory), agent part as unit ids. */
export interface StoredChunk {
  readonly index: number;
  readonly agentUnits: readonly number[];
  readonly userUnits: readonly number[];
  readonly userReal: boolean;
}

export interface ResumePlan {
  /** Tokens before the resumed call's first chunk: `[S0] agent [S1] user` per chunk. */
  readonly prefix: number[];
  /** The rebuilt chunks (seed of the new worker's history). */
  readonly chunks: HistoryEntry[];
  /** Chunks whose user part came from DUET_UNITS (real units the dead worker never applied or predicted). */
  readonly fromStream: number;
  /**
   * The agent's units of chunk `resumeChunk` when the history holds them (the previous worker
   * generated and published them: a handover), for the engine to open with; else none (silent).
   */
  readonly firstAgentUnits: number[];
}

/**
 * Rebuilds a call's context for the worker that resumes it at call chunk `resumeChunk`: every
 * chunk from the oldest stored one up to resumeChunk - 1. A real chunk from the units stream
 * beats what the history holds (a prediction, or nothing for chunks after its last tick);
 * chunks after the history's last one have a silent agent (nobody generated them). The chunk
 * `resumeChunk` itself opens with the agent units the history holds for it (the caller heard
 * them), else silent.
 */
export function planResume(
  vocab: TokenVocabulary,
  stored: readonly StoredChunk[],
  realRaw: ReadonlyMap<number, readonly number[]>,
  resumeChunk: number,
): ResumePlan {
  const byIndex = new Map(stored.map((c) => [c.index, c]));
  // Older real chunks than the history holds would come without their agent part: start at the
  // history (or, with no history at all, at the first real chunk).
  const streamFirst = [...realRaw.keys()].filter((k) => k < resumeChunk);
  const from =
    stored.length > 0 ? Math.min(...stored.map((c) => c.index)) : Math.min(resumeChunk, ...streamFirst);
  const prefix: number[] = [];
  const chunks: HistoryEntry[] = [];
  let prev: number | undefined;
  let fromStream = 0;
  for (let index = from; index < resumeChunk; index++) {
    const s = byIndex.get(index);
    const raw = realRaw.get(index);
    const agent = [...(s?.agentUnits ?? [])];
    let user: number[];
    let real: boolean;
    if (raw) {
      user = dedupChunk(raw, prev);
      real = true;
      if (!s?.userReal) fromStream++;
    } else {
      user = [...(s?.userUnits ?? [])];
      if (user.length > 0 && user[0] === prev) user = user.slice(1);
      real = s?.userReal ?? false;
    }
    prefix.push(vocab.s0, ...agent.map((u) => unitToken(vocab, u)));
    if (user.length > 0) prefix.push(vocab.s1, ...user.map((u) => unitToken(vocab, u)));
    chunks.push({ index, agent, user, real });
    const last = user[user.length - 1];
    if (last !== undefined) prev = last;
  }
  const first = byIndex.get(resumeChunk);
  const firstAgentUnits = [...(first?.agentUnits ?? [])];
  if (first) chunks.push({ index: resumeChunk, agent: [...firstAgentUnits], user: [], real: false });
  return { prefix, chunks, fromStream, firstAgentUnits };
}
