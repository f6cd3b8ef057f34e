// The vocoder as a real process against a real nats-server: the test plays the clock (ticks
// every 160 ms) and the inference worker (agent chunks ~100 ms before their play time) for two
// calls, one PCMU and one Opus, and listens to the RTP that comes back.

import { createSocket, type Socket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { mulawDecode, OpusDecoder, parseRtpPacket, type RtpPacket } from '@duet/audio';
import {
  CallEvent,
  CallEventKind,
  Codec,
  InferenceCallRecord,
  Speaker,
  Tick,
  UnitChunk,
  VocoderControlClient,
} from '@duet/protocol';
import {
  callRecordKey,
  connectNats,
  createLogger,
  ensureJetStream,
  type NatsConnection,
} from '@duet/runtime';
import {
  metricValue,
  type NatsServerHandle,
  type ServiceProcess,
  startNatsServer,
  startServiceProcess,
} from '@duet/runtime/testing';
import { credentials, Metadata, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rtpBase, rtpNumbering } from './rtpStream.js';

const ENTRY = fileURLToPath(new URL('../dist/main.js', import.meta.url));
const CHUNK_MS = 160;
const SEQ0 = 1000;
// The silence unit of the units model the default vocoder was trained on.
const SILENCE_UNIT = (
  JSON.parse(
    readFileSync(
      fileURLToPath(new URL('../../../models/default/units/manifest.json', import.meta.url)),
      'utf8',
    ),
  ) as { silenceUnit: number }
).silenceUnit;
const SPEECH = [10, 37, 55, 90, 12, 101, 7, 66, 20, 21, 22, 23];

interface Arrival {
  readonly at: number;
  readonly packet: RtpPacket;
}

type Unary<Req, Res> = (
  req: Req,
  md: Metadata,
  opts: object,
  cb: (e: ServiceError | null, r: Res) => void,
) => unknown;
function unary<Req, Res>(client: object, method: Unary<Req, Res>, req: Req): Promise<Res> {
  return new Promise((resolve, reject) =>
    method.call(client, req, new Metadata(), { deadline: new Date(Date.now() + 5_000) }, (e, r) =>
      e ? reject(e) : resolve(r),
    ),
  );
}

const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
};
const rms = (pcm: Int16Array) => Math.sqrt(pcm.reduce((a, x) => a + x * x, 0) / Math.max(1, pcm.length));
const median = (xs: number[]) => quantile(xs, 0.5);
const frameOf = (b: { ts0: number }, spf: number, p: RtpPacket) =>
  ((p.timestamp - b.ts0 + 2 ** 32) % 2 ** 32) / spf;

/** Upper bound of the histogram bucket holding quantile q (what Prometheus can tell). */
function histogramQuantile(text: string, name: string, q: number): string {
  const buckets: [number, number][] = [];
  for (const m of text.matchAll(new RegExp(`^${name}_bucket\\{[^}]*le="([^"]+)"[^}]*\\}\\s+(\\S+)`, 'gm')))
    buckets.push([m[1] === '+Inf' ? Infinity : Number(m[1]), Number(m[2])]);
  const total = buckets.at(-1)?.[1] ?? 0;
  const hit = buckets.find(([, c]) => c >= q * total);
  return hit ? `<=${hit[0]}` : 'n/a';
}

/**
 * Sequence numbers and timestamps advance by one frame per packet. The vocoder skips (does not
 * burst) frames it was more than 200 ms late for; on a loaded 2-core test machine a stall can
 * cause that, so a forward jump that the frame index explains is tolerated, if rare.
 */
function expectConsecutive(xs: readonly Arrival[], b: { ts0: number }, spf: number, what: string): void {
  let jumps = 0;
  for (let i = 1; i < xs.length; i++) {
    const step = frameOf(b, spf, xs[i]!.packet) - frameOf(b, spf, xs[i - 1]!.packet);
    expect(step).toBeGreaterThanOrEqual(1);
    expect(xs[i]!.packet.sequenceNumber).toBe((xs[i - 1]!.packet.sequenceNumber + step) % 65536);
    if (step !== 1) jumps += 1;
  }
  if (jumps > 0) console.log(`${what}: ${jumps} forward jumps (frames skipped after a stall)`);
  expect(jumps).toBeLessThanOrEqual(Math.max(2, xs.length / 50));
}

