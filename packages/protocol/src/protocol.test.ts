import { describe, expect, it } from 'vitest';
import { decodeMessage, ProtocolError, Speaker, Tick, UnitChunk } from './index.js';

describe('protocol', () => {
  it('round-trips a unit chunk', () => {
    const chunk: UnitChunk = {
      callId: 'call-1',
      speaker: Speaker.SPEAKER_USER,
      chunkIndex: 42n,
      units: [1, 2, 3, 500],
      producedAtMs: 1_700_000_000_000n,
    };
    const bytes = UnitChunk.encode(chunk).finish();
    expect(decodeMessage(UnitChunk, 'UnitChunk', bytes)).toEqual(chunk);
  });

  it('round-trips a tick', () => {
    const tick: Tick = { seq: 7n, scheduledAtMs: 123n, chunkMs: 160, publisher: 'clock-0' };
    expect(decodeMessage(Tick, 'Tick', Tick.encode(tick).finish())).toEqual(tick);
  });

  it('rejects a truncated payload with a ProtocolError naming the type', () => {
    const bytes = UnitChunk.encode({
      callId: 'call-1',
      speaker: Speaker.SPEAKER_AGENT,
      chunkIndex: 1n,
      units: [1, 2, 3],
      producedAtMs: 0n,
    }).finish();
    expect(() => decodeMessage(UnitChunk, 'UnitChunk', bytes.subarray(0, 5))).toThrow(ProtocolError);
    expect(() => decodeMessage(UnitChunk, 'UnitChunk', bytes.subarray(0, 5))).toThrow(/UnitChunk/);
  });
});
