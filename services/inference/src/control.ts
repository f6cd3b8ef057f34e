import type { LoadedManifest } from '@duet/engine';
import {
  CallHistory,
  type CloseCallResponse,
  InferenceCallDescription,
  InferenceCallRecord,
  type InferenceControlServer,
  type ModelInfo,
  type OpenInferenceCallResponse,
  PlaceCallReply,
  PlaceCallRequest,
} from '@duet/protocol';
import { callRecordKey, GrpcStatus, grpcError, isValidCallId, subjects } from '@duet/runtime';
import type { InferenceMetrics } from './metrics.js';
import { rankPeers } from './placement.js';
import type { InferenceWorker } from './worker.js';

const PLACE_TIMEOUT_MS = 500;
/** Heartbeats older than this are not asked (the worker is dead or gone). */
const PEER_STALE_MS = 3_000;

/** The gRPC InferenceControl service of one replica (any replica can open, close, describe). */
export function inferenceControl(
  worker: InferenceWorker,
  metrics: InferenceMetrics,
  manifest: LoadedManifest,
  geometry: { chunkMs: number; unitsPerChunk: number },
): InferenceControlServer {
  const { nc, js } = worker.context;
  const reply = (firstTick: number, workerId: string, callId: string): OpenInferenceCallResponse => ({
    callId,
    firstTick: BigInt(firstTick),
    chunkMs: geometry.chunkMs,
    unitsPerChunk: geometry.unitsPerChunk,
    workerId,
  });

  async function open(callId: string, seed: number): Promise<OpenInferenceCallResponse> {
    const existing = await js.calls.get(callRecordKey(callId, 'inference')).catch(() => null);
    if (existing && existing.operation === 'PUT') {
      throw grpcError(GrpcStatus.ALREADY_EXISTS, `call ${callId} is already placed`);
    }
    if (worker.freeSlots > 0) {
      const r = await worker.place(callId, seed);
      if (r.accepted) return reply(r.firstTick, worker.workerId, callId);
      if (r.reason === 'duplicate') throw grpcError(GrpcStatus.ALREADY_EXISTS, `call ${callId}: ${r.detail}`);
    }
    for (const peer of rankPeers(worker.peerLoads.values(), worker.workerId, Date.now(), PEER_STALE_MS)) {
      let answer: PlaceCallReply;
      try {
        const msg = await nc.request(
          subjects.placeCall(peer),
          PlaceCallRequest.encode({ callId, seed }).finish(),
          { timeout: PLACE_TIMEOUT_MS },
        );
        answer = PlaceCallReply.decode(msg.data);
      } catch {
        continue; // gone or slow: try the next one
      }
      if (answer.accepted) return reply(Number(answer.firstTick), answer.workerId, callId);
      if (answer.reason.startsWith('duplicate')) {
        throw grpcError(GrpcStatus.ALREADY_EXISTS, `call ${callId}: ${answer.reason}`);
      }
    }
    metrics.noCapacity.inc();
    throw grpcError(GrpcStatus.RESOURCE_EXHAUSTED, 'no capacity: no inference worker has a free slot');
  }

  async function close(callId: string, reason: string): Promise<CloseCallResponse> {
    return { wasOpen: await worker.endCall(callId, reason || 'closed by the edge', true) };
  }

  async function describe(callId: string): Promise<InferenceCallDescription> {
    const entry = await js.calls.get(callRecordKey(callId, 'inference'));
    if (!entry || entry.operation !== 'PUT') throw grpcError(GrpcStatus.NOT_FOUND, `unknown call ${callId}`);
    const record = InferenceCallRecord.decode(entry.value);
    const local = worker.describeLocal(callId);
    let lastTick = 0n;
    let late = 0n;
    let predicted = 0n;
    if (local) {
      lastTick = BigInt(local.lastTick);
      late = BigInt(local.lateUserChunks);
      predicted = BigInt(local.predictedUserChunks);
    } else {
      const h = await js.history.get(callId).catch(() => null);
      if (h && h.operation === 'PUT') {
        const history = CallHistory.decode(h.value);
        lastTick = history.lastTick;
        late = history.lateUserChunks;
        predicted = history.predictedUserChunks;
      }
    }
    return InferenceCallDescription.create({
      callId,
      workerId: record.workerId,
      firstTick: record.firstTick,
      lastTick,
      lateUserChunks: late,
      predictedUserChunks: predicted,
      resumes: record.resumes,
    });
  }

  const checkId = (callId: string) => {
    if (!isValidCallId(callId)) {
      throw grpcError(
        GrpcStatus.INVALID_ARGUMENT,
        `call id ${JSON.stringify(callId)} is not [A-Za-z0-9_-]{1,64}`,
      );
    }
  };
  const unary =
    <Q, R>(fn: (request: Q) => Promise<R>) =>
    (call: { request: Q }, callback: (error: Error | null, response?: R) => void) => {
      fn(call.request).then(
        (r) => callback(null, r),
        (error: unknown) =>
          callback(
            (error as { code?: number }).code !== undefined
              ? (error as Error)
              : grpcError(GrpcStatus.INTERNAL, String((error as Error)?.message ?? error)),
          ),
      );
    };

  return {
    openCall: unary(async (request) => {
      checkId(request.callId);
      return open(request.callId, request.seed);
    }),
    closeCall: unary(async (request) => {
      checkId(request.callId);
      return close(request.callId, request.reason);
    }),
    describeCall: unary(async (request) => {
      checkId(request.callId);
      return describe(request.callId);
    }),
    getModelInfo: unary(
      async (): Promise<ModelInfo> => ({
        name: manifest.manifest.source?.name ? String(manifest.manifest.source.name) : manifest.modelPath,
        format: manifest.manifest.format,
        sha256: manifest.manifest.sha256,
        chunkMs: geometry.chunkMs,
        unitsPerChunk: geometry.unitsPerChunk,
        unitCount: manifest.manifest.tokens.unitCount,
        // A dialogue model has no audio rate; its units run at 25 Hz.
        sampleRate: 0,
      }),
    ),
  } as InferenceControlServer;
}
