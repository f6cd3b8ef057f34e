import { constants as bufferConstants } from 'node:buffer';
import { createVocabulary, InvalidArgumentError, InvalidStateError } from '@duet/sync';
import * as ort from 'onnxruntime-node';
import type { ForwardItem, ForwardOutput, ModelInfo, SlotId, SyncModelBackend } from './backend.js';
import {
  type ContextWindowSpec,
  entryOf,
  forEachVisibleRun,
  sinkBase,
  windowCapacity,
} from './contextWindow.js';
import { ClosedError, ModelContractError, NoCapacityError } from './errors.js';
import { type LoadedManifest, loadManifest, type SyncModelManifest } from './manifest.js';
import { type RopeSpec, rotateKey, writeRopeAngles } from './rope.js';

export interface OnnxSyncModelOptions {
  /** Path of the model's manifest.json. */
  readonly manifestPath: string;
  /** Slots preallocated (the most calls this model serves at once). */
  readonly slots: number;
  /** Cache entries per slot; defaults to the model's maxContext. */
  readonly contextTokens?: number;
  /** Attention sinks kept at the start of every context (default 4). */
  readonly sinks?: number;
  /** Entries kept beyond the window so rollbacks find their window intact (default 64). */
  readonly reserve?: number;
  /** onnxruntime intra-op threads (default 1: one core per engine). */
  readonly intraOpThreads?: number;
  /** Skip hashing the ONNX file (it can be GBs); default false. */
  readonly skipSha256?: boolean;
}

const MASKED = -1e9;
const MAX_BUFFER_BYTES = Math.min(bufferConstants.MAX_LENGTH, 2 ** 32);

/**
 * The `duet.synclm/1` model on onnxruntime-node, with the KV cache in preallocated per-slot
 * buffers. Active slots are kept contiguous (slot i of the batch is physical slot i), so the
 * cache of a batch is a subarray view of one buffer per layer: it is handed to onnxruntime
 * without a copy, and the model returns only the new tokens' keys and values, which are
 * written into place. A released slot is filled by moving the last one into it (one copy per
 * call that leaves, never per step).
 */
export class OnnxSyncModel implements SyncModelBackend {
  readonly info: ModelInfo;
  readonly slotCapacity: number;

  private readonly session: ort.InferenceSession;
  private readonly rope: RopeSpec;
  private readonly window: ContextWindowSpec;
  private readonly capacity: number;
  private readonly layers: number;
  private readonly kvHeads: number;
  private readonly headDim: number;
  private readonly vocabSize: number;
  /** Per layer: keys [slot, K, D, C] (transposed) and values [slot, K, C, D]. */
  private readonly keys: Float32Array[];
  private readonly values: Float32Array[];
  /** Per layer: sink keys as first produced [slot, K, D, sinks], for exact re-rotation. */
  private readonly sinkKeys: Float32Array[];
  /** Per physical slot: history length, sink rotation applied, token index held by each entry. */
  private readonly lengths: Int32Array;
  private readonly sinkRotation: Float64Array;
  private readonly entryToken: Int32Array;
  private readonly physicalOf = new Map<SlotId, number>();
  private readonly slotAt: SlotId[] = [];
  private nextSlotId = 1;
  /** Input buffers reused across invocations (grown when needed) to keep the step allocation-free. */
  private readonly scratch = new InputScratch();
  private closed = false;
  private busy = false;

