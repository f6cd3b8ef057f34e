import { describe, expect, it } from 'vitest';
import {
  mean,
  rate,
  scoreBackchannel,
  scoreCallerBackchannel,
  scoreInterruption,
  scorePause,
  scoreTalkOver,
  scoreTurn,
} from './behaviour.js';

describe('scorePause()', () => {
  const pause = { pauseStartS: 3, pauseEndS: 4.5 };
  it('is a takeover when an agent IPU of >= 1 s starts in the pause', () => {
    expect(scorePause([[3.4, 5]], pause).takeover).toBe(true);
  });
  it('is a takeover when the agent talks through the pause', () => {
    expect(scorePause([[1, 6]], pause).takeover).toBe(true);
  });
  it('is no takeover for a short back-channel or speech outside the pause', () => {
    expect(scorePause([[3.5, 3.9]], pause).takeover).toBe(false);
    expect(scorePause([[5, 7]], pause).takeover).toBe(false);
    expect(scorePause([], pause).takeover).toBe(false);
  });
});

describe('scoreTurn()', () => {
  it('measures the latency from the caller end to the response start', () => {
    expect(scoreTurn([[5.4, 7]], 5)).toEqual({
      takeover: true,
      latencyS: expect.closeTo(0.4),
      responded: true,
      responseLatencyS: expect.closeTo(0.4),
    });
  });
  it('counts a one-word answer as a response but not as a takeover', () => {
    expect(scoreTurn([[5.2, 5.75]], 5)).toEqual({
      takeover: false,
      latencyS: null,
      responded: true,
      responseLatencyS: expect.closeTo(0.2),
    });
  });
  it('counts an anticipated start as a negative latency', () => {
    expect(scoreTurn([[4.8, 7]], 5).latencyS).toBeCloseTo(-0.2);
  });
  it('is no takeover for speech that ran long before the end, short speech, or a late start', () => {
    expect(scoreTurn([[1, 9]], 5).takeover).toBe(false);
    expect(scoreTurn([[5.5, 6]], 5).takeover).toBe(false);
    expect(scoreTurn([[8.5, 10]], 5)).toMatchObject({ takeover: false, latencyS: null, responded: false });
  });
  it('merges IPUs separated by under 200 ms before judging length', () => {
    expect(
      scoreTurn(
        [
          [5.2, 5.7],
          [5.8, 6.4],
        ],
        5,
      ).takeover,
    ).toBe(true);
  });
});

describe('scoreBackchannel()', () => {
  const caller = [
    [1, 3],
    [3.8, 6],
    [6.7, 9],
  ] as const;
  it('counts short agent IPUs in the window and times them from the caller IPU end', () => {
    const r = scoreBackchannel(
      [
        [3.2, 3.5],
        [6.1, 6.5],
      ],
      caller,
      { fromS: 1, toS: 9 },
    );
    expect(r.backchannels).toBe(2);
    expect(r.takeovers).toBe(0);
    expect(r.meanOffsetS).toBeCloseTo(0.15);
    expect(r.windowMin).toBeCloseTo(8 / 60);
  });
  it('times a back-channel inside caller speech as 0 and counts long IPUs as takeovers', () => {
    const r = scoreBackchannel(
      [
        [2, 2.4],
        [6.2, 8],
      ],
      caller,
      { fromS: 1, toS: 9 },
    );
    expect(r).toMatchObject({ backchannels: 1, takeovers: 1, meanOffsetS: 0 });
  });
  it('ignores IPUs outside the window and very short blips', () => {
    const r = scoreBackchannel(
      [
        [0.2, 0.5],
        [4, 4.05],
      ],
      caller,
      { fromS: 1, toS: 9 },
    );
    expect(r).toMatchObject({ backchannels: 0, takeovers: 0, meanOffsetS: null });
  });
});

describe('scoreInterruption()', () => {
  it('measures how long the agent goes on after the interruption', () => {
    expect(scoreInterruption([[1, 5.3]], 5)).toEqual({
      agentSpeaking: true,
      yielded: true,
      stopS: expect.closeTo(0.3),
    });
  });
  it('is no yield when the agent talks on past the window', () => {
    expect(scoreInterruption([[1, 9]], 5)).toEqual({ agentSpeaking: true, yielded: false, stopS: null });
  });
  it('reports an agent that was silent at the interruption', () => {
    expect(scoreInterruption([[1, 4]], 5)).toEqual({ agentSpeaking: false, yielded: true, stopS: 0 });
  });
});

describe('scoreCallerBackchannel()', () => {
  const bc = { backchannelS: 3, backchannelEndS: 3.5 };
  it('an agent that talks on through a caller back-channel did not yield', () => {
    expect(scoreCallerBackchannel([[1, 6]], bc)).toEqual({
      agentSpeaking: true,
      speechAfterS: 2,
      yielded: false,
    });
    // a short breath after it and on again is still going on
    expect(
      scoreCallerBackchannel(
        [
          [1, 3.7],
          [4.2, 6],
        ],
        bc,
      ),
    ).toMatchObject({ yielded: false });
  });
  it('an agent that stops for it took it for an interruption', () => {
    const r = scoreCallerBackchannel([[1, 3.8]], bc);
    expect(r.yielded).toBe(true);
    expect(r.speechAfterS).toBeCloseTo(0.3);
  });
  it('reports an agent that was silent when the caller back-channelled', () => {
    expect(scoreCallerBackchannel([[0.5, 2]], bc)).toMatchObject({ agentSpeaking: false });
  });
});

describe('scoreTalkOver()', () => {
  const caller: [number, number][] = [
    [1, 3],
    [3.5, 6],
  ];
  const turn = { fromS: 0.5, callerEndS: 6 };
  it('counts agent IPUs of >= 1 s that start while the caller speaks and goes on', () => {
    expect(scoreTalkOver([[2, 3.6]], caller, turn).talkOvers).toBe(1);
    expect(
      scoreTalkOver(
        [
          [1.5, 2.6],
          [4, 5.2],
        ],
        caller,
        turn,
      ).talkOvers,
    ).toBe(2);
  });
  it('leaves out back-channels, anticipated answers, starts in a pause and the prompt', () => {
    expect(scoreTalkOver([[2, 2.5]], caller, turn).talkOvers).toBe(0); // shorter than 1 s
    expect(scoreTalkOver([[5.6, 8]], caller, turn).talkOvers).toBe(0); // within 0.5 s of the end
    expect(scoreTalkOver([[3.1, 5]], caller, turn).talkOvers).toBe(0); // in the caller's pause
    expect(scoreTalkOver([[2, 4]], caller, { ...turn, fromS: 2.5 }).talkOvers).toBe(0);
  });
});

describe('mean() and rate()', () => {
  it('skip nulls and give null for nothing', () => {
    expect(mean([1, null, 3])).toBe(2);
    expect(mean([null])).toBeNull();
    expect(rate([true, false, false, true])).toBe(0.5);
    expect(rate([])).toBeNull();
  });
});
