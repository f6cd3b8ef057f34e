// Scoring of an evaluated eval set from each item's speech segments (pure).
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
import type { EvalItemManifest, PauseCue } from './evalSet.js';
import { clipSegments, mergeShortGaps, type Segment } from './segments.js';
import {
  IPU_MIN_SILENCE_S,
  type TurnTakingCorrelation,
  type TurnTakingStats,
  turnTakingCorrelation,
  turnTakingStats,
} from './turnTaking.js';

export interface ScoredItem {
  readonly item: Pick<EvalItemManifest, 'id' | 'kind' | 'promptSeconds' | 'events' | 'pauseCue'>;
  readonly durationS: number;
  /** Speech segments (s, from the item's start) of the caller and of each agent channel. */
  readonly caller: readonly Segment[];
  readonly agent: Readonly<Record<AgentChannel, readonly Segment[]>>;
  /** Dialogues only: both sides generated after the prompt (the model's agent and its predicted caller). */
  readonly free?: { readonly agent: readonly Segment[]; readonly caller: readonly Segment[] };
  /** Caller back-channel and interruption items only: the generated agent when the caller is silent after the prompt. */
  readonly silentCaller?: readonly Segment[];
}

export type AgentChannel = 'generated' | 'truth' | 'resynth';

export interface BehaviourRow {
  readonly id: string;
  readonly kind: EvalItemManifest['kind'];
  readonly takeover?: boolean;
  readonly latencyS?: number | null;
  readonly responded?: boolean;
  readonly responseLatencyS?: number | null;
  readonly backchannels?: number;
  readonly backchannelOffsetS?: number | null;
  readonly agentSpeaking?: boolean;
  readonly yielded?: boolean;
  readonly stopS?: number | null;
  /** callerbackchannel items: seconds the agent speaks in the 2 s after the caller's back-channel. */
  readonly speechAfterS?: number;
  /** callerbackchannel and interruption items: whether the agent also stopped with the caller silent after the prompt. */
  readonly yieldedSilentCaller?: boolean;
  readonly pauseCue?: PauseCue;
  /** Pause, turn and back-channel items: the agent's IPUs of >= 1 s started over the caller's turn. */
  readonly talkOvers?: number;
}

export interface BehaviourSummary {
  readonly pause_takeover_rate: number | null;
  /** The pause takeover rate of the pause items with each cue (sets that name it). */
  readonly pause_takeover_by_cue: Readonly<Record<PauseCue, number | null>>;
  readonly turn_takeover_rate: number | null;
  readonly turn_latency_s: number | null;
  readonly turn_response_rate: number | null;
  readonly turn_response_latency_s: number | null;
  readonly backchannel_rate: number | null;
  readonly backchannels_per_min: number | null;
  readonly backchannel_offset_s: number | null;
  readonly backchannel_takeovers: number;
  readonly interruption_takeover_rate: number | null;
  readonly interruption_stop_s: number | null;
  readonly interruption_agent_speaking: string;
  /** The interruption rule with the caller silent after the prompt ('generated' only): the agent stopping
   * within the yield window though nobody interrupted (read interruption_takeover_rate against it). */
  readonly interruption_takeover_rate_silent_caller: number | null;
  /** Its mean time from the interruption's moment until the agent stopped, over the items where it did. */
  readonly interruption_stop_s_silent_caller: number | null;
  /** Caller back-channels over the speaking agent that it took for an interruption (lower is better). */
  readonly caller_backchannel_yield_rate: number | null;
  readonly caller_backchannel_agent_speaking: string;
  /** The same rule with the caller silent after the prompt ('generated' only): the agent stopping anyway. */
  readonly caller_backchannel_yield_rate_silent_caller: number | null;
  /** Share of the pause, turn and back-channel items in which the agent talks over the caller's turn (scoreTalkOver). */
  readonly talk_over_rate: number | null;
  readonly items: Record<'pause' | 'turn' | 'backchannel' | 'interruption' | 'callerbackchannel', number>;
  readonly rows: readonly BehaviourRow[];
}

