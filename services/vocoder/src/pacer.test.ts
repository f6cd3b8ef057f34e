import { describe, expect, it } from 'vitest';
import { type ChunkOutcome, type DueFrame, Pacer } from './pacer.js';
import { TickClock } from './tickClock.js';

const CHUNK_MS = 160;
const T0 = 1_700_000_000_000;
const tickAt = (seq: number) => ({ seq, scheduledAtMs: T0 + seq * CHUNK_MS, chunkMs: CHUNK_MS });

describe('Pacer', () => {
  it('schedules frame i of chunk j at T(f + j) + delay + 20 i', () => {
    const clock = new TickClock();
    clock.observe(tickAt(10));
    const pacer = new Pacer({ clock, chunkMs: CHUNK_MS, playoutDelayMs: 30 });
    pacer.addCall('a', 12);
    expect(pacer.dueAt('a', 0)).toBe(T0 + 12 * CHUNK_MS + 30);
    expect(pacer.dueAt('a', 8 * 3 + 5)).toBe(T0 + 15 * CHUNK_MS + 30 + 100);
    expect(pacer.dueAt('b', 0)).toBeUndefined();
  });

  it('does nothing before the first tick', () => {
    const clock = new TickClock();
    const pacer = new Pacer({ clock, chunkMs: CHUNK_MS, playoutDelayMs: 0 });
    pacer.addCall('a', 5);
    expect(pacer.nextDueAt(T0)).toBeUndefined();
    expect(pacer.takeDue(T0 + 10_000).frames).toEqual([]);
  });

  it('sends silence for missing frames, audio for queued ones, marker only first', () => {
    const clock = new TickClock();
    clock.observe(tickAt(0));
    const pacer = new Pacer({ clock, chunkMs: CHUNK_MS, playoutDelayMs: 0 });
    pacer.addCall('a', 1);
    const audio = new Uint8Array([1]);
    // Chunk 1 (frames 8..15) has audio; chunk 2 does not.
    for (let i = 8; i < 16; i++) expect(pacer.enqueue('a', i, audio)).toBe(true);
    const start = T0 + CHUNK_MS;
    expect(pacer.nextDueAt(start)).toBe(start); // the call starts at its first frame
    const frames: DueFrame[] = [];
    const chunks: ChunkOutcome[] = [];
    for (let now = start; now < start + 3 * CHUNK_MS; now += 20) {
      const due = pacer.takeDue(now);
      frames.push(...due.frames);
      chunks.push(...due.chunks);
    }
    expect(frames.length).toBe(24);
    expect(frames[0]!.first).toBe(true);
    expect(frames.slice(1).every((f) => !f.first)).toBe(true);
    expect(frames.filter((f) => f.payload).map((f) => f.frameIndex)).toEqual([8, 9, 10, 11, 12, 13, 14, 15]);
    // Chunk 0 is never generated (not missing); 1 played; 2 missing.
    expect(chunks).toEqual([
      { callId: 'a', chunkIndex: 1, result: 'played' },
      { callId: 'a', chunkIndex: 2, result: 'missing' },
    ]);
    // Past frames are refused.
    expect(pacer.enqueue('a', 20, audio)).toBe(false);
    expect(pacer.enqueue('a', 24, audio)).toBe(true);
  });

  it('a call opened (or reloaded) mid-call starts at the current frame', () => {
    const clock = new TickClock();
    clock.observe(tickAt(100));
    const pacer = new Pacer({ clock, chunkMs: CHUNK_MS, playoutDelayMs: 0 });
    pacer.addCall('a', 50);
    const now = T0 + 100 * CHUNK_MS + 45;
    const due = pacer.nextDueAt(now)!;
    // Frame index since T(50): (50 chunks x 8) + 3 (at +60 ms, the first not yet due).
    expect(pacer.nextFrame('a')).toBe(50 * 8 + 3);
    expect(due).toBe(T0 + 100 * CHUNK_MS + 60);
  });

  it('skips frames it is far too late for instead of bursting them', () => {
    const clock = new TickClock();
    clock.observe(tickAt(0));
    const pacer = new Pacer({ clock, chunkMs: CHUNK_MS, playoutDelayMs: 0, maxLatenessMs: 100 });
    pacer.addCall('a', 0);
    pacer.takeDue(T0);
    const { frames } = pacer.takeDue(T0 + 1_000);
    expect(frames.every((f) => T0 + 1_000 - f.dueAtMs <= 100)).toBe(true);
    expect(pacer.skippedFrames).toBeGreaterThan(40);
  });

  it('does not drift over a 10-minute call (30,000 frames, simulated clock and timer jitter)', () => {
    const clock = new TickClock();
    let seq = 0;
    clock.observe(tickAt(seq));
    const delay = 40;
    const pacer = new Pacer({ clock, chunkMs: CHUNK_MS, playoutDelayMs: delay });
    pacer.addCall('a', 1);
    // A deterministic jitter source: the simulated timer fires 0..4 ms late.
    let rnd = 12345;
    const jitter = () => {
      rnd = (Math.imul(rnd, 1103515245) + 12345) >>> 0;
      return (rnd % 4000) / 1000;
    };
    const errors: number[] = [];
    const firstDue = T0 + CHUNK_MS + delay;
    let now = T0;
    while (errors.length < 30_000) {
      const due = pacer.nextDueAt(now)!;
      now = Math.max(now, due) + jitter();
      // Ticks arrive as the simulated time passes them (some ticks lost: extrapolation covers).
      while (T0 + (seq + 1) * CHUNK_MS <= now) {
        seq += 1;
        if (seq % 7 !== 0) clock.observe(tickAt(seq));
      }
      for (const f of pacer.takeDue(now).frames) {
        // The due time is the absolute grid, whatever happened before.
        expect(f.dueAtMs).toBe(firstDue + 20 * f.frameIndex);
        errors.push(now - f.dueAtMs);
      }
    }
    const first = errors.slice(0, 1000);
    const last = errors.slice(-1000);
    const max = (xs: number[]) => Math.max(...xs);
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    expect(max(errors)).toBeLessThan(5);
    expect(Math.abs(mean(last) - mean(first))).toBeLessThan(0.5);
    // 30,000 frames of 20 ms: 10 minutes of the call.
    expect(now - firstDue).toBeGreaterThanOrEqual(599_980);
    expect(now - firstDue).toBeLessThan(600_010);
  });
});