  static async load(options: OnnxSyncModelOptions): Promise<OnnxSyncModel> {
    const loaded = await loadManifest(options.manifestPath, { verifySha256: !options.skipSha256 });
    const window = planWindow(loaded.manifest, options);
    let session: ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(loaded.modelPath, {
        intraOpNumThreads: options.intraOpThreads ?? 1,
        interOpNumThreads: 1,
        executionMode: 'sequential',
        graphOptimizationLevel: 'all',
      });
    } catch (cause) {
      throw new ModelContractError(
        `onnxruntime cannot load the model: ${(cause as Error).message}`,
        loaded.modelPath,
        {
          cause,
        },
      );
    }
    try {
      checkGraph(session, loaded);
    } catch (error) {
      await session.release();
      throw error;
    }
    return new OnnxSyncModel(session, loaded, window, options.slots);
  }

  private constructor(
    session: ort.InferenceSession,
    loaded: LoadedManifest,
    window: ContextWindowSpec,
    slots: number,
  ) {
    const m: SyncModelManifest = loaded.manifest;
    const a = m.architecture;
    this.session = session;
    this.window = window;
    this.capacity = windowCapacity(this.window);
    this.layers = a.layers;
    this.kvHeads = a.kvHeads;
    this.headDim = a.headDim;
    this.vocabSize = a.vocabSize;
    this.slotCapacity = slots;
    this.rope = { invFreq: Float64Array.from(m.rope.invFreq), attentionScaling: m.rope.attentionScaling };
    this.info = {
      name: loaded.modelPath,
      vocabulary: createVocabulary({ ...m.tokens, vocabSize: a.vocabSize }),
      layers: a.layers,
      kvHeads: a.kvHeads,
      headDim: a.headDim,
      maxContext: a.maxContext,
      contextWindow: this.window,
    };
    const perSlot = this.kvHeads * this.headDim * this.capacity;
    this.keys = Array.from({ length: a.layers }, () => new Float32Array(perSlot * slots));
    this.values = Array.from({ length: a.layers }, () => new Float32Array(perSlot * slots));
    this.sinkKeys = Array.from(
      { length: a.layers },
      () => new Float32Array(this.kvHeads * this.headDim * window.sinks * slots),
    );
    this.lengths = new Int32Array(slots);
    this.sinkRotation = new Float64Array(slots);
    this.entryToken = new Int32Array(slots * this.capacity).fill(-1);
  }

  get slotsInUse(): number {
    return this.slotAt.length;
  }

  allocateSlot(): SlotId {
    this.assertOpen();
    // Allowed during a forward(): a new slot only appends, it never moves the batch's cache.
    if (this.slotAt.length >= this.slotCapacity) {
      throw new NoCapacityError(`all ${this.slotCapacity} slots are in use`);
    }
    const id = this.nextSlotId++;
    const p = this.slotAt.length;
    this.slotAt.push(id);
    this.physicalOf.set(id, p);
    this.lengths[p] = 0;
    this.sinkRotation[p] = 0;
    this.entryToken.fill(-1, p * this.capacity, (p + 1) * this.capacity);
    return id;
  }

  releaseSlot(slot: SlotId): void {
    this.assertIdle('releaseSlot');
    const p = this.physical(slot);
    const last = this.slotAt.length - 1;
    if (p !== last) this.moveSlot(last, p);
    this.slotAt.pop();
    this.physicalOf.delete(slot);
  }

  length(slot: SlotId): number {
    return this.lengths[this.physical(slot)]!;
  }

  truncate(slot: SlotId, length: number): void {
    this.assertIdle('truncate');
    const p = this.physical(slot);
    const current = this.lengths[p]!;
    if (!Number.isSafeInteger(length) || length < 0 || length > current) {
      throw new InvalidArgumentError(`cannot truncate slot ${slot} from ${current} to ${length} tokens`);
    }
    // Every entry the shortened context attends to must still hold its own token.
    const base = p * this.capacity;
    forEachVisibleRun(this.window, length, (a, b) => {
      for (let e = a; e < b; e++) {
        const k = this.entryToken[base + e]!;
        if (k >= length || k < 0) {
          throw new InvalidStateError(
            `rollback of slot ${slot} to ${length} reaches past the reserve (${this.window.reserve} tokens)`,
          );
        }
      }
    });
    this.lengths[p] = length;
  }

  async forward(items: readonly ForwardItem[]): Promise<ForwardOutput> {
    this.assertOpen();
    this.assertIdle('forward');
    if (items.length === 0) throw new InvalidArgumentError('forward() needs at least one item');
    const phys = items.map((it) => this.physical(it.slot));
    let lo = Number.POSITIVE_INFINITY;
    let hi = -1;
    let t = 1;
    const itemAt = new Int32Array(this.slotAt.length).fill(-1);
    for (const [i, it] of items.entries()) {
      const p = phys[i]!;
      if (itemAt[p] !== -1) throw new InvalidArgumentError(`slot ${it.slot} appears twice in one forward()`);
      itemAt[p] = i;
      lo = Math.min(lo, p);
      hi = Math.max(hi, p);
      t = Math.max(t, it.tokens.length);
      for (const token of it.tokens) {
        if (!Number.isInteger(token) || token < 0 || token >= this.vocabSize) {
          throw new InvalidArgumentError(`token ${token} is outside the vocabulary (${this.vocabSize})`);
        }
      }
    }
    const b = hi - lo + 1;
    const c = this.capacity;
    const half = this.headDim / 2;
    const ids = this.scratch.ids(b * t);
    const cos = this.scratch.cos(b * t * half);
    const sin = this.scratch.sin(b * t * half);
    const mask = this.scratch.mask(b * t * (c + t)).fill(MASKED);

    for (let bi = 0; bi < b; bi++) {
      const p = lo + bi;
      const i = itemAt[p]!;
      const tokens = i >= 0 ? items[i]!.tokens : [];
      const length = this.lengths[p]!;
      if (tokens.length > 0) this.placeSinks(p, length);
      for (let ti = 0; ti < t; ti++) {
        const row = (bi * t + ti) * (c + t);
        if (ti >= tokens.length) {
          // Padding attends to itself only; its outputs are discarded.
          ids[bi * t + ti] = 0n;
          mask[row + c + ti] = 0;
          continue;
        }
        ids[bi * t + ti] = BigInt(tokens[ti]!);
        writeRopeAngles(this.rope, length + ti, cos, sin, (bi * t + ti) * half);
        if (ti === 0) {
          forEachVisibleRun(this.window, length, (from, to) => mask.fill(0, row + from, row + to));
        } else {
          mask.copyWithin(row, row - (c + t), row - t);
        }
        mask.fill(0, row + c, row + c + ti + 1);
      }
    }

    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor('int64', ids, [b, t]),
      rope_cos: new ort.Tensor('float32', cos, [b, t, half]),
      rope_sin: new ort.Tensor('float32', sin, [b, t, half]),
      attn_mask: new ort.Tensor('float32', mask, [b, 1, 1, t, c + t]),
    };
    const perSlot = this.kvHeads * this.headDim * c;
    for (let l = 0; l < this.layers; l++) {
      feeds[`past_key_${l}`] = new ort.Tensor(
        'float32',
        this.keys[l]!.subarray(lo * perSlot, (hi + 1) * perSlot),
        [b, this.kvHeads, this.headDim, c],
      );
      feeds[`past_value_${l}`] = new ort.Tensor(
        'float32',
        this.values[l]!.subarray(lo * perSlot, (hi + 1) * perSlot),
        [b, this.kvHeads, c, this.headDim],
      );
    }

    this.busy = true;
    let out: ort.InferenceSession.OnnxValueMapType;
    try {
      out = await this.session.run(feeds);
    } finally {
      this.busy = false;
    }
    this.assertOpen();

    for (let l = 0; l < this.layers; l++) {
      const newKey = out[`new_key_${l}`]!.data as Float32Array;
      const newValue = out[`new_value_${l}`]!.data as Float32Array;
      for (const [i, it] of items.entries()) {
        this.writeEntries(l, phys[i]!, phys[i]! - lo, it.tokens.length, t, newKey, newValue);
      }
    }
    for (const [i, it] of items.entries()) {
      const p = phys[i]!;
      const start = this.lengths[p]!;
      for (let ti = 0; ti < it.tokens.length; ti++) {
        this.entryToken[p * this.capacity + entryOf(this.window, start + ti)] = start + ti;
      }
      this.lengths[p] = start + it.tokens.length;
    }

    const logits = out.logits!.data as Float32Array;
    const v = this.vocabSize;
    return {
      logits,
      vocabSize: v,
      rowOffset: (item: number, token: number) => ((phys[item]! - lo) * t + token) * v,
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.session.release();
  }

  // --- internals ---

  private writeEntries(
    l: number,
    p: number,
    bi: number,
    n: number,
    t: number,
    newKey: Float32Array,
    newValue: Float32Array,
  ): void {
    const { kvHeads: kh, headDim: d, capacity: c } = this;
    const sinks = this.window.sinks;
    const keys = this.keys[l]!;
    const values = this.values[l]!;
    const start = this.lengths[p]!;
    for (let ti = 0; ti < n; ti++) {
      const k = start + ti;
      const e = entryOf(this.window, k);
      for (let h = 0; h < kh; h++) {
        const src = (bi * kh + h) * d * t + ti;
        const dst = (p * kh + h) * d * c + e;
        for (let j = 0; j < d; j++) keys[dst + j * c] = newKey[src + j * t]!;
        if (k < sinks) {
          const sk = this.sinkKeys[l]!;
          const sdst = (p * kh + h) * d * sinks + k;
          for (let j = 0; j < d; j++) sk[sdst + j * sinks] = newKey[src + j * t]!;
        }
        const vsrc = ((bi * kh + h) * t + ti) * d;
        values.set(newValue.subarray(vsrc, vsrc + d), ((p * kh + h) * c + e) * d);
      }
    }
  }

  /** Rotates the slot's sinks to sit right before its window (see contextWindow.ts). */
  private placeSinks(p: number, length: number): void {
    const sinks = this.window.sinks;
    const target = sinkBase(this.window, length);
    if (sinks === 0 || target === this.sinkRotation[p]) return;
    const { kvHeads: kh, headDim: d, capacity: c } = this;
    const present = Math.min(sinks, length);
    for (let l = 0; l < this.layers; l++) {
      for (let h = 0; h < kh; h++) {
        for (let s = 0; s < present; s++) {
          rotateKey(
            this.rope,
            target,
            this.sinkKeys[l]!,
            (p * kh + h) * d * sinks + s,
            sinks,
            this.keys[l]!,
            (p * kh + h) * d * c + s,
            c,
          );
        }
      }
    }
    this.sinkRotation[p] = target;
  }

  private moveSlot(from: number, to: number): void {
    const perSlot = this.kvHeads * this.headDim * this.capacity;
    const perSink = this.kvHeads * this.headDim * this.window.sinks;
    for (let l = 0; l < this.layers; l++) {
      this.keys[l]!.copyWithin(to * perSlot, from * perSlot, (from + 1) * perSlot);
      this.values[l]!.copyWithin(to * perSlot, from * perSlot, (from + 1) * perSlot);
      this.sinkKeys[l]!.copyWithin(to * perSink, from * perSink, (from + 1) * perSink);
    }
    this.entryToken.copyWithin(to * this.capacity, from * this.capacity, (from + 1) * this.capacity);
    this.lengths[to] = this.lengths[from]!;
    this.sinkRotation[to] = this.sinkRotation[from]!;
    const id = this.slotAt[from]!;
    this.slotAt[to] = id;
    this.physicalOf.set(id, to);
  }

  private physical(slot: SlotId): number {
    const p = this.physicalOf.get(slot);
    if (p === undefined) throw new InvalidArgumentError(`slot ${slot} is not allocated`);
    return p;
  }

  private assertOpen(): void {
    if (this.closed) throw new ClosedError('the model is closed');
  }

  private assertIdle(op: string): void {
    if (this.busy) throw new InvalidStateError(`${op}() while a forward() is running`);
  }
}

