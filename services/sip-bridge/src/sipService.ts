// The SIP bridge service: mediasoup workers (the SFU's pool, plain transports only), the UAS on
// UDP/TCP, the call services through DuetControl, inference capacity from worker heartbeats
// (so INVITEs beyond capacity are refused at once), DTMF published as call events, and the
// call services' CLOSED events (a call closed anywhere is hung up here with a BYE).

import { CallEvent, CallEventKind, decodeMessage, WorkerHeartbeat } from '@duet/protocol';
import {
  CallSetupError,
  callIdOfSubject,
  DuetControl,
  GrpcStatus,
  KeyedRateLimiter,
  type ServiceContext,
  type ServiceHandle,
  subjects,
} from '@duet/runtime';
import { loadMediasoup, resolveWorkerBin, WorkerPool } from '@duet/sfu/media';
import type { SipConfig } from './config.js';
import { createSipMetrics } from './metrics.js';
import { TrunkGuard } from './security.js';
import { SipMedia } from './sipMedia.js';
import { startSipTransport } from './sipTransport.js';
import { type CallBackend, type MediaHandle, NoCapacityError, SipUas } from './uas.js';

/** Free call slots per inference worker, from its heartbeats (stale ones are ignored). */
class CapacityView {
  private readonly workers = new Map<string, { free: number; at: number; unseen: number }>();
  /** Calls this bridge is opening (not yet placed: not in any heartbeat). */
  pending = 0;

  update(hb: WorkerHeartbeat, now: number): void {
    // A heartbeat counts every call placed on its worker so far (unseen: placed since the last one).
    if (hb.leaving) this.workers.delete(hb.workerId);
    else this.workers.set(hb.workerId, { free: hb.capacity - hb.activeCalls, at: now, unseen: 0 });
  }

  /** A call this bridge opened was placed on `workerId`: counted until that worker's next heartbeat. */
  placed(workerId: string): void {
    const w = this.workers.get(workerId);
    if (w) w.unseen++;
  }

  /** True when at least one worker's heartbeat is fresh (hasCapacity then rests on figures). */
  known(now: number): boolean {
    for (const w of this.workers.values()) if (now - w.at <= 2_000) return true;
    return false;
  }

  /** True unless every fresh worker is known to be full (no heartbeat yet: let inference decide). */
  hasCapacity(now: number): boolean {
    let known = false;
    let free = 0;
    for (const w of this.workers.values()) {
      if (now - w.at > 2_000) continue;
      known = true;
      free += w.free - w.unseen;
    }
    return !known || free - this.pending > 0;
  }
}

