// Public API of @duet/eval: voice activity, turn-taking statistics, the behaviour suite, the
// eval runner (`duet eval`) and two agents over the clock (`duet simulate`).

// The dialogue model's default and resolution live beside the untrained model in @duet/engine/tiny.
export { DEFAULT_DIALOGUE_MODEL, resolveDialogueModel } from '@duet/engine/tiny';
export {
  type BehaviourOptions,
  mean,
  rate,
  scoreBackchannel,
  scoreInterruption,
  scorePause,
  scoreTurn,
} from './behaviour.js';
export {
  type EvalItem,
  type EvalSet,
  EvalSetError,
  type EvalSetManifest,
  evalSetSchema,
  ITEM_KINDS,
  type ItemKind,
  loadEvalSet,
  parseEvalSetManifest,
} from './evalSet.js';
export { type SyntheticEvalSetOptions, speak, writeSyntheticEvalSet } from './fixture.js';
export { promptTokens, SERVING_SAMPLING } from './generate.js';
export { applyingStep, deliveryTimeMs } from './latency.js';
export { evalMarkdown, fmt, markdownTable } from './report.js';
export {
  DEFAULT_EVALSET,
  type EvalResult,
  evalSummary,
  type RunEvalOptions,
  runEval,
} from './runEval.js';
export {
  type LatencyResult,
  type RunSimulateOptions,
  runSimulate,
  type SimulateResult,
  simulateMarkdown,
} from './runSimulate.js';
export {
  type BehaviourSummary,
  type ScoredItem,
  scoreBehaviour,
  scoreTurnTaking,
  type TurnTakingSummary,
} from './score.js';
export {
  clipSegments,
  mergeShortGaps,
  normalizeSegments,
  type Segment,
  type SegmentOptions,
  segmentSpeech,
  totalDuration,
} from './segments.js';
export {
  type ClockHandle,
  launchClock,
  type SimDialogue,
  type SimulationRun,
  simulateAgents,
} from './simulate.js';
export {
  CHANNELS,
  type Channel,
  EVENT_KINDS,
  type EventKind,
  pearson,
  type TurnEvent,
  type TurnTakingStats,
  turnEvents,
  turnTakingCorrelation,
  turnTakingStats,
} from './turnTaking.js';
export { SileroVad, sileroModelPath } from './vad.js';
