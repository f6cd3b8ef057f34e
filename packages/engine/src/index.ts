export type { ForwardItem, ForwardOutput, ModelInfo, SlotId, SyncModelBackend } from './backend.js';
export { type ContextWindowSpec, windowCapacity } from './contextWindow.js';
export {
  type Batching,
  type CallTickReport,
  type EngineObserver,
  type ForwardEvent,
  type OpenCallOptions,
  SyncEngine,
  type SyncEngineOptions,
  type TickReport,
} from './engine.js';
export { ClosedError, ModelContractError, NoCapacityError } from './errors.js';
export { type LoadedManifest, loadManifest, type SyncModelManifest, validateManifest } from './manifest.js';
export { OnnxSyncModel, type OnnxSyncModelOptions } from './onnxSyncModel.js';
