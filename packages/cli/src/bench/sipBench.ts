/**
 * `pnpm bench:sip`: a burst of simultaneous SIP INVITEs on loopback against the SIP bridge in
 * front of the whole loop (nats-server, clock, tokenizer, inference, vocoder, sip-bridge, each its
 * own process). Each answered call ACKs, sends PCMU RTP (20 ms) and counts the agent's RTP for
 * BENCH_HOLD_S seconds, then hangs up. Calls beyond capacity must get 503 with Retry-After. Two
 * bursts: the first (held 3 s) meets a cold system, the second is measured. Prints setup p50/p99
 * (INVITE sent to 200 OK received), services ready p50/p99 (INVITE received to the call open on
 * every call service with its audio wired, from the bridge's log) with its split between the
 * bridge and the call services, the first agent RTP packet per call (INVITE sent to its arrival),
 * refusal p50/p99, calls held, audio both ways; the last line is one JSON object (the second
 * burst's figures; failed_calls counts both, failed_silent_start the failed calls whose agent
 * audio, once it started, flowed but started too late in the hold for half its packets).
 *
 * Env: BENCH_CALLS (INVITEs in the burst, default 100), BENCH_SLOTS (inference capacity, default
 * 16), BENCH_HOLD_S (default 20), BENCH_ANSWER_ON (the bridge's DUET_SIP_ANSWER_ON, default its own:
 * media).
 */

import { randomBytes } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { mulawEncode } from '@duet/audio';
import { metricValue } from '@duet/runtime/testing';
import { launchSystem } from '../start/launcher.js';

const CALLS = Number(process.env.BENCH_CALLS ?? 100);
const SLOTS = Number(process.env.BENCH_SLOTS ?? 16);
const HOLD_S = Number(process.env.BENCH_HOLD_S ?? 20);
const ANSWER_ON = process.env.BENCH_ANSWER_ON;

interface BenchCall {
  readonly index: number;
  readonly callId: string;
  readonly fromTag: string;
  readonly rtp: Socket;
  readonly rtpPort: number;
  sentAt: number;
  status: number | undefined;
  finalAt: number | undefined;
  retryAfter: string | undefined;
  toHeader: string | undefined;
  remoteRtp: { ip: string; port: number } | undefined;
  received: number;
  /** performance.now() of the agent's first RTP packet. */
  firstAudioAt: number | undefined;
  sent: number;
  byeOk: boolean;
  /** The Reason header of a BYE from the bridge (the call ended from its side). */
  bridgeBye: string | undefined;
}

/** From the bridge's "SIP call services ready" log: ms from its INVITE to the call services ready. */
interface ReadyEntry {
  readonly ready: number;
  /** mediasoup objects and RTP socket, plus the wiring after the services. */
  readonly bridge: number;
  /** The call services' OpenCall. */
  readonly services: number;
}

function quantile(values: number[], q: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? Number.NaN;
}

const round = (v: number) => Math.round(v * 10) / 10;

