// Running the dialogue model over eval items through the real engine: the ground-truth prompt
// is teacher-forced as the call's prefix, then the engine steps chunk by chunk with the caller's
// real units submitted on time (zero latency), as the inference service does on each tick.
import { OnnxSyncModel, SyncEngine } from '@duet/engine';
import {
  chunkGeometry,
  dedupChunk,
  expandChunk,
  type SamplingOptions,
  type TokenVocabulary,
  writeChunkBlock,
} from '@duet/sync';

export interface DialogueEngineOptions {
  readonly manifestPath: string;
  readonly chunkMs: number;
  readonly slots: number;
  /** Unit the vocoder holds before the agent's first unit (the tokenizer's silence unit). */
  readonly silenceUnit: number;
  /** Units of the speech tokenizer; the model's vocabulary must have as many. */
  readonly unitCount: number;
  readonly sampling?: SamplingOptions;
  /** KV entries per slot (default 1024, as the inference service). */
  readonly contextTokens?: number;
  readonly maxLateChunks?: number;
}

/** The serving defaults of services/inference (temperature 0.8, top-p 0.95, timing temperature off). */
export const SERVING_SAMPLING: SamplingOptions = { temperature: 0.8, topK: 0, topP: 0.95 };

export async function loadDialogueEngine(options: DialogueEngineOptions): Promise<SyncEngine> {
  const geometry = chunkGeometry(options.chunkMs);
  const maxLateChunks = options.maxLateChunks ?? 2;
  const model = await OnnxSyncModel.load({
    manifestPath: options.manifestPath,
    slots: options.slots,
    contextTokens: options.contextTokens ?? 1024,
    reserve: SyncEngine.requiredReserve(geometry, maxLateChunks),
  });
  if (model.info.vocabulary.unitCount !== options.unitCount) {
    await model.close();
    throw new Error(
      `the dialogue model has ${model.info.vocabulary.unitCount} units but the speech tokenizer ${options.unitCount}: they must share one unit inventory`,
    );
  }
  return new SyncEngine(model, {
    geometry,
    maxLateChunks,
    silenceUnit: options.silenceUnit,
    sampling: options.sampling ?? SERVING_SAMPLING,
  });
}

/**
 * The SyncLLM tokens of chunks [0, chunks): `[S0] agent [S1] user` per chunk, each speaker's
 * units deduplicated within and across chunk boundaries. The agent's chunk 0 is left empty, as
 * `CallTimeline` writes a call and the recipe trains on it (the model speaks from chunk 1).
 */
export function promptTokens(
  vocab: TokenVocabulary,
  agent: readonly (readonly number[])[],
  user: readonly (readonly number[])[],
  chunks: number,
): number[] {
  const tokens: number[] = [];
  let lastAgent: number | undefined;
  let lastUser: number | undefined;
  for (let k = 0; k < chunks; k++) {
    const a = k === 0 ? [] : dedupChunk(agent[k] ?? [], lastAgent);
    const u = dedupChunk(user[k] ?? [], lastUser);
    lastAgent = a[a.length - 1] ?? lastAgent;
    lastUser = u[u.length - 1] ?? lastUser;
    tokens.push(...writeChunkBlock(vocab, a, u));
  }
  return tokens;
}

/**
 * The agent's chunk right after a prompt of `chunks` chunks (raw units), which the engine opens
 * the call with so that speech going on at the prompt's end goes on; none without a prompt (the
 * agent's chunk 0 is empty).
 */
export function promptNextAgentChunk(
  agent: readonly (readonly number[])[],
  chunks: number,
): readonly number[] {
  return chunks > 0 ? (agent[chunks] ?? []) : [];
}

export interface GenerationItem {
  readonly id: string;
  /** Raw units per chunk (U each) of the ground-truth agent channel (used for the prompt) ... */
  readonly agentUnits: readonly (readonly number[])[];
  /** ... and of the caller, whose chunks after the prompt are fed as the real user chunks. */
  readonly callerUnits: readonly (readonly number[])[];
  /** Chunks of the prompt (teacher-forced). */
  readonly promptChunks: number;
  readonly seed: number;
}

