// What other code may reuse from the vocoder service: its pure timing and RTP helpers.

export { ChunkBatcher } from './batcher.js';
export { type BadChunkReason, checkAgentChunk } from './chunkCheck.js';
export { type CutFrame, FrameCutter } from './frameCutter.js';
export { type ChunkOutcome, type DueFrame, Pacer, type PacerOptions } from './pacer.js';
export { type CodecParams, codecParams, FRAME_MS, type RtpBase, rtpBase, rtpNumbering } from './rtpStream.js';
export { TickClock, type TickObservation } from './tickClock.js';
