// The vocoder service wiring: gRPC control, NATS subscriptions (ticks, agent units, call
// events), the batched vocoder, the per-call audio path and UDP sockets, the one pacer timer,
// and the call records in the duet_calls KV (reloaded on restart). Timing decisions live in
// pacer.ts; this file only moves data and measures.

import { randomInt } from 'node:crypto';
import type { Socket } from 'node:dgram';
import { basename, dirname } from 'node:path';
import { prewarmResamplers, type SampleRate, serializeRtpPacket } from '@duet/audio';
import {
  CallEvent,
  CallEventKind,
  decodeMessage,
  type MediaFormat,
  type RtpEndpoint,
  Tick,
  UnitChunk,
  VocoderCallDescription,
  VocoderCallRecord,
  type VocoderControlServer,
  VocoderControlService,
} from '@duet/protocol';
import {
  callIdOfSubject,
  callRecordKey,
  GrpcStatus,
  grpcError,
  isValidCallId,
  type ServiceContext,
  type ServiceHandle,
  subjects,
} from '@duet/runtime';
import type { Subscription } from '@nats-io/nats-core';
import { ChunkBatcher } from './batcher.js';
import { CallAudio, silencePayload } from './callAudio.js';
import { checkAgentChunk } from './chunkCheck.js';
import { createVocoderMetrics } from './metrics.js';
import { type DueFrame, Pacer } from './pacer.js';
import { codecParams, type RtpBase, rtpBase, rtpNumbering } from './rtpStream.js';
import { TickClock } from './tickClock.js';
import { bindSource } from './udpSource.js';
import { VocodeWorker } from './vocodeWorkerClient.js';

export interface VocoderServiceConfig {
  readonly modelPath: string;
  readonly chunkMs: number;
  readonly playoutDelayMs: number;
  readonly maxCalls: number;
  readonly rtpHost: string;
  readonly rtpPortMin: number;
  readonly rtpPortMax: number;
  readonly silenceUnit: number;
  readonly batchWindowMs: number;
  /** Chunks further ahead of the current one than this are refused (bounds the queue). */
  readonly maxChunksAhead: number;
}

interface Call {
  readonly callId: string;
  readonly firstTick: number;
  readonly record: VocoderCallRecord;
  readonly socket: Socket;
  readonly port: number;
  /** Resampling and encoding of the call's audio (main thread: @evan/opus cannot live in a worker). */
  readonly audio: CallAudio;
  /** Payload of a frame with no audio. */
  readonly silence: Uint8Array;
  readonly sub: Subscription;
  readonly base: RtpBase;
  readonly payloadType: number;
  readonly samplesPerFrame: number;
  readonly destination: { host: string; port: number };
  readonly ssrc: number;
  /** Highest chunk index accepted so far (-1 before the first). */
  lastChunk: number;
  packetsSent: number;
  chunksPlayed: number;
  chunksMissing: number;
}

interface PendingChunk {
  readonly key: string;
  readonly call: Call;
  readonly chunkIndex: number;
  readonly units: readonly number[];
  readonly arrivedAt: number;
}

