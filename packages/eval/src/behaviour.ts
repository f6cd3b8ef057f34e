// The behaviour suite, in the style of Full-Duplex-Bench v1 (Lin et al., 2025, arXiv 2503.04721):
// each item gives the caller's audio with a known event (a pause, the end of a turn, a long turn
// that invites back-channels, an interruption) and the agent's time-aligned output is scored
// from its voice activity alone (no ASR here: a takeover is agent speech of at least 1 s, the
// time half of Full-Duplex-Bench's ">= 1 s or > 3 words" rule).
import { mergeShortGaps, type Segment } from './segments.js';
import { IPU_MIN_SILENCE_S } from './turnTaking.js';

export interface BehaviourOptions {
  /** An agent IPU at least this long is a takeover (default 1 s). */
  readonly takeoverMinS?: number;
  /** Back-channels are agent IPUs shorter than this (default 1 s) ... */
  readonly backchannelMaxS?: number;
  /** ... and at least this long (default 0.12 s). */
  readonly backchannelMinS?: number;
  /** How long after the caller ends a response may start and still count (default 3 s). */
  readonly responseWindowS?: number;
  /** How long before the caller ends a response may start (an anticipated turn; default 0.5 s). */
  readonly anticipationS?: number;
  /** Any agent IPU at least this long answers a turn (default 0.3 s; a takeover needs takeoverMinS). */
  readonly responseMinS?: number;
  /** How long after an interruption the agent may take to stop and still count as yielding (default 2 s). */
  readonly yieldWindowS?: number;
}

const defaults = (o: BehaviourOptions) => ({
  takeoverMinS: o.takeoverMinS ?? 1,
  backchannelMaxS: o.backchannelMaxS ?? 1,
  backchannelMinS: o.backchannelMinS ?? 0.12,
  responseWindowS: o.responseWindowS ?? 3,
  anticipationS: o.anticipationS ?? 0.5,
  responseMinS: o.responseMinS ?? 0.3,
  yieldWindowS: o.yieldWindowS ?? 2,
});

const ipus = (segments: readonly Segment[]) => mergeShortGaps(segments, IPU_MIN_SILENCE_S);

/** Pause handling: does the agent take the turn while the caller only pauses? */
export function scorePause(
  agent: readonly Segment[],
  pause: { readonly pauseStartS: number; readonly pauseEndS: number },
  options: BehaviourOptions = {},
): { takeover: boolean } {
  const { takeoverMinS } = defaults(options);
  // An agent IPU of >= takeoverMinS that is live during the pause: one that starts in it, or
  // one that was already running over the caller and goes on into it.
  const takeover = ipus(agent).some(
    ([a, b]) => a < pause.pauseEndS && b > pause.pauseStartS && b - a >= takeoverMinS,
  );
  return { takeover };
}

/**
 * Smooth turn-taking: does the agent take the turn after the caller ends, and how soon? A
 * takeover needs an IPU of >= takeoverMinS (Full-Duplex-Bench's time rule); a response is any
 * IPU of >= responseMinS (a one-word answer such as "sure" lasts about half a second, which the
 * takeover rule misses without ASR's word count).
 */
export function scoreTurn(
  agent: readonly Segment[],
  callerEndS: number,
  options: BehaviourOptions = {},
): { takeover: boolean; latencyS: number | null; responded: boolean; responseLatencyS: number | null } {
  const { takeoverMinS, responseWindowS, anticipationS, responseMinS } = defaults(options);
  // IPUs that start from shortly before the caller's end up to the window's end. Speech that was
  // already running long before (talking over the caller all along) is no response; an early
  // start gives a negative latency (an anticipated turn).
  const inWindow = ipus(agent).filter(
    ([a]) => a > callerEndS - anticipationS && a <= callerEndS + responseWindowS,
  );
  const takeover = inWindow.find(([a, b]) => b - a >= takeoverMinS);
  const response = inWindow.find(([a, b]) => b - a >= responseMinS);
  return {
    takeover: takeover !== undefined,
    latencyS: takeover ? takeover[0] - callerEndS : null,
    responded: response !== undefined,
    responseLatencyS: response ? response[0] - callerEndS : null,
  };
}

