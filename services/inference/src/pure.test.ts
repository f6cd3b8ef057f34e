import { ConfigError, loadConfig } from '@duet/runtime';
import { createVocabulary, dedupChunk, unitToken } from '@duet/sync';
import { describe, expect, it } from 'vitest';
import { CallHistoryTracker, planResume } from './callHistory.js';
import { inferenceConfig } from './config.js';
import { PeerLiveness } from './peerLiveness.js';
import { rankPeers } from './placement.js';
import { TickSequencer } from './tickSequencer.js';

const vocab = createVocabulary({ unitBase: 0, unitCount: 128, s0: 128, s1: 129, vocabSize: 130 });

describe('TickSequencer', () => {
  it('maps the first seq to the engine tick, then steps consecutive seqs once', () => {
    const s = new TickSequencer(2);
    expect(s.plan(100, 0)).toEqual({ kind: 'step', seqs: [100], rebase: 0 });
    expect(s.seqOf(1)).toBe(101);
    expect(s.plan(101, 1)).toEqual({ kind: 'step', seqs: [101], rebase: 0 });
    expect(s.plan(101, 2)).toEqual({ kind: 'stale' });
  });
  it('catches up short gaps step by step and re-bases long ones', () => {
    const s = new TickSequencer(2);
    s.plan(10, 0);
    expect(s.plan(13, 1)).toEqual({ kind: 'step', seqs: [11, 12, 13], rebase: 0 });
    expect(s.plan(20, 4)).toEqual({ kind: 'step', seqs: [20], rebase: 6 });
    expect(s.seqOf(5)).toBe(21);
  });
});

describe('rankPeers', () => {
  const w = (workerId: string, capacity: number, activeCalls: number, atMs = 1000, leaving = false) => ({
    workerId,
    capacity,
    activeCalls,
    atMs,
    leaving,
  });
  it('orders by free slots and skips self, full, leaving and stale workers', () => {
    const peers = [
      w('a', 4, 3),
      w('b', 4, 0),
      w('self', 8, 0),
      w('full', 2, 2),
      w('bye', 8, 0, 1000, true),
      w('old', 8, 0, 0),
      w('c', 4, 0),
    ];
    expect(rankPeers(peers, 'self', 1500, 1000)).toEqual(['b', 'c', 'a']);
  });
});

describe('PeerLiveness', () => {
  it('declares a peer dead after timeoutTicks silent ticks, or at once when leaving', () => {
    const p = new PeerLiveness('me', 2);
    p.heard('w1', 10, false);
    p.heard('w2', 10, true);
    p.heard('me', 0, false);
    expect(p.dead(11)).toEqual(['w2']);
    expect(p.dead(12).sort()).toEqual(['w1', 'w2']);
    p.heard('w1', 12, false);
    expect(p.dead(13)).toEqual(['w2']);
  });
});

describe('CallHistoryTracker', () => {
  it('records predictions and agent chunks, and real chunks replace predictions (deduped as in the context)', () => {
    const t = new CallHistoryTracker(3);
    t.apply({ chunkIndex: 0, predictedUser: [5, 6], agentIndex: 1, agentUnits: [1, 2], appliedReal: [] });
    t.apply({ chunkIndex: 1, predictedUser: [6, 7], agentIndex: 2, agentUnits: [3], appliedReal: [] });
    t.submitted(0, [9, 9, 4, 7]);
    t.apply({ chunkIndex: 2, predictedUser: [8], agentIndex: 3, agentUnits: [], appliedReal: [0] });
    // 0 is real [9,4,7]; predicted 1 started with 7 == new predecessor -> [6,7] stays (6 != 7)
    expect(t.chunks.map((c) => [c.index, c.user, c.real])).toEqual([
      [1, [6, 7], false],
      [2, [8], false],
      [3, [], false],
    ]);
  });
  it('drops a leading predicted unit equal to the new real predecessor', () => {
    const t = new CallHistoryTracker(10);
    t.apply({ chunkIndex: 0, predictedUser: [5], agentIndex: 1, agentUnits: [1], appliedReal: [] });
    t.apply({ chunkIndex: 1, predictedUser: [7, 8], agentIndex: 2, agentUnits: [2], appliedReal: [] });
    t.submitted(0, [3, 3, 7, 7]);
    t.apply({ chunkIndex: 2, predictedUser: [], agentIndex: 3, agentUnits: [4], appliedReal: [0] });
    expect(t.chunks[0]).toEqual({ index: 0, agent: [], user: [3, 7], real: true });
    expect(t.chunks[1]!.user).toEqual([8]);
  });
});

