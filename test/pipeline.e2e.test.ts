import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { launchSystem, RtpCaller, type RunningSystem } from '@duet/cli';
import { repoRoot } from '@duet/engine/tiny';
import { Codec } from '@duet/protocol';
import { CallSetupError, DuetControl } from '@duet/runtime';
import { metricValue } from '@duet/runtime/testing';
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mediaTestModel } from './mediaModel.js';

// The whole call loop over a real nats-server, every service its own process, default models:
// audio in -> units -> agent units -> audio out, for two calls at once (G.711 and Opus).

let system: RunningSystem;
let control: DuetControl;

beforeAll(async () => {
  system = await launchSystem({
    dialogueModel: await mediaTestModel(),
    env: { inference: { DUET_INFERENCE_SLOTS: '2' } },
  });
  control = new DuetControl(system.addresses);
});

afterAll(async () => {
  control?.close();
  await system?.stop();
});

/** Speech-like caller audio at `rate`: a gliding harmonic tone with syllable-rate amplitude. */
function callerAudio(rate: number, seconds: number): Int16Array {
  const out = new Int16Array(Math.round(rate * seconds));
  let phase = 0;
  for (let i = 0; i < out.length; i++) {
    const t = i / rate;
    const f0 = 140 + 40 * Math.sin(2 * Math.PI * 0.7 * t);
    phase += (2 * Math.PI * f0) / rate;
    const env = 0.5 + 0.5 * Math.sin(2 * Math.PI * 4 * t);
    let s = 0;
    for (let h = 1; h <= 12; h++) s += Math.sin(h * phase) / h;
    out[i] = Math.round(8000 * env * s);
  }
  return out;
}

describe('a call end to end', () => {
  it('carries two concurrent calls: agent audio arrives chunk after chunk, on time', async () => {
    const callers = await Promise.all([RtpCaller.open({ codec: 'pcmu' }), RtpCaller.open({ codec: 'opus' })]);
    const seconds = 4;
    try {
      const calls = await Promise.all(
        callers.map((caller, i) =>
          control.openCall({
            callId: `e2e-${i}-${Date.now()}`,
            codec: i === 0 ? Codec.CODEC_PCMU : Codec.CODEC_OPUS,
            payloadType: caller.payloadType,
            destination: caller.localEndpoint,
          }),
        ),
      );
      expect(new Set(calls.map((c) => c.callId)).size).toBe(2);
      await Promise.all(
        callers.map((caller, i) =>
          caller.play(callerAudio(caller.codec.sampleRate, seconds), calls[i]!.tokenizerRtp),
        ),
      );
      const inferenceMetrics = await system.processes.inference[0]!.metrics();
      expect(metricValue(inferenceMetrics, 'duet_inference_active_calls')).toBe(2);
      await Promise.all(calls.map((c) => control.closeCall(c.callId, 'test done')));

      for (const caller of callers) {
        const stats = caller.stats();
        // 50 packets/s once the call's first agent chunk is due; allow the first chunks and the tail.
        expect(stats.packetsReceived).toBeGreaterThan(50 * (seconds - 1));
        expect(stats.packetsLost).toBe(0);
        expect(stats.malformed).toBe(0);
        const ssrcs = new Set(caller.packets.map((p) => p.ssrc));
        expect(ssrcs.size).toBe(1);
        // Paced: each packet's arrival minus its RTP time, relative to the earliest such offset.
        const first = caller.packets[0]!;
        const offsets = caller.packets.map(
          (p) => p.arrivalMs - (((p.timestamp - first.timestamp) >>> 0) / caller.codec.sampleRate) * 1000,
        );
        const base = Math.min(...offsets);
        const sorted = offsets.map((o) => o - base).sort((a, b) => a - b);
        const p99 = sorted[Math.floor(sorted.length * 0.99)]!;
        console.log(
          `${caller.codec.name}: ${stats.packetsReceived} agent packets, pacing p99 ${p99.toFixed(1)} ms`,
        );
        // Paced, not sent in bursts: the median gap between packets is one 20 ms frame. (Tail
        // figures are the benchmark's business: other test files load this machine meanwhile.)
        const gaps = caller.packets.slice(1).map((p, i) => p.arrivalMs - caller.packets[i]!.arrivalMs);
        const medianGap = gaps.sort((a, b) => a - b)[Math.floor(gaps.length / 2)]!;
        expect(medianGap).toBeGreaterThan(15);
        expect(medianGap).toBeLessThan(25);
        // A gross bound only (stream not held back and flushed late): with other suites, training
        // jobs and 10+ processes on 2 cores the tail reached 404 ms here; bench:pipeline measures it.
        expect(p99).toBeLessThan(1500);
        // The agent's audio is not silence (the untrained model speaks units, the vocoder voices them).
        const audio = caller.agentAudio();
        let energy = 0;
        for (const s of audio) energy += s * s;
        expect(Math.sqrt(energy / audio.length)).toBeGreaterThan(30);
      }
      const vocoderMetrics = await system.processes.vocoder[0]!.metrics();
      // The call's chunk 0 starts after setup, so even the agent's first chunks are there in time.
      const missing = metricValue(vocoderMetrics, 'duet_vocoder_chunks_total', { result: 'missing' }) || 0;
      console.log(`vocoder chunks missing at their play time: ${missing}`);
      expect(missing).toBeLessThanOrEqual(2);
      expect(metricValue(vocoderMetrics, 'duet_vocoder_chunks_total', { result: 'played' })).toBeGreaterThan(
        2 * 20,
      );
      const tokenizerMetrics = await system.processes.tokenizer[0]!.metrics();
      expect(
        metricValue(tokenizerMetrics, 'duet_tokenizer_rtp_packets_total', { result: 'ok' }),
      ).toBeGreaterThan(2 * 50 * (seconds - 1));
    } finally {
      for (const c of callers) c.close();
    }
  });

  it('refuses a call at once when no worker has room', async () => {
    const callers = await Promise.all([0, 1, 2].map(() => RtpCaller.open({ codec: 'pcmu' })));
    const ids = callers.map((_, i) => `full-${i}-${Date.now()}`);
    try {
      for (const [i, caller] of callers.slice(0, 2).entries()) {
        await control.openCall({
          callId: ids[i]!,
          codec: Codec.CODEC_PCMU,
          payloadType: 0,
          destination: caller.localEndpoint,
        });
      }
      const t0 = performance.now();
      const refused = await control
        .openCall({
          callId: ids[2]!,
          codec: Codec.CODEC_PCMU,
          payloadType: 0,
          destination: callers[2]!.localEndpoint,
        })
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      expect(refused).toBeInstanceOf(CallSetupError);
      expect((refused as CallSetupError).code).toBe(status.RESOURCE_EXHAUSTED);
      expect((refused as CallSetupError).stage).toBe('inference');
      console.log(`no-capacity refusal in ${(performance.now() - t0).toFixed(1)} ms`);
    } finally {
      await Promise.all(ids.map((id) => control.closeCall(id, 'test done')));
      for (const c of callers) c.close();
    }
  });
});

