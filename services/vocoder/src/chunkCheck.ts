// Validation of an agent UnitChunk before it reaches the vocoder: a bad chunk is refused with a
// reason (the label of duet_vocoder_bad_messages_total) and never harms the call's stream.

import { Speaker, type UnitChunk } from '@duet/protocol';

export type BadChunkReason = 'wrong_call' | 'wrong_speaker' | 'unit_count' | 'unit_id' | 'chunk_index';

export interface ChunkLimits {
  readonly unitsPerChunk: number;
  readonly unitCount: number;
}

/** Undefined when the chunk is fit to vocode for `callId`, else why not. */
export function checkAgentChunk(
  chunk: UnitChunk,
  callId: string,
  limits: ChunkLimits,
): BadChunkReason | undefined {
  if (chunk.callId !== callId) return 'wrong_call';
  if (chunk.speaker !== Speaker.SPEAKER_AGENT) return 'wrong_speaker';
  if (chunk.units.length !== limits.unitsPerChunk) return 'unit_count';
  for (const u of chunk.units) if (!Number.isInteger(u) || u < 0 || u >= limits.unitCount) return 'unit_id';
  if (chunk.chunkIndex > BigInt(Number.MAX_SAFE_INTEGER)) return 'chunk_index';
  return undefined;
}