export interface GenerationResult {
  readonly id: string;
  /** Expanded agent units per chunk for the whole item: ground truth in the prompt, generated after it. */
  readonly agentChunks: number[][];
  /**
   * Expanded caller units per chunk for the whole item: ground truth in the prompt, then the
   * model's prediction of each chunk (the caller the model imagines; with `freeRunning` it is
   * the only caller the model hears, as in the paper's continuation experiment).
   */
  readonly callerChunks: number[][];
  /** Engine steps whose call failed (reported, the item ends early). */
  readonly error?: string;
}

/**
 * Generates the agent's continuation of every item: items run together in the engine's slots
 * (in groups of the engine's capacity), one step per chunk.
 */
export async function generateContinuations(
  engine: SyncEngine,
  items: readonly GenerationItem[],
  options: {
    readonly slots: number;
    readonly silenceUnit: number;
    /** Submit no caller units: the model's own predictions of the caller stand (both sides generated). */
    readonly freeRunning?: boolean;
    readonly onProgress?: (done: number, total: number) => void;
  },
): Promise<GenerationResult[]> {
  const u = engine.geometry.unitsPerChunk;
  const vocab = engine.backend.info.vocabulary;
  const results = new Map<string, GenerationResult>();
  let done = 0;
  for (let g = 0; g < items.length; g += options.slots) {
    const group = items.slice(g, g + options.slots);
    const t0 = engine.tick;
    const live = new Map<string, { item: GenerationItem; result: GenerationResult; lastTick: number }>();
    for (const item of group) {
      const total = item.callerUnits.length;
      const p = Math.min(item.promptChunks, total);
      // The engine's first chunk (item chunk p) is the ground truth's after a prompt, silent without one.
      const firstAgentUnits = promptNextAgentChunk(item.agentUnits, p);
      const agentChunks = item.agentUnits.slice(0, p).map((c) => c.slice());
      if (firstAgentUnits.length > 0) agentChunks.push(firstAgentUnits.slice());
      while (agentChunks.length < total) agentChunks.push(new Array<number>(u).fill(options.silenceUnit));
      const callerChunks = item.callerUnits.slice(0, p).map((c) => c.slice());
      while (callerChunks.length < total) callerChunks.push(new Array<number>(u).fill(options.silenceUnit));
      const result: GenerationResult = { id: item.id, agentChunks, callerChunks };
      results.set(item.id, result);
      // Item chunk p + (t - t0) is engine chunk t; agent chunk t+1 comes out of step t.
      const lastTick = t0 + total - p - 2;
      if (lastTick < t0) continue;
      engine.openCall({
        callId: item.id,
        seed: item.seed,
        prefix: promptTokens(vocab, item.agentUnits, item.callerUnits, p),
        firstAgentUnits,
      });
      live.set(item.id, { item, result, lastTick });
    }
    while (live.size > 0) {
      const t = engine.tick;
      for (const { item } of live.values()) {
        const p = Math.min(item.promptChunks, item.callerUnits.length);
        const real = item.callerUnits[p + t - 1 - t0];
        if (t > t0 && real && !options.freeRunning) engine.submitUserChunk(item.id, t - 1, real);
      }
      const report = await engine.step();
      for (const call of report.calls) {
        const entry = live.get(call.callId);
        if (!entry) continue;
        const p = Math.min(entry.item.promptChunks, entry.item.callerUnits.length);
        const at = p + call.agentChunk.index - t0;
        if (at < entry.result.agentChunks.length)
          entry.result.agentChunks[at] = call.agentChunk.expanded.slice();
        const cat = p + call.chunkIndex - t0;
        if (cat < entry.result.callerChunks.length) {
          const prev = entry.result.callerChunks[cat - 1];
          entry.result.callerChunks[cat] = expandChunk(
            call.predictedUser,
            prev?.[prev.length - 1],
            u,
            options.silenceUnit,
          );
        }
      }
      for (const failed of report.failed) {
        const entry = live.get(failed.callId);
        if (!entry) continue;
        results.set(failed.callId, { ...entry.result, error: failed.error.message });
        live.delete(failed.callId);
        done++;
      }
      for (const [id, entry] of live) {
        if (t >= entry.lastTick) {
          engine.closeCall(id);
          live.delete(id);
          done++;
          options.onProgress?.(done, items.length);
        }
      }
    }
  }
  return items.map((item) => results.get(item.id)!);
}