/** Back-channelling: short agent IPUs while the caller holds the floor. */
export function scoreBackchannel(
  agent: readonly Segment[],
  caller: readonly Segment[],
  window: { readonly fromS: number; readonly toS: number },
  options: BehaviourOptions = {},
): {
  backchannels: number;
  /** Agent takeovers (IPUs >= takeoverMinS) during the caller's turn. */
  takeovers: number;
  /** Mean seconds from the end of the caller's latest IPU to each back-channel's onset (0 inside caller speech), or null. */
  meanOffsetS: number | null;
  /** Caller speech + pauses in the window (minutes), for a rate per minute. */
  windowMin: number;
} {
  const { takeoverMinS, backchannelMaxS, backchannelMinS } = defaults(options);
  const callerIpus = ipus(caller);
  let backchannels = 0;
  let takeovers = 0;
  const offsets: number[] = [];
  for (const [a, b] of ipus(agent)) {
    if (a < window.fromS || a >= window.toS) continue;
    const d = b - a;
    if (d >= takeoverMinS) {
      takeovers++;
    } else if (d >= backchannelMinS && d < backchannelMaxS) {
      backchannels++;
      // Timing: seconds from the end of the caller's latest IPU to the onset (0 when it
      // overlaps the caller's speech, as back-channels often do).
      const during = callerIpus.some(([s, e]) => s <= a && e > a);
      const before = callerIpus.filter(([, e]) => e <= a);
      if (during) offsets.push(0);
      else if (before.length > 0) offsets.push(a - before[before.length - 1]![1]);
    }
  }
  return {
    backchannels,
    takeovers,
    meanOffsetS: offsets.length ? offsets.reduce((x, y) => x + y, 0) / offsets.length : null,
    windowMin: Math.max(0, window.toS - window.fromS) / 60,
  };
}

/**
 * Talking over the caller (ours, not Full-Duplex-Bench's): agent IPUs of >= takeoverMinS that
 * start while the caller is speaking and the caller's turn goes on for more than anticipationS.
 * A back-channel is shorter and an anticipated answer starts near the caller's end; this is the
 * agent barging into a turn (in the pause and turn items it also takes pauses and misses the
 * turn end, since it is already talking). Counted from `fromS` (the end of the prompt).
 */
export function scoreTalkOver(
  agent: readonly Segment[],
  caller: readonly Segment[],
  turn: { readonly fromS: number; readonly callerEndS: number },
  options: BehaviourOptions = {},
): { talkOvers: number } {
  const { takeoverMinS, anticipationS } = defaults(options);
  const callerIpus = ipus(caller);
  const talkOvers = ipus(agent).filter(
    ([a, b]) =>
      a >= turn.fromS &&
      a < turn.callerEndS - anticipationS &&
      b - a >= takeoverMinS &&
      callerIpus.some(([s, e]) => s <= a && e > a),
  ).length;
  return { talkOvers };
}

/** User interruption: the caller starts talking over the agent; does the agent stop, and when? */
export function scoreInterruption(
  agent: readonly Segment[],
  interruptS: number,
  options: BehaviourOptions = {},
): {
  /** The agent was speaking when the caller interrupted. */
  agentSpeaking: boolean;
  /** The agent fell silent within the yield window (the caller took the floor). */
  yielded: boolean;
  /** Seconds from the interruption until the agent's speech stopped (0 if it was silent), or null if it did not stop within the window. */
  stopS: number | null;
} {
  const { yieldWindowS } = defaults(options);
  const current = ipus(agent).find(([a, b]) => a <= interruptS && b > interruptS);
  if (!current) return { agentSpeaking: false, yielded: true, stopS: 0 };
  const stopS = current[1] - interruptS;
  const yielded = stopS <= yieldWindowS;
  return { agentSpeaking: true, yielded, stopS: yielded ? stopS : null };
}

/**
 * A caller's back-channel over the agent ("mm-hm", Full-Duplex-Bench v1.5's user back-channel):
 * the agent should go on. It yielded when it speaks less than `minS` (default 1 s) of the
 * `windowS` (default 2 s) after the back-channel ends: it took the listener's signal for an
 * interruption. Only an agent that was speaking when the back-channel began is tested.
 */
export function scoreCallerBackchannel(
  agent: readonly Segment[],
  event: { readonly backchannelS: number; readonly backchannelEndS: number },
  options: { readonly windowS?: number; readonly minS?: number } = {},
): { agentSpeaking: boolean; speechAfterS: number; yielded: boolean } {
  const windowS = options.windowS ?? 2;
  const minS = options.minS ?? 1;
  const agentSpeaking = ipus(agent).some(([a, b]) => a <= event.backchannelS && b > event.backchannelS);
  const from = event.backchannelEndS;
  const to = from + windowS;
  const speechAfterS = agent.reduce(
    (sum, [a, b]) => sum + Math.max(0, Math.min(b, to) - Math.max(a, from)),
    0,
  );
  return { agentSpeaking, speechAfterS, yielded: speechAfterS < minS };
}

/** Mean of the defined values, or null. */
export function mean(values: readonly (number | null | undefined)[]): number | null {
  const v = values.filter((x): x is number => typeof x === 'number' && Number.isFinite(x));
  return v.length ? v.reduce((a, b) => a + b, 0) / v.length : null;
}

/** Fraction of true values, or null for none. */
export function rate(values: readonly boolean[]): number | null {
  return values.length ? values.filter(Boolean).length / values.length : null;
}
