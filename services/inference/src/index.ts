// Pure helpers of the inference service (the worker itself runs from main.ts).
export {
  CallHistoryTracker,
  type CallStepOutcome,
  type HistoryEntry,
  planResume,
  type ResumePlan,
  type StoredChunk,
} from './callHistory.js';
export { type InferenceSettings, inferenceConfig } from './config.js';
export { PeerLiveness } from './peerLiveness.js';
export { rankPeers, type WorkerLoad } from './placement.js';
export { type TickPlan, TickSequencer } from './tickSequencer.js';