/** Validates the slot geometry against the model before anything is allocated. */
function planWindow(m: SyncModelManifest, options: OnnxSyncModelOptions): ContextWindowSpec {
  const a = m.architecture;
  const contextTokens = options.contextTokens ?? a.maxContext;
  const sinks = options.sinks ?? 4;
  const reserve = options.reserve ?? 64;
  if (!Number.isSafeInteger(options.slots) || options.slots < 1) {
    throw new InvalidArgumentError(`slots must be a positive integer, got ${options.slots}`);
  }
  if (!Number.isSafeInteger(contextTokens) || contextTokens > a.maxContext) {
    throw new InvalidArgumentError(
      `contextTokens (${contextTokens}) must be an integer <= the model's maxContext (${a.maxContext})`,
    );
  }
  if (!Number.isSafeInteger(sinks) || sinks < 0 || !Number.isSafeInteger(reserve) || reserve < 0) {
    throw new InvalidArgumentError(`sinks (${sinks}) and reserve (${reserve}) must be non-negative integers`);
  }
  const window = contextTokens - sinks - reserve;
  if (window < 1) {
    throw new InvalidArgumentError(
      `contextTokens (${contextTokens}) must exceed sinks (${sinks}) + reserve (${reserve})`,
    );
  }
  // One Float32Array per layer holds every slot's keys (and one their values).
  const perLayer = options.slots * a.kvHeads * a.headDim * contextTokens;
  if (perLayer * 4 > MAX_BUFFER_BYTES) {
    throw new InvalidArgumentError(
      `${options.slots} slots of ${contextTokens} tokens need ${((perLayer * 4) / 2 ** 30).toFixed(1)} GiB per layer buffer (limit ${(MAX_BUFFER_BYTES / 2 ** 30).toFixed(1)} GiB): use fewer slots or a shorter context`,
    );
  }
  return { sinks, window, reserve };
}

