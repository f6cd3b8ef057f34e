// Report tables (pure): Markdown from the scored results.
import type { BehaviourSummary, TurnTakingSummary } from './score.js';
import { CHANNELS, EVENT_KINDS, type TurnTakingCorrelation, type TurnTakingStats } from './turnTaking.js';

/** A Markdown table; cells are printed as given. */
export function markdownTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}

/** A number with `digits` decimals; '-' for null/undefined/NaN. */
export function fmt(x: number | null | undefined, digits = 2): string {
  return typeof x === 'number' && Number.isFinite(x) ? x.toFixed(digits) : '-';
}

export function correlationTable(rows: readonly { label: string; r: TurnTakingCorrelation }[]): string {
  return markdownTable(
    ['', ...EVENT_KINDS.map((k) => `r ${k}`), 'average r', 'pairs'],
    rows.map(({ label, r }) => [
      label,
      ...EVENT_KINDS.map((k) => fmt(r.byKind[k])),
      fmt(r.average),
      String(r.pairs),
    ]),
  );
}

/** Mean over dialogues of each statistic, per channel and event kind. */
export function averageStats(stats: readonly TurnTakingStats[]): TurnTakingStats | undefined {
  if (stats.length === 0) return undefined;
  const out = {} as Record<string, Record<string, { count: number; totalS: number; meanS: number }>>;
  for (const c of CHANNELS) {
    out[c] = {};
    for (const k of EVENT_KINDS) {
      const avg = (f: 'count' | 'totalS' | 'meanS') =>
        stats.reduce((a, s) => a + s[c][k][f], 0) / stats.length;
      out[c]![k] = { count: avg('count'), totalS: avg('totalS'), meanS: avg('meanS') };
    }
  }
  return out as unknown as TurnTakingStats;
}

export function statsTable(rows: readonly { label: string; stats: TurnTakingStats | undefined }[]): string {
  const header = ['', 'channel', ...EVENT_KINDS.flatMap((k) => [`${k} n`, `${k} mean s`, `${k} total s`])];
  const body: string[][] = [];
  for (const { label, stats } of rows) {
    if (!stats) continue;
    for (const c of CHANNELS)
      body.push([
        label,
        c,
        ...EVENT_KINDS.flatMap((k) => [
          fmt(stats[c][k].count, 1),
          fmt(stats[c][k].meanS),
          fmt(stats[c][k].totalS),
        ]),
      ]);
  }
  return markdownTable(header, body);
}

export function behaviourTable(columns: readonly { label: string; b: BehaviourSummary }[]): string {
  const metric = (name: string, f: (b: BehaviourSummary) => string, note: string) => [
    name,
    ...columns.map((c) => f(c.b)),
    note,
  ];
  return markdownTable(
    ['metric', ...columns.map((c) => c.label), 'better'],
    [
      metric('pause: takeover rate', (b) => fmt(b.pause_takeover_rate), 'lower'),
      metric(
        'pause: takeover rate, filler ("um") pauses',
        (b) => fmt(b.pause_takeover_by_cue.filler),
        'lower',
      ),
      metric(
        'pause: takeover rate, intonation-only pauses',
        (b) => fmt(b.pause_takeover_by_cue.intonation),
        'lower',
      ),
      metric('turn: takeover rate', (b) => fmt(b.turn_takeover_rate), 'higher'),
      metric('turn: takeover latency (s)', (b) => fmt(b.turn_latency_s), 'lower'),
      metric('turn: any answer (IPU >= 0.3 s) rate', (b) => fmt(b.turn_response_rate), 'higher'),
      metric('turn: any answer latency (s)', (b) => fmt(b.turn_response_latency_s), 'lower'),
      metric('back-channel: items with one', (b) => fmt(b.backchannel_rate), 'higher'),
      metric('back-channel: per minute', (b) => fmt(b.backchannels_per_min, 1), '-'),
      metric('back-channel: offset after caller IPU (s)', (b) => fmt(b.backchannel_offset_s), '-'),
      metric('back-channel items: takeovers', (b) => String(b.backchannel_takeovers), 'lower'),
      metric('interruption: agent speaking / items', (b) => b.interruption_agent_speaking, '-'),
      metric(
        'interruption: takeover (agent yields) rate',
        (b) => fmt(b.interruption_takeover_rate),
        'higher',
      ),
      metric('interruption: time until the agent stops (s)', (b) => fmt(b.interruption_stop_s), 'lower'),
      metric(
        'interruption: agent stops anyway (caller silent) rate',
        (b) => fmt(b.interruption_takeover_rate_silent_caller),
        'lower',
      ),
      metric(
        'interruption: time until it stops anyway (caller silent; s)',
        (b) => fmt(b.interruption_stop_s_silent_caller),
        '-',
      ),
      metric('caller back-channel: agent speaking / items', (b) => b.caller_backchannel_agent_speaking, '-'),
      metric(
        'caller back-channel: agent yields (takes it for an interruption) rate',
        (b) => fmt(b.caller_backchannel_yield_rate),
        'lower',
      ),
      metric(
        'caller back-channel: agent stops anyway (caller silent) rate',
        (b) => fmt(b.caller_backchannel_yield_rate_silent_caller),
        'lower',
      ),
      metric(
        "talk-over: items where the agent talks >= 1 s over the caller's turn",
        (b) => fmt(b.talk_over_rate),
        'lower',
      ),
    ],
  );
}

