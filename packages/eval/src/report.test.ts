import { describe, expect, it } from 'vitest';
import { averageStats, behaviourTable, correlationTable, fmt, markdownTable, statsTable } from './report.js';
import { scoreBehaviour } from './score.js';
import { turnTakingStats } from './turnTaking.js';

describe('markdownTable()', () => {
  it('pads columns to their widest cell', () => {
    expect(markdownTable(['a', 'bb'], [['ccc', 'd']])).toBe('| a   | bb |\n|-----|----|\n| ccc | d  |');
  });
});

describe('fmt()', () => {
  it('prints numbers with fixed decimals and a dash for missing values', () => {
    expect(fmt(0.12345)).toBe('0.12');
    expect(fmt(2, 1)).toBe('2.0');
    expect(fmt(null)).toBe('-');
    expect(fmt(Number.NaN)).toBe('-');
  });
});

describe('report tables', () => {
  it('correlationTable() has one column per event kind', () => {
    const t = correlationTable([
      {
        label: 'generated',
        r: { byKind: { ipu: 0.5, pause: null, gap: 0.25, overlap: -0.1 }, average: 0.22, pairs: 8 },
      },
    ]);
    expect(t).toContain('| generated | 0.50  | -       | 0.25  | -0.10     | 0.22      | 8     |');
  });

  it('statsTable() averages dialogues per channel', () => {
    const a = turnTakingStats([[0, 1]], [[2, 4]]);
    const b = turnTakingStats([[0, 3]], [[4, 6]]);
    const avg = averageStats([a, b])!;
    expect(avg.agent.ipu.meanS).toBe(2);
    expect(avg.caller.gap.meanS).toBe(1);
    expect(averageStats([])).toBeUndefined();
    expect(statsTable([{ label: 'x', stats: avg }]).split('\n')).toHaveLength(4);
  });

  it('behaviourTable() shows each column', () => {
    const b = scoreBehaviour([]);
    const t = behaviourTable([
      { label: 'model', b },
      { label: 'ground truth', b },
    ]);
    expect(t).toContain('pause: takeover rate');
    expect(t).toContain('| model | ground truth |');
  });
});
