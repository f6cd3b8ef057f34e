/**
 * `pnpm bench:pipeline`: N concurrent calls driven over RTP on loopback through every service
 * (each its own process, default models, a local nats-server). Prints per level: missed ticks,
 * per-stage added delay p50/p99, CPU per call per service; the last line is one JSON object.
 *
 * Env: BENCH_CALLS (levels, default "2,6,10,14"), BENCH_SECONDS (per level, default 60).
 */

import { Codec, decodeMessage, Tick, UnitChunk } from '@duet/protocol';
import { DuetControl, subjects } from '@duet/runtime';
import { metricValue } from '@duet/runtime/testing';
import { connect } from '@nats-io/transport-node';
import { loadCallerWav, synthesiseSpeech } from '../call/callerAudio.js';
import { RtpCaller } from '../call/rtpCaller.js';
import { launchSystem, type RunningSystem, SERVICE_NAMES, type ServiceName } from '../start/launcher.js';
import { processCpuMs } from './processCpu.js';
import { histogramDelta, histogramQuantile, readHistogram } from './promHistogram.js';

const LEVELS = (process.env.BENCH_CALLS ?? '2,6,10,14').split(',').map(Number);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 60);
const JITTER_MS = Number(process.env.BENCH_JITTER_MS ?? 20);

const TEXT =
  'Hello, I would like to book a table for two people tomorrow evening, around seven if you can. ' +
  'Actually, wait, could we make it eight? My friend is coming from the airport and her flight lands late.';

interface LevelResult {
  calls: number;
  seconds: number;
  missedTicks: number;
  deadlineMisses: number;
  vocoderMissing: number;
  vocoderLate: number;
  lateUserChunks: number;
  tokenizerMs: [number, number];
  inferenceMs: [number, number];
  vocoderUnitsToAudioMs: [number, number];
  sendLatenessMs: [number, number];
  addedDelayP99Ms: number;
  cpuMsPerCallPerS: Record<ServiceName, number>;
  cpuMsPerCallPerSTotal: number;
  agentPacketsLost: number;
}

function quantiles(values: number[]): [number, number] {
  const s = [...values].sort((a, b) => a - b);
  const q = (f: number) => s[Math.min(s.length - 1, Math.floor(f * s.length))] ?? Number.NaN;
  return [q(0.5), q(0.99)];
}

async function scrape(system: RunningSystem): Promise<Record<ServiceName, string>> {
  const out = {} as Record<ServiceName, string>;
  for (const s of SERVICE_NAMES) out[s] = await system.processes[s][0]!.metrics();
  return out;
}

function cpu(system: RunningSystem): Record<ServiceName, number> {
  const out = {} as Record<ServiceName, number>;
  for (const s of SERVICE_NAMES) out[s] = processCpuMs(system.processes[s][0]!.child.pid ?? 0);
  return out;
}

async function runLevel(system: RunningSystem, speech: Int16Array, calls: number): Promise<LevelResult> {
  const control = new DuetControl(system.addresses);
  const nc = await connect({ servers: system.natsUrl });
  const tickTime = new Map<number, number>();
  const firstTick = new Map<string, number>();
  const tokenizerMs: number[] = [];
  const inferenceMs: number[] = [];
  const sub = nc.subscribe('duet.>');
  void (async () => {
    for await (const m of sub) {
      try {
        if (m.subject === subjects.tick) {
          const t = decodeMessage(Tick, 'Tick', m.data);
          tickTime.set(Number(t.seq), Number(t.scheduledAtMs));
        } else if (m.subject.endsWith('.user') || m.subject.endsWith('.agent')) {
          const c = decodeMessage(UnitChunk, 'UnitChunk', m.data);
          const f = firstTick.get(c.callId);
          if (f === undefined) continue;
          const k = Number(c.chunkIndex);
          // user chunk k is cut at tick f+k+1; agent chunk j is made at tick f+j-1
          const seq = m.subject.endsWith('.user') ? f + k + 1 : f + k - 1;
          const t = tickTime.get(seq);
          if (t !== undefined)
            (m.subject.endsWith('.user') ? tokenizerMs : inferenceMs).push(Number(c.producedAtMs) - t);
        }
      } catch {
        // not ours to judge here
      }
    }
  })();

  const callers = await Promise.all(Array.from({ length: calls }, () => RtpCaller.open({ codec: 'pcmu' })));
  const ids: string[] = [];
  const before = await scrape(system);
  const cpuBefore = cpu(system);
  const t0 = performance.now();
  const audio = new Int16Array(Math.round(8000 * SECONDS));
  for (let i = 0; i < audio.length; i++) audio[i] = speech[i % speech.length]!;
  const plays: Promise<void>[] = [];
  for (const [i, caller] of callers.entries()) {
    const callId = `bench-${calls}-${i}-${Date.now()}`;
    const call = await control.openCall({
      callId,
      codec: Codec.CODEC_PCMU,
      payloadType: 0,
      destination: caller.localEndpoint,
    });
    ids.push(callId);
    firstTick.set(callId, Number(call.placement.firstTick));
    // Stagger the callers' speech so they do not all talk in phase.
    plays.push(caller.play(audio.subarray((i * 8000 * 0.37) | 0), call.tokenizerRtp));
  }
  let done = 0;
  const progress = setInterval(() => {
    done = Math.min(SECONDS, Math.round((performance.now() - t0) / 1000));
    process.stderr.write(`\r  ${calls} calls: ${done}/${SECONDS} s`);
  }, 1000);
  await Promise.all(plays);
  clearInterval(progress);
  process.stderr.write('\n');
  const elapsedS = (performance.now() - t0) / 1000;
  const after = await scrape(system);
  const cpuAfter = cpu(system);
  await Promise.all(ids.map((id) => control.closeCall(id, 'bench level done')));
  let agentPacketsLost = 0;
  for (const c of callers) {
    agentPacketsLost += c.stats().packetsLost;
    c.close();
  }
  control.close();
  sub.unsubscribe();
  await nc.close();

  const delta = (s: ServiceName, name: string, labels: Record<string, string> = {}) =>
    (metricValue(after[s], name, labels) || 0) - (metricValue(before[s], name, labels) || 0);
  const hist = (s: ServiceName, name: string): [number, number] => {
    const d = histogramDelta(readHistogram(after[s], name), readHistogram(before[s], name));
    return [histogramQuantile(d, 0.5), histogramQuantile(d, 0.99)];
  };
  const sendLateness = hist('vocoder', 'duet_vocoder_send_lateness_ms');
  const cpuPerCall = {} as Record<ServiceName, number>;
  for (const s of SERVICE_NAMES) cpuPerCall[s] = (cpuAfter[s] - cpuBefore[s]) / calls / elapsedS;
  return {
    calls,
    seconds: Number(elapsedS.toFixed(1)),
    missedTicks: delta('inference', 'duet_inference_missed_ticks_total'),
    deadlineMisses: delta('inference', 'duet_inference_deadline_misses_total'),
    vocoderMissing: delta('vocoder', 'duet_vocoder_chunks_total', { result: 'missing' }),
    vocoderLate: delta('vocoder', 'duet_vocoder_chunks_total', { result: 'late' }),
    lateUserChunks: delta('inference', 'duet_inference_user_chunks_total', { result: 'late' }),
    tokenizerMs: quantiles(tokenizerMs),
    inferenceMs: quantiles(inferenceMs),
    vocoderUnitsToAudioMs: hist('vocoder', 'duet_vocoder_units_to_audio_ms'),
    sendLatenessMs: sendLateness,
    // Input: the jitter buffer's playout delay; output: how late the agent's frames leave.
    addedDelayP99Ms: JITTER_MS + Math.max(0, sendLateness[1]),
    cpuMsPerCallPerS: cpuPerCall,
    cpuMsPerCallPerSTotal: SERVICE_NAMES.reduce((a, s) => a + cpuPerCall[s], 0),
    agentPacketsLost,
  };
}