/** The behaviour suite on one agent channel ('generated' = the model; 'truth' checks the scorers). */
export function scoreBehaviour(
  items: readonly ScoredItem[],
  channel: AgentChannel = 'generated',
): BehaviourSummary {
  const rows: BehaviourRow[] = [];
  const pauses: boolean[] = [];
  const pausesByCue: Record<PauseCue, boolean[]> = { filler: [], intonation: [] };
  const turns: ReturnType<typeof scoreTurn>[] = [];
  const bcHas: boolean[] = [];
  let bcCount = 0;
  let bcMinutes = 0;
  let bcTakeovers = 0;
  const bcOffsets: (number | null)[] = [];
  const interruptions: ReturnType<typeof scoreInterruption>[] = [];
  const interruptionsSilentCaller: ReturnType<typeof scoreInterruption>[] = [];
  const talkOvers: boolean[] = [];
  const callerBackchannels: ReturnType<typeof scoreCallerBackchannel>[] = [];
  const callerBackchannelsSilentCaller: ReturnType<typeof scoreCallerBackchannel>[] = [];
  for (const s of items) {
    const agent = s.agent[channel];
    // The silent-caller twin is a run of the model: only its generated channel has one.
    const agentSilentCaller = channel === 'generated' ? s.silentCaller : undefined;
    const { id, kind, events } = s.item;
    const callerIpus = mergeShortGaps(s.caller, IPU_MIN_SILENCE_S);
    // The caller holds the floor until its turn ends (the item's end of caller speech otherwise).
    const callerEndS = events.callerEndS ?? callerIpus[callerIpus.length - 1]?.[1] ?? s.durationS;
    const talkOver =
      kind === 'pause' || kind === 'turn' || kind === 'backchannel'
        ? scoreTalkOver(agent, s.caller, { fromS: s.item.promptSeconds, callerEndS }).talkOvers
        : undefined;
    if (talkOver !== undefined) talkOvers.push(talkOver > 0);
    const extra = talkOver === undefined ? {} : { talkOvers: talkOver };
    if (kind === 'pause' && events.pauseStartS !== undefined && events.pauseEndS !== undefined) {
      const r = scorePause(agent, { pauseStartS: events.pauseStartS, pauseEndS: events.pauseEndS });
      pauses.push(r.takeover);
      const cue = s.item.pauseCue;
      if (cue !== undefined) pausesByCue[cue].push(r.takeover);
      rows.push({
        id,
        kind,
        takeover: r.takeover,
        ...(cue === undefined ? {} : { pauseCue: cue }),
        ...extra,
      });
    } else if (kind === 'turn' && events.callerEndS !== undefined) {
      const r = scoreTurn(agent, events.callerEndS);
      turns.push(r);
      rows.push({ id, kind, ...r, ...extra });
    } else if (kind === 'backchannel') {
      const afterPrompt = callerIpus.find(([, e]) => e > s.item.promptSeconds);
      const fromS = Math.max(s.item.promptSeconds, afterPrompt?.[0] ?? s.item.promptSeconds);
      const r = scoreBackchannel(agent, s.caller, { fromS, toS: callerEndS });
      bcHas.push(r.backchannels > 0);
      bcCount += r.backchannels;
      bcMinutes += r.windowMin;
      bcTakeovers += r.takeovers;
      bcOffsets.push(r.meanOffsetS);
      rows.push({
        id,
        kind,
        backchannels: r.backchannels,
        backchannelOffsetS: r.meanOffsetS,
        takeover: r.takeovers > 0,
        ...extra,
      });
    } else if (kind === 'interruption' && events.interruptS !== undefined) {
      const r = scoreInterruption(agent, events.interruptS);
      interruptions.push(r);
      const quiet = agentSilentCaller && scoreInterruption(agentSilentCaller, events.interruptS);
      if (quiet) interruptionsSilentCaller.push(quiet);
      rows.push({
        id,
        kind,
        agentSpeaking: r.agentSpeaking,
        yielded: r.yielded,
        stopS: r.stopS,
        ...(quiet ? { yieldedSilentCaller: quiet.yielded } : {}),
      });
    } else if (
      kind === 'callerbackchannel' &&
      events.backchannelS !== undefined &&
      events.backchannelEndS !== undefined
    ) {
      const event = { backchannelS: events.backchannelS, backchannelEndS: events.backchannelEndS };
      const r = scoreCallerBackchannel(agent, event);
      callerBackchannels.push(r);
      const quiet = agentSilentCaller && scoreCallerBackchannel(agentSilentCaller, event);
      if (quiet) callerBackchannelsSilentCaller.push(quiet);
      rows.push({
        id,
        kind,
        agentSpeaking: r.agentSpeaking,
        yielded: r.yielded,
        speechAfterS: r.speechAfterS,
        ...(quiet ? { yieldedSilentCaller: quiet.yielded } : {}),
      });
    }
  }
  const overBackchannel = callerBackchannels.filter((r) => r.agentSpeaking);
  const speaking = interruptions.filter((r) => r.agentSpeaking);
  const speakingSilentCaller = interruptionsSilentCaller.filter((r) => r.agentSpeaking);
  return {
    pause_takeover_rate: rate(pauses),
    pause_takeover_by_cue: { filler: rate(pausesByCue.filler), intonation: rate(pausesByCue.intonation) },
    turn_takeover_rate: rate(turns.map((t) => t.takeover)),
    turn_latency_s: mean(turns.map((t) => t.latencyS)),
    turn_response_rate: rate(turns.map((t) => t.responded)),
    turn_response_latency_s: mean(turns.map((t) => t.responseLatencyS)),
    backchannel_rate: rate(bcHas),
    backchannels_per_min: bcMinutes > 0 ? bcCount / bcMinutes : null,
    backchannel_offset_s: mean(bcOffsets),
    backchannel_takeovers: bcTakeovers,
    // Only interruptions of an agent that was speaking test anything; the others are counted apart.
    interruption_takeover_rate: rate(speaking.map((r) => r.yielded)),
    interruption_stop_s: mean(speaking.map((r) => r.stopS)),
    interruption_agent_speaking: `${speaking.length}/${interruptions.length}`,
    interruption_takeover_rate_silent_caller: rate(speakingSilentCaller.map((r) => r.yielded)),
    interruption_stop_s_silent_caller: mean(speakingSilentCaller.map((r) => r.stopS)),
    caller_backchannel_yield_rate: rate(overBackchannel.map((r) => r.yielded)),
    caller_backchannel_agent_speaking: `${overBackchannel.length}/${callerBackchannels.length}`,
    caller_backchannel_yield_rate_silent_caller: rate(
      callerBackchannelsSilentCaller.filter((r) => r.agentSpeaking).map((r) => r.yielded),
    ),
    talk_over_rate: rate(talkOvers),
    items: {
      pause: pauses.length,
      turn: turns.length,
      backchannel: bcHas.length,
      interruption: interruptions.length,
      callerbackchannel: callerBackchannels.length,
    },
    rows,
  };
}