async function main(): Promise<void> {
  console.log(`starting nats-server and the services (inference slots ${SLOTS}) ...`);
  // Per SIP Call-ID: when the call services were ready (the bridge's clock, from its INVITE) and
  // the bridge's own share of it (mediasoup objects and wiring) vs the call services' OpenCall.
  const readiness = new Map<string, ReadyEntry>();
  // Per SIP Call-ID, from "SIP call answered": the bridge's INVITE to its 200 OK, and of it the local
  // phase (the caller-facing RTP socket).
  const answers = new Map<string, { answer: number; local: number }>();
  const system = await launchSystem({
    env: { inference: { DUET_INFERENCE_SLOTS: String(SLOTS) } },
    onLog: (service, entry) => {
      if (service.startsWith('sip-bridge') && entry.msg === 'SIP call services ready')
        readiness.set(String(entry.sipCallId), {
          ready: Number(entry.readyMs),
          bridge: Number(entry.socketMs) + Number(entry.mediaMs) + Number(entry.wiringMs),
          services: Number(entry.servicesMs),
        });
      else if (service.startsWith('sip-bridge') && entry.msg === 'SIP call answered')
        answers.set(String(entry.sipCallId), {
          answer: Number(entry.setupMs),
          local: Number(entry.socketMs),
        });
      else if (entry.level === 'error' || entry.level === 'fatal') console.error(service, entry);
    },
    sip: {
      env: {
        DUET_SIP_LISTEN_IP: '127.0.0.1',
        DUET_SIP_INVITE_BURST: String(CALLS * 2),
        ...(ANSWER_ON ? { DUET_SIP_ANSWER_ON: ANSWER_ON } : {}),
      },
    },
  });
  const sipPort = system.sip!.port;
  const bridge = system.sip!.process;
  const signalling = createSocket('udp4');
  await new Promise<void>((r) => signalling.bind(0, '127.0.0.1', () => r()));
  const localPort = signalling.address().port;
  const calls = new Map<string, BenchCall>();
  const waiters = new Map<string, (m: { status: number; headers: string }) => void>();

  signalling.on('message', (data) => {
    const text = data.toString('latin1');
    const first = text.slice(0, text.indexOf('\r\n'));
    const header = (name: string) =>
      new RegExp(`^${name}:[ \\t]*(.*)$`, 'im').exec(text.slice(0, text.indexOf('\r\n\r\n')))?.[1]?.trim();
    const callId = header('Call-ID') ?? '';
    const call = calls.get(callId);
    if (!call) return;
    if (!first.startsWith('SIP/2.0 ')) {
      // A request from the bridge (a BYE): answer 200.
      if (first.startsWith('BYE ')) call.bridgeBye = header('Reason') ?? '(no Reason)';
      const lines = text.slice(0, text.indexOf('\r\n\r\n')).split('\r\n').slice(1);
      const copy = lines.filter((l) => /^(Via|From|To|Call-ID|CSeq):/i.test(l));
      signalling.send(
        `SIP/2.0 200 OK\r\n${copy.join('\r\n')}\r\nContent-Length: 0\r\n\r\n`,
        sipPort,
        '127.0.0.1',
      );
      return;
    }
    const status = Number(first.slice(8, 11));
    const cseq = header('CSeq') ?? '';
    if (cseq.endsWith('BYE')) {
      if (status === 200) call.byeOk = true;
      waiters.get(`${callId}|BYE`)?.({ status, headers: text });
      return;
    }
    if (status < 200 || call.status !== undefined) return;
    call.status = status;
    call.finalAt = performance.now();
    call.retryAfter = header('Retry-After');
    call.toHeader = header('To');
    if (status === 200) {
      const body = text.slice(text.indexOf('\r\n\r\n') + 4);
      const ip = /^c=IN IP4 (\S+)/m.exec(body)?.[1];
      const port = Number(/^m=audio (\d+)/m.exec(body)?.[1]);
      if (ip && port) call.remoteRtp = { ip, port };
    }
    const ack = [
      `ACK sip:duet@127.0.0.1:${sipPort} SIP/2.0`,
      `Via: SIP/2.0/UDP 127.0.0.1:${localPort};branch=z9hG4bK${randomBytes(6).toString('hex')}`,
      `From: <sip:bench@127.0.0.1>;tag=${call.fromTag}`,
      `To: ${call.toHeader}`,
      `Call-ID: ${callId}`,
      'CSeq: 1 ACK',
      'Max-Forwards: 70',
      'Content-Length: 0',
      '',
      '',
    ].join('\r\n');
    signalling.send(ack, sipPort, '127.0.0.1');
  });

  const makeCall = async (index: number): Promise<BenchCall> => {
    const rtp = createSocket('udp4');
    await new Promise<void>((r) => rtp.bind(0, '127.0.0.1', () => r()));
    const call: BenchCall = {
      index,
      callId: `bench-${index}-${randomBytes(4).toString('hex')}`,
      fromTag: randomBytes(4).toString('hex'),
      rtp,
      rtpPort: rtp.address().port,
      sentAt: 0,
      status: undefined,
      finalAt: undefined,
      retryAfter: undefined,
      toHeader: undefined,
      remoteRtp: undefined,
      received: 0,
      firstAudioAt: undefined,
      sent: 0,
      byeOk: false,
      bridgeBye: undefined,
    };
    rtp.on('message', () => {
      if (call.received++ === 0) call.firstAudioAt = performance.now();
    });
    calls.set(call.callId, call);
    return call;
  };

  const invite = (call: BenchCall) => {
    const sdp = [
      'v=0',
      `o=bench ${call.index} 1 IN IP4 127.0.0.1`,
      's=-',
      'c=IN IP4 127.0.0.1',
      't=0 0',
      `m=audio ${call.rtpPort} RTP/AVP 0 101`,
      'a=rtpmap:0 PCMU/8000',
      'a=rtpmap:101 telephone-event/8000',
      'a=ptime:20',
      '',
    ].join('\r\n');
    const msg = [
      `INVITE sip:duet@127.0.0.1:${sipPort} SIP/2.0`,
      `Via: SIP/2.0/UDP 127.0.0.1:${localPort};branch=z9hG4bK${randomBytes(6).toString('hex')}`,
      `From: <sip:bench@127.0.0.1>;tag=${call.fromTag}`,
      `To: <sip:duet@127.0.0.1:${sipPort}>`,
      `Call-ID: ${call.callId}`,
      'CSeq: 1 INVITE',
      `Contact: <sip:bench@127.0.0.1:${localPort}>`,
      'Max-Forwards: 70',
      'Content-Type: application/sdp',
      `Content-Length: ${sdp.length}`,
      '',
      sdp,
    ].join('\r\n');
    call.sentAt = performance.now();
    signalling.send(msg, sipPort, '127.0.0.1');
  };

  const bye = (call: BenchCall) => {
    const msg = [
      `BYE sip:duet@127.0.0.1:${sipPort} SIP/2.0`,
      `Via: SIP/2.0/UDP 127.0.0.1:${localPort};branch=z9hG4bK${randomBytes(6).toString('hex')}`,
      `From: <sip:bench@127.0.0.1>;tag=${call.fromTag}`,
      `To: ${call.toHeader}`,
      `Call-ID: ${call.callId}`,
      'CSeq: 2 BYE',
      'Max-Forwards: 70',
      'Content-Length: 0',
      '',
      '',
    ].join('\r\n');
    signalling.send(msg, sipPort, '127.0.0.1');
  };

  // A 20 ms PCMU frame of a gliding tone (what the caller says does not matter to the loop).
  const frames: Buffer[] = [];
  for (let f = 0; f < 50; f++) {
    const pcm = new Int16Array(160);
    for (let i = 0; i < 160; i++) {
      const t = (f * 160 + i) / 8000;
      pcm[i] = Math.round(8000 * Math.sin(2 * Math.PI * (200 + 300 * t) * t));
    }
    frames.push(Buffer.from(mulawEncode(pcm)));
  }
  const rtpPacket = (call: BenchCall, n: number) => {
    const h = Buffer.alloc(12);
    h[0] = 0x80;
    h[1] = n === 0 ? 0x80 : 0;
    h.writeUInt16BE(n & 0xffff, 2);
    h.writeUInt32BE((n * 160) >>> 0, 4);
    h.writeUInt32BE(0x1000 + call.index, 8);
    return Buffer.concat([h, frames[n % frames.length]!]);
  };

  try {
    // Warm-up: one call opens the bridge's gRPC channels to the services (a running bridge has them).
    const warm = await makeCall(-1);
    invite(warm);
    const warmEnd = Date.now() + 10_000;
    while (warm.status === undefined && Date.now() < warmEnd) await new Promise((r) => setTimeout(r, 20));
    if (warm.status === 200) bye(warm);
    await new Promise((r) => setTimeout(r, 1_500));
    calls.delete(warm.callId);
    warm.rtp.close();

    const finite = (v: number) => (Number.isFinite(v) ? v : 0);
    const tokenizerOk = async () =>
      finite(
        metricValue(await system.processes.tokenizer[0]!.metrics(), 'duet_tokenizer_rtp_packets_total', {
          result: 'ok',
        }),
      );
    const q = (values: number[], f: number) => round(quantile(values, f));

    /** One burst of CALLS INVITEs; the answered calls are held with RTP for holdS, then hung up. */
    const burstRound = async (round: number, holdS: number) => {
      const burst = await Promise.all(Array.from({ length: CALLS }, (_, i) => makeCall(round * 1_000 + i)));
      const tokenizerBefore = await tokenizerOk();
      for (const c of burst) invite(c);
      const deadline = Date.now() + 15_000;
      while (burst.some((c) => c.status === undefined) && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 10));
      const answered = burst.filter((c) => c.status === 200);
      const refused = burst.filter((c) => c.status !== undefined && c.status !== 200);
      let n = 0;
      const timer = setInterval(() => {
        for (const c of answered) {
          if (!c.remoteRtp) continue;
          c.rtp.send(rtpPacket(c, n), c.remoteRtp.port, c.remoteRtp.ip);
          c.sent++;
        }
        n++;
      }, 20);
      await new Promise((r) => setTimeout(r, holdS * 1000));
      clearInterval(timer);
      const holdEnd = performance.now();
      const callerPackets = (await tokenizerOk()) - tokenizerBefore;
      for (const c of answered) bye(c);
      await new Promise((r) => setTimeout(r, 2_000));
      const expectedPackets = holdS * 50;
      // A call within capacity fails when it lacks the agent's audio (under half the packets) or its
      // BYE went unanswered; a refusal fails unless it is 503 with Retry-After; no final response fails.
      const failed = [
        ...answered.filter((c) => c.received < expectedPackets / 2 || !c.byeOk),
        ...refused.filter((c) => c.status !== 503 || c.retryAfter === undefined),
        ...burst.filter((c) => c.status === undefined),
      ];
      for (const c of burst) {
        calls.delete(c.callId);
        c.rtp.close();
      }
      const ready = answered.map((c) => readiness.get(c.callId)).filter((r) => r !== undefined);
      const bridgeAnswers = answered.map((c) => answers.get(c.callId)).filter((a) => a !== undefined);
      return {
        answered,
        refused,
        failed,
        // Failed only for a late start: under half the hold's agent packets, yet at least half of
        // those due from the agent's first packet on (the 200 OK came before the call services).
        silentStart: answered.filter(
          (c) =>
            c.received < expectedPackets / 2 &&
            c.byeOk &&
            c.firstAudioAt !== undefined &&
            c.received >= (holdEnd - c.firstAudioAt) / 20 / 2,
        ),
        expectedPackets,
        callerPackets,
        setup: answered.map((c) => c.finalAt! - c.sentAt),
        refusal: refused.map((c) => c.finalAt! - c.sentAt),
        ready: ready.map((r) => r.ready),
        bridgeAnswer: bridgeAnswers.map((a) => a.answer),
        localPhase: bridgeAnswers.map((a) => a.local),
        bridgeShare: ready.map((r) => r.bridge),
        servicesShare: ready.map((r) => r.services),
        firstAudio: answered
          .filter((c) => c.firstAudioAt !== undefined)
          .map((c) => c.firstAudioAt! - c.sentAt),
        bridgeByes: answered.filter((c) => c.bridgeBye !== undefined).map((c) => c.bridgeBye!),
        held: answered.filter((c) => c.received > 0).length,
      };
    };
    type Round = Awaited<ReturnType<typeof burstRound>>;
    const report = (label: string, r: Round, holdS: number) => {
      console.log('');
      console.log(
        `${label}: ${CALLS} INVITEs at once to sip:duet@127.0.0.1:${sipPort} (UDP), inference capacity ${SLOTS}`,
      );
      console.log(
        `  answered ${r.answered.length} and held ${r.held} for ${holdS} s, refused ${r.refused.length}, no answer ${CALLS - r.answered.length - r.refused.length}`,
      );
      console.log(`  setup (INVITE -> 200 OK)   p50 ${q(r.setup, 0.5)} ms  p99 ${q(r.setup, 0.99)} ms`);
      console.log(
        `    in the bridge            p50 ${q(r.bridgeAnswer, 0.5)} ms  p99 ${q(r.bridgeAnswer, 0.99)} ms (INVITE received -> 200 OK sent), of which the RTP socket p50 ${q(r.localPhase, 0.5)} ms  p99 ${q(r.localPhase, 0.99)} ms`,
      );
      console.log(
        `  services ready             p50 ${q(r.ready, 0.5)} ms  p99 ${q(r.ready, 0.99)} ms (the bridge: INVITE -> call open on every service, audio wired; ${r.ready.length} calls)`,
      );
      console.log(
        `    of which the bridge      p50 ${q(r.bridgeShare, 0.5)} ms  p99 ${q(r.bridgeShare, 0.99)} ms (RTP socket, mediasoup objects, wiring)`,
      );
      console.log(
        `    call services' OpenCall  p50 ${q(r.servicesShare, 0.5)} ms  p99 ${q(r.servicesShare, 0.99)} ms (inference placement, tokenizer, vocoder)`,
      );
      console.log(
        `  first agent RTP            p50 ${q(r.firstAudio, 0.5)} ms  p99 ${q(r.firstAudio, 0.99)} ms (INVITE sent -> the agent's first packet; ${r.firstAudio.length} calls)`,
      );
      console.log(
        `  refusal (INVITE -> 503)    p50 ${q(r.refusal, 0.5)} ms  p99 ${q(r.refusal, 0.99)} ms (${r.refused.filter((c) => c.status === 503 && c.retryAfter).length} with Retry-After)`,
      );
      console.log(
        `  agent -> caller RTP        ${r.answered.reduce((a, c) => a + c.received, 0)} packets (min per call ${Math.min(...r.answered.map((c) => c.received))} of ~${r.expectedPackets})`,
      );
      console.log(
        `  caller -> tokenizer RTP    ${r.callerPackets} packets accepted (${r.answered.reduce((a, c) => a + c.sent, 0)} sent)`,
      );
      console.log(
        `  BYE from the bridge        ${r.bridgeByes.length}${r.bridgeByes.length ? ` (${[...new Set(r.bridgeByes)].join('; ')})` : ''}`,
      );
      console.log(
        `  failed calls ${r.failed.length}${r.silentStart.length ? ` (${r.silentStart.length} of them only by a silent start: under half the hold's agent packets, at least half of those due from the agent's first packet on)` : ''}`,
      );
    };

    // The first burst after start meets cold models (first batches of a size) and connections; the
    // second is what a running system sees.
    const cold = await burstRound(1, 3);
    report('burst 1 (cold, 3 s hold)', cold, 3);
    const warmRound = await burstRound(2, HOLD_S);
    report('burst 2 (measured)', warmRound, HOLD_S);
    const bridgeMetrics = await bridge.metrics();
    console.log(
      `bridge totals: accepted ${metricValue(bridgeMetrics, 'duet_sip_calls_accepted_total')}, no_capacity ${metricValue(bridgeMetrics, 'duet_sip_errors_total', { reason: 'no_capacity' })}, setup_failed_after_answer ${finite(metricValue(bridgeMetrics, 'duet_sip_errors_total', { reason: 'setup_failed_after_answer' }))}`,
    );
    console.log(
      JSON.stringify({
        calls: warmRound.answered.length,
        offered: CALLS,
        refused_503: warmRound.refused.filter((c) => c.status === 503).length,
        answer_on: ANSWER_ON ?? 'media',
        setup_p50_ms: q(warmRound.setup, 0.5),
        setup_p99_ms: q(warmRound.setup, 0.99),
        bridge_answer_p99_ms: q(warmRound.bridgeAnswer, 0.99),
        local_phase_p99_ms: q(warmRound.localPhase, 0.99),
        ready_p50_ms: q(warmRound.ready, 0.5),
        ready_p99_ms: q(warmRound.ready, 0.99),
        first_audio_p50_ms: q(warmRound.firstAudio, 0.5),
        first_audio_p99_ms: q(warmRound.firstAudio, 0.99),
        refusal_p50_ms: q(warmRound.refusal, 0.5),
        refusal_p99_ms: q(warmRound.refusal, 0.99),
        bridge_setup_p99_ms: q(warmRound.bridgeShare, 0.99),
        services_setup_p99_ms: q(warmRound.servicesShare, 0.99),
        cold_setup_p99_ms: q(cold.setup, 0.99),
        cold_ready_p99_ms: q(cold.ready, 0.99),
        bridge_byes: warmRound.bridgeByes.length + cold.bridgeByes.length,
        held: warmRound.held,
        failed_calls: warmRound.failed.length + cold.failed.length,
        failed_silent_start: warmRound.silentStart.length + cold.silentStart.length,
      }),
    );
  } finally {
    for (const c of calls.values()) c.rtp.close();
    signalling.close();
    await system.stop();
  }
}

await main();