export async function startVocoderService(
  ctx: ServiceContext<unknown>,
  config: VocoderServiceConfig,
): Promise<ServiceHandle> {
  const { log, nc, js } = ctx;
  const metrics = createVocoderMetrics(ctx.registry);
  const unitsPerChunk = config.chunkMs / 40;
  // Model, resampling and encoding run on a worker thread; pacing stays on this one.
  const vocoder = await VocodeWorker.start(
    { manifestPath: config.modelPath, unitsPerChunk, silenceUnit: config.silenceUnit },
    (error) => {
      // Without it no call gets audio: exit, and the restarted replica reloads its calls.
      log.fatal({ err: error }, 'vocoder worker died');
      process.exit(1);
    },
  );
  // Converters for the first calls (a new one compiles libsamplerate: 100-300 ms of call setup).
  await prewarmResamplers(2);
  const manifest = vocoder.manifest;
  const modelRate = manifest.sampleRate as SampleRate;
  const clock = new TickClock();
  const pacer = new Pacer({ clock, chunkMs: config.chunkMs, playoutDelayMs: config.playoutDelayMs });
  const framesPerChunk = pacer.framesPerChunk;
  const calls = new Map<string, Call>();
  const opening = new Set<string>();
  const portsInUse = new Set<number>();
  let draining = false;
  let closing = false;

  // Bad input is logged at most once per reason every 5 s.
  const lastLogged = new Map<string, number>();
  const bad = (reason: string, detail: Record<string, unknown>) => {
    metrics.badMessages.inc({ reason });
    const now = Date.now();
    if ((lastLogged.get(reason) ?? 0) + 5_000 > now) return;
    lastLogged.set(reason, now);
    log.warn({ reason, ...detail }, 'bad message');
  };

  // --- pacing: one timer for every call, armed for the next due frame -----------------------
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    if (closing) return;
    const now = Date.now();
    const due = pacer.nextDueAt(now);
    if (due === undefined) return;
    timer = setTimeout(fire, Math.max(0, due - now));
  };
  const send = (frame: DueFrame) => {
    const call = calls.get(frame.callId);
    if (!call) return;
    const { sequenceNumber, timestamp } = rtpNumbering(call.base, call.samplesPerFrame, frame.frameIndex);
    const packet = serializeRtpPacket({
      payloadType: call.payloadType,
      sequenceNumber,
      timestamp,
      ssrc: call.ssrc,
      marker: frame.first,
      payload: frame.payload ?? call.silence,
    });
    call.socket.send(packet, call.destination.port, call.destination.host, (error) => {
      if (error) bad('send_error', { callId: call.callId, err: error.message });
    });
    call.packetsSent += 1;
    metrics.packetsSent.inc();
    metrics.sendLateness.observe(Date.now() - frame.dueAtMs);
  };
  const fire = () => {
    timer = undefined;
    const skippedBefore = pacer.skippedFrames;
    const { frames, chunks } = pacer.takeDue(Date.now());
    if (pacer.skippedFrames > skippedBefore) metrics.framesSkipped.inc(pacer.skippedFrames - skippedBefore);
    for (const frame of frames) send(frame);
    for (const c of chunks) {
      metrics.chunks.inc({ result: c.result });
      const call = calls.get(c.callId);
      if (!call) continue;
      if (c.result === 'played') call.chunksPlayed += 1;
      else call.chunksMissing += 1;
    }
    arm();
  };

  // --- vocoding: chunks of all calls that arrive together run as one batch ------------------
  const runBatch = async (batch: PendingChunk[]) => {
    const live = batch.filter((p) => calls.get(p.call.callId) === p.call);
    if (live.length === 0) return;
    const reply = await vocoder.vocode(
      live.map((p) => ({
        callId: p.call.callId,
        chunkIndex: p.chunkIndex,
        units: p.units,
      })),
    );
    metrics.vocodeMs.observe(reply.vocodeMs);
    metrics.batchSize.observe(reply.batchSize);
    let sliceStart = performance.now();
    for (const r of reply.results) {
      // Encoding runs here, between packets: give the pacer's timer its turn every ~2 ms.
      if (performance.now() - sliceStart > 2) {
        await new Promise((resolve) => setImmediate(resolve));
        sliceStart = performance.now();
      }
      const p = live.find((x) => x.call.callId === r.callId);
      if (!p || calls.get(r.callId) !== p.call) continue; // closed meanwhile
      if (r.error !== undefined || !r.audio) {
        bad('vocode', { callId: r.callId, err: r.error });
        continue;
      }
      for (const frame of p.call.audio.encodeChunk(p.chunkIndex * framesPerChunk, r.audio))
        pacer.enqueue(r.callId, frame.frameIndex, frame.payload);
      metrics.unitsToAudio.observe(Date.now() - p.arrivedAt);
    }
  };
  const batcher = new ChunkBatcher<PendingChunk>(config.batchWindowMs, runBatch, (error) =>
    log.error({ err: error }, 'vocoder batch failed'),
  );

  const onAgentChunk = (call: Call, data: Uint8Array) => {
    const arrivedAt = Date.now();
    if (calls.get(call.callId) !== call) return;
    let chunk: UnitChunk;
    try {
      chunk = decodeMessage(UnitChunk, 'UnitChunk', data);
    } catch (error) {
      bad('decode', { callId: call.callId, err: (error as Error).message });
      return;
    }
    const reason = checkAgentChunk(chunk, call.callId, { unitsPerChunk, unitCount: manifest.unitCount });
    if (reason) {
      bad(reason, { callId: call.callId, chunkIndex: String(chunk.chunkIndex), units: chunk.units.length });
      return;
    }
    const j = Number(chunk.chunkIndex);
    if (j <= call.lastChunk) {
      bad('stale', { callId: call.callId, chunkIndex: j, lastChunk: call.lastChunk });
      return;
    }
    const next = pacer.nextFrame(call.callId);
    if (next !== undefined && (j + 1) * framesPerChunk <= next) {
      metrics.chunks.inc({ result: 'late' });
      return;
    }
    if (next !== undefined && j > Math.floor(next / framesPerChunk) + config.maxChunksAhead) {
      bad('too_early', { callId: call.callId, chunkIndex: j, nextFrame: next });
      return;
    }
    call.lastChunk = j;
    const due = pacer.dueAt(call.callId, j * framesPerChunk);
    if (due !== undefined) metrics.chunkLead.observe(due - arrivedAt);
    batcher.add({ key: call.callId, call, chunkIndex: j, units: chunk.units, arrivedAt });
  };

  // --- calls ----------------------------------------------------------------------------------
  const openCall = async (record: VocoderCallRecord, preferredPort?: number): Promise<Call> => {
    const format = record.format!;
    const params = codecParams(format.codec)!;
    const socket = await bindSource(
      config.rtpHost,
      { min: config.rtpPortMin, max: config.rtpPortMax },
      portsInUse,
      preferredPort,
    );
    if (!socket) throw grpcError(GrpcStatus.RESOURCE_EXHAUSTED, 'no free RTP source port');
    let audio: CallAudio;
    try {
      audio = await CallAudio.create(format.codec, modelRate);
    } catch (error) {
      socket.close();
      throw error;
    }
    const port = socket.address().port;
    socket.on('error', (error) => bad('socket_error', { callId: record.callId, err: error.message }));
    portsInUse.add(port);
    const callId = record.callId;
    const firstTick = Number(record.firstTick);
    const call: Call = {
      callId,
      firstTick,
      record: { ...record, source: { host: config.rtpHost, port } },
      socket,
      port,
      audio,
      silence: silencePayload(format.codec),
      sub: nc.subscribe(subjects.agentUnits(callId), {
        callback: (error, msg) => {
          if (error) return;
          onAgentChunk(call, msg.data);
        },
      }),
      base: rtpBase(callId, record.ssrc),
      payloadType: format.payloadType,
      samplesPerFrame: params.samplesPerFrame,
      destination: { host: record.destination!.host, port: record.destination!.port },
      ssrc: record.ssrc,
      lastChunk: -1,
      packetsSent: 0,
      chunksPlayed: 0,
      chunksMissing: 0,
    };
    vocoder.open(callId);
    calls.set(callId, call);
    pacer.addCall(callId, firstTick);
    metrics.activeCalls.set(calls.size);
    arm();
    return call;
  };

  const dropCall = (callId: string, why: string, deleteRecord: boolean): boolean => {
    const call = calls.get(callId);
    if (!call) return false;
    calls.delete(callId);
    pacer.removeCall(callId);
    batcher.forget(callId);
    call.sub.unsubscribe();
    vocoder.close(callId);
    call.audio.close();
    call.socket.close();
    portsInUse.delete(call.port);
    metrics.activeCalls.set(calls.size);
    if (deleteRecord)
      js.calls
        .delete(callRecordKey(callId, 'vocoder'))
        .catch((error: unknown) => log.warn({ err: error, callId }, 'cannot delete call record'));
    log.info({ callId, why, packetsSent: call.packetsSent }, 'call closed');
    arm();
    return true;
  };

  // --- NATS: ticks and call events ---------------------------------------------------------------
  const tickSub = nc.subscribe(subjects.tick, {
    callback: (error, msg) => {
      if (error) return;
      let tick: Tick;
      try {
        tick = decodeMessage(Tick, 'Tick', msg.data);
      } catch (e) {
        bad('tick_decode', { err: (e as Error).message });
        return;
      }
      if (tick.chunkMs !== config.chunkMs) {
        bad('tick_chunk_ms', { chunkMs: tick.chunkMs, expected: config.chunkMs });
        return;
      }
      const first = !clock.known;
      if (
        clock.observe({
          seq: Number(tick.seq),
          scheduledAtMs: Number(tick.scheduledAtMs),
          chunkMs: tick.chunkMs,
        })
      ) {
        if (first) log.info({ seq: String(tick.seq) }, 'clock known');
        arm();
      }
    },
  });
  const eventSub = nc.subscribe(subjects.allCallEvents, {
    callback: (error, msg) => {
      if (error) return;
      const callId = callIdOfSubject(msg.subject);
      if (callId === undefined || !calls.has(callId)) return;
      let event: CallEvent;
      try {
        event = decodeMessage(CallEvent, 'CallEvent', msg.data);
      } catch (e) {
        bad('event_decode', { callId, err: (e as Error).message });
        return;
      }
      if (event.kind === CallEventKind.CALL_EVENT_KIND_CLOSED)
        dropCall(callId, `closed by ${event.source}: ${event.detail}`, true);
    },
  });

  // --- restart: carry on with this replica's calls ------------------------------------------------
  for await (const key of await js.calls.keys('*.vocoder')) {
    try {
      const entry = await js.calls.get(key);
      if (!entry || entry.operation !== 'PUT' || entry.value.length === 0) continue;
      const record = VocoderCallRecord.decode(entry.value);
      if (record.instanceId !== ctx.instanceId || calls.has(record.callId)) continue;
      if (!isValidCallId(record.callId) || !record.format || !codecParams(record.format.codec)) continue;
      // A call closed while this replica was down (its CLOSED event missed) has no inference
      // record any more: forget it instead of playing silence to nobody.
      const inference = await js.calls.get(callRecordKey(record.callId, 'inference'));
      if (!inference || inference.operation !== 'PUT') {
        await js.calls.delete(key);
        log.info({ callId: record.callId }, 'call ended while down; record dropped');
        continue;
      }
      const call = await openCall(record, record.source?.port);
      if (call.port !== record.source?.port)
        await js.calls.put(key, VocoderCallRecord.encode(call.record).finish());
      log.info({ callId: record.callId, port: call.port, ssrc: record.ssrc }, 'call reloaded');
    } catch (error) {
      log.warn({ err: error, key }, 'cannot reload call record');
    }
  }

  // --- gRPC --------------------------------------------------------------------------------------
  const describe = (call: Call) =>
    VocoderCallDescription.fromPartial({
      callId: call.callId,
      destination: call.record.destination,
      format: call.record.format,
      ssrc: call.ssrc,
      packetsSent: BigInt(call.packetsSent),
      chunksPlayed: BigInt(call.chunksPlayed),
      chunksMissing: BigInt(call.chunksMissing),
    });
  const badFormat = (format: MediaFormat | undefined): string | undefined => {
    if (!format || !codecParams(format.codec)) return 'format.codec must be PCMU, PCMA or OPUS';
    if (!Number.isInteger(format.payloadType) || format.payloadType > 127)
      return 'format.payload_type must be 0..127';
    return undefined;
  };
  const badDestination = (d: RtpEndpoint | undefined): string | undefined =>
    !d || d.host === '' || d.port < 1 || d.port > 65535
      ? 'destination must have a host and a port 1..65535'
      : undefined;

  const implementation: VocoderControlServer = {
    openCall: (callRef, callback) => {
      const req = callRef.request;
      void (async () => {
        if (!isValidCallId(req.callId))
          return callback(grpcError(GrpcStatus.INVALID_ARGUMENT, 'call_id must be [A-Za-z0-9_-]{1,64}'));
        const invalid = badFormat(req.format) ?? badDestination(req.destination);
        if (invalid) return callback(grpcError(GrpcStatus.INVALID_ARGUMENT, invalid));
        if (req.firstTick > BigInt(Number.MAX_SAFE_INTEGER))
          return callback(grpcError(GrpcStatus.INVALID_ARGUMENT, 'first_tick out of range'));
        if (draining) return callback(grpcError(GrpcStatus.UNAVAILABLE, 'vocoder is draining'));
        if (calls.has(req.callId) || opening.has(req.callId))
          return callback(grpcError(GrpcStatus.ALREADY_EXISTS, `call ${req.callId} is already open`));
        if (calls.size + opening.size >= config.maxCalls)
          return callback(
            grpcError(GrpcStatus.RESOURCE_EXHAUSTED, `vocoder is full (${config.maxCalls} calls)`),
          );
        opening.add(req.callId);
        try {
          const record = VocoderCallRecord.fromPartial({
            callId: req.callId,
            instanceId: ctx.instanceId,
            firstTick: req.firstTick,
            format: req.format,
            destination: req.destination,
            ssrc: req.ssrc !== 0 ? req.ssrc : randomInt(1, 0xffffffff),
          });
          const call = await openCall(record);
          try {
            await js.calls.put(
              callRecordKey(call.callId, 'vocoder'),
              VocoderCallRecord.encode(call.record).finish(),
            );
          } catch (error) {
            dropCall(call.callId, 'call record not stored', false);
            throw grpcError(
              GrpcStatus.UNAVAILABLE,
              `cannot store the call record: ${(error as Error).message}`,
            );
          }
          log.info(
            {
              callId: call.callId,
              firstTick: call.firstTick,
              port: call.port,
              ssrc: call.ssrc,
              destination: call.destination,
            },
            'call opened',
          );
          callback(null, { source: call.record.source, ssrc: call.ssrc });
        } catch (error) {
          const e = error as { code?: number };
          callback(
            e.code !== undefined
              ? (error as Error)
              : grpcError(GrpcStatus.INTERNAL, (error as Error).message),
          );
        } finally {
          opening.delete(req.callId);
        }
      })();
    },
    closeCall: (callRef, callback) => {
      const { callId, reason } = callRef.request;
      if (!isValidCallId(callId))
        return callback(grpcError(GrpcStatus.INVALID_ARGUMENT, 'call_id must be [A-Za-z0-9_-]{1,64}'));
      callback(null, { wasOpen: dropCall(callId, reason || 'CloseCall', true) });
    },
    describeCall: (callRef, callback) => {
      const { callId } = callRef.request;
      if (!isValidCallId(callId))
        return callback(grpcError(GrpcStatus.INVALID_ARGUMENT, 'call_id must be [A-Za-z0-9_-]{1,64}'));
      const call = calls.get(callId);
      if (!call) return callback(grpcError(GrpcStatus.NOT_FOUND, `call ${callId} is not open here`));
      callback(null, describe(call));
    },
    getModelInfo: (_callRef, callback) => {
      callback(null, {
        name: `${basename(dirname(dirname(config.modelPath)))}/${basename(dirname(config.modelPath))}`,
        format: manifest.format,
        sha256: manifest.sha256,
        chunkMs: config.chunkMs,
        unitsPerChunk,
        unitCount: manifest.unitCount,
        sampleRate: manifest.sampleRate,
      });
    },
  };

  log.info(
    {
      model: config.modelPath,
      chunkMs: config.chunkMs,
      playoutDelayMs: config.playoutDelayMs,
      reloaded: calls.size,
    },
    'vocoder started',
  );

  return {
    grpc: [
      {
        name: 'duet.v1.VocoderControl',
        definition: VocoderControlService,
        implementation: implementation as never,
      },
    ],
    ready: () => (clock.known ? { ready: true } : { ready: false, reason: 'no clock tick yet' }),
    async drain() {
      // Calls are not ended on shutdown: their records stay in the KV so that this replica
      // (restarted with the same DUET_INSTANCE_ID) carries them on.
      draining = true;
    },
    async close() {
      closing = true;
      if (timer !== undefined) clearTimeout(timer);
      // The worker must not be torn down in the middle of a model run (onnxruntime crashes).
      await batcher.close();
      tickSub.unsubscribe();
      eventSub.unsubscribe();
      for (const callId of [...calls.keys()]) dropCall(callId, 'shutdown', false);
      await vocoder.terminate();
    },
  };
}
