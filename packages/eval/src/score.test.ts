import { describe, expect, it } from 'vitest';
import { type ScoredItem, scoreBehaviour, scoreTurnTaking } from './score.js';
import type { Segment } from './segments.js';

const scored = (
  kind: ScoredItem['item']['kind'],
  events: ScoredItem['item']['events'],
  caller: Segment[],
  generated: Segment[],
  truth: Segment[] = generated,
  id = `${kind}-0`,
): ScoredItem => ({
  item: { id, kind, promptSeconds: 1, events },
  durationS: 12,
  caller,
  agent: { generated, truth, resynth: truth },
});

describe('scoreBehaviour()', () => {
  it('aggregates each behaviour over its items', () => {
    const items = [
      scored(
        'pause',
        { pauseStartS: 3, pauseEndS: 4.5 },
        [
          [1.5, 3],
          [4.5, 6],
        ],
        [[3.2, 4.4]],
      ),
      scored(
        'pause',
        { pauseStartS: 3, pauseEndS: 4.5 },
        [
          [1.5, 3],
          [4.5, 6],
        ],
        [],
        [],
        'pause-1',
      ),
      scored('turn', { callerEndS: 5 }, [[2, 5]], [[5.5, 7]]),
      scored('turn', { callerEndS: 5 }, [[2, 5]], [[5.3, 7]], [[5.3, 7]], 'turn-1'),
      scored('turn', { callerEndS: 5 }, [[2, 5]], [], [], 'turn-2'),
      scored(
        'backchannel',
        { callerEndS: 9 },
        [
          [1.5, 4],
          [4.6, 9],
        ],
        [[4.1, 4.4]],
      ),
      scored('interruption', { interruptS: 5 }, [[5, 6]], [[1, 5.4]]),
      scored('interruption', { interruptS: 5 }, [[5, 6]], [[1, 9]], [[1, 9]], 'interruption-1'),
      scored('interruption', { interruptS: 5 }, [[5, 6]], [], [], 'interruption-2'),
      // A caller's back-channel over the agent: one agent talks on, one stops for it.
      scored('callerbackchannel', { backchannelS: 3, backchannelEndS: 3.5 }, [[3, 3.5]], [[1, 7]]),
      scored(
        'callerbackchannel',
        { backchannelS: 3, backchannelEndS: 3.5 },
        [[3, 3.5]],
        [[1, 3.6]],
        [[1, 7]],
        'callerbackchannel-1',
      ),
    ];
    const b = scoreBehaviour(items);
    expect(b.pause_takeover_rate).toBe(0.5);
    expect(b.turn_takeover_rate).toBeCloseTo(2 / 3);
    expect(b.turn_latency_s).toBeCloseTo(0.4);
    expect(b.backchannel_rate).toBe(1);
    expect(b.backchannel_offset_s).toBeCloseTo(0.1);
    // Only the interruptions of a speaking agent count: one yielded after 0.4 s, one did not.
    expect(b.interruption_agent_speaking).toBe('2/3');
    expect(b.interruption_takeover_rate).toBe(0.5);
    expect(b.interruption_stop_s).toBeCloseTo(0.4);
    expect(b.items).toEqual({ pause: 2, turn: 3, backchannel: 1, interruption: 3, callerbackchannel: 2 });
    expect(b.caller_backchannel_agent_speaking).toBe('2/2');
    expect(b.caller_backchannel_yield_rate).toBe(0.5);
    expect(scoreBehaviour(items, 'truth').caller_backchannel_yield_rate).toBe(0);
    expect(b.caller_backchannel_yield_rate_silent_caller).toBeNull(); // no silent-caller run given
    // With the caller silent, the first agent talks on and the second stops all the same.
    const [a, c] = items.slice(-2) as [ScoredItem, ScoredItem];
    const twins = [
      ...items.slice(0, -2),
      { ...a, silentCaller: [[1, 7]] as Segment[] },
      { ...c, silentCaller: [[1, 3.6]] as Segment[] },
    ];
    expect(scoreBehaviour(twins).caller_backchannel_yield_rate_silent_caller).toBe(0.5);
    expect(scoreBehaviour(twins, 'truth').caller_backchannel_yield_rate_silent_caller).toBeNull();
    expect(b.interruption_takeover_rate_silent_caller).toBeNull();
    // Interruptions with the caller silent: the agent that yielded talks on when nobody interrupts,
    // the one that talked on stops all the same, the silent one is not asked.
    const [i0, i1, i2] = items.slice(6, 9) as [ScoredItem, ScoredItem, ScoredItem];
    const quietInterruptions = scoreBehaviour([
      { ...i0, silentCaller: [[1, 9]] as Segment[] },
      { ...i1, silentCaller: [[1, 5.3]] as Segment[] },
      { ...i2, silentCaller: [] as Segment[] },
    ]);
    expect(quietInterruptions.interruption_takeover_rate_silent_caller).toBe(0.5);
    expect(quietInterruptions.interruption_stop_s_silent_caller).toBeCloseTo(0.3);
    expect(quietInterruptions.rows.map((r) => r.yieldedSilentCaller)).toEqual([false, true, true]);
    expect(
      scoreBehaviour([{ ...i0, silentCaller: [[1, 9]] as Segment[] }], 'truth')
        .interruption_takeover_rate_silent_caller,
    ).toBeNull();
    expect(b.rows).toHaveLength(11);
    // No agent IPU of >= 1 s starts over the caller's turn; interruptions are not asked.
    expect(b.talk_over_rate).toBe(0);
    expect(b.rows.filter((r) => r.talkOvers !== undefined)).toHaveLength(6);
  });

  it('splits the pause takeover rate by what marks the pause', () => {
    const pause = (id: string, pauseCue: 'filler' | 'intonation' | undefined, agent: Segment[]) => {
      const s = scored(
        'pause',
        { pauseStartS: 3, pauseEndS: 4.5 },
        [
          [1.5, 3],
          [4.5, 6],
        ],
        agent,
        [],
        id,
      );
      return pauseCue === undefined ? s : { ...s, item: { ...s.item, pauseCue } };
    };
    const b = scoreBehaviour([
      pause('p-0', 'filler', []),
      pause('p-1', 'filler', [[3.2, 4.4]]),
      pause('p-2', 'filler', []),
      pause('p-3', 'intonation', [[3.2, 4.4]]),
      pause('p-4', undefined, [[3.2, 4.4]]),
    ]);
    expect(b.pause_takeover_rate).toBeCloseTo(3 / 5);
    expect(b.pause_takeover_by_cue.filler).toBeCloseTo(1 / 3);
    expect(b.pause_takeover_by_cue.intonation).toBe(1);
    expect(b.rows.map((r) => r.pauseCue)).toEqual(['filler', 'filler', 'filler', 'intonation', undefined]);
    // A set without cues has no split.
    expect(scoreBehaviour([pause('p-5', undefined, [])]).pause_takeover_by_cue).toEqual({
      filler: null,
      intonation: null,
    });
  });

  it('rates the items where the agent talks over the caller', () => {
    const b = scoreBehaviour([
      scored('turn', { callerEndS: 6 }, [[1, 6]], [[2, 5]]),
      scored(
        'pause',
        { pauseStartS: 3, pauseEndS: 4, callerEndS: 6 },
        [
          [1, 3],
          [4, 6],
        ],
        [[2, 3.5]],
        [],
        'p',
      ),
      scored('backchannel', { callerEndS: 6 }, [[1, 6]], [[2, 2.4]], [], 'b'),
      scored('turn', { callerEndS: 6 }, [[1, 6]], [[6.2, 8]], [], 't'),
    ]);
    expect(b.talk_over_rate).toBe(0.5);
    expect(b.pause_takeover_rate).toBe(1); // started over the caller, went on into the pause
    expect(b.turn_takeover_rate).toBe(0.5);
  });

  it('gives null rates when a kind has no items', () => {
    const b = scoreBehaviour([]);
    expect(b.pause_takeover_rate).toBeNull();
    expect(b.turn_latency_s).toBeNull();
  });
});

