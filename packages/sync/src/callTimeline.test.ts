import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CallTimeline } from './callTimeline.js';
import { parseChunkBlocks } from './chunkBlock.js';
import { InvalidArgumentError, InvalidStateError } from './errors.js';
import { chunkGeometry } from './geometry.js';
import { createRng } from './rng.js';
import type { TokenFilter } from './sampling.js';
import { dedupChunk } from './unitRuns.js';
import { createVocabulary } from './vocabulary.js';

// Units 0..7 at tokens 10..17 (a text vocabulary below them), tags 20/21.
const vocab = createVocabulary({ unitBase: 10, unitCount: 8, s0: 20, s1: 21, vocabSize: 24 });

function allowed(filter: TokenFilter): number[] {
  const out: number[] = [];
  for (const [a, b] of filter.ranges)
    for (let t = a; t < b; t++) if (!filter.banned?.includes(t)) out.push(t);
  return out;
}

/** A call at 160 ms chunks starting at chunk 0, one tick of lateness allowed. */
function timeline160(): CallTimeline {
  return new CallTimeline({
    vocabulary: vocab,
    geometry: chunkGeometry(160),
    firstChunk: 0,
    maxLateChunks: 1,
  });
}

/** Runs one tick with a "model" that picks allowed tokens from a seeded generator. */
function runTick(tl: CallTimeline, pick: (options: number[]) => number) {
  const plan = tl.beginTick();
  let feeds = 0;
  for (;;) {
    const r = tl.accept(pick(allowed(tl.filter())));
    if (r.done) break;
    feeds++;
  }
  return { plan, outcome: tl.endTick(), feeds };
}