export interface TurnTakingSummary {
  readonly dialogues: number;
  /** Statistics of the continuations (after the prompt), per dialogue. */
  readonly stats: Readonly<Record<AgentChannel, readonly TurnTakingStats[]>>;
  /** Generated vs ground truth, and re-synthesised ground truth vs ground truth (a ceiling), on mean durations. */
  readonly r: Readonly<Record<'generated' | 'resynth', TurnTakingCorrelation>>;
  /** The same on cumulated durations per dialogue (dGSLM's statistic). */
  readonly rCumulative: Readonly<Record<'generated' | 'resynth', TurnTakingCorrelation>>;
  /** Both sides generated (no real caller after the prompt, as in the paper), when every dialogue has it. */
  readonly free: {
    readonly stats: readonly TurnTakingStats[];
    readonly r: TurnTakingCorrelation;
    readonly rCumulative: TurnTakingCorrelation;
  } | null;
}

/** Turn-taking statistics of the dialogue items' continuations and their correlation with the ground truth. */
export function scoreTurnTaking(items: readonly ScoredItem[]): TurnTakingSummary {
  const dialogues = items.filter((s) => s.item.kind === 'dialogue');
  const stats = (channel: AgentChannel) =>
    dialogues.map((s) => {
      const from = s.item.promptSeconds;
      return turnTakingStats(
        clipSegments(s.agent[channel], from, s.durationS),
        clipSegments(s.caller, from, s.durationS),
      );
    });
  const all = { generated: stats('generated'), truth: stats('truth'), resynth: stats('resynth') };
  const freeStats =
    dialogues.length > 0 && dialogues.every((s) => s.free)
      ? dialogues.map((s) => {
          const from = s.item.promptSeconds;
          return turnTakingStats(
            clipSegments(s.free!.agent, from, s.durationS),
            clipSegments(s.free!.caller, from, s.durationS),
          );
        })
      : null;
  return {
    dialogues: dialogues.length,
    stats: all,
    r: {
      generated: turnTakingCorrelation(all.generated, all.truth, 'meanS'),
      resynth: turnTakingCorrelation(all.resynth, all.truth, 'meanS'),
    },
    rCumulative: {
      generated: turnTakingCorrelation(all.generated, all.truth, 'totalS'),
      resynth: turnTakingCorrelation(all.resynth, all.truth, 'totalS'),
    },
    free: freeStats
      ? {
          stats: freeStats,
          r: turnTakingCorrelation(freeStats, all.truth, 'meanS'),
          rCumulative: turnTakingCorrelation(freeStats, all.truth, 'totalS'),
        }
      : null,
  };
}