describe('scoreTurnTaking()', () => {
  it('scores only dialogues, on the continuation after the prompt', () => {
    const d = (i: number, shift: number): ScoredItem =>
      scored(
        'dialogue',
        {},
        [
          [2 + shift, 4 + shift],
          [6, 8],
        ],
        [
          [0.2, 1.8],
          [4.3 + shift, 5.5 + i],
        ],
        [
          [0.2, 1.8],
          [4.3 + shift, 5.5 + i],
        ],
        `dialogue-${i}`,
      );
    const t = scoreTurnTaking([d(0, 0), d(1, 0.2), d(2, 0.5), scored('turn', { callerEndS: 5 }, [], [])]);
    expect(t.dialogues).toBe(3);
    expect(t.free).toBeNull(); // no dialogue was generated on both sides
    expect(t.r.generated.byKind.ipu).toBeCloseTo(1);
    expect(t.r.resynth.average).toBeCloseTo(1);
    // The agent IPU that ends at 1.8 s is before the prompt ends (1 s) only in part: clipped.
    expect(t.stats.generated[0]!.agent.ipu.count).toBe(2);
  });

  it('scores the both-sides-generated continuation when every dialogue has one', () => {
    const d = (i: number): ScoredItem => ({
      ...scored('dialogue', {}, [[2, 4 + i]], [[4.3 + i, 6]], [[4.3 + i, 6]], `dialogue-${i}`),
      // The model's both-sided continuation equals the ground truth here.
      free: { agent: [[4.3 + i, 6]], caller: [[2, 4 + i]] },
    });
    const t = scoreTurnTaking([d(0), d(1), d(2)]);
    expect(t.free?.stats).toHaveLength(3);
    expect(t.free?.r.byKind.ipu).toBeCloseTo(1);
  });
});