describe('planResume', () => {
  const stored = [
    { index: 4, agentUnits: [1, 2], userUnits: [10, 11], userReal: true },
    { index: 5, agentUnits: [3], userUnits: [12], userReal: false },
    { index: 6, agentUnits: [4, 5], userUnits: [], userReal: false },
  ];
  it('rebuilds [S0] agent [S1] user per chunk up to the resume chunk; real units beat predictions', () => {
    const real = new Map([
      [5, [20, 20, 21, 21]],
      [6, [21, 22, 22, 22]],
      [7, [30, 30, 30, 30]],
      [8, [40, 40, 40, 40]],
    ]);
    const plan = planResume(vocab, stored, real, 8);
    const s0 = vocab.s0;
    const s1 = vocab.s1;
    const u = (x: number) => unitToken(vocab, x);
    expect(plan.prefix).toEqual([
      s0,
      u(1),
      u(2),
      s1,
      u(10),
      u(11),
      s0,
      u(3),
      s1,
      u(20),
      u(21),
      s0,
      u(4),
      u(5),
      s1,
      u(22),
      s0,
      s1,
      u(30),
    ]);
    expect(plan.chunks.map((c) => [c.index, c.real])).toEqual([
      [4, true],
      [5, true],
      [6, true],
      [7, true],
    ]);
    expect(plan.chunks[2]!.user).toEqual(dedupChunk([21, 22, 22, 22], 21));
    expect(plan.fromStream).toBe(3);
  });
  it('keeps the prediction where no real chunk exists, and a silent agent after the history', () => {
    const plan = planResume(vocab, stored, new Map(), 8);
    expect(plan.chunks.map((c) => [c.index, c.agent, c.user, c.real])).toEqual([
      [4, [1, 2], [10, 11], true],
      [5, [3], [12], false],
      [6, [4, 5], [], false],
      [7, [], [], false],
    ]);
    expect(plan.firstAgentUnits).toEqual([]);
  });
  it('opens the resume chunk with the agent units the history holds for it (a handover)', () => {
    const plan = planResume(vocab, stored, new Map(), 6);
    expect(plan.firstAgentUnits).toEqual([4, 5]);
    expect(plan.chunks.map((c) => [c.index, c.agent, c.user])).toEqual([
      [4, [1, 2], [10, 11]],
      [5, [3], [12]],
      [6, [4, 5], []],
    ]);
    // The prefix ends before chunk 6: the engine writes its [S0] and the agent units itself.
    expect(plan.prefix.filter((t) => t === vocab.s0)).toHaveLength(2);
  });
});

describe('inference config: DUET_INFERENCE_TIMING_TEMPERATURE', () => {
  const base = { DUET_INFERENCE_MODEL: '/m/manifest.json' };
  const timing = (value?: string) =>
    loadConfig(
      'inference',
      inferenceConfig,
      value === undefined ? base : { ...base, DUET_INFERENCE_TIMING_TEMPERATURE: value },
    ).DUET_INFERENCE_TIMING_TEMPERATURE;
  it('is off (one draw) unless set; a number is the timing temperature', () => {
    expect(timing()).toBeUndefined();
    expect(timing('off')).toBeUndefined();
    expect(timing('1')).toBe(1);
    expect(timing('0.5')).toBe(0.5);
  });
  it('refuses a negative, too large or non-numeric value, naming the variable', () => {
    for (const bad of ['-1', '11', 'warm']) {
      expect(() => timing(bad)).toThrow(ConfigError);
      expect(() => timing(bad)).toThrow(/DUET_INFERENCE_TIMING_TEMPERATURE/);
    }
  });
});