export async function startSipBridge(ctx: ServiceContext<SipConfig>): Promise<ServiceHandle> {
  const { config, log, nc, registry, instanceId } = ctx;
  const metrics = createSipMetrics(registry);
  const guard = new TrunkGuard(config.DUET_SIP_TRUNKS, config.DUET_SIP_REALM);
  const workerBin = resolveWorkerBin(config.DUET_SIP_WORKER_BIN);
  const mediasoup = await loadMediasoup(workerBin);
  const control = new DuetControl({
    inference: config.DUET_SIP_INFERENCE_ADDR,
    tokenizer: config.DUET_SIP_TOKENIZER_ADDR,
    vocoder: config.DUET_SIP_VOCODER_ADDR,
  });
  const announcedIp = config.DUET_SIP_ANNOUNCED_IP ?? config.DUET_SIP_MEDIA_IP;
  const capacity = new CapacityView();

  const pool = await WorkerPool.create({
    mediasoup,
    workers: config.DUET_SIP_WORKERS,
    logLevel: config.DUET_SIP_WORKER_LOG_LEVEL,
    listenIp: config.DUET_SIP_MEDIA_IP,
    rtcPortMin: config.DUET_SIP_MS_PORT_MIN,
    rtcPortMax: config.DUET_SIP_MS_PORT_MAX,
    webRtcServer: false,
    log,
    // A dead worker's routers close: each call ends through its router's close event (BYE).
    onWorkerDied: () => metrics.workers.set(pool.live.length),
    onWorkerReplaced: () => metrics.workers.set(pool.live.length),
  });
  metrics.workers.set(pool.live.length);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => pool.stopReplacing());

  const publishEvent = (callId: string, kind: CallEventKind, detail: string) => {
    const event: CallEvent = {
      callId,
      kind,
      source: `sip-bridge/${instanceId}`,
      detail,
      atMs: BigInt(Date.now()),
    };
    nc.publish(subjects.callEvent(callId), CallEvent.encode(event).finish());
  };

  const backend: CallBackend = {
    hasCapacity: () => capacity.hasCapacity(Date.now()),
    capacityKnown: () => capacity.known(Date.now()),
    async open(request) {
      const slot = pool.pick();
      if (!slot) throw new Error('no live media worker');
      slot.calls++;
      // Counted from here until the call is placed on inference (or its setup failed).
      capacity.pending++;
      let media: SipMedia;
      try {
        media = await SipMedia.create({
          callId: request.callId,
          slot,
          negotiated: request.negotiated,
          mediaIp: config.DUET_SIP_MEDIA_IP,
          ...(config.DUET_SIP_ANNOUNCED_IP ? { announcedIp: config.DUET_SIP_ANNOUNCED_IP } : {}),
          rtpPortMin: config.DUET_SIP_RTP_PORT_MIN,
          rtpPortMax: config.DUET_SIP_RTP_PORT_MAX,
          comedia: config.DUET_SIP_COMEDIA,
          onDtmf: request.onDtmf,
          onStranger: (address) =>
            log.warn(
              { callId: request.callId, from: address, expected: request.negotiated.remote },
              'RTP from an address other than the SDP one dropped (set DUET_SIP_COMEDIA=true for callers behind NAT)',
            ),
          onClosed: request.onMediaClosed,
        });
      } catch (error) {
        slot.calls--;
        capacity.pending--;
        throw error;
      }
      let seenIn = 0;
      let seenOut = 0;
      let released = false;
      let servicesStarted = false;
      // capacity.pending counts this call until it is placed, fails, or is released unopened.
      let counted = true;
      const uncount = () => {
        if (!counted) return;
        counted = false;
        capacity.pending--;
      };
      const handle: MediaHandle = {
        port: media.localPort,
        timings: media.timings,
        async openServices() {
          if (servicesStarted) throw new Error('openServices called twice');
          servicesStarted = true;
          try {
            const call = await media.openServices(control, request.isCancelled);
            capacity.placed(call.placement.workerId);
          } catch (error) {
            handle.close();
            if (error instanceof CallSetupError && error.code === GrpcStatus.RESOURCE_EXHAUSTED) {
              throw new NoCapacityError(error.message);
            }
            throw error;
          } finally {
            uncount();
          }
        },
        setHeld: (held) => media.setHeld(held),
        idleMs: (now) => (media.front.isHeld ? undefined : now - media.front.lastInbound),
        takeCounts: () => {
          const c = media.front.counts;
          const d = { in: c.in - seenIn, out: c.out - seenOut };
          seenIn = c.in;
          seenOut = c.out;
          return d;
        },
        close: () => {
          if (released) return;
          released = true;
          slot.calls--;
          media.close();
          // A call whose services phase never started is no longer being opened.
          if (!servicesStarted) uncount();
        },
      };
      return handle;
    },
    closeCall(callId, reason) {
      void control.closeCall(callId, reason).catch(() => undefined);
    },
  };

  const uas = new SipUas({
    log,
    metrics,
    backend,
    guard,
    limiter: new KeyedRateLimiter(config.DUET_SIP_INVITES_PER_SECOND, 1_000, config.DUET_SIP_INVITE_BURST),
    publishDtmf: (callId, digit) => publishEvent(callId, CallEventKind.CALL_EVENT_KIND_DTMF, digit),
    codecs: config.DUET_SIP_CODECS,
    announcedIp,
    sipPort: 0,
    maxMessageBytes: config.DUET_SIP_MAX_MESSAGE_BYTES,
    maxCalls: config.DUET_SIP_MAX_CALLS,
    maxCallsPerSource: config.DUET_SIP_MAX_CALLS_PER_SOURCE,
    retryAfterS: config.DUET_SIP_RETRY_AFTER_S,
    answerDelayMs: config.DUET_SIP_ANSWER_DELAY_MS,
    answerOn: config.DUET_SIP_ANSWER_ON,
    rtpTimeoutMs: config.DUET_SIP_RTP_TIMEOUT_MS,
    t1Ms: config.DUET_SIP_T1_MS,
    t2Ms: config.DUET_SIP_T2_MS,
  });

  const transport = await startSipTransport({
    host: config.DUET_SIP_LISTEN_IP,
    port: config.DUET_SIP_PORT,
    udp: config.DUET_SIP_TRANSPORTS.includes('udp'),
    tcp: config.DUET_SIP_TRANSPORTS.includes('tcp'),
    maxMessageBytes: config.DUET_SIP_MAX_MESSAGE_BYTES,
    onMessage: (data, flow) => uas.receive(data, flow),
    onRefused: (reason) => metrics.errors.inc({ reason }),
  });
  uas.setSipPort(transport.port);
  // Always printed: tests and `duet start` read the SIP port from it.
  log
    .child({}, { level: 'info' })
    .info({ sipPort: transport.port, transports: config.DUET_SIP_TRANSPORTS, announcedIp }, 'sip listening');

  const heartbeats = nc.subscribe(subjects.inferenceHeartbeat, {
    callback: (error, msg) => {
      if (error) return;
      try {
        capacity.update(decodeMessage(WorkerHeartbeat, 'WorkerHeartbeat', msg.data), Date.now());
      } catch {
        // A malformed heartbeat says nothing about capacity.
      }
    },
  });
  const events = nc.subscribe(subjects.allCallEvents, {
    callback: (error, msg) => {
      if (error) return;
      const callId = callIdOfSubject(msg.subject);
      if (!callId?.startsWith('sip-')) return;
      try {
        const event = decodeMessage(CallEvent, 'CallEvent', msg.data);
        if (event.kind === CallEventKind.CALL_EVENT_KIND_CLOSED && !event.source.startsWith('sip-bridge/')) {
          uas.closeByService(callId, `closed by ${event.source}: ${event.detail}`);
        }
      } catch {
        // Not ours to judge: the services count malformed events.
      }
    },
  });

  return {
    ready: () =>
      pool.live.length > 0 ? { ready: true } : { ready: false, reason: 'no live mediasoup worker' },
    async drain(signal) {
      uas.drain();
      while (uas.activeCalls > 0 && !signal.aborted) await new Promise((r) => setTimeout(r, 100));
    },
    async close() {
      heartbeats.unsubscribe();
      events.unsubscribe();
      uas.close();
      // Let the BYEs and closeCall RPCs of the calls just ended go out before the sockets close.
      await new Promise((r) => setTimeout(r, 200));
      await transport.close();
      pool.close();
      control.close();
    },
  };
}