describe('vocoder service (real process, real nats-server)', () => {
  let nats: NatsServerHandle;
  let nc: NatsConnection;
  let vocoder: ServiceProcess;
  let client: VocoderControlClient;
  const sockets: Socket[] = [];
  const timers: NodeJS.Timeout[] = [];
  const portMin = 43000 + Math.floor(Math.random() * 400) * 50;
  const env = (url: string) => ({
    DUET_NATS_URL: url,
    DUET_INSTANCE_ID: 'vocoder-it',
    DUET_VOCODER_RTP_PORT_MIN: String(portMin),
    DUET_VOCODER_RTP_PORT_MAX: String(portMin + 49),
  });

  beforeAll(async () => {
    nats = await startNatsServer();
    nc = await connectNats({
      url: nats.url,
      name: 'vocoder-test',
      log: createLogger('test', 'test', 'silent'),
    });
    vocoder = await startServiceProcess({ name: 'vocoder', entry: ENTRY, env: env(nats.url) });
    client = new VocoderControlClient(`127.0.0.1:${vocoder.grpcPort}`, credentials.createInsecure());
  });

  afterAll(async () => {
    for (const t of timers) clearTimeout(t);
    for (const s of sockets) s.close();
    client?.close();
    await vocoder?.stop();
    await nc?.close();
    await nats?.stop();
  });

  it('refuses bad OpenCall requests', async () => {
    const ok = {
      callId: 'bad-1',
      firstTick: 5n,
      destination: { host: '127.0.0.1', port: 9 },
      format: { codec: Codec.CODEC_PCMU, payloadType: 0 },
      ssrc: 0,
    };
    const code = (p: Promise<unknown>) =>
      p.then(
        () => 0,
        (e: ServiceError) => e.code,
      );
    expect(await code(unary(client, client.openCall, { ...ok, callId: 'no spaces' }))).toBe(3);
    expect(
      await code(
        unary(client, client.openCall, { ...ok, format: { codec: Codec.CODEC_UNSPECIFIED, payloadType: 0 } }),
      ),
    ).toBe(3);
    expect(await code(unary(client, client.openCall, { ...ok, destination: { host: '', port: 0 } }))).toBe(3);
    expect(await code(unary(client, client.openCall, ok))).toBe(0);
    expect(await code(unary(client, client.openCall, ok))).toBe(6); // ALREADY_EXISTS
    // A CLOSED event from anyone drops the call.
    nc.publish(
      'duet.call.bad-1.event',
      CallEvent.encode(
        CallEvent.fromPartial({
          callId: 'bad-1',
          kind: CallEventKind.CALL_EVENT_KIND_CLOSED,
          source: 'test',
        }),
      ).finish(),
    );
    await new Promise((r) => setTimeout(r, 300));
    expect(await code(unary(client, client.describeCall, { callId: 'bad-1' }))).toBe(5); // NOT_FOUND
    const info = await unary(client, client.getModelInfo, {});
    expect(info).toMatchObject({ format: 'duet.vocoder', chunkMs: 160, unitsPerChunk: 4, unitCount: 128 });
  });

  it('plays two calls paced, survives a missing chunk, bad input and a restart', async () => {
    // --- the clock and the inference worker, played by the test -------------------------------
    const base = (Math.ceil(Date.now() / CHUNK_MS) + 2) * CHUNK_MS;
    const T = (seq: number) => base + (seq - SEQ0) * CHUNK_MS;
    const f = SEQ0 + 6;
    const at = (time: number, fn: () => void) => timers.push(setTimeout(fn, Math.max(0, time - Date.now())));
    const LAST_CHUNK = 70;
    for (let seq = SEQ0; seq <= f + LAST_CHUNK + 2; seq++) {
      at(T(seq), () =>
        nc.publish(
          'duet.clock.tick',
          Tick.encode({
            seq: BigInt(seq),
            scheduledAtMs: BigInt(T(seq)),
            chunkMs: CHUNK_MS,
            publisher: 'test',
          }).finish(),
        ),
      );
    }
    const agent = (callId: string, j: number, units: number[]) =>
      nc.publish(
        `duet.call.${callId}.agent`,
        UnitChunk.encode(
          UnitChunk.fromPartial({ callId, speaker: Speaker.SPEAKER_AGENT, chunkIndex: BigInt(j), units }),
        ).finish(),
      );
    const speech = (j: number) => [0, 1, 2, 3].map((k) => SPEECH[(j * 3 + k) % SPEECH.length]!);
    const SILENT_CHUNKS = [8, 9, 10, 11, 12];
    const MISSING_A = 20;
    const BAD_AT = 25;
    // Call b's chunk 27 comes after its play time (late: dropped), 28 comes 20 ms into its own
    // (its remaining frames play).
    const LATE_B = 27;
    at(T(f + LATE_B + 1) + 10, () => agent('call-b', LATE_B, speech(LATE_B)));
    at(T(f + LATE_B + 1) + 20, () => agent('call-b', LATE_B + 1, speech(LATE_B + 1)));
    for (let j = 1; j <= LAST_CHUNK; j++) {
      at(T(f + j) - 100, () => {
        if (j !== MISSING_A)
          agent('call-a', j, SILENT_CHUNKS.includes(j) ? Array(4).fill(SILENCE_UNIT) : speech(j));
        if (j === BAD_AT) {
          nc.publish('duet.call.call-a.agent', new Uint8Array([0xff, 0xff, 0xff, 0x07, 0x01]));
          agent('call-b', j, [1, 2, 3]);
        } else if (j !== LATE_B && j !== LATE_B + 1) agent('call-b', j, speech(j + 5));
      });
    }

    // --- the edge's receiving sockets -------------------------------------------------------------
    const arrivals: Record<string, Arrival[]> = { a: [], b: [] };
    const listen = async (name: 'a' | 'b') => {
      const s = createSocket('udp4');
      sockets.push(s);
      s.on('message', (msg) =>
        arrivals[name]!.push({ at: Date.now(), packet: parseRtpPacket(new Uint8Array(msg)) }),
      );
      await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
      return s.address().port;
    };
    // The calls' inference records (the vocoder reloads only calls that inference still holds).
    const js = await ensureJetStream(nc);
    for (const id of ['call-a', 'call-b'])
      await js.calls.put(
        callRecordKey(id, 'inference'),
        InferenceCallRecord.encode(
          InferenceCallRecord.fromPartial({ callId: id, firstTick: BigInt(f) }),
        ).finish(),
      );
    const portA = await listen('a');
    const portB = await listen('b');
    const openA = await unary(client, client.openCall, {
      callId: 'call-a',
      firstTick: BigInt(f),
      destination: { host: '127.0.0.1', port: portA },
      format: { codec: Codec.CODEC_PCMU, payloadType: 0 },
      ssrc: 0x1234abcd,
    });
    const openB = await unary(client, client.openCall, {
      callId: 'call-b',
      firstTick: BigInt(f),
      destination: { host: '127.0.0.1', port: portB },
      format: { codec: Codec.CODEC_OPUS, payloadType: 111 },
      ssrc: 0,
    });
    expect(openA.ssrc).toBe(0x1234abcd);
    expect(openB.ssrc).not.toBe(0);
    expect(openA.source?.port).toBeGreaterThanOrEqual(portMin);
    const baseA = rtpBase('call-a', openA.ssrc);
    const baseB = rtpBase('call-b', openB.ssrc);

    // --- first life: until chunk 32 -------------------------------------------------------------
    const stopAt = T(f + 32);
    await new Promise((r) => setTimeout(r, stopAt - Date.now()));
    const metrics1 = await vocoder.metrics();
    const describeA = await unary(client, client.describeCall, { callId: 'call-a' });
    expect(await vocoder.stop()).toBe(0);
    // The old process sent until it exited: its packets all belong to the first life.
    const stopTime = Date.now();
    vocoder = await startServiceProcess({ name: 'vocoder', entry: ENTRY, env: env(nats.url) });
    client.close();
    client = new VocoderControlClient(`127.0.0.1:${vocoder.grpcPort}`, credentials.createInsecure());
    const restartedAt = Date.now();
    await new Promise((r) => setTimeout(r, T(f + LAST_CHUNK) - Date.now()));

    const life1 = (xs: Arrival[]) => xs.filter((x) => x.at <= stopTime);
    const life2 = (xs: Arrival[]) => xs.filter((x) => x.at > stopTime);
    const a1 = life1(arrivals.a!);
    const b1 = life1(arrivals.b!);

    // Header fields, and seq/ts consecutive and derived from the frame index.
    for (const [xs, pt, ssrc, b, spf] of [
      [a1, 0, openA.ssrc, baseA, 160],
      [b1, 111, openB.ssrc, baseB, 960],
    ] as const) {
      expect(xs.length).toBeGreaterThan(100);
      expect(xs[0]!.packet.marker).toBe(true);
      for (const [i, x] of xs.entries()) {
        expect(x.packet.payloadType).toBe(pt);
        expect(x.packet.ssrc).toBe(ssrc);
        const n = frameOf(b, spf, x.packet);
        expect(rtpNumbering(b, spf, n)).toEqual({
          sequenceNumber: x.packet.sequenceNumber,
          timestamp: x.packet.timestamp,
        });
        if (i > 0) expect(x.packet.marker).toBe(false);
      }
      expectConsecutive(xs, b, spf, 'first life');
    }

    // Pacing: inter-arrival and lateness against the absolute frame grid (due = T(f) + 20 n).
    const gaps = a1.slice(1).map((x, i) => x.at - a1[i]!.at);
    const lateness = [...a1.map((x) => x.at - (T(f) + 20 * frameOf(baseA, 160, x.packet)))];
    const latenessB = [...b1.map((x) => x.at - (T(f) + 20 * frameOf(baseB, 960, x.packet)))];
    const span = (a1.at(-1)!.at - a1[0]!.at) / 1000;
    const rate = (a1.length - 1) / span;
    const report = {
      packetsPerSecond: rate.toFixed(1),
      interArrivalMs: { p50: quantile(gaps, 0.5), p99: quantile(gaps, 0.99), max: Math.max(...gaps) },
      arrivalLatenessMsPcmu: { p50: quantile(lateness, 0.5), p99: quantile(lateness, 0.99) },
      arrivalLatenessMsOpus: { p50: quantile(latenessB, 0.5), p99: quantile(latenessB, 0.99) },
      vocodeMs: {
        sum: metricValue(metrics1, 'duet_vocoder_vocode_ms_sum'),
        count: metricValue(metrics1, 'duet_vocoder_vocode_ms_count'),
      },
      batchSizeMean:
        metricValue(metrics1, 'duet_vocoder_batch_size_sum') /
        metricValue(metrics1, 'duet_vocoder_batch_size_count'),
      sendLatenessMsP50: histogramQuantile(metrics1, 'duet_vocoder_send_lateness_ms', 0.5),
      sendLatenessMsP99: histogramQuantile(metrics1, 'duet_vocoder_send_lateness_ms', 0.99),
      vocodeMsP50: histogramQuantile(metrics1, 'duet_vocoder_vocode_ms', 0.5),
      vocodeMsP99: histogramQuantile(metrics1, 'duet_vocoder_vocode_ms', 0.99),
      chunkLeadMsP50: histogramQuantile(metrics1, 'duet_vocoder_chunk_lead_ms', 0.5),
      sendLatenessMsMean:
        metricValue(metrics1, 'duet_vocoder_send_lateness_ms_sum') /
        metricValue(metrics1, 'duet_vocoder_send_lateness_ms_count'),
      sendLatenessLe2ms:
        metricValue(metrics1, 'duet_vocoder_send_lateness_ms_bucket', { le: '2' }) /
        metricValue(metrics1, 'duet_vocoder_send_lateness_ms_count'),
    };
    console.log('vocoder pacing', JSON.stringify(report));
    expect(rate).toBeGreaterThan(40);
    expect(rate).toBeLessThan(60);
    expect(quantile(gaps, 0.5)).toBeGreaterThanOrEqual(10);
    expect(quantile(gaps, 0.5)).toBeLessThanOrEqual(30);
    expect(quantile(lateness, 0.5)).toBeLessThan(50); // generous: a loaded 2-core machine

    // Audio: speech-like units are audible, the silence unit and the missing chunk are near-silence.
    const chunkRms = (j: number) =>
      a1
        .filter((x) => Math.floor(frameOf(baseA, 160, x.packet) / 8) === j)
        .map((x) => rms(mulawDecode(x.packet.payload)));
    const speechRms = [3, 4, 5, 6, 15, 16, 17, 27, 28, 29].flatMap(chunkRms);
    const silenceRms = [9, 10, 11].flatMap(chunkRms).slice(1, -1);
    const missingRms = chunkRms(MISSING_A).slice(1, -1);
    console.log(
      'vocoder audio rms',
      JSON.stringify({ speech: median(speechRms), silence: median(silenceRms), missing: median(missingRms) }),
    );
    expect(speechRms.length).toBeGreaterThan(40);
    expect(median(speechRms)).toBeGreaterThan(300);
    expect(silenceRms.length).toBeGreaterThan(10);
    expect(Math.max(...silenceRms)).toBeLessThan(100);
    expect(missingRms.length).toBeGreaterThan(4);
    expect(Math.max(...missingRms)).toBeLessThan(30);

    // Opus decodes, and carries audio.
    const decoder = new OpusDecoder();
    const opusRms = b1.map((x) => {
      const pcm = decoder.decode(x.packet.payload);
      expect(pcm.length).toBe(960);
      return rms(pcm);
    });
    expect(median(opusRms.slice(b1.length / 2))).toBeGreaterThan(300);

    // Counted: the missing chunk (and call b's refused one), the bad input; the other call played on.
    expect(metricValue(metrics1, 'duet_vocoder_chunks_total', { result: 'missing' })).toBeGreaterThanOrEqual(
      2,
    );
    expect(metricValue(metrics1, 'duet_vocoder_chunks_total', { result: 'played' })).toBeGreaterThan(40);
    expect(metricValue(metrics1, 'duet_vocoder_chunks_total', { result: 'late' })).toBe(1);
    expect(metricValue(metrics1, 'duet_vocoder_bad_messages_total', { reason: 'decode' })).toBe(1);
    expect(metricValue(metrics1, 'duet_vocoder_bad_messages_total', { reason: 'unit_count' })).toBe(1);
    expect(Number(describeA.chunksMissing)).toBeGreaterThanOrEqual(1);
    expect(Number(describeA.packetsSent)).toBeGreaterThan(100);
    expect(median([26, 27, 28, 29, 30].flatMap(chunkRms))).toBeGreaterThan(300);

    // --- second life: same SSRC, numbering continues from the clock ----------------------------
    console.log(
      'second life',
      life2(arrivals.a!).length,
      life2(arrivals.b!).length,
      restartedAt - stopTime,
      JSON.stringify(vocoder.logs.map((l) => [l.msg, l.callId])),
    );
    for (const [xs, ssrc, b, spf, last] of [
      [life2(arrivals.a!), openA.ssrc, baseA, 160, a1.at(-1)!],
      [life2(arrivals.b!), openB.ssrc, baseB, 960, b1.at(-1)!],
    ] as const) {
      expect(xs.length).toBeGreaterThan(25);
      const first = xs[0]!;
      expect(first.packet.ssrc).toBe(ssrc);
      const n0 = frameOf(b, spf, last.packet);
      const n1 = frameOf(b, spf, first.packet);
      // The frames skipped while it was down, no more: the new first frame is the one due when it arrived.
      expect(n1).toBeGreaterThan(n0);
      expect(first.packet.sequenceNumber).toBe((last.packet.sequenceNumber + (n1 - n0)) % 65536);
      expect(Math.abs(first.at - (T(f) + 20 * n1))).toBeLessThan(500);
      expectConsecutive(xs, b, spf, 'second life');
      console.log(
        'vocoder restart',
        JSON.stringify({
          ssrc,
          downMs: first.at - last.at,
          restartMs: restartedAt - stopTime,
          skippedFrames: n1 - n0 - 1,
        }),
      );
    }
    const a2 = life2(arrivals.a!);
    const later = a2.filter((x) => frameOf(baseA, 160, x.packet) >= 8 * 50);
    expect(median(later.map((x) => rms(mulawDecode(x.packet.payload))))).toBeGreaterThan(300);

    // --- close: packets stop, the record is gone -----------------------------------------------
    expect((await unary(client, client.closeCall, { callId: 'call-a', reason: 'test' })).wasOpen).toBe(true);
    expect((await unary(client, client.closeCall, { callId: 'call-a', reason: 'test' })).wasOpen).toBe(false);
    await new Promise((r) => setTimeout(r, 300));
    const count = arrivals.a!.length;
    await new Promise((r) => setTimeout(r, 300));
    expect(arrivals.a!.length).toBe(count);
    const entry = await js.calls.get(callRecordKey('call-a', 'vocoder'));
    expect(entry === null || entry.operation !== 'PUT').toBe(true);
    expect((await js.calls.get(callRecordKey('call-b', 'vocoder')))?.operation).toBe('PUT');
  });
});
