import { describe, expect, it } from 'vitest';
import { decideTick, phaseAt } from './election.js';

describe('election', () => {
  const lease = (seq: number, publisher: string, released = false) => ({ seq, publisher, released });

  it('lets the holder claim on time', () => {
    expect(decideTick(lease(9, 'a'), 10, 'a', 'due')).toEqual({ kind: 'claim', failover: false });
  });

  it('makes a standby wait for the takeover instant, then claim a missed seq', () => {
    expect(decideTick(lease(9, 'a'), 10, 'b', 'due')).toEqual({ kind: 'wait' });
    expect(decideTick(lease(9, 'a'), 10, 'b', 'takeover')).toEqual({ kind: 'claim', failover: true });
  });

  it('skips a seq already claimed, by anyone', () => {
    expect(decideTick(lease(10, 'a'), 10, 'b', 'takeover')).toEqual({ kind: 'skip' });
    expect(decideTick(lease(10, 'b'), 10, 'b', 'due')).toEqual({ kind: 'skip' });
    expect(decideTick(lease(11, 'a'), 10, 'a', 'due')).toEqual({ kind: 'skip' });
  });

  it('lets anyone claim a released lease on time (graceful handover)', () => {
    expect(decideTick(lease(9, 'a', true), 10, 'b', 'due')).toEqual({ kind: 'claim', failover: false });
  });

  it('claims over an unreadable lease only at takeover', () => {
    expect(decideTick(lease(-1, ''), 10, 'b', 'due')).toEqual({ kind: 'wait' });
    expect(decideTick(lease(-1, ''), 10, 'b', 'takeover').kind).toBe('claim');
  });

  it('computes the phase from the takeover delay', () => {
    expect(phaseAt(1_000, 1_000, 40)).toBe('due');
    expect(phaseAt(1_039, 1_000, 40)).toBe('due');
    expect(phaseAt(1_040, 1_000, 40)).toBe('takeover');
  });
});