export interface EvalReportInput {
  readonly title: string;
  readonly model: string;
  readonly evalSet: string;
  readonly settings: Readonly<Record<string, string | number>>;
  readonly turnTaking: TurnTakingSummary;
  readonly behaviour: Readonly<Record<'generated' | 'truth', BehaviourSummary>>;
  readonly notes?: readonly string[];
}

export function evalMarkdown(r: EvalReportInput): string {
  const tt = r.turnTaking;
  const parts = [
    `# ${r.title}`,
    '',
    `- model: \`${r.model}\``,
    `- eval set: \`${r.evalSet}\``,
    ...Object.entries(r.settings).map(([k, v]) => `- ${k}: ${v}`),
    '',
    `## Turn-taking vs ground truth (${tt.dialogues} dialogues, continuation after the prompt)`,
    '',
    'Pearson r across (dialogue, channel) pairs of the mean duration of each event (SyncLLM Table 3 style):',
    '',
    correlationTable([
      { label: 'generated agent, real caller', r: tt.r.generated },
      ...(tt.free ? [{ label: 'both sides generated', r: tt.free.r }] : []),
      { label: 're-synthesised ground truth', r: tt.r.resynth },
    ]),
    '',
    'On cumulated durations per dialogue (dGSLM):',
    '',
    correlationTable([
      { label: 'generated agent, real caller', r: tt.rCumulative.generated },
      ...(tt.free ? [{ label: 'both sides generated', r: tt.free.rCumulative }] : []),
      { label: 're-synthesised ground truth', r: tt.rCumulative.resynth },
    ]),
    '',
    'Mean per dialogue:',
    '',
    statsTable([
      { label: 'ground truth', stats: averageStats(tt.stats.truth) },
      { label: 'generated agent, real caller', stats: averageStats(tt.stats.generated) },
      ...(tt.free ? [{ label: 'both sides generated', stats: averageStats(tt.free.stats) }] : []),
    ]),
    '',
    '## Behaviour (Full-Duplex-Bench style; takeover = agent IPU >= 1 s)',
    '',
    behaviourTable([
      { label: 'model', b: r.behaviour.generated },
      { label: 'ground truth', b: r.behaviour.truth },
    ]),
    '',
    `Items: ${Object.entries(r.behaviour.generated.items)
      .map(([k, n]) => `${k} ${n}`)
      .join(', ')}.`,
  ];
  if (r.notes?.length) parts.push('', ...r.notes.map((n) => `- ${n}`));
  return `${parts.join('\n')}\n`;
}
