// What every Duet service shares: the service shell and its parts.

export {
  CallSetupError,
  type DuetCall,
  DuetControl,
  type DuetControlAddresses,
  type OpenDuetCallOptions,
} from './callSetup.js';
export { ConfigError, commonConfig, env, loadConfig } from './config.js';
export { type GrpcServer, GrpcStatus, grpcError, startGrpcServer } from './grpcServer.js';
export { type DuetJetStream, ensureJetStream, type KV } from './jetstream.js';
export { createLogger, type Logger } from './logger.js';
export { createMetricsRegistry, STAGE_MS_BUCKETS } from './metrics.js';
export { connectNats, type NatsConnection } from './nats.js';
export { type HealthState, type OpsServer, startOpsServer } from './opsServer.js';
export { KeyedRateLimiter } from './rateLimiter.js';
export {
  type GrpcServiceBinding,
  runService,
  type ServiceContext,
  type ServiceDefinitionOptions,
  type ServiceHandle,
} from './service.js';
export { StreamPublisher, type StreamPublisherOptions } from './streamPublisher.js';
export {
  assertCallId,
  callIdOfSubject,
  callRecordKey,
  isValidCallId,
  jetstream,
  subjects,
} from './subjects.js';
