// What other code may reuse from the tokenizer service: its pure parts.

export {
  CallMedia,
  type CallMediaOptions,
  type DrainOutcome,
  MODEL_SAMPLE_RATE,
  type PacketResult,
  type ReceiveOutcome,
} from './callMedia.js';
export { tokenizerConfig } from './config.js';
export { createFrameDecoder, type FrameDecoder, repeatAndFade } from './frameDecoder.js';
export { InterarrivalJitter } from './jitterStats.js';
export { type ChunkCut, ChunkCutter, SampleFifo } from './pcmFifo.js';
export { PortAllocator } from './portAllocator.js';
export { TickSequence, type TickVerdict } from './tickSequence.js';
