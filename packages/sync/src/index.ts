// Public API of @duet/sync: the SyncLLM sequence format, pure and dependency-free.

export {
  type AcceptResult,
  type AgentTokens,
  CallTimeline,
  type CallTimelineOptions,
  type TickOutcome,
  type TickPlan,
  type UserChunkAdmission,
  type UserChunkSource,
} from './callTimeline.js';
export {
  type ChunkBlock,
  type ParseChunkBlocksOptions,
  parseChunkBlocks,
  writeChunkBlock,
} from './chunkBlock.js';
export { InvalidArgumentError, InvalidStateError } from './errors.js';
export { type ChunkGeometry, chunkGeometry, chunkStartMs, UNIT_MS, UNIT_RATE_HZ } from './geometry.js';
export { createRng, type Rng, type RngState } from './rng.js';
export { type SamplingOptions, sampleToken, type TokenFilter, validateSamplingOptions } from './sampling.js';
export { dedupChunk, expandChunk } from './unitRuns.js';
export {
  createVocabulary,
  isTag,
  isUnitToken,
  type TokenVocabulary,
  tokenToUnit,
  unitToken,
} from './vocabulary.js';
