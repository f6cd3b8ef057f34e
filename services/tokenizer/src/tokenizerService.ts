// The tokenizer service's wiring: gRPC control, one UDP socket per call, the clock's ticks,
// call events, the durable call records, and the batched units model. The audio path of a call
// is CallMedia (callMedia.ts), the cutting rule ChunkCutter (pcmFifo.ts).

import type { Socket } from 'node:dgram';
import { relative } from 'node:path';
import { performance } from 'node:perf_hooks';
import { prewarmResamplers } from '@duet/audio';
import {
  CallEvent,
  CallEventKind,
  type CallRef,
  type CloseCallRequest,
  CloseCallResponse,
  Codec,
  decodeMessage,
  type MediaFormat,
  ModelInfo,
  type OpenTokenizerCallRequest,
  OpenTokenizerCallResponse,
  RtpEndpoint,
  Speaker,
  Tick,
  TokenizerCallDescription,
  TokenizerCallRecord,
  type TokenizerControlServer,
  TokenizerControlService,
  UnitChunk,
} from '@duet/protocol';
import {
  callIdOfSubject,
  callRecordKey,
  GrpcStatus,
  grpcError,
  isValidCallId,
  type ServiceContext,
  type ServiceHandle,
  StreamPublisher,
  subjects,
} from '@duet/runtime';
import { SpeechTokenizer, type TokenizerStream } from '@duet/speech';
import type { ServerUnaryCall, sendUnaryData } from '@grpc/grpc-js';
import type { Subscription } from '@nats-io/nats-core';
import { CallMedia, MODEL_SAMPLE_RATE, type PacketResult, warmUpMedia } from './callMedia.js';
import { DEFAULT_MODEL, repoRoot, type TokenizerConfig } from './config.js';
import { LogLimiter } from './logLimiter.js';
import { createTokenizerMetrics, type TokenizerMetrics } from './metrics.js';
import { PortAllocator } from './portAllocator.js';
import { bindRtpSocket } from './rtpSocket.js';
import { TickSequence } from './tickSequence.js';

/** Audio kept back after each cut once a call's audio flows: one 20 ms frame. */
const CUSHION_MS = 20;
/** Ticks waiting behind a running one before new ticks are refused (the model cannot keep up). */
const MAX_PENDING_TICKS = 4;
const RTP_TIMEOUT_CHECK_MS = 1_000;

interface Call {
  readonly callId: string;
  readonly firstTick: number;
  readonly format: MediaFormat;
  readonly rtp: RtpEndpoint;
  readonly port: number;
  readonly socket: Socket;
  readonly media: CallMedia;
  readonly stream: TokenizerStream;
  chunksPublished: number;
  closed: boolean;
}

type Ctx = ServiceContext<TokenizerConfig>;

