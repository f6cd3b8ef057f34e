// Generated message types (from proto/ via `pnpm gen`) plus safe decoding.

export { decodeMessage, ProtocolError } from './decode.js';
export { ClockLease, Tick } from './gen/duet/v1/clock.js';
export {
  CallRef,
  CloseCallRequest,
  CloseCallResponse,
  InferenceCallDescription,
  InferenceControlClient,
  type InferenceControlServer,
  InferenceControlService,
  ModelInfo,
  ModelInfoRequest,
  OpenInferenceCallRequest,
  OpenInferenceCallResponse,
  OpenTokenizerCallRequest,
  OpenTokenizerCallResponse,
  OpenVocoderCallRequest,
  OpenVocoderCallResponse,
  TokenizerCallDescription,
  TokenizerControlClient,
  type TokenizerControlServer,
  TokenizerControlService,
  VocoderCallDescription,
  VocoderControlClient,
  type VocoderControlServer,
  VocoderControlService,
} from './gen/duet/v1/control.js';
export {
  CallEvent,
  CallEventKind,
  CallHistory,
  HistoryChunk,
  InferenceCallRecord,
  PlaceCallReply,
  PlaceCallRequest,
  TokenizerCallRecord,
  VocoderCallRecord,
  WorkerHeartbeat,
} from './gen/duet/v1/events.js';
export { Codec, MediaFormat, RtpEndpoint } from './gen/duet/v1/media.js';
export { Speaker, UnitChunk } from './gen/duet/v1/units.js';
