import type { TokenVocabulary } from '@duet/sync';
import type { ContextWindowSpec } from './contextWindow.js';

/** A call's handle on its cache slot. Stable for the slot's life, whatever the physical placement. */
export type SlotId = number;

export interface ForwardItem {
  readonly slot: SlotId;
  /** Tokens appended to the slot's history in this invocation (may be empty: the slot idles). */
  readonly tokens: readonly number[];
}

export interface ForwardOutput {
  /** Logits rows, `vocabSize` floats each; valid until the next forward(). */
  readonly logits: Float32Array;
  readonly vocabSize: number;
  /** Offset in `logits` of the row that follows token `token` of item `item`. */
  rowOffset(item: number, token: number): number;
}

export interface ModelInfo {
  readonly name: string;
  readonly vocabulary: TokenVocabulary;
  readonly layers: number;
  readonly kvHeads: number;
  readonly headDim: number;
  readonly maxContext: number;
  readonly contextWindow: ContextWindowSpec;
}

/**
 * The seam between the tick loop and a model runtime: slots with a KV cache each, one batched
 * forward over many slots, and rollback of a slot to an earlier length. A second runtime (a GPU
 * backend) implements this without touching the loop.
 */
export interface SyncModelBackend {
  readonly info: ModelInfo;
  /** How many slots exist in total (preallocated). */
  readonly slotCapacity: number;
  /** How many slots are in use. */
  readonly slotsInUse: number;
  /** Takes a free slot with an empty history; throws NoCapacityError when none is free. */
  allocateSlot(): SlotId;
  releaseSlot(slot: SlotId): void;
  /** Tokens the slot's cache holds. */
  length(slot: SlotId): number;
  /** Rolls the slot back to `length` tokens (never forward). */
  truncate(slot: SlotId, length: number): void;
  /** One model invocation for all items together; appends their tokens and returns logits. */
  forward(items: readonly ForwardItem[]): Promise<ForwardOutput>;
  close(): Promise<void>;
}