function unary<Req, Res>(
  fn: (request: Req) => Promise<Res>,
): (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => void {
  return (call, callback) => {
    fn(call.request).then(
      (response) => callback(null, response),
      (error: unknown) => {
        const e = error as { code?: number };
        callback(
          typeof e?.code === 'number'
            ? (error as Error & { code: number })
            : grpcError(GrpcStatus.INTERNAL, String((error as Error)?.message ?? error)),
        );
      },
    );
  };
}

const SUPPORTED_CODECS = new Set([Codec.CODEC_PCMU, Codec.CODEC_PCMA, Codec.CODEC_OPUS]);

export class TokenizerService {
  readonly #ctx: Ctx;
  readonly #tokenizer: SpeechTokenizer;
  readonly #manifestPath: string;
  readonly #metrics: TokenizerMetrics;
  readonly #ports: PortAllocator;
  readonly #calls = new Map<string, Call>();
  readonly #opening = new Set<string>();
  readonly #ticks = new TickSequence();
  readonly #logLimiter = new LogLimiter();
  readonly #source: string;
  readonly #units: StreamPublisher;
  readonly #chunkMs: number;
  readonly #subscriptions: Subscription[] = [];
  #tickChain: Promise<void> = Promise.resolve();
  #pendingTicks = 0;
  #natsConnected = true;
  #timeoutTimer: NodeJS.Timeout | undefined;
  #closed = false;

  static async start(ctx: Ctx): Promise<TokenizerService> {
    const manifestPath = ctx.config.DUET_TOKENIZER_MODEL ?? DEFAULT_MODEL();
    const chunkMs = ctx.config.DUET_TOKENIZER_CHUNK_MS;
    const tokenizer = await SpeechTokenizer.load({
      manifestPath,
      unitsPerChunk: chunkMs / 40,
      intraOpThreads: ctx.config.DUET_TOKENIZER_THREADS,
    });
    const m = tokenizer.manifest;
    if (m.sampleRate !== MODEL_SAMPLE_RATE || (chunkMs * m.sampleRate) / 1000 !== tokenizer.chunkSamples) {
      await tokenizer.close();
      throw new Error(
        `units model ${manifestPath} must run at ${MODEL_SAMPLE_RATE} Hz with ${chunkMs / 40} units per ${chunkMs} ms (has ${m.sampleRate} Hz, ${m.samplesPerUnit} samples per unit)`,
      );
    }
    // The first run of a session is several times slower (allocation, kernel selection): pay it
    // now, not on the first tick of the first call.
    const warmup = tokenizer.openStream();
    await tokenizer.tokenize([{ stream: warmup, pcm: new Float32Array(tokenizer.chunkSamples) }]);
    warmup.close();
    await warmUpMedia();
    // Converters for the first G.711 calls (a new one compiles libsamplerate: 100-300 ms).
    await prewarmResamplers(2);
    const service = new TokenizerService(ctx, tokenizer, manifestPath);
    ctx.log.info({ model: manifestPath, sha256: m.sha256, chunkMs }, 'units model loaded');
    await service.#reloadCalls();
    service.#subscribe();
    service.#watchNats();
    service.#timeoutTimer = setInterval(() => service.#checkRtpTimeouts(), RTP_TIMEOUT_CHECK_MS);
    service.#timeoutTimer.unref();
    return service;
  }

  private constructor(ctx: Ctx, tokenizer: SpeechTokenizer, manifestPath: string) {
    this.#ctx = ctx;
    this.#tokenizer = tokenizer;
    this.#manifestPath = manifestPath;
    this.#metrics = createTokenizerMetrics(ctx.registry);
    const { DUET_TOKENIZER_RTP_PORT_MIN: min, DUET_TOKENIZER_RTP_PORT_MAX: max } = ctx.config;
    this.#ports = new PortAllocator(min, max);
    this.#source = `tokenizer/${ctx.instanceId}`;
    this.#chunkMs = ctx.config.DUET_TOKENIZER_CHUNK_MS;
    // User chunks go into the replicated DUET_UNITS stream acknowledged and, when the stream
    // missed one (its leader moving, a NATS node stopping), sent again: a resumed call needs them.
    this.#units = new StreamPublisher(ctx.nc, {
      onRetry: () => this.#metrics.unitsResent.inc(),
      onGiveUp: (subject, error) => {
        this.#metrics.unitsNotStored.inc();
        this.#ctx.log.warn({ subject, err: error }, 'a user chunk is not in the units stream');
      },
    });
  }

  handle(): ServiceHandle {
    const server: TokenizerControlServer = {
      openCall: unary((req: OpenTokenizerCallRequest) => this.#openCall(req)),
      closeCall: unary((req: CloseCallRequest) => this.#closeCall(req)),
      describeCall: unary((req: CallRef) => this.#describeCall(req)),
      getModelInfo: unary(async () => this.#modelInfo()),
    };
    return {
      grpc: [
        { name: 'duet.v1.TokenizerControl', definition: TokenizerControlService, implementation: server },
      ],
      ready: () => (this.#natsConnected ? { ready: true } : { ready: false, reason: 'nats connection lost' }),
      close: () => this.close(),
    };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timeoutTimer) clearInterval(this.#timeoutTimer);
    for (const sub of this.#subscriptions) sub.unsubscribe();
    await this.#tickChain.catch(() => undefined);
    await this.#units.flush(); // nothing published is lost on a clean shutdown
    // The records stay in the KV: a replica restarted with the same instance id carries the calls on.
    for (const call of [...this.#calls.values()]) this.#release(call);
    await this.#tokenizer.close();
  }

  // --- control ---

  async #openCall(req: OpenTokenizerCallRequest): Promise<OpenTokenizerCallResponse> {
    const callId = req.callId;
    if (!isValidCallId(callId))
      throw grpcError(
        GrpcStatus.INVALID_ARGUMENT,
        `call id ${JSON.stringify(callId)} is not [A-Za-z0-9_-]{1,64}`,
      );
    const format = req.format;
    if (format === undefined || !SUPPORTED_CODECS.has(format.codec))
      throw grpcError(GrpcStatus.INVALID_ARGUMENT, 'format.codec must be PCMU, PCMA or OPUS');
    if (!Number.isInteger(format.payloadType) || format.payloadType > 127)
      throw grpcError(GrpcStatus.INVALID_ARGUMENT, `payload type ${format.payloadType} is not in 0..127`);
    const firstTick = Number(req.firstTick);
    if (!Number.isSafeInteger(firstTick))
      throw grpcError(GrpcStatus.INVALID_ARGUMENT, `first_tick ${req.firstTick} is too large`);
    if (this.#closed) throw grpcError(GrpcStatus.UNAVAILABLE, 'the tokenizer is shutting down');
    if (this.#calls.has(callId) || this.#opening.has(callId))
      throw grpcError(GrpcStatus.ALREADY_EXISTS, `call ${callId} is already open`);
    if (this.#calls.size + this.#opening.size >= this.#ctx.config.DUET_TOKENIZER_MAX_CALLS)
      throw grpcError(GrpcStatus.RESOURCE_EXHAUSTED, `this tokenizer holds its maximum of calls`);
    this.#opening.add(callId);
    try {
      const { socket, port } = await this.#bindFreePort();
      let call: Call;
      try {
        call = await this.#attach(callId, firstTick, format, socket, port);
      } catch (error) {
        socket.close();
        this.#ports.release(port);
        throw error;
      }
      const record = TokenizerCallRecord.create({
        callId,
        instanceId: this.#ctx.instanceId,
        firstTick: BigInt(firstTick),
        format,
        rtp: call.rtp,
      });
      try {
        await this.#ctx.js.calls.put(
          callRecordKey(callId, 'tokenizer'),
          TokenizerCallRecord.encode(record).finish(),
        );
      } catch (error) {
        this.#release(call);
        throw grpcError(GrpcStatus.UNAVAILABLE, `cannot store the call record: ${(error as Error).message}`);
      }
      this.#ctx.log.info({ callId, firstTick, port, codec: Codec[format.codec] }, 'call opened');
      return OpenTokenizerCallResponse.create({ rtp: call.rtp });
    } finally {
      this.#opening.delete(callId);
    }
  }

  async #closeCall(req: CloseCallRequest): Promise<CloseCallResponse> {
    if (!isValidCallId(req.callId))
      throw grpcError(GrpcStatus.INVALID_ARGUMENT, `call id ${JSON.stringify(req.callId)} is not valid`);
    const call = this.#calls.get(req.callId);
    // Idempotent; the record is only ours to delete when the call is ours.
    if (call === undefined) return CloseCallResponse.create({ wasOpen: false });
    this.#release(call);
    await this.#deleteRecord(req.callId);
    this.#ctx.log.info({ callId: req.callId, reason: req.reason }, 'call closed');
    return CloseCallResponse.create({ wasOpen: true });
  }

  async #describeCall(req: CallRef): Promise<TokenizerCallDescription> {
    if (!isValidCallId(req.callId))
      throw grpcError(GrpcStatus.INVALID_ARGUMENT, `call id ${JSON.stringify(req.callId)} is not valid`);
    const call = this.#calls.get(req.callId);
    if (call === undefined) throw grpcError(GrpcStatus.NOT_FOUND, `call ${req.callId} is not open here`);
    return TokenizerCallDescription.create({
      callId: call.callId,
      rtp: call.rtp,
      format: call.format,
      packetsReceived: BigInt(call.media.counters.packetsOk),
      packetsLost: BigInt(call.media.counters.packetsLost),
      jitterMs: call.media.jitterMs,
      chunksPublished: BigInt(call.chunksPublished),
    });
  }

  #modelInfo(): ModelInfo {
    const m = this.#tokenizer.manifest;
    const root = repoRoot();
    const rel = relative(root, this.#manifestPath);
    return ModelInfo.create({
      name: rel.startsWith('..') ? this.#manifestPath : rel,
      format: `${m.format}/${m.version}`,
      sha256: m.sha256,
      chunkMs: this.#chunkMs,
      unitsPerChunk: this.#tokenizer.unitsPerChunk,
      unitCount: m.unitCount,
      sampleRate: m.sampleRate,
    });
  }

  // --- calls ---

  async #bindFreePort(): Promise<{ socket: Socket; port: number }> {
    const host = this.#ctx.config.DUET_TOKENIZER_RTP_HOST;
    for (let attempt = 0; attempt < this.#ports.size; attempt++) {
      const port = this.#ports.acquire();
      if (port === undefined) break;
      try {
        return { socket: await bindRtpSocket(host, port), port };
      } catch (error) {
        // Taken by another process: leave it marked for now, try the next one.
        this.#ctx.log.debug({ port, err: error }, 'rtp port unavailable');
        setTimeout(() => this.#ports.release(port), 10_000).unref();
      }
    }
    throw grpcError(GrpcStatus.RESOURCE_EXHAUSTED, 'no free RTP port in the configured range');
  }

  async #attach(
    callId: string,
    firstTick: number,
    format: MediaFormat,
    socket: Socket,
    port: number,
  ): Promise<Call> {
    const media = await CallMedia.create({
      codec: format.codec,
      payloadType: format.payloadType,
      jitterMs: this.#ctx.config.DUET_TOKENIZER_JITTER_MS,
      chunkSamples: this.#tokenizer.chunkSamples,
      cushionSamples: (CUSHION_MS * MODEL_SAMPLE_RATE) / 1000,
    });
    const host =
      this.#ctx.config.DUET_TOKENIZER_RTP_ADVERTISE_HOST ?? this.#ctx.config.DUET_TOKENIZER_RTP_HOST;
    const call: Call = {
      callId,
      firstTick,
      format,
      rtp: RtpEndpoint.create({ host, port }),
      port,
      socket,
      media,
      stream: this.#tokenizer.openStream(),
      chunksPublished: 0,
      closed: false,
    };
    socket.on('message', (datagram) => this.#onDatagram(call, datagram));
    socket.on('error', (error) => this.#ctx.log.warn({ callId, err: error }, 'rtp socket error'));
    this.#calls.set(callId, call);
    this.#metrics.activeCalls.set(this.#calls.size);
    return call;
  }

  #onDatagram(call: Call, datagram: Buffer): void {
    if (call.closed) return;
    let result: PacketResult;
    try {
      const outcome = call.media.receive(datagram, performance.now());
      result = outcome.result;
      if (outcome.ssrcChanged) {
        this.#metrics.ssrcChanges.inc();
        this.#ctx.log.info({ callId: call.callId, ssrc: call.media.ssrc }, 'new rtp stream (ssrc)');
      }
    } catch (error) {
      result = 'malformed';
      this.#logBad(`rtp-error:${call.callId}`, { callId: call.callId, err: error }, 'rtp packet failed');
    }
    this.#metrics.rtpPackets.inc({ result });
    // Decode what is due now rather than all of it at the tick: spreads the decode and resample
    // work over the chunk and keeps it off the tick's critical path. The FIFO holds the same
    // audio at the cut either way.
    if (result === 'ok') this.#drain(call, performance.now());
    if (result !== 'ok' && result !== 'rtcp')
      this.#logBad(`rtp:${result}:${call.callId}`, { callId: call.callId, result }, 'rtp packet dropped');
  }

  #drain(call: Call, nowMs: number): void {
    const drained = call.media.drain(nowMs);
    const m = this.#metrics;
    if (drained.lostPackets > 0) m.rtpLost.inc(drained.lostPackets);
    if (drained.concealedFrames > 0) m.concealedFrames.inc(drained.concealedFrames);
    if (drained.decodeErrors > 0) m.decodeErrors.inc(drained.decodeErrors);
  }

  /** Forgets a call locally: socket, media, stream, port. Idempotent. */
  #release(call: Call): void {
    if (call.closed) return;
    call.closed = true;
    if (this.#calls.get(call.callId) === call) this.#calls.delete(call.callId);
    try {
      call.socket.close();
    } catch {
      // already closed
    }
    call.media.close();
    call.stream.close();
    this.#ports.release(call.port);
    this.#metrics.activeCalls.set(this.#calls.size);
  }

  async #deleteRecord(callId: string): Promise<void> {
    try {
      await this.#ctx.js.calls.delete(callRecordKey(callId, 'tokenizer'));
    } catch (error) {
      this.#ctx.log.warn({ callId, err: error }, 'cannot delete the call record');
    }
  }

  /** Drops a call by this service's own decision and tells everyone (CallEvent CLOSED). */
  #dropCall(call: Call, reason: string): void {
    this.#release(call);
    this.#ctx.log.warn({ callId: call.callId, reason }, 'call dropped');
    void this.#deleteRecord(call.callId);
    const event = CallEvent.create({
      callId: call.callId,
      kind: CallEventKind.CALL_EVENT_KIND_CLOSED,
      source: this.#source,
      detail: reason,
      atMs: BigInt(Date.now()),
    });
    try {
      this.#ctx.nc.publish(subjects.callEvent(call.callId), CallEvent.encode(event).finish());
    } catch (error) {
      this.#ctx.log.warn({ callId: call.callId, err: error }, 'cannot publish the CLOSED event');
    }
  }

  #checkRtpTimeouts(): void {
    const now = performance.now();
    const timeout = this.#ctx.config.DUET_TOKENIZER_RTP_TIMEOUT_MS;
    for (const call of [...this.#calls.values()]) {
      const last = call.media.lastPacketAtMs;
      if (last !== undefined && now - last > timeout) this.#dropCall(call, 'rtp timeout');
    }
  }

  /** Restart: carry on the calls this replica (same instance id) held, on the same ports. */
  async #reloadCalls(): Promise<void> {
    const kv = this.#ctx.js.calls;
    const keys: string[] = [];
    for await (const key of await kv.keys('*.tokenizer')) keys.push(key);
    for (const key of keys) {
      let record: TokenizerCallRecord;
      try {
        const entry = await kv.get(key);
        if (entry === null || entry.operation !== 'PUT') continue;
        record = decodeMessage(TokenizerCallRecord, 'TokenizerCallRecord', entry.value);
      } catch (error) {
        this.#metrics.badMessages.inc({ reason: 'malformed_call_record' });
        this.#ctx.log.warn({ key, err: error }, 'unreadable tokenizer call record');
        continue;
      }
      if (record.instanceId !== this.#ctx.instanceId) continue;
      if (!isValidCallId(record.callId) || record.format === undefined || record.rtp === undefined) {
        this.#metrics.badMessages.inc({ reason: 'malformed_call_record' });
        continue;
      }
      const port = record.rtp.port;
      const inRange = this.#ports.reserve(port);
      let socket: Socket;
      try {
        socket = await bindRtpSocket(this.#ctx.config.DUET_TOKENIZER_RTP_HOST, port);
      } catch (error) {
        if (inRange) this.#ports.release(port);
        this.#ctx.log.warn({ callId: record.callId, port, err: error }, 'cannot re-bind the call port');
        // Not attached: publish the event and delete the record without a Call object.
        await this.#deleteRecord(record.callId);
        const event = CallEvent.create({
          callId: record.callId,
          kind: CallEventKind.CALL_EVENT_KIND_CLOSED,
          source: this.#source,
          detail: `rtp port ${port} taken on restart`,
          atMs: BigInt(Date.now()),
        });
        this.#ctx.nc.publish(subjects.callEvent(record.callId), CallEvent.encode(event).finish());
        continue;
      }
      try {
        await this.#attach(record.callId, Number(record.firstTick), record.format, socket, port);
        this.#ctx.log.info({ callId: record.callId, port }, 'call reloaded');
      } catch (error) {
        socket.close();
        if (inRange) this.#ports.release(port);
        this.#ctx.log.warn({ callId: record.callId, err: error }, 'cannot reload the call');
      }
    }
  }

  // --- NATS ---

  #subscribe(): void {
    const nc = this.#ctx.nc;
    this.#subscriptions.push(
      nc.subscribe(subjects.tick, {
        callback: (error, msg) => {
          if (error) return;
          let tick: Tick;
          try {
            tick = decodeMessage(Tick, 'Tick', msg.data);
          } catch (e) {
            this.#bad('malformed_tick', { err: e });
            return;
          }
          this.#enqueueTick(tick);
        },
      }),
      nc.subscribe(subjects.allCallEvents, {
        callback: (error, msg) => {
          if (error) return;
          let event: CallEvent;
          try {
            event = decodeMessage(CallEvent, 'CallEvent', msg.data);
          } catch (e) {
            this.#bad('malformed_call_event', { subject: msg.subject, err: e });
            return;
          }
          if (event.kind !== CallEventKind.CALL_EVENT_KIND_CLOSED) return;
          const callId = event.callId || callIdOfSubject(msg.subject) || '';
          const call = this.#calls.get(callId);
          if (call === undefined || event.source === this.#source) return;
          this.#release(call);
          void this.#deleteRecord(callId);
          this.#ctx.log.info({ callId, by: event.source, detail: event.detail }, 'call closed by event');
        },
      }),
    );
  }

  #watchNats(): void {
    void (async () => {
      for await (const s of this.#ctx.nc.status()) {
        if (s.type === 'disconnect') this.#natsConnected = false;
        else if (s.type === 'reconnect') this.#natsConnected = true;
      }
    })().catch(() => undefined);
  }

  // --- ticks ---

  #enqueueTick(tick: Tick): void {
    if (this.#closed) return;
    if (this.#pendingTicks >= MAX_PENDING_TICKS) {
      this.#bad('tick_backlog', { seq: String(tick.seq) });
      return;
    }
    this.#pendingTicks++;
    this.#tickChain = this.#tickChain
      .then(() => this.#onTick(tick))
      .catch((error: unknown) => this.#ctx.log.error({ err: error, seq: String(tick.seq) }, 'tick failed'))
      .finally(() => {
        this.#pendingTicks--;
      });
  }

  async #onTick(tick: Tick): Promise<void> {
    if (this.#closed) return;
    const seq = Number(tick.seq);
    if (!Number.isSafeInteger(seq)) {
      this.#bad('bad_tick_seq', { seq: String(tick.seq) });
      return;
    }
    if (tick.chunkMs !== this.#chunkMs)
      this.#bad('chunk_ms_mismatch', { tickChunkMs: tick.chunkMs, chunkMs: this.#chunkMs });
    const verdict = this.#ticks.observe(seq);
    if (verdict.kind === 'stale') {
      this.#bad('stale_tick', { seq, last: this.#ticks.last });
      return;
    }
    if (verdict.kind === 'next' && verdict.missed > 0) {
      this.#metrics.tickGaps.inc(verdict.missed);
      this.#logBad('tick-gap', { seq, missed: verdict.missed }, 'clock ticks missed');
    }

    const now = performance.now();
    const m = this.#metrics;
    const due: { call: Call; chunkIndex: number; pcm: Float32Array }[] = [];
    for (const call of this.#calls.values()) {
      const chunkIndex = seq - 1 - call.firstTick;
      if (chunkIndex < 0) continue;
      this.#drain(call, now);
      const cut = call.media.cut();
      if (cut.underrunSamples > 0) m.underruns.inc();
      if (cut.overrunSamples > 0) m.overruns.inc();
      if (call.media.lastPacketAtMs !== undefined) m.rtpJitter.observe(call.media.jitterMs);
      due.push({ call, chunkIndex, pcm: cut.pcm });
    }
    if (due.length === 0) return;

    const started = performance.now();
    const results = await this.#tokenizer.tokenize(due.map((d) => ({ stream: d.call.stream, pcm: d.pcm })));
    m.tokenizeMs.observe(performance.now() - started);
    m.batchSize.observe(due.length);

    const scheduledAt = Number(tick.scheduledAtMs);
    for (const [i, d] of due.entries()) {
      const result = results[i]!;
      if (d.call.closed) continue;
      if (result instanceof Error) {
        this.#bad('tokenize_failed', { callId: d.call.callId, err: result });
        continue;
      }
      const producedAt = Date.now();
      const chunk = UnitChunk.create({
        callId: d.call.callId,
        speaker: Speaker.SPEAKER_USER,
        chunkIndex: BigInt(d.chunkIndex),
        units: result,
        producedAtMs: BigInt(producedAt),
      });
      this.#units.publish(
        subjects.userUnits(d.call.callId),
        UnitChunk.encode(chunk).finish(),
        `${d.call.callId}/${d.chunkIndex}`,
      );
      d.call.chunksPublished++;
      m.chunksPublished.inc();
      m.chunkLatency.observe(Math.max(0, producedAt - scheduledAt));
    }
  }

  // --- bad input ---

  #bad(reason: string, fields: Record<string, unknown>): void {
    this.#metrics.badMessages.inc({ reason });
    this.#logBad(reason, { reason, ...fields }, 'bad input');
  }

  #logBad(key: string, fields: Record<string, unknown>, msg: string): void {
    const { ok, suppressed } = this.#logLimiter.allow(key);
    if (ok) this.#ctx.log.warn({ ...fields, suppressed }, msg);
  }
}
