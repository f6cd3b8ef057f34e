// Per-stream RTP jitter buffer, pure logic: the caller passes the clock (milliseconds, e.g.
// performance.now()) to every call, so it runs the same under a real clock and in tests.
//
// Packets are keyed by their extended sequence number (the 16-bit RTP number unwrapped across
// 65535 -> 0) and played out at a fixed delay: a packet with RTP timestamp ts is due at
//   arrival of the first packet + (ts - ts of the first packet) / clockRate + targetDelayMs.
// pop(now) releases, in sequence order, every frame that is due and reports each run of missing
// sequence numbers as one gap once a later packet is due, so the caller can conceal that many
// frames. The buffer holds at most `capacity` packets: it only accepts sequence numbers in the
// window [next to play, next to play + capacity).
//
// Not handled here (by design): clock drift between sender and receiver (the delay is fixed) and
// SSRC changes (a new SSRC is a new stream: make a new buffer).

import { InvalidArgumentError } from './errors.js';

export interface JitterBufferOptions {
  /** RTP clock rate of the payload: 8000 for G.711, 48000 for Opus. */
  readonly clockRate: number;
  /** Fixed playout delay after the first packet's arrival, in ms. */
  readonly targetDelayMs: number;
  /** Most packets held at once, i.e. the reorder window in packets (default 64: 1.28 s of 20 ms frames). */
  readonly capacity?: number;
}

export interface JitterPacket<T> {
  readonly sequenceNumber: number;
  readonly timestamp: number;
  readonly payload: T;
}

/** What push() did with a packet. */
export type PushOutcome = 'buffered' | 'duplicate' | 'late';

export type PlayoutEvent<T> =
  | {
      readonly type: 'frame';
      readonly sequenceNumber: number;
      readonly timestamp: number;
      readonly payload: T;
      /** When the frame was due, on the caller's clock. */
      readonly dueMs: number;
    }
  | {
      readonly type: 'gap';
      /** First missing sequence number (16-bit). */
      readonly sequenceNumber: number;
      /** How many consecutive sequence numbers are missing: conceal this many frames. */
      readonly count: number;
    };

export interface JitterBufferStats {
  /** Packets given to push(). */
  readonly received: number;
  /** Accepted packets that arrived after a packet with a higher sequence number. */
  readonly reordered: number;
  /** Packets whose sequence number was already in the buffer (dropped). */
  readonly duplicate: number;
  /** Packets whose slot was already played or given up as lost (dropped); includes late copies. */
  readonly late: number;
  /** Sequence numbers reported in gaps that were never received. */
  readonly lost: number;
  /** Buffered packets dropped because a packet far ahead pushed the window past them. */
  readonly overflow: number;
  /** Frames released by pop(). */
  readonly played: number;
}

interface Entry<T> {
  readonly packet: JitterPacket<T>;
  readonly dueMs: number;
}

const SEQ_MOD = 0x10000;

export class JitterBuffer<T> {
  readonly clockRate: number;
  readonly targetDelayMs: number;
  readonly capacity: number;

  readonly #entries = new Map<number, Entry<T>>();
  // Timing anchor: set by the first packet.
  #anchor: { arrivalMs: number; timestampExt: number } | undefined;
  // Latest timestamp seen, for unwrapping 32-bit timestamps.
  #refTimestamp = 0;
  #refTimestampExt = 0;
  // Sequence state, extended (never wraps). Starts one period up so early reorders stay >= 0.
  #highestSeq = -1;
  #nextSeq = -1;
  #started = false; // whether pop() has released or given up anything yet
  #pendingGap: { first: number; count: number } | undefined;
  #stats = { received: 0, reordered: 0, duplicate: 0, late: 0, lost: 0, overflow: 0, played: 0 };

  constructor(options: JitterBufferOptions) {
    const { clockRate, targetDelayMs, capacity = 64 } = options;
    if (!Number.isInteger(clockRate) || clockRate <= 0) {
      throw new InvalidArgumentError(`clockRate must be a positive integer, got ${clockRate}`);
    }
    if (!Number.isFinite(targetDelayMs) || targetDelayMs < 0) {
      throw new InvalidArgumentError(`targetDelayMs must be a finite number >= 0, got ${targetDelayMs}`);
    }
    if (!Number.isInteger(capacity) || capacity < 1 || capacity > 0x4000) {
      throw new InvalidArgumentError(`capacity must be an integer in 1..16384, got ${capacity}`);
    }
    this.clockRate = clockRate;
    this.targetDelayMs = targetDelayMs;
    this.capacity = capacity;
  }

  /** Packets held now (never more than capacity). */
  get size(): number {
    return this.#entries.size;
  }