describe('CallTimeline', () => {
  it('starts with the silent first agent chunk and predicts, then generates', () => {
    const g = chunkGeometry(160);
    const tl = new CallTimeline({ vocabulary: vocab, geometry: g, firstChunk: 5, maxLateChunks: 1 });
    expect(tl.history().tokens).toEqual([20]);
    const plan = tl.beginTick();
    expect(plan.chunkIndex).toBe(5);
    expect(tl.filter().ranges).toEqual([
      [20, 21],
      [21, 22],
    ]);
    expect(tl.accept(21)).toEqual({ feed: [21], done: false }); // the user speaks
    expect(() => tl.accept(20)).toThrow(InvalidArgumentError); // [S1] must carry a unit
    tl.accept(12);
    tl.accept(13);
    expect(tl.filter().banned).toEqual([13]); // no repeat of the previous unit
    // Every filter marks the unit ids, so a timing temperature can tell "a tag" from "a unit".
    expect(tl.filter().units).toEqual([vocab.unitBase, vocab.unitBase + vocab.unitCount]);
    tl.accept(20); // user chunk closed
    expect(tl.filter().units).toEqual([vocab.unitBase, vocab.unitBase + vocab.unitCount]);
    tl.accept(15);
    const done = tl.accept(21); // the agent closes its chunk with a tag, which is not kept
    expect(done).toEqual({ feed: [], done: true });
    const outcome = tl.endTick();
    expect(outcome).toMatchObject({
      chunkIndex: 5,
      predictedUser: [2, 3],
      agentChunkIndex: 6,
      agentUnits: [5],
    });
    expect(tl.history().tokens).toEqual([20, 21, 12, 13, 20, 15]);
  });

  it('carries deduplication over from a prefix in the chunk format', () => {
    // A prompt of two chunks: the agent's last unit is 2 (token 12), the user's 3 (token 13).
    const prefix = [20, 21, 11, 20, 12, 21, 13];
    const tl = new CallTimeline({
      vocabulary: vocab,
      geometry: chunkGeometry(160),
      firstChunk: 0,
      maxLateChunks: 1,
      prefix,
    });
    expect(tl.history().tokens).toEqual([...prefix, 20]);
    tl.beginTick();
    tl.accept(21);
    expect(tl.filter().banned).toEqual([13]); // the user's prompt ended on unit 3
    tl.accept(14);
    tl.accept(20);
    expect(tl.filter().banned).toEqual([12]); // the agent's prompt ended on unit 2
    tl.accept(15);
    tl.accept(20);
    tl.endTick();
    // A real user chunk that goes on with the prompt's last unit loses it to deduplication.
    expect(tl.submitUserChunk(0, [3, 3, 6, 6])).toBe('accepted');
    tl.beginTick();
    expect(tl.history().tokens).toEqual([...prefix, 20, 21, 16, 20, 15]);
  });

  it('opens with the given first agent units, deduplicated against the prefix', () => {
    const g = chunkGeometry(160);
    const open = (firstAgentUnits: number[]) =>
      new CallTimeline({
        vocabulary: vocab,
        geometry: g,
        firstChunk: 0,
        maxLateChunks: 1,
        prefix: [20, 12, 21, 13],
        firstAgentUnits,
      });
    const tl = open([2, 2, 5, 5]); // the agent goes on from unit 2 into unit 5
    expect(tl.history().tokens).toEqual([20, 12, 21, 13, 20, 15]);
    tl.beginTick();
    tl.accept(20); // the user is silent
    expect(tl.filter().banned).toEqual([15]); // no repeat of the first chunk's last unit
    expect(open([2, 2, 2, 2]).history().tokens).toEqual([20, 12, 21, 13, 20]); // holds unit 2
    expect(() => open([1, 2, 3, 4, 5])).toThrow(/at most 4/);
    expect(() => open([8])).toThrow(InvalidArgumentError);
  });

  it('forces the closing tag when a chunk reaches U units', () => {
    const tl = timeline160();
    tl.beginTick();
    tl.accept(21);
    tl.accept(10);
    tl.accept(11);
    tl.accept(12);
    expect(tl.accept(13)).toEqual({ feed: [13, 20], done: false }); // 4th unit + forced [S0]
    tl.accept(14);
    tl.accept(15);
    tl.accept(16);
    expect(tl.accept(17)).toEqual({ feed: [], done: true }); // 4th agent unit ends the tick, unfed
    expect(tl.endTick().agentUnits).toEqual([4, 5, 6, 7]);
  });

  it('beginTick() replaces a predicted user chunk with the real one and reports the rollback point', () => {
    const tl = timeline160();
    tl.beginTick();
    for (const t of [21, 12, 20, 15, 20]) tl.accept(t); // predicted user [2]; agent [5]
    tl.endTick();
    expect(tl.history().tokens).toEqual([20, 21, 12, 20, 15]);
    expect(tl.submitUserChunk(0, [3, 3, 4, 4])).toBe('accepted');
    const plan = tl.beginTick();
    expect(plan).toMatchObject({ chunkIndex: 1, dirtyFrom: 1, replacedChunks: [0] });
    expect(tl.history().tokens).toEqual([20, 21, 13, 14, 20, 15]);
  });

  it('a real chunk equal to the prediction confirms it without a rollback', () => {
    const tl = timeline160();
    tl.beginTick();
    for (const t of [21, 12, 20, 15, 20]) tl.accept(t);
    tl.endTick();
    tl.submitUserChunk(0, [2, 2, 2, 2]);
    const plan = tl.beginTick();
    expect(plan).toMatchObject({ dirtyFrom: tl.length, confirmedChunks: [0], replacedChunks: [] });
    expect(tl.userSource(0)).toBe('real');
  });

  it('refuses late, duplicate and malformed user chunks', () => {
    const tl = timeline160();
    const rng = createRng(1);
    const pick = (o: number[]) => o[Math.floor(rng.next() * o.length)]!;
    for (let i = 0; i < 4; i++) runTick(tl, pick);
    // ticks 0..3 done; the next tick (4) may still rewrite chunks >= 2
    expect(tl.submitUserChunk(1, [1, 1, 1, 1])).toBe('late');
    expect(tl.submitUserChunk(2, [1, 1, 1, 1])).toBe('accepted');
    expect(tl.submitUserChunk(2, [1, 1, 1, 1])).toBe('duplicate');
    expect(tl.submitUserChunk(9, [1, 1, 1, 1])).toBe('early');
    expect(() => tl.submitUserChunk(3, [1, 1, 1])).toThrow(InvalidArgumentError);
    expect(() => tl.submitUserChunk(3, [1, 1, 1, 8])).toThrow(/not a unit id/);
    tl.close();
    expect(() => tl.beginTick()).toThrow(InvalidStateError);
  });

  it('a long call keeps only a bounded history, and rollbacks still find their tokens', () => {
    const g = chunkGeometry(160);
    const tl = new CallTimeline({
      vocabulary: vocab,
      geometry: g,
      firstChunk: 0,
      maxLateChunks: 2,
      retainTokens: 50,
    });
    const rng = createRng(9);
    const pick = (o: number[]) => o[Math.floor(rng.next() * o.length)]!;
    for (let tick = 0; tick < 2000; tick++) {
      if (tick > 2) tl.submitUserChunk(tick - 3, [1, 2, 3, 4]); // always two ticks late
      const { plan } = runTick(tl, pick);
      expect(() => tl.tokensFrom(plan.dirtyFrom)).not.toThrow();
    }
    const { base, tokens } = tl.history();
    expect(base).toBeGreaterThan(10_000);
    expect(tokens.length).toBeLessThan(50 + 4 * 10 + 10);
    expect(base + tokens.length).toBe(tl.length);
  });

  it('keeps the history well formed, never loses a real unit and never rewrites the agent', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 2 ** 31 - 1 }),
        fc.constantFrom(160, 200, 240),
        fc.integer({ min: 0, max: 3 }),
        fc.array(
          fc.record({
            delay: fc.integer({ min: 0, max: 5 }),
            units: fc.array(fc.integer({ min: 0, max: 7 }), { minLength: 6, maxLength: 6 }),
          }),
          {
            minLength: 12,
            maxLength: 12,
          },
        ),
        (seed, chunkMs, maxLate, userPlan) => {
          const g = chunkGeometry(chunkMs);
          const u = g.unitsPerChunk;
          const tl = new CallTimeline({
            vocabulary: vocab,
            geometry: g,
            firstChunk: 3,
            maxLateChunks: maxLate,
            prefix: [1, 2],
            retainTokens: Number.POSITIVE_INFINITY,
          });
          const rng = createRng(seed);
          const pick = (o: number[]) => o[Math.floor(rng.next() * o.length)]!;
          const agentOf = new Map<number, number[]>();
          const accepted = new Map<number, number[]>();
          let previous: readonly number[] = tl.history().tokens;
          for (let step = 0; step < userPlan.length + maxLate + 2; step++) {
            // Real user chunks arrive `delay` ticks after they are due.
            for (const [j, p] of userPlan.entries()) {
              const index = 3 + j;
              if (index + 1 + p.delay === 3 + step) {
                const units = p.units.slice(0, u);
                if (tl.submitUserChunk(index, units) === 'accepted') accepted.set(index, units);
              }
            }
            const { plan, outcome, feeds } = runTick(tl, pick);
            const now = tl.history().tokens;
            // Nothing before the rollback point changed.
            expect(now.slice(0, plan.dirtyFrom)).toEqual(previous.slice(0, plan.dirtyFrom));
            expect(feeds).toBeLessThanOrEqual(2 * u + 2);
            agentOf.set(outcome.agentChunkIndex, [...outcome.agentUnits]);
            previous = now;

            const blocks = parseChunkBlocks(vocab, now.slice(2));
            expect(blocks).toHaveLength(step + 2); // chunks 3..3+step, plus the agent's next chunk
            let prevUser: number | undefined;
            for (const [b, block] of blocks.entries()) {
              const index = 3 + b;
              if (agentOf.has(index)) expect(block.agent).toEqual(agentOf.get(index));
              // Every real chunk that was due by this tick is in the context, deduped.
              const real = accepted.get(index);
              if (real && index < 3 + step) expect(block.user).toEqual(dedupChunk(real, prevUser));
              for (const x of block.user) prevUser = x;
              expect(block.user.length).toBeLessThanOrEqual(u);
              expect(block.agent.length).toBeLessThanOrEqual(u);
            }
          }
        },
      ),
      { numRuns: 150 },
    );
  });
});