const f1 = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : '-');

async function main(): Promise<void> {
  console.log(
    `bench:pipeline: levels ${LEVELS.join(', ')} calls x ${SECONDS} s; tokenizer jitter buffer ${JITTER_MS} ms`,
  );
  const said = synthesiseSpeech(TEXT);
  const speech = await loadCallerWav(said.path, 8000);
  said.cleanup();
  const maxCalls = Math.max(...LEVELS);
  const system = await launchSystem({
    env: {
      inference: { DUET_INFERENCE_SLOTS: String(maxCalls) },
      tokenizer: { DUET_TOKENIZER_JITTER_MS: String(JITTER_MS) },
      '*': { DUET_LOG_LEVEL: 'warn' },
    },
  });
  const results: LevelResult[] = [];
  try {
    for (const calls of LEVELS) {
      const r = await runLevel(system, speech, calls);
      results.push(r);
      console.log(
        `calls ${r.calls}: missed ticks ${r.missedTicks}, deadline misses ${r.deadlineMisses}, vocoder missing/late chunks ${r.vocoderMissing}/${r.vocoderLate}, late user chunks ${r.lateUserChunks}, agent packets lost ${r.agentPacketsLost}`,
      );
      console.log(
        `  stage ms p50/p99: tokenizer (tick -> units) ${f1(r.tokenizerMs[0])}/${f1(r.tokenizerMs[1])}, inference (tick -> agent units) ${f1(r.inferenceMs[0])}/${f1(r.inferenceMs[1])}, vocoder (units -> audio) ${f1(r.vocoderUnitsToAudioMs[0])}/${f1(r.vocoderUnitsToAudioMs[1])}, RTP send lateness ${f1(r.sendLatenessMs[0])}/${f1(r.sendLatenessMs[1])}`,
      );
      console.log(
        `  added delay p99 ${f1(r.addedDelayP99Ms)} ms (jitter buffer ${JITTER_MS} + send lateness p99); CPU ms per call per s: ${SERVICE_NAMES.map((s) => `${s} ${r.cpuMsPerCallPerS[s].toFixed(1)}`).join(', ')}; total ${r.cpuMsPerCallPerSTotal.toFixed(1)}`,
      );
    }
  } finally {
    await system.stop();
  }
  const holding = results.filter((r) => r.missedTicks === 0 && r.deadlineMisses === 0);
  const best = holding.length > 0 ? holding[holding.length - 1]! : results[0]!;
  console.log(
    `sizing (calls per core at the largest clean level): ${SERVICE_NAMES.map((s) => `${s} ${Math.floor(1000 / Math.max(1e-3, best.cpuMsPerCallPerS[s]))}`).join(', ')}`,
  );
  console.log(
    JSON.stringify({
      calls: best.calls,
      missed_ticks: best.missedTicks,
      added_delay_p99_ms: Number(best.addedDelayP99Ms.toFixed(1)),
      cpu_ms_per_call_per_s: Number(best.cpuMsPerCallPerSTotal.toFixed(1)),
    }),
  );
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