/** Checks the graph's inputs and outputs against the contract, naming the first mismatch. */
function checkGraph(session: ort.InferenceSession, loaded: LoadedManifest): void {
  const a = loaded.manifest.architecture;
  const path = loaded.modelPath;
  const expectInputs: Record<string, [ort.Tensor.Type, (number | null)[]]> = {
    input_ids: ['int64', [null, null]],
    rope_cos: ['float32', [null, null, a.headDim / 2]],
    rope_sin: ['float32', [null, null, a.headDim / 2]],
    attn_mask: ['float32', [null, 1, 1, null, null]],
  };
  const expectOutputs: Record<string, [ort.Tensor.Type, (number | null)[]]> = {
    logits: ['float32', [null, null, a.vocabSize]],
  };
  for (let l = 0; l < a.layers; l++) {
    expectInputs[`past_key_${l}`] = ['float32', [null, a.kvHeads, a.headDim, null]];
    expectInputs[`past_value_${l}`] = ['float32', [null, a.kvHeads, null, a.headDim]];
    expectOutputs[`new_key_${l}`] = ['float32', [null, a.kvHeads, a.headDim, null]];
    expectOutputs[`new_value_${l}`] = ['float32', [null, a.kvHeads, null, a.headDim]];
  }
  const check = (
    kind: string,
    metas: readonly ort.InferenceSession.ValueMetadata[],
    expected: typeof expectInputs,
  ) => {
    const byName = new Map(metas.map((m) => [m.name, m]));
    for (const [name, [type, shape]] of Object.entries(expected)) {
      const m = byName.get(name);
      if (!m) throw new ModelContractError(`the graph has no ${kind} "${name}"`, path);
      if (!m.isTensor || m.type !== type) {
        throw new ModelContractError(`${kind} "${name}" must be a ${type} tensor`, path);
      }
      if (m.shape.length !== shape.length) {
        throw new ModelContractError(
          `${kind} "${name}" must have rank ${shape.length}, has ${m.shape.length}`,
          path,
        );
      }
      shape.forEach((dim, i) => {
        const got = m.shape[i];
        if (dim !== null && typeof got === 'number' && got !== dim) {
          throw new ModelContractError(
            `${kind} "${name}" dimension ${i} is ${got}, the manifest implies ${dim}`,
            path,
          );
        }
      });
    }
    for (const name of byName.keys()) {
      if (kind === 'input' && !(name in expected)) {
        throw new ModelContractError(`unexpected input "${name}" (not in the duet.synclm/1 contract)`, path);
      }
    }
  };
  check('input', session.inputMetadata, expectInputs);
  check('output', session.outputMetadata, expectOutputs);
}

/** Growable input buffers; each call returns a view of exactly the requested length. */
class InputScratch {
  private idsBuf = new BigInt64Array(0);
  private cosBuf = new Float32Array(0);
  private sinBuf = new Float32Array(0);
  private maskBuf = new Float32Array(0);

  ids(n: number): BigInt64Array {
    if (this.idsBuf.length < n) this.idsBuf = new BigInt64Array(n);
    return this.idsBuf.subarray(0, n);
  }
  cos(n: number): Float32Array {
    if (this.cosBuf.length < n) this.cosBuf = new Float32Array(n);
    return this.cosBuf.subarray(0, n);
  }
  sin(n: number): Float32Array {
    if (this.sinBuf.length < n) this.sinBuf = new Float32Array(n);
    return this.sinBuf.subarray(0, n);
  }
  mask(n: number): Float32Array {
    if (this.maskBuf.length < n) this.maskBuf = new Float32Array(n);
    return this.maskBuf.subarray(0, n);
  }
}
