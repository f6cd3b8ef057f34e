// The SFU service: mediasoup workers, one SfuCall per caller, the signalling server, and the
// call services' CLOSED events (a call closed anywhere ends here too).

import { CallEvent, CallEventKind, decodeMessage } from '@duet/protocol';
import {
  callIdOfSubject,
  DuetControl,
  type ServiceContext,
  type ServiceHandle,
  subjects,
} from '@duet/runtime';
import { bundleClient } from './clientBundle.js';
import type { SfuConfig } from './config.js';
import { loadMediasoup, resolveWorkerBin } from './mediasoupLoader.js';
import { createSfuMetrics } from './metrics.js';
import { type CallEndReason, opusCodec, SfuCall } from './sfuCall.js';
import { startSignallingServer } from './signallingServer.js';
import { SessionRefusal, SignallingSession } from './signallingSession.js';
import { stepDurations, type Timeline } from './timeline.js';
import type { CallGrant } from './token.js';
import { WorkerPool } from './workerPool.js';

export async function startSfu(ctx: ServiceContext<SfuConfig>): Promise<ServiceHandle> {
  const { config, log, nc, registry } = ctx;
  const metrics = createSfuMetrics(registry);
  const workerBin = resolveWorkerBin(config.DUET_SFU_WORKER_BIN);
  const mediasoup = await loadMediasoup(workerBin);
  const calls = new Map<string, SfuCall>();
  const sessions = new Set<SignallingSession>();
  const control = new DuetControl({
    inference: config.DUET_SFU_INFERENCE_ADDR,
    tokenizer: config.DUET_SFU_TOKENIZER_ADDR,
    vocoder: config.DUET_SFU_VOCODER_ADDR,
  });
  let draining = false;

  const pool = await WorkerPool.create({
    mediasoup,
    workers: config.DUET_SFU_WORKERS,
    logLevel: config.DUET_SFU_WORKER_LOG_LEVEL,
    listenIp: config.DUET_SFU_LISTEN_IP,
    ...(config.DUET_SFU_ANNOUNCED_IP ? { announcedIp: config.DUET_SFU_ANNOUNCED_IP } : {}),
    rtcPortMin: config.DUET_SFU_RTC_PORT_MIN,
    rtcPortMax: config.DUET_SFU_RTC_PORT_MAX,
    log,
    // The routers of a dead worker close with it: each call ends through its router's close event.
    onWorkerDied: () => {
      metrics.workerDeaths.inc();
      metrics.workers.set(pool.live.length);
    },
    onWorkerReplaced: (slot) => {
      metrics.workers.set(pool.live.length);
      log.info({ worker: slot.index, pid: slot.worker.pid }, 'mediasoup worker replaced');
    },
  });
  metrics.workers.set(pool.live.length);
  log.info({ workers: pool.live.length, workerBin }, 'mediasoup workers up');
  // Every call's router has the same RTP capabilities (the same codec): served at
  // GET /rtp-capabilities, so that a page loads its mediasoup-client Device before the click.
  const routerRtpCapabilities = await probeRouterCapabilities(pool, config.DUET_SFU_OPUS_PT);
  // The first call would otherwise also pay the gRPC connections to the call services.
  warmUpControl(control, log);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => pool.stopReplacing());

  const openCall = async (
    grant: CallGrant,
    onEnded: (reason: CallEndReason, detail: string) => void,
    timeline: Timeline,
  ) => {
    if (draining) throw new SessionRefusal('shutdown', 'the SFU is draining');
    if (calls.has(grant.callId))
      throw new SessionRefusal('callInUse', `call ${grant.callId} is already active`);
    if (calls.size >= config.DUET_SFU_MAX_CALLS) throw new SessionRefusal('noCapacity', 'the SFU is full');
    const slot = pool.pick();
    if (!slot) throw new SessionRefusal('noCapacity', 'no live media worker');
    timeline.mark('workerPicked');
    const started = performance.now();
    const call = await SfuCall.create({
      timeline,
      // The server's side of the connect time (ms since the caller's socket opened), per step.
      onMediaUp: (c, t) => {
        const at = t.toJSON();
        log.info({ callId: c.callId, worker: slot.index, at, steps: stepDurations(at) }, 'call timings');
      },
      callId: grant.callId,
      agent: grant.agent,
      slot,
      control,
      listenIp: config.DUET_SFU_LISTEN_IP,
      ...(config.DUET_SFU_ANNOUNCED_IP ? { announcedIp: config.DUET_SFU_ANNOUNCED_IP } : {}),
      opusPayloadType: config.DUET_SFU_OPUS_PT,
      onClosed: (c, reason, detail) => {
        if (calls.get(c.callId) === c) calls.delete(c.callId);
        slot.calls--;
        metrics.activeCalls.set(calls.size);
        metrics.calls.inc({ reason });
        log.info(
          { callId: c.callId, reason, detail, seconds: Math.round((performance.now() - c.createdAt) / 1000) },
          'call ended',
        );
        onEnded(reason, detail);
      },
    });
    slot.calls++;
    calls.set(grant.callId, call);
    metrics.activeCalls.set(calls.size);
    call.opened.then(
      () => {
        metrics.setupMs.observe(performance.now() - started);
        log.info(
          {
            callId: call.callId,
            agent: grant.agent,
            worker: slot.index,
            setupMs: Math.round(performance.now() - started),
          },
          'call open',
        );
      },
      (error: unknown) =>
        log.warn({ callId: call.callId, err: (error as Error).message }, 'call setup failed'),
    );
    return call;
  };

  const assets = await bundleClient();
  const server = await startSignallingServer({
    host: config.DUET_BIND_HOST,
    port: config.DUET_SFU_PORT,
    allowedOrigins: config.DUET_SFU_ALLOWED_ORIGINS,
    connectionsPerMinute: config.DUET_SFU_CONNECTIONS_PER_MINUTE,
    maxMessageBytes: config.DUET_SFU_MAX_MESSAGE_BYTES,
    assets,
    routerRtpCapabilities,
    metrics,
    log,
    onSocket: (ws, req) => {
      const session = new SignallingSession(
        ws,
        {
          tokenSecret: config.DUET_SFU_TOKEN_SECRET,
          joinTimeoutMs: config.DUET_SFU_JOIN_TIMEOUT_MS,
          idleTimeoutMs: config.DUET_SFU_IDLE_TIMEOUT_MS,
          maxMessageBytes: config.DUET_SFU_MAX_MESSAGE_BYTES,
          joinExtras: { pipelineDelayMs: config.DUET_SFU_PIPELINE_DELAY_MS },
          metrics,
          log,
          openCall,
        },
        req.socket.remoteAddress ?? 'unknown',
      );
      sessions.add(session);
      ws.once('close', () => sessions.delete(session));
    },
    ...(config.DUET_SFU_DEBUG_DUMP
      ? {
          debugDump: async () => ({
            calls: await Promise.all([...calls.values()].map((c) => c.dump())),
            workers: await Promise.all(
              pool.live.map(async (s) => ({
                index: s.index,
                pid: s.worker.pid,
                dump: await s.worker.dump(),
                webRtcServer: await s.webRtcServer?.dump(),
              })),
            ),
          }),
        }
      : {}),
  });
  // Always printed: tests and `duet start` read the signalling port from it.
  log.child({}, { level: 'info' }).info({ sfuPort: server.port }, 'signalling listening');

  const eventSub = nc.subscribe(subjects.allCallEvents, {
    callback: (error, msg) => {
      if (error) return;
      const callId = callIdOfSubject(msg.subject);
      const call = callId === undefined ? undefined : calls.get(callId);
      if (!call) return;
      try {
        const event = decodeMessage(CallEvent, 'CallEvent', msg.data);
        if (event.kind === CallEventKind.CALL_EVENT_KIND_CLOSED) {
          call.close('closed_by_service', `closed by ${event.source}: ${event.detail}`);
        }
      } catch {
        metrics.rejected.inc({ reason: 'malformed_call_event' });
      }
    },
  });

  return {
    ready: () =>
      pool.live.length > 0 ? { ready: true } : { ready: false, reason: 'no live mediasoup worker' },
    async drain(signal) {
      draining = true;
      while (calls.size > 0 && !signal.aborted) await new Promise((r) => setTimeout(r, 100));
    },
    async close() {
      eventSub.unsubscribe();
      for (const s of sessions) s.shutdown();
      for (const c of calls.values()) c.close('shutdown', 'server shutting down');
      await server.close();
      // Let the closeCall RPCs of the calls just ended go out before the channels close.
      await new Promise((r) => setTimeout(r, 200));
      pool.close();
      control.close();
    },
  };
}

/** The RTP capabilities of a call's router, read from a router made and closed at start. */
async function probeRouterCapabilities(pool: WorkerPool, opusPayloadType: number) {
  const slot = pool.pick();
  if (!slot) throw new Error('no live mediasoup worker');
  const router = await slot.worker.createRouter({ mediaCodecs: [opusCodec(opusPayloadType)] });
  const capabilities = router.rtpCapabilities;
  router.close();
  return capabilities;
}

/**
 * Connects the control channels to inference, tokenizer and vocoder ahead of the first call, in
 * the background (a service not up yet is connected to by the first call, as before).
 */
function warmUpControl(control: DuetControl, log: ServiceContext<SfuConfig>['log']): void {
  const started = performance.now();
  const deadline = Date.now() + 30_000;
  for (const [name, client] of [
    ['inference', control.inference],
    ['tokenizer', control.tokenizer],
    ['vocoder', control.vocoder],
  ] as const) {
    client.waitForReady(deadline, (error) => {
      if (error) log.debug({ service: name, err: error.message }, 'control channel not ready yet');
      else log.debug({ service: name, ms: Math.round(performance.now() - started) }, 'control channel ready');
    });
  }
}
