import { Speaker, UnitChunk } from '@duet/protocol';
import { describe, expect, it } from 'vitest';
import { checkAgentChunk } from './chunkCheck.js';

const limits = { unitsPerChunk: 4, unitCount: 128 };
const chunk = (over: Partial<UnitChunk>) =>
  UnitChunk.fromPartial({
    callId: 'c',
    speaker: Speaker.SPEAKER_AGENT,
    chunkIndex: 3n,
    units: [1, 2, 3, 4],
    ...over,
  });

describe('checkAgentChunk', () => {
  it('accepts a good chunk and names what is wrong with a bad one', () => {
    expect(checkAgentChunk(chunk({}), 'c', limits)).toBeUndefined();
    expect(checkAgentChunk(chunk({ callId: 'd' }), 'c', limits)).toBe('wrong_call');
    expect(checkAgentChunk(chunk({ speaker: Speaker.SPEAKER_USER }), 'c', limits)).toBe('wrong_speaker');
    expect(checkAgentChunk(chunk({ units: [1, 2, 3] }), 'c', limits)).toBe('unit_count');
    expect(checkAgentChunk(chunk({ units: [1, 2, 3, 128] }), 'c', limits)).toBe('unit_id');
    expect(checkAgentChunk(chunk({ chunkIndex: 2n ** 60n }), 'c', limits)).toBe('chunk_index');
  });
});