describe('call setup', () => {
  it('rolls back every service when one of the concurrent opens fails', async () => {
    const callId = `rollback-${Date.now()}`;
    const failed = await control
      .openCall({
        callId,
        codec: Codec.CODEC_PCMU,
        payloadType: 0,
        destination: { host: '127.0.0.1', port: 0 }, // the vocoder refuses a destination without a port
      })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(failed).toBeInstanceOf(CallSetupError);
    expect((failed as CallSetupError).stage).toBe('vocoder');
    expect((failed as CallSetupError).code).toBe(status.INVALID_ARGUMENT);
    // Nothing is left open: the tokenizer holds no call, and the same id opens again (the
    // placement record was removed, or inference would answer ALREADY_EXISTS).
    const tokenizer = await system.processes.tokenizer[0]!.metrics();
    expect(metricValue(tokenizer, 'duet_tokenizer_active_calls')).toBe(0);
    const again = await control.openCall({
      callId,
      codec: Codec.CODEC_PCMU,
      payloadType: 0,
      destination: { host: '127.0.0.1', port: 9 },
    });
    expect(again.callId).toBe(callId);
    await control.closeCall(callId, 'test done');
  });
});

describe('docs/metrics.md', () => {
  it('documents exactly the metrics each service exports', async () => {
    const doc = readFileSync(join(repoRoot, 'docs/metrics.md'), 'utf8');
    const documented = new Map<string, Set<string>>();
    for (const m of doc.matchAll(/^\| (\w+) \| `(duet_\w+)` \|/gm)) {
      const set = documented.get(m[1]!) ?? new Set<string>();
      set.add(m[2]!);
      documented.set(m[1]!, set);
    }
    for (const service of ['clock', 'tokenizer', 'inference', 'vocoder'] as const) {
      const text = await system.processes[service][0]!.metrics();
      const exported = new Set(
        [...text.matchAll(/^# TYPE (duet_\w+) /gm)]
          .map((m) => m[1]!)
          .filter((n) => n.startsWith(`duet_${service}_`)),
      );
      expect([...exported].sort(), service).toEqual([...(documented.get(service) ?? [])].sort());
    }
  });
});
