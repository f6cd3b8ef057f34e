// Turn-taking events of a two-channel dialogue from each channel's speech segments, with the
// definitions dGSLM (Nguyen et al., 2022) takes from Heldner & Edlund (2010) and SyncLLM uses:
// - IPU: a stretch of one speaker's speech bounded by silences of at least 200 ms;
// - pause: a joint silence bounded by IPUs of the same speaker (attributed to that speaker);
// - gap: a joint silence bounded by IPUs of different speakers (attributed to the next speaker);
// - overlap: a stretch where both speak (attributed to the speaker who started last).
// Silence before the first or after the last IPU of the dialogue is neither a pause nor a gap.
import { mergeShortGaps, normalizeSegments, type Segment } from './segments.js';

export const CHANNELS = ['agent', 'caller'] as const;
export type Channel = (typeof CHANNELS)[number];
export const EVENT_KINDS = ['ipu', 'pause', 'gap', 'overlap'] as const;
export type EventKind = (typeof EVENT_KINDS)[number];

export interface TurnEvent {
  readonly kind: EventKind;
  readonly channel: Channel;
  readonly startS: number;
  readonly endS: number;
}

export interface EventStats {
  readonly count: number;
  /** Cumulated duration (s). */
  readonly totalS: number;
  /** Mean duration (s); 0 when there is no event. */
  readonly meanS: number;
}

export type TurnTakingStats = Record<Channel, Record<EventKind, EventStats>>;

/** Minimum silence between two IPUs of one speaker (dGSLM: 200 ms). */
export const IPU_MIN_SILENCE_S = 0.2;

export function turnEvents(
  agent: readonly Segment[],
  caller: readonly Segment[],
  minSilenceS = IPU_MIN_SILENCE_S,
): TurnEvent[] {
  const ipus: Record<Channel, Segment[]> = {
    agent: mergeShortGaps(agent, minSilenceS),
    caller: mergeShortGaps(caller, minSilenceS),
  };
  const events: TurnEvent[] = [];
  for (const channel of CHANNELS)
    for (const [a, b] of ipus[channel]) events.push({ kind: 'ipu', channel, startS: a, endS: b });

  // Overlaps: intersections of the two channels' IPUs.
  for (const [a0, a1] of ipus.agent) {
    for (const [c0, c1] of ipus.caller) {
      const s = Math.max(a0, c0);
      const e = Math.min(a1, c1);
      if (e > s) events.push({ kind: 'overlap', channel: c0 >= a0 ? 'caller' : 'agent', startS: s, endS: e });
    }
  }

  // Joint silences between the union of both channels' speech.
  const tagged = [
    ...ipus.agent.map((s) => ({ s, channel: 'agent' as Channel })),
    ...ipus.caller.map((s) => ({ s, channel: 'caller' as Channel })),
  ];
  const union = normalizeSegments(tagged.map((t) => t.s));
  for (let i = 0; i + 1 < union.length; i++) {
    const silenceStart = union[i]![1];
    const silenceEnd = union[i + 1]![0];
    // Who spoke last before the silence, and who speaks first after it.
    const before = tagged
      .filter((t) => t.s[1] <= silenceStart + 1e-9 && t.s[1] >= silenceStart - 1e-9)
      .map((t) => t.channel);
    const after = tagged
      .filter((t) => t.s[0] >= silenceEnd - 1e-9 && t.s[0] <= silenceEnd + 1e-9)
      .map((t) => t.channel);
    const prev = before[0];
    const next = after[0];
    if (prev === undefined || next === undefined) continue;
    // Both ending (or both starting) together: count it as a change of speaker if one side differs.
    const same = before.length === 1 && after.length === 1 && prev === next;
    const nextChannel = same ? prev : (after.find((c) => !before.includes(c)) ?? next);
    events.push({
      kind: same ? 'pause' : 'gap',
      channel: nextChannel,
      startS: silenceStart,
      endS: silenceEnd,
    });
  }
  return events.sort((x, y) => x.startS - y.startS || x.kind.localeCompare(y.kind));
}

export function summarizeEvents(events: readonly TurnEvent[]): TurnTakingStats {
  const stats = {} as Record<Channel, Record<EventKind, EventStats>>;
  for (const channel of CHANNELS) {
    const perKind = {} as Record<EventKind, EventStats>;
    for (const kind of EVENT_KINDS) {
      const durations = events
        .filter((e) => e.channel === channel && e.kind === kind)
        .map((e) => e.endS - e.startS);
      const totalS = durations.reduce((a, b) => a + b, 0);
      perKind[kind] = {
        count: durations.length,
        totalS,
        meanS: durations.length ? totalS / durations.length : 0,
      };
    }
    stats[channel] = perKind;
  }
  return stats;
}

/** Turn-taking statistics of a dialogue from its channels' speech segments. */
export function turnTakingStats(agent: readonly Segment[], caller: readonly Segment[]): TurnTakingStats {
  return summarizeEvents(turnEvents(agent, caller));
}

/** Pearson correlation; null when fewer than 3 pairs or either side has no variance. */
export function pearson(x: readonly number[], y: readonly number[]): number | null {
  if (x.length !== y.length) throw new RangeError(`pearson: ${x.length} vs ${y.length} values`);
  const n = x.length;
  if (n < 3) return null;
  const mx = x.reduce((a, b) => a + b, 0) / n;
  const my = y.reduce((a, b) => a + b, 0) / n;
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < n; i++) {
    const dx = x[i]! - mx;
    const dy = y[i]! - my;
    sxy += dx * dy;
    sxx += dx * dx;
    syy += dy * dy;
  }
  if (sxx <= 1e-12 || syy <= 1e-12) return null;
  return Math.max(-1, Math.min(1, sxy / Math.sqrt(sxx * syy)));
}

export type StatField = 'meanS' | 'totalS' | 'count';

export interface TurnTakingCorrelation {
  /** Pearson r per event kind over (dialogue, channel) pairs: generated vs ground truth. */
  readonly byKind: Record<EventKind, number | null>;
  /** Mean of the defined per-kind correlations (null if none is defined). */
  readonly average: number | null;
  readonly pairs: number;
}

/**
 * Pearson correlation between generated and ground-truth continuations across dialogues, for
 * each event kind on one statistic (default: the mean duration per dialogue and channel, as in
 * SyncLLM's Table 3), and their average.
 */
export function turnTakingCorrelation(
  generated: readonly TurnTakingStats[],
  truth: readonly TurnTakingStats[],
  field: StatField = 'meanS',
): TurnTakingCorrelation {
  if (generated.length !== truth.length)
    throw new RangeError(`${generated.length} generated vs ${truth.length} ground-truth dialogues`);
  const byKind = {} as Record<EventKind, number | null>;
  for (const kind of EVENT_KINDS) {
    const x: number[] = [];
    const y: number[] = [];
    for (let i = 0; i < generated.length; i++) {
      for (const channel of CHANNELS) {
        x.push(generated[i]![channel][kind][field]);
        y.push(truth[i]![channel][kind][field]);
      }
    }
    byKind[kind] = pearson(x, y);
  }
  const defined = EVENT_KINDS.map((k) => byKind[k]).filter((r): r is number => r !== null);
  return {
    byKind,
    average: defined.length ? defined.reduce((a, b) => a + b, 0) / defined.length : null,
    pairs: generated.length * CHANNELS.length,
  };
}
