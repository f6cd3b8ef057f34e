import { describe, expect, it } from 'vitest';
import {
  pearson,
  summarizeEvents,
  turnEvents,
  turnTakingCorrelation,
  turnTakingStats,
} from './turnTaking.js';

describe('turnEvents()', () => {
  // agent: 0-2, 2.1-3 (a 0.1 s silence: one IPU), 3.6-5 (pause 0.6 before it), 8-9
  // caller: 5.3-8.2 (gap 0.3 after the agent; overlap 8-8.2 started by the agent)
  const agent = [
    [0, 2],
    [2.1, 3],
    [3.6, 5],
    [8, 9],
  ] as const;
  const caller = [[5.3, 8.2]] as const;
  const events = turnEvents(agent, caller);
  const of = (kind: string) =>
    events.filter((e) => e.kind === kind).map((e) => [e.channel, e.startS, e.endS]);

  it('merges silences under 200 ms into one IPU', () => {
    expect(of('ipu')).toEqual([
      ['agent', 0, 3],
      ['agent', 3.6, 5],
      ['caller', 5.3, 8.2],
      ['agent', 8, 9],
    ]);
  });

  it('calls a joint silence between IPUs of the same speaker a pause of that speaker', () => {
    expect(of('pause')).toEqual([['agent', 3, 3.6]]);
  });

  it('calls a joint silence between different speakers a gap of the next speaker', () => {
    expect(of('gap')).toEqual([['caller', 5, 5.3]]);
  });

  it('attributes an overlap to the speaker who started last', () => {
    expect(of('overlap')).toEqual([['agent', 8, 8.2]]);
  });

  it('ignores silence before the first and after the last IPU', () => {
    const e = turnEvents([[1, 2]], [[4, 5]]);
    expect(e.filter((x) => x.kind === 'gap').map((x) => [x.startS, x.endS])).toEqual([[2, 4]]);
    expect(e.filter((x) => x.kind === 'pause')).toEqual([]);
  });

  it('a back-channel inside a turn makes two gaps, not a pause', () => {
    const e = turnEvents(
      [
        [0, 2],
        [3, 5],
      ],
      [[2.3, 2.6]],
    );
    expect(e.filter((x) => x.kind === 'gap').map((x) => x.channel)).toEqual(['caller', 'agent']);
  });
});

describe('turnTakingStats()', () => {
  it('counts, sums and averages each event kind per channel', () => {
    const s = turnTakingStats(
      [
        [0, 1],
        [1.5, 2.5],
        [3, 4],
      ],
      [[5, 6]],
    );
    expect(s.agent.ipu).toEqual({ count: 3, totalS: 3, meanS: 1 });
    expect(s.agent.pause.count).toBe(2);
    expect(s.agent.pause.totalS).toBeCloseTo(1);
    expect(s.caller.gap).toEqual({ count: 1, totalS: 1, meanS: 1 });
    expect(s.caller.overlap).toEqual({ count: 0, totalS: 0, meanS: 0 });
  });

  it('summarizeEvents() of no events is all zeros', () => {
    expect(summarizeEvents([]).caller.ipu).toEqual({ count: 0, totalS: 0, meanS: 0 });
  });
});

describe('pearson()', () => {
  it('is 1 for a positive linear relation and -1 for a negative one', () => {
    expect(pearson([1, 2, 3, 4], [2, 4, 6, 8])).toBeCloseTo(1);
    expect(pearson([1, 2, 3, 4], [8, 6, 4, 2])).toBeCloseTo(-1);
  });

  it('matches a hand-computed value', () => {
    // x = 1..5, y = 2,1,4,3,5: sxy = 8, sxx = 10, syy = 10 -> 0.8
    expect(pearson([1, 2, 3, 4, 5], [2, 1, 4, 3, 5])).toBeCloseTo(0.8);
  });

  it('is null without variance or with fewer than 3 pairs', () => {
    expect(pearson([1, 1, 1], [1, 2, 3])).toBeNull();
    expect(pearson([1, 2], [1, 2])).toBeNull();
    expect(() => pearson([1, 2, 3], [1, 2])).toThrow(RangeError);
  });
});

describe('turnTakingCorrelation()', () => {
  const dialogue = (scale: number) =>
    turnTakingStats(
      [
        [0, 1 * scale],
        [1 * scale + 0.5 * scale, 3 * scale],
      ],
      [[3 * scale + 0.3 * scale, 5 * scale]],
    );

  it('is 1 for every defined kind when the generated dialogues equal the ground truth', () => {
    const truth = [dialogue(1), dialogue(1.5), dialogue(2.2)];
    const r = turnTakingCorrelation(truth, truth);
    expect(r.byKind.ipu).toBeCloseTo(1);
    expect(r.byKind.overlap).toBeNull(); // no overlaps anywhere: no variance
    expect(r.average).toBeCloseTo(1);
    expect(r.pairs).toBe(6);
  });

  it('averages only the defined kinds and refuses unequal lengths', () => {
    const truth = [dialogue(1), dialogue(1.5), dialogue(2.2)];
    const flat = [dialogue(1), dialogue(1), dialogue(1)];
    const r = turnTakingCorrelation(flat, truth, 'totalS');
    expect(r.byKind.pause).not.toBeNull(); // the two channels differ, so there is variance
    expect(() => turnTakingCorrelation(flat, truth.slice(1))).toThrow(RangeError);
  });
});
