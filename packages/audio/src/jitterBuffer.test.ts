import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from './errors.js';
import { JitterBuffer, type PlayoutEvent } from './jitterBuffer.js';

// 20 ms Opus frames: 960 timestamp units per packet at 48 kHz.
const packet = (seq: number, startSeq = 0, startTs = 0) => {
  const offset = (seq - startSeq + 0x10000) % 0x10000;
  return {
    sequenceNumber: seq % 0x10000,
    timestamp: (startTs + offset * 960) % 2 ** 32,
    payload: seq % 0x10000,
  };
};
const frames = (events: PlayoutEvent<number>[]) =>
  events.filter((e) => e.type === 'frame').map((e) => e.payload);

describe('JitterBuffer', () => {
  it('holds a packet for the target delay, then releases it', () => {
    const buffer = new JitterBuffer<number>({ clockRate: 48000, targetDelayMs: 60 });
    expect(buffer.push(packet(10), 1000)).toBe('buffered');
    expect(buffer.pop(1059)).toEqual([]);
    expect(buffer.nextDueMs()).toBe(1060);
    expect(buffer.pop(1060)).toEqual([
      { type: 'frame', sequenceNumber: 10, timestamp: 9600, payload: 10, dueMs: 1060 },
    ]);
    buffer.push(packet(11), 1020);
    expect(frames(buffer.pop(1079))).toEqual([]);
    expect(frames(buffer.pop(1080))).toEqual([11]);
  });

  it('reorders, drops duplicates and late packets, and counts them', () => {
    const buffer = new JitterBuffer<number>({ clockRate: 48000, targetDelayMs: 60 });
    buffer.push(packet(1), 0);
    buffer.push(packet(3), 40);
    expect(buffer.push(packet(2), 45)).toBe('buffered');
    expect(buffer.push(packet(3), 46)).toBe('duplicate');
    expect(frames(buffer.pop(200))).toEqual([1, 2, 3]);
    expect(buffer.push(packet(2), 201)).toBe('late');
    expect(buffer.stats).toEqual({
      received: 5,
      reordered: 1,
      duplicate: 1,
      late: 1,
      lost: 0,
      overflow: 0,
      played: 3,
    });
  });

  it('reports a gap once the packet after it is due, and a straggler for the gap is late', () => {
    const buffer = new JitterBuffer<number>({ clockRate: 48000, targetDelayMs: 40 });
    buffer.push(packet(100), 0);
    buffer.push(packet(103), 60);
    expect(buffer.pop(40)).toMatchObject([{ type: 'frame', payload: 100 }]);
    expect(buffer.pop(99)).toEqual([]); // 101 and 102 might still come
    expect(buffer.pop(100)).toEqual([
      { type: 'gap', sequenceNumber: 101, count: 2 },
      { type: 'frame', sequenceNumber: 103, timestamp: 103 * 960, payload: 103, dueMs: 100 },
    ]);
    expect(buffer.push(packet(102), 101)).toBe('late');
    expect(buffer.stats.lost).toBe(2);
  });

  it('a packet that overtakes the first one is still played first', () => {
    const buffer = new JitterBuffer<number>({ clockRate: 8000, targetDelayMs: 60 });
    buffer.push(packet(7), 0);
    buffer.push(packet(6), 5);
    expect(frames(buffer.pop(1000))).toEqual([6, 7]);
  });

  it('wraps around 65535 -> 0 in sequence numbers and 2^32 -> 0 in timestamps', () => {
    const buffer = new JitterBuffer<number>({ clockRate: 48000, targetDelayMs: 20 });
    const start = 65530;
    const startTs = 2 ** 32 - 3 * 960;
    const seqs = Array.from({ length: 12 }, (_, i) => (start + i) % 0x10000);
    const out: number[] = [];
    for (const [i, seq] of seqs.entries()) {
      buffer.push(packet(seq, start, startTs), i * 20);
      out.push(...frames(buffer.pop(i * 20 + 20)));
    }
    out.push(...frames(buffer.pop(1000)));
    expect(out).toEqual(seqs);
    expect(buffer.stats.lost).toBe(0);
  });

  it('any permutation within the window comes out in order (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 65535 }),
        fc.integer({ min: 1, max: 40 }),
        fc.integer({ min: 0, max: 2 ** 32 - 1 }),
        fc.infiniteStream(fc.double({ min: 0, max: 1, noNaN: true })),
        (start, length, startTs, randoms) => {
          const seqs = Array.from({ length }, (_, i) => (start + i) % 0x10000);
          const shuffled = [...seqs];
          const rnd = randoms[Symbol.iterator]();
          for (let i = shuffled.length - 1; i > 0; i--) {
            const j = Math.floor(rnd.next().value! * (i + 1)) % (i + 1);
            [shuffled[i], shuffled[j]] = [shuffled[j]!, shuffled[i]!];
          }
          const buffer = new JitterBuffer<number>({ clockRate: 48000, targetDelayMs: 1000, capacity: 64 });
          for (const [k, seq] of shuffled.entries()) {
            expect(buffer.push(packet(seq, start, startTs), k)).toBe('buffered');
          }
          const events = buffer.pop(1e9);
          expect(events.every((e) => e.type === 'frame')).toBe(true);
          expect(frames(events)).toEqual(seqs);
        },
      ),
    );
  });

  it('never holds more than capacity packets, whatever arrives (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 65535 }), fc.boolean()), { maxLength: 300 }),
        fc.integer({ min: 1, max: 32 }),
        (arrivals, capacity) => {
          const buffer = new JitterBuffer<number>({ clockRate: 8000, targetDelayMs: 100, capacity });
          let now = 0;
          let released = 0;
          for (const [seq, popNow] of arrivals) {
            buffer.push({ sequenceNumber: seq, timestamp: seq * 160, payload: seq }, now);
            expect(buffer.size).toBeLessThanOrEqual(capacity);
            now += 20;
            if (popNow) released += frames(buffer.pop(now)).length;
          }
          const stats = buffer.stats;
          expect(stats.received).toBe(arrivals.length);
          expect(stats.played).toBe(released);
          expect(stats.played + stats.duplicate + stats.late + stats.overflow + buffer.size).toBe(
            stats.received,
          );
        },
      ),
    );
  });

  it('a packet far ahead moves the window and reports the skipped run as one gap', () => {
    const buffer = new JitterBuffer<number>({ clockRate: 48000, targetDelayMs: 60, capacity: 8 });
    buffer.push(packet(0), 0);
    buffer.push(packet(1), 20);
    buffer.push(packet(20), 30);
    expect(buffer.size).toBe(1);
    expect(buffer.pop(30)[0]).toEqual({ type: 'gap', sequenceNumber: 0, count: 13 });
    expect(buffer.stats).toMatchObject({ overflow: 2, lost: 11 });
  });

  it('rejects bad options and packet fields', () => {
    expect(() => new JitterBuffer({ clockRate: 0, targetDelayMs: 10 })).toThrow(InvalidArgumentError);
    expect(() => new JitterBuffer({ clockRate: 8000, targetDelayMs: -1 })).toThrow(InvalidArgumentError);
    expect(() => new JitterBuffer({ clockRate: 8000, targetDelayMs: 1, capacity: 0 })).toThrow(
      InvalidArgumentError,
    );
    const buffer = new JitterBuffer<number>({ clockRate: 8000, targetDelayMs: 10 });
    expect(() => buffer.push({ sequenceNumber: 65536, timestamp: 0, payload: 0 }, 0)).toThrow(
      InvalidArgumentError,
    );
    expect(() => buffer.push({ sequenceNumber: 0, timestamp: 2 ** 32, payload: 0 }, 0)).toThrow(
      InvalidArgumentError,
    );
  });
});
