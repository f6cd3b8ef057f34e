// The pure heart of the vocoder's sending: which frame of which call is due when. Frame i of
// agent chunk j of a call with first tick f is due at T(f + j) + playout delay + 20 ms x i,
// always computed from the clock's absolute tick times (never by adding up intervals), so the
// stream cannot drift however long the call runs. The service arms one timer for nextDueAt()
// and sends whatever takeDue(now) returns; a frame with no audio is sent as silence.

import { FRAME_MS } from './rtpStream.js';
import type { TickClock } from './tickClock.js';

export interface PacerOptions {
  readonly clock: TickClock;
  /** Chunk length of the call clock (ms); a multiple of 20. */
  readonly chunkMs: number;
  readonly playoutDelayMs: number;
  /** A frame overdue by more than this (the process stalled) is skipped, not sent in a burst. */
  readonly maxLatenessMs?: number;
}

/** One frame to send now. */
export interface DueFrame {
  readonly callId: string;
  readonly frameIndex: number;
  readonly dueAtMs: number;
  /** Encoded audio, or undefined: send silence. */
  readonly payload: Uint8Array | undefined;
  /** The first frame this pacer sends for the call (RTP marker bit). */
  readonly first: boolean;
}

/** What happened to one chunk once its last frame was due. */
export interface ChunkOutcome {
  readonly callId: string;
  readonly chunkIndex: number;
  /** played: at least one of its frames carried audio; missing: all were silence. */
  readonly result: 'played' | 'missing';
}

interface Lane {
  readonly callId: string;
  readonly firstTick: number;
  /** Next frame to send; undefined until the clock is known (then the current frame). */
  nextFrame: number | undefined;
  readonly frames: Map<number, Uint8Array>;
  chunkHadAudio: boolean;
  sentAny: boolean;
}

export class Pacer {
  readonly framesPerChunk: number;
  readonly #lanes = new Map<string, Lane>();
  readonly #maxLatenessMs: number;
  /** Frames skipped because the process was too late to send them. */
  skippedFrames = 0;

  constructor(readonly options: PacerOptions) {
    if (options.chunkMs % FRAME_MS !== 0 || options.chunkMs <= 0)
      throw new RangeError(`chunkMs (${options.chunkMs}) must be a positive multiple of ${FRAME_MS}`);
    this.framesPerChunk = options.chunkMs / FRAME_MS;
    this.#maxLatenessMs = options.maxLatenessMs ?? 200;
  }

  get size(): number {
    return this.#lanes.size;
  }

  addCall(callId: string, firstTick: number): void {
    this.#lanes.set(callId, {
      callId,
      firstTick,
      nextFrame: undefined,
      frames: new Map(),
      chunkHadAudio: false,
      sentAny: false,
    });
  }

  removeCall(callId: string): void {
    this.#lanes.delete(callId);
  }

  has(callId: string): boolean {
    return this.#lanes.has(callId);
  }

  /** Due time of frame `frameIndex` of the call, or undefined before the first tick. */
  dueAt(callId: string, frameIndex: number): number | undefined {
    const lane = this.#lanes.get(callId);
    return lane && this.#due(lane, frameIndex);
  }

  /** Next frame the call will send (undefined before it started). */
  nextFrame(callId: string): number | undefined {
    return this.#lanes.get(callId)?.nextFrame;
  }

  /**
   * Queues an encoded frame. Returns false when the frame's time has already gone (it is
   * dropped) or the call is unknown.
   */
  enqueue(callId: string, frameIndex: number, payload: Uint8Array): boolean {
    const lane = this.#lanes.get(callId);
    if (!lane) return false;
    if (lane.nextFrame !== undefined && frameIndex < lane.nextFrame) return false;
    lane.frames.set(frameIndex, payload);
    return true;
  }

  /** Earliest due time over all calls (unix ms), or undefined when nothing can be scheduled. */
  nextDueAt(nowMs: number): number | undefined {
    let best: number | undefined;
    for (const lane of this.#lanes.values()) {
      const next = this.#start(lane, nowMs);
      if (next === undefined) continue;
      const due = this.#due(lane, next)!;
      if (best === undefined || due < best) best = due;
    }
    return best;
  }

  /** Every frame due at `nowMs`, oldest first per call; and the chunks whose play time ended. */
  takeDue(nowMs: number): { frames: DueFrame[]; chunks: ChunkOutcome[] } {
    const frames: DueFrame[] = [];
    const chunks: ChunkOutcome[] = [];
    const f = this.framesPerChunk;
    for (const lane of this.#lanes.values()) {
      let n = this.#start(lane, nowMs);
      if (n === undefined) continue;
      for (let due = this.#due(lane, n)!; due <= nowMs; due = this.#due(lane, n)!) {
        const payload = lane.frames.get(n);
        lane.frames.delete(n);
        if (nowMs - due > this.#maxLatenessMs) this.skippedFrames += 1;
        else {
          frames.push({ callId: lane.callId, frameIndex: n, dueAtMs: due, payload, first: !lane.sentAny });
          lane.sentAny = true;
          if (payload !== undefined) lane.chunkHadAudio = true;
        }
        if (n % f === f - 1) {
          const chunkIndex = (n - (f - 1)) / f;
          // Agent chunk 0 is never generated (inference's first agent chunk is 1): not missing.
          if (lane.chunkHadAudio || chunkIndex > 0)
            chunks.push({
              callId: lane.callId,
              chunkIndex,
              result: lane.chunkHadAudio ? 'played' : 'missing',
            });
          lane.chunkHadAudio = false;
        }
        n += 1;
        lane.nextFrame = n;
      }
    }
    return { frames, chunks };
  }

  #due(lane: Lane, frameIndex: number): number | undefined {
    const f = this.framesPerChunk;
    const chunk = Math.floor(frameIndex / f);
    const t = this.options.clock.timeOf(lane.firstTick + chunk);
    return t === undefined
      ? undefined
      : t + this.options.playoutDelayMs + FRAME_MS * (frameIndex - chunk * f);
  }

  /** The lane's next frame; a lane that starts late (opened or reloaded mid-call) starts now. */
  #start(lane: Lane, nowMs: number): number | undefined {
    if (lane.nextFrame !== undefined) return lane.nextFrame;
    const due0 = this.#due(lane, 0);
    if (due0 === undefined) return undefined;
    lane.nextFrame = Math.max(0, Math.ceil((nowMs - due0) / FRAME_MS));
    // Frames queued before the start are in the past.
    for (const k of lane.frames.keys()) if (k < lane.nextFrame) lane.frames.delete(k);
    return lane.nextFrame;
  }
}
