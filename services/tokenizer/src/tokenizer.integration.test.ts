// The tokenizer as a real process against a real nats-server. The test plays the clock (a Tick
// every 160 ms) and the edge (gRPC OpenCall, RTP over UDP paced at 20 ms).

import { spawnSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeWav, mulawEncode, OPUS_FRAME_SAMPLES, OpusEncoder, serializeRtpPacket } from '@duet/audio';
import {
  CallEvent,
  type CallRef,
  Codec,
  decodeMessage,
  type OpenTokenizerCallRequest,
  Speaker,
  Tick,
  TokenizerControlClient,
  UnitChunk,
} from '@duet/protocol';
import { connectNats, createLogger, type NatsConnection, subjects } from '@duet/runtime';
import {
  metricValue,
  type NatsServerHandle,
  type ServiceProcess,
  startNatsServer,
  startServiceProcess,
} from '@duet/runtime/testing';
import { credentials, type ServiceError, status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..', '..');
const entry = join(here, '..', 'dist', 'main.js');
const manifest = JSON.parse(readFileSync(join(root, 'models/default/units/manifest.json'), 'utf8')) as {
  silenceUnit: number;
};
const U = 4;
const INSTANCE = 'tokenizer-it';

/** About 3 s of speech at 8 kHz: espeak-ng if installed, else a vowel-like sweep with pauses. */
function speech8k(): Int16Array {
  if (existsSync('/usr/bin/espeak-ng')) {
    const dir = mkdtempSync(join(tmpdir(), 'duet-tok-'));
    const wav = join(dir, 'speech.wav');
    const r = spawnSync('/usr/bin/espeak-ng', ['-w', wav, 'Hello, this is a test of the duet tokenizer.'], {
      timeout: 10_000,
    });
    if (r.status === 0 && existsSync(wav)) {
      const audio = decodeWav(readFileSync(wav));
      rmSync(dir, { recursive: true, force: true });
      const src = audio.channels[0]!;
      const ratio = audio.sampleRate / 8000;
      const n = Math.floor(src.length / ratio);
      // Linear interpolation is plenty for a test signal.
      return Int16Array.from({ length: n }, (_, i) => {
        const x = i * ratio;
        const k = Math.floor(x);
        const v = (src[k] ?? 0) + ((src[k + 1] ?? 0) - (src[k] ?? 0)) * (x - k);
        return Math.round(Math.max(-1, Math.min(1, v)) * 32000);
      });
    }
    rmSync(dir, { recursive: true, force: true });
  }
  return Int16Array.from({ length: 24_000 }, (_, i) => {
    const t = i / 8000;
    const on = t % 1 < 0.7 ? 1 : 0;
    return Math.round(on * 9000 * Math.sin(2 * Math.PI * (150 + 400 * (t % 1)) * t));
  });
}

/** A 48 kHz sweep (the Opus call's audio), silence for its first `silentMs`. */
function sweep48k(offset: number, silentMs: number): Int16Array {
  return Int16Array.from({ length: OPUS_FRAME_SAMPLES }, (_, i) => {
    const t = (offset + i) / 48000;
    if (t * 1000 < silentMs) return 0;
    return Math.round(7000 * Math.sin(2 * Math.PI * (200 + 300 * Math.sin(t * 3)) * t));
  });
}

function rpc<Req, Res>(
  client: TokenizerControlClient,
  method: 'openCall' | 'closeCall' | 'describeCall' | 'getModelInfo',
  req: Req,
): Promise<Res> {
  return new Promise((resolve, reject) => {
    (client[method] as unknown as (r: Req, cb: (e: ServiceError | null, res: Res) => void) => void).call(
      client,
      req,
      (error, res) => (error ? reject(error) : resolve(res)),
    );
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 15_000) {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await check()) return;
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('tokenizer service', () => {
  let nats: NatsServerHandle;
  let nc: NatsConnection;
  let proc: ServiceProcess;
  let client: TokenizerControlClient;
  let env: Record<string, string>;
  let tickSeq = 1_000;
  let tickTimer: NodeJS.Timeout | undefined;
  let rtpTimer: NodeJS.Timeout | undefined;
  const udp = createSocket('udp4');
  const chunks = new Map<string, UnitChunk[]>([
    ['call-a', []],
    ['call-b', []],
  ]);
  const closedEvents: CallEvent[] = [];
  const lastIndex = (callId: string) => Number(chunks.get(callId)?.at(-1)?.chunkIndex ?? -1);
  const ports = new Map<string, number>();

  const startTokenizer = async () => {
    proc = await startServiceProcess({ name: 'tokenizer', entry, env, timeoutMs: 60_000 });
    client?.close();
    client = new TokenizerControlClient(`127.0.0.1:${proc.grpcPort}`, credentials.createInsecure());
  };

  beforeAll(async () => {
    nats = await startNatsServer();
    nc = await connectNats({ url: nats.url, name: 'test', log: createLogger('test', 'test', 'silent') });
    nc.subscribe(subjects.allUserUnits, {
      callback: (_e, msg) => {
        const chunk = decodeMessage(UnitChunk, 'UnitChunk', msg.data);
        chunks.get(chunk.callId)?.push(chunk);
      },
    });
    nc.subscribe(subjects.allCallEvents, {
      callback: (_e, msg) => {
        closedEvents.push(decodeMessage(CallEvent, 'CallEvent', msg.data));
      },
    });
    const base = 42_000 + Math.floor(Math.random() * 200) * 20;
    env = {
      DUET_NATS_URL: nats.url,
      DUET_INSTANCE_ID: INSTANCE,
      DUET_TOKENIZER_RTP_PORT_MIN: String(base),
      DUET_TOKENIZER_RTP_PORT_MAX: String(base + 19),
      DUET_LOG_LEVEL: 'info',
      // Short, so the timeout test is quick; the streams of the other calls never pause this long.
      DUET_TOKENIZER_RTP_TIMEOUT_MS: '3000',
    };
    await startTokenizer();
    // The test is the clock.
    tickTimer = setInterval(() => {
      tickSeq++;
      const tick = Tick.create({ seq: BigInt(tickSeq), scheduledAtMs: BigInt(Date.now()), chunkMs: 160 });
      nc.publish(subjects.tick, Tick.encode(tick).finish());
    }, 160);
    await new Promise<void>((r) => udp.bind(0, '127.0.0.1', r));
  }, 120_000);

  afterAll(async () => {
    clearInterval(tickTimer);
    clearInterval(rtpTimer);
    udp.close();
    client?.close();
    await proc?.stop();
    await nc?.drain();
    await nats?.stop();
  });

  it('is ready, refuses bad requests and serves the model info', async () => {
    const ready = await fetch(`http://127.0.0.1:${proc.httpPort}/readyz`);
    expect(ready.status).toBe(200);
    const bad = await rpc<OpenTokenizerCallRequest, unknown>(client, 'openCall', {
      callId: 'bad id!',
      firstTick: 1n,
      format: { codec: Codec.CODEC_PCMU, payloadType: 0 },
    }).catch((e: ServiceError) => e);
    expect((bad as ServiceError).code).toBe(status.INVALID_ARGUMENT);
    const noFormat = await rpc<OpenTokenizerCallRequest, unknown>(client, 'openCall', {
      callId: 'x',
      firstTick: 1n,
      format: { codec: Codec.CODEC_UNSPECIFIED, payloadType: 0 },
    }).catch((e: ServiceError) => e);
    expect((noFormat as ServiceError).code).toBe(status.INVALID_ARGUMENT);
    const unknown = await rpc<CallRef, unknown>(client, 'describeCall', { callId: 'nope' }).catch(
      (e: ServiceError) => e,
    );
    expect((unknown as ServiceError).code).toBe(status.NOT_FOUND);
    const info = await rpc<object, { unitsPerChunk: number; chunkMs: number; sha256: string }>(
      client,
      'getModelInfo',
      {},
    );
    expect(info.unitsPerChunk).toBe(U);
    expect(info.chunkMs).toBe(160);
    expect(info.sha256).toMatch(/^[0-9a-f]{64}$/);
  });

  it('publishes one chunk of U units per tick per call, from PCMU speech and Opus', async () => {
    const firstTick = tickSeq + 3;
    for (const [callId, codec, payloadType] of [
      ['call-a', Codec.CODEC_PCMU, 0],
      ['call-b', Codec.CODEC_OPUS, 111],
    ] as const) {
      const res = await rpc<OpenTokenizerCallRequest, { rtp: { host: string; port: number } }>(
        client,
        'openCall',
        { callId, firstTick: BigInt(firstTick), format: { codec, payloadType } },
      );
      expect(res.rtp.host).toBe('127.0.0.1');
      ports.set(callId, res.rtp.port);
    }
    const again = await rpc<OpenTokenizerCallRequest, unknown>(client, 'openCall', {
      callId: 'call-a',
      firstTick: BigInt(firstTick),
      format: { codec: Codec.CODEC_PCMU, payloadType: 0 },
    }).catch((e: ServiceError) => e);
    expect((again as ServiceError).code).toBe(status.ALREADY_EXISTS);

    // Silence (no RTP at all) for the first ~5 chunks, then RTP paced at 20 ms.
    await until('the first chunks', () => (chunks.get('call-b')?.length ?? 0) >= 5);
    const speech = speech8k();
    const opus = new OpusEncoder();
    let n = 0;
    const rtpStartedAt = Date.now();
    const sendFrame = () => {
      const silentGap = n % 150 >= 110; // 2.2 s of speech, then 0.8 s of nothing
      const a = speech.subarray((n * 160) % (speech.length - 160), ((n * 160) % (speech.length - 160)) + 160);
      const pcmA = silentGap ? new Int16Array(160) : a;
      udp.send(
        serializeRtpPacket({
          payloadType: 0,
          sequenceNumber: n & 0xffff,
          timestamp: n * 160,
          ssrc: 0x1111,
          marker: n === 0,
          payload: mulawEncode(pcmA),
        }),
        ports.get('call-a')!,
        '127.0.0.1',
      );
      udp.send(
        serializeRtpPacket({
          payloadType: 111,
          sequenceNumber: n & 0xffff,
          timestamp: (n * OPUS_FRAME_SAMPLES) >>> 0,
          ssrc: 0x2222,
          marker: n === 0,
          payload: opus.encode(sweep48k(n * OPUS_FRAME_SAMPLES, 1_000)),
        }),
        ports.get('call-b')!,
        '127.0.0.1',
      );
      n++;
    };
    // Pace by wall time so a slow timer does not slow the stream down.
    rtpTimer = setInterval(() => {
      const due = Math.floor((Date.now() - rtpStartedAt) / 20) + 1;
      while (n < due) sendFrame();
    }, 10);
    await sleep(4_500);

    for (const callId of ['call-a', 'call-b']) {
      const got = chunks.get(callId)!;
      expect(got.length).toBeGreaterThanOrEqual(20);
      got.forEach((c, i) => {
        expect(Number(c.chunkIndex)).toBe(i);
        expect(c.speaker).toBe(Speaker.SPEAKER_USER);
        expect(c.units).toHaveLength(U);
      });
      // The chunks before any RTP are silence.
      const before = got.slice(0, 4).flatMap((c) => c.units);
      expect(before.filter((u) => u === manifest.silenceUnit).length / before.length).toBeGreaterThanOrEqual(
        0.75,
      );
    }
    // Speech: many distinct units, few silence units (chunks after the stream settled).
    const speechUnits = chunks
      .get('call-a')!
      .slice(8, 20)
      .flatMap((c) => c.units);
    expect(new Set(speechUnits).size).toBeGreaterThanOrEqual(6);
    const sweepUnits = chunks
      .get('call-b')!
      .slice(-8)
      .flatMap((c) => c.units);
    expect(new Set(sweepUnits).size).toBeGreaterThanOrEqual(2);
    expect(sweepUnits.filter((u) => u === manifest.silenceUnit).length).toBeLessThan(sweepUnits.length / 2);

    const metrics = await proc.metrics();
    expect(metricValue(metrics, 'duet_tokenizer_rtp_packets_total', { result: 'ok' })).toBeGreaterThan(150);
    expect(metricValue(metrics, 'duet_tokenizer_active_calls')).toBe(2);
    const desc = await rpc<CallRef, { packetsReceived: bigint; chunksPublished: bigint; jitterMs: number }>(
      client,
      'describeCall',
      { callId: 'call-a' },
    );
    expect(Number(desc.packetsReceived)).toBeGreaterThan(100);
    expect(Number(desc.chunksPublished)).toBeGreaterThanOrEqual(20);
    expect(desc.jitterMs).toBeGreaterThanOrEqual(0);
  });

  it('counts malformed RTP, a wrong payload type and a corrupt tick, and keeps going', async () => {
    const portB = ports.get('call-b')!;
    udp.send(new Uint8Array([0x80, 0x6f, 1]), portB, '127.0.0.1');
    udp.send(new Uint8Array(40).fill(0xff), portB, '127.0.0.1');
    udp.send(
      serializeRtpPacket({
        payloadType: 96,
        sequenceNumber: 1,
        timestamp: 0,
        ssrc: 0x2222,
        marker: false,
        payload: new Uint8Array(20),
      }),
      portB,
      '127.0.0.1',
    );
    nc.publish(subjects.tick, new Uint8Array([0xff, 0xff, 0xff, 0xff, 0x0f]));
    const before = chunks.get('call-b')!.length;
    await until('bad input counted', async () => {
      const m = await proc.metrics();
      return (
        metricValue(m, 'duet_tokenizer_rtp_packets_total', { result: 'malformed' }) >= 2 &&
        metricValue(m, 'duet_tokenizer_rtp_packets_total', { result: 'wrong_payload_type' }) >= 1 &&
        metricValue(m, 'duet_tokenizer_bad_messages_total', { reason: 'malformed_tick' }) >= 1
      );
    });
    await until('call B carries on', () => chunks.get('call-b')!.length >= before + 5);
  });

  it('closes a call whose RTP stops, with a CLOSED event', async () => {
    const res = await rpc<OpenTokenizerCallRequest, { rtp: { port: number } }>(client, 'openCall', {
      callId: 'call-c',
      firstTick: BigInt(tickSeq),
      format: { codec: Codec.CODEC_PCMA, payloadType: 8 },
    });
    for (let i = 0; i < 5; i++)
      udp.send(
        serializeRtpPacket({
          payloadType: 8,
          sequenceNumber: i,
          timestamp: i * 160,
          ssrc: 3,
          marker: false,
          payload: new Uint8Array(160).fill(0xd5),
        }),
        res.rtp.port,
        '127.0.0.1',
      );
    await until(
      'rtp timeout event',
      () => closedEvents.some((e) => e.callId === 'call-c' && e.detail === 'rtp timeout'),
      10_000,
    );
    const gone = await rpc<CallRef, unknown>(client, 'describeCall', { callId: 'call-c' }).catch(
      (e: ServiceError) => e,
    );
    expect((gone as ServiceError).code).toBe(status.NOT_FOUND);
  });

  it('carries the calls on after a restart with the same instance id, on the same ports', async () => {
    // call-d's port will be taken while the tokenizer is down: it must be closed with an event.
    const d = await rpc<OpenTokenizerCallRequest, { rtp: { port: number } }>(client, 'openCall', {
      callId: 'call-d',
      firstTick: BigInt(tickSeq),
      format: { codec: Codec.CODEC_PCMU, payloadType: 0 },
    });
    const before = await proc.metrics();
    expect(await proc.stop()).toBe(0);
    const squatter = createSocket('udp4');
    await new Promise<void>((r) => squatter.bind(d.rtp.port, '127.0.0.1', r));
    const lastB = lastIndex('call-b');
    await startTokenizer();
    squatter.close();
    await until('call-d closed (port taken)', () =>
      closedEvents.some((e) => e.callId === 'call-d' && /taken/.test(e.detail)),
    );
    await until('chunks after the restart', () => lastIndex('call-b') > lastB + 5);
    const desc = await rpc<CallRef, { rtp: { port: number }; packetsReceived: bigint }>(
      client,
      'describeCall',
      { callId: 'call-b' },
    );
    expect(desc.rtp.port).toBe(ports.get('call-b'));
    expect(Number(desc.packetsReceived)).toBeGreaterThan(0);
    // Indices keep following the clock across the restart: no duplicate of an earlier chunk.
    const after = chunks.get('call-b')!.filter((c) => Number(c.chunkIndex) > lastB);
    after.forEach((c, i) => {
      if (i > 0) expect(Number(c.chunkIndex)).toBe(Number(after[i - 1]!.chunkIndex) + 1);
      expect(c.units).toHaveLength(U);
    });
    report(before, 'before restart');
  });

  it('closes calls on CloseCall and on a CLOSED event', async () => {
    const closed = await rpc<{ callId: string; reason: string }, { wasOpen: boolean }>(client, 'closeCall', {
      callId: 'call-a',
      reason: 'test',
    });
    expect(closed.wasOpen).toBe(true);
    nc.publish(
      subjects.callEvent('call-b'),
      CallEvent.encode(
        CallEvent.create({ callId: 'call-b', kind: 2, source: 'test', detail: 'hung up' }),
      ).finish(),
    );
    await until(
      'no active calls',
      async () => metricValue(await proc.metrics(), 'duet_tokenizer_active_calls') === 0,
    );
    const gone = await rpc<CallRef, unknown>(client, 'describeCall', { callId: 'call-a' }).catch(
      (e: ServiceError) => e,
    );
    expect((gone as ServiceError).code).toBe(status.NOT_FOUND);
    report(await proc.metrics(), 'after restart');
  });
});

/** Prints the latency and batch figures (measured, never asserted: the machine is shared). */
function report(metrics: string, label: string): void {
  const quantile = (name: string, q: number): string => {
    const buckets: [number, number][] = [];
    for (const line of metrics.split('\n')) {
      const m = new RegExp(`^${name}_bucket\\{[^}]*le="([^"]+)"[^}]*\\}\\s+(\\S+)`).exec(line);
      if (m) buckets.push([m[1] === '+Inf' ? Number.POSITIVE_INFINITY : Number(m[1]), Number(m[2])]);
    }
    const total = buckets.at(-1)?.[1] ?? 0;
    const hit = buckets.find(([, c]) => c >= q * total);
    return hit ? `<=${hit[0]}` : 'n/a';
  };
  const mean = (name: string) =>
    (metricValue(metrics, `${name}_sum`) / metricValue(metrics, `${name}_count`)).toFixed(2);
  process.stderr.write(
    `[tokenizer ${label}] chunk latency ms p50 ${quantile('duet_tokenizer_chunk_latency_ms', 0.5)} p99 ${quantile(
      'duet_tokenizer_chunk_latency_ms',
      0.99,
    )} mean ${mean('duet_tokenizer_chunk_latency_ms')}; tokenize ms mean ${mean('duet_tokenizer_tokenize_ms')} p99 ${quantile(
      'duet_tokenizer_tokenize_ms',
      0.99,
    )}; underruns ${metricValue(metrics, 'duet_tokenizer_chunk_underruns_total')} overruns ${metricValue(
      metrics,
      'duet_tokenizer_chunk_overruns_total',
    )} concealed ${metricValue(metrics, 'duet_tokenizer_concealed_frames_total')}\n`,
  );
}