  get stats(): JitterBufferStats {
    return { ...this.#stats };
  }

  /** Offers a packet that arrived at nowMs. Throws InvalidArgumentError on out-of-range numbers. */
  push(packet: JitterPacket<T>, nowMs: number): PushOutcome {
    const { sequenceNumber, timestamp } = packet;
    if (!Number.isInteger(sequenceNumber) || sequenceNumber < 0 || sequenceNumber >= SEQ_MOD) {
      throw new InvalidArgumentError(`sequenceNumber must be an integer in 0..65535, got ${sequenceNumber}`);
    }
    if (!Number.isInteger(timestamp) || timestamp < 0 || timestamp > 0xffffffff) {
      throw new InvalidArgumentError(`timestamp must be an integer in 0..2^32-1, got ${timestamp}`);
    }
    this.#stats.received++;

    if (this.#anchor === undefined) {
      const seq = sequenceNumber + SEQ_MOD;
      this.#anchor = { arrivalMs: nowMs, timestampExt: timestamp };
      this.#refTimestamp = timestamp;
      this.#refTimestampExt = timestamp;
      this.#highestSeq = seq;
      this.#nextSeq = seq;
      this.#store(seq, packet, timestamp);
      return 'buffered';
    }

    const seq = this.#extendSeq(sequenceNumber);
    if (seq < this.#nextSeq) {
      // Before anything is played, an early packet that arrived after its successor moves the start back.
      if (!this.#started && this.#nextSeq - seq < this.capacity && this.#highestSeq - seq < this.capacity) {
        this.#nextSeq = seq;
      } else {
        this.#stats.late++;
        return 'late';
      }
    }
    if (this.#entries.has(seq)) {
      this.#stats.duplicate++;
      return 'duplicate';
    }
    if (seq >= this.#nextSeq + this.capacity) this.#advanceWindow(seq - this.capacity + 1);
    if (seq < this.#highestSeq) this.#stats.reordered++;
    else this.#highestSeq = seq;
    this.#store(seq, packet, this.#extendTimestamp(timestamp, seq === this.#highestSeq));
    return 'buffered';
  }

  /** Releases, in order, every frame due at nowMs, with a gap event for each run of missing packets. */
  pop(nowMs: number): PlayoutEvent<T>[] {
    const out: PlayoutEvent<T>[] = [];
    if (this.#pendingGap !== undefined) {
      out.push({
        type: 'gap',
        sequenceNumber: this.#pendingGap.first % SEQ_MOD,
        count: this.#pendingGap.count,
      });
      this.#pendingGap = undefined;
    }
    while (this.#entries.size > 0) {
      const entry = this.#entries.get(this.#nextSeq);
      if (entry !== undefined) {
        if (entry.dueMs > nowMs) break;
        this.#entries.delete(this.#nextSeq);
        out.push({
          type: 'frame',
          sequenceNumber: entry.packet.sequenceNumber,
          timestamp: entry.packet.timestamp,
          payload: entry.packet.payload,
          dueMs: entry.dueMs,
        });
        this.#stats.played++;
        this.#nextSeq++;
        this.#started = true;
        continue;
      }
      // The next packet is missing: it is lost once the first packet after it is due.
      const following = this.#firstBufferedAfter(this.#nextSeq);
      if (following === undefined || following.entry.dueMs > nowMs) break;
      const count = following.seq - this.#nextSeq;
      out.push({ type: 'gap', sequenceNumber: this.#nextSeq % SEQ_MOD, count });
      this.#stats.lost += count;
      this.#nextSeq = following.seq;
      this.#started = true;
    }
    return out;
  }

  /** When the next event will be due (ms on the caller's clock), or undefined if nothing is buffered. */
  nextDueMs(): number | undefined {
    if (this.#pendingGap !== undefined) return Number.NEGATIVE_INFINITY;
    const entry = this.#entries.get(this.#nextSeq) ?? this.#firstBufferedAfter(this.#nextSeq)?.entry;
    return entry?.dueMs;
  }

  #store(seq: number, packet: JitterPacket<T>, timestampExt: number): void {
    const anchor = this.#anchor!;
    const dueMs =
      anchor.arrivalMs + ((timestampExt - anchor.timestampExt) * 1000) / this.clockRate + this.targetDelayMs;
    this.#entries.set(seq, { packet, dueMs });
  }

  /** The extended sequence number nearest the highest seen whose low 16 bits are `sequenceNumber`. */
  #extendSeq(sequenceNumber: number): number {
    const delta = ((sequenceNumber - (this.#highestSeq % SEQ_MOD) + 0x18000) % SEQ_MOD) - 0x8000;
    return this.#highestSeq + delta;
  }

  #extendTimestamp(timestamp: number, isNewest: boolean): number {
    const delta = (timestamp - this.#refTimestamp) | 0; // signed 32-bit difference
    const ext = this.#refTimestampExt + delta;
    if (isNewest) {
      this.#refTimestamp = timestamp;
      this.#refTimestampExt = ext;
    }
    return ext;
  }

  #firstBufferedAfter(seq: number): { seq: number; entry: Entry<T> } | undefined {
    let best: { seq: number; entry: Entry<T> } | undefined;
    for (const [key, entry] of this.#entries) {
      if (key > seq && (best === undefined || key < best.seq)) best = { seq: key, entry };
    }
    return best;
  }

  /** A packet arrived beyond the window: give up everything before `start`, reporting it as one gap. */
  #advanceWindow(start: number): void {
    let dropped = 0;
    for (const key of this.#entries.keys()) {
      if (key < start) {
        this.#entries.delete(key);
        dropped++;
      }
    }
    const skipped = start - this.#nextSeq;
    this.#stats.overflow += dropped;
    this.#stats.lost += skipped - dropped;
    if (this.#pendingGap === undefined) this.#pendingGap = { first: this.#nextSeq, count: skipped };
    else this.#pendingGap = { first: this.#pendingGap.first, count: this.#pendingGap.count + skipped };
    this.#nextSeq = start;
    this.#started = true;
  }
}
