// pnpm bench:sfu — N concurrent WebRTC calls from werift callers through the SFU (one mediasoup
// worker = one core), with stand-in call services (fakeCallServices.ts), so only the SFU is
// measured. Each caller sends 50 packets/s up (-> the "tokenizer" sink) and the "vocoder" sends 50
// packets/s down (-> the caller); every packet carries its send time, so forwarding latency and
// latency are measured per packet (they include the werift callers' own SRTP work, in this
// process: at high counts the load generator, not the SFU, dominates them). Loss: up = probes that
// never reached the "tokenizer"; down = packets the SFU received from the "vocoder" but did not
// send on (its consumer stats); what the werift callers themselves missed is printed apart.
// SFU CPU = the SFU's node process + its mediasoup worker.
// The SFU's own forwarding latency: with tcpdump (root), loopback is captured during each level's
// window and each probe is timed between its kernel timestamps entering and leaving the SFU
// (pcap.ts): up, the caller's SRTP (`ssrc:seq` in the clear, recorded as the caller sends) to the
// plain RTP to the "tokenizer" (probe in the clear); down, the "vocoder"'s plain RTP to the SRTP to
// the caller (`ssrc:seq` recorded as the caller receives). Without tcpdump these are skipped.
// Last line: {"calls", "sfu_cpu_pct_per_call", "forward_latency_p99_ms" (end to end, probe send
// time to receive, load generator included), "sfu_forward_p99_ms" (kernel-timestamped, the SFU
// alone), "loss_pct", ...}.
//
// BENCH_CALLS (comma-separated levels, default 10,50,100), BENCH_SECONDS (per level, default 10),
// BENCH_PCAP=0 skips the capture.

import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type ServiceProcess, startNatsServer, startServiceProcess } from '@duet/runtime/testing';
import { mintCallToken } from '../token.js';
import {
  type FakeCall,
  probePayload,
  readProbe,
  rtpPacket,
  rtpPayload,
  startFakeCallServices,
} from './fakeCallServices.js';
import { type Capture, captureUnavailable, matchForwarding, percentile, startCapture } from './pcap.js';
import { WeriftCaller } from './weriftCaller.js';

const SECRET = 'bench-secret-bench-secret-bench-secret!!';
const levels = (process.env.BENCH_CALLS ?? '10,50,100')
  .split(',')
  .map(Number)
  .filter((n) => n > 0);
const seconds = Number(process.env.BENCH_SECONDS ?? 10);
const OPUS_PT = 111;
/** Callers connecting at once (werift spends ~5 s gathering ICE candidates per peer connection). */
const BATCH = Number(process.env.BENCH_CONNECT_BATCH ?? 20);
/** USER_HZ: /proc/<pid>/stat counts CPU time in 1/100 s on Linux. */
const ticksPerSecond = 100;

function cpuTicks(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return Number(rest[11]) + Number(rest[12]); // utime + stime
}

const pct = percentile;
const ms = (x: number) => (Number.isFinite(x) ? Number(x.toFixed(3)) : null);

/** Probes received in one direction: packet index and latency (ms). */
interface Received {
  call: number[];
  index: number[];
  latency: number[];
}
const received = (): Received => ({ call: [], index: [], latency: [] });

async function main(): Promise<void> {
  const here = dirname(fileURLToPath(import.meta.url));
  const nats = await startNatsServer({ prefer: 'auto' });
  const fakes = await startFakeCallServices();
  let sfuPort = 0;
  const sfu: ServiceProcess = await startServiceProcess({
    name: 'sfu',
    entry: join(here, '..', 'main.js'),
    timeoutMs: 60_000,
    env: {
      DUET_NATS_URL: nats.url,
      DUET_SFU_PORT: '0',
      DUET_SFU_WORKERS: '1',
      DUET_SFU_RTC_PORT_MIN: '46000',
      DUET_SFU_RTC_PORT_MAX: '47999',
      DUET_SFU_INFERENCE_ADDR: fakes.address,
      DUET_SFU_TOKENIZER_ADDR: fakes.address,
      DUET_SFU_VOCODER_ADDR: fakes.address,
      DUET_SFU_TOKEN_SECRET: SECRET,
      DUET_SFU_DEBUG_DUMP: 'true',
      DUET_SFU_CONNECTIONS_PER_MINUTE: '100000',
      DUET_SFU_IDLE_TIMEOUT_MS: '600000',
      DUET_LOG_LEVEL: 'warn',
    },
    onLog: (e) => {
      if (e.msg === 'signalling listening') sfuPort = Number(e.sfuPort);
    },
  });
  const dump = (await (await fetch(`http://127.0.0.1:${sfuPort}/debug/mediasoup`)).json()) as {
    workers: { pid: number }[];
  };
  const pids = [sfu.child.pid!, ...dump.workers.map((w) => w.pid)];
  console.log(
    `SFU up (node pid ${pids[0]}, mediasoup worker pid ${pids[1]}); levels ${levels.join(', ')} calls, ${seconds} s each`,
  );

  const noCapture = process.env.BENCH_PCAP === '0' ? 'BENCH_PCAP=0' : await captureUnavailable();
  if (noCapture)
    console.log(`SFU forwarding from kernel timestamps: skipped (${noCapture}); end-to-end figures only`);

  const results: Record<string, number | null>[] = [];
  let up = received();
  let down = received();
  /** `ssrc:seq` on the wire -> probe id (`call:index`), as the callers send and receive. */
  let upSent = new Map<string, string>();
  let downReceived = new Map<string, string>();
  fakes.onTokenizerPacket = (_call, payload, at) => {
    const p = readProbe(payload);
    if (!p) return;
    up.call.push(p.call);
    up.index.push(p.index);
    up.latency.push(at - p.sentAt);
  };

  for (const n of levels) {
    const callers: WeriftCaller[] = [];
    const connectMs: number[] = [];
    const t0 = performance.now();
    // Connect in small batches (the callers' DTLS handshakes are JavaScript: the load generator's cost).
    for (let i = 0; i < n; i += BATCH) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(BATCH, n - i) }, async (_, j) => {
          const token = await mintCallToken({ secret: SECRET, callId: `bench-${n}-${i + j}-${Date.now()}` });
          return WeriftCaller.connect(`ws://127.0.0.1:${sfuPort}/ws`, token, {
            onAgentRtp: (rtp) => {
              const p = readProbe(rtp.payload);
              if (!p) return;
              down.call.push(p.call);
              down.index.push(p.index);
              down.latency.push(performance.timeOrigin + performance.now() - p.sentAt);
              downReceived.set(`${rtp.header.ssrc}:${rtp.header.sequenceNumber}`, `${p.call}:${p.index}`);
            },
          });
        }),
      );
      callers.push(...batch);
      connectMs.push(...batch.map((c) => c.connectMs));
    }
    const setupS = (performance.now() - t0) / 1000;
    const fakeCalls = [...fakes.calls.values()].filter(
      (c): c is FakeCall & { destination: object } => !!c.destination,
    );

    // Paced media both ways, 20 ms frames. The window: the frames sent after 1 s of warm-up for
    // BENCH_SECONDS; sending goes on 0.5 s after it so that the window's last packets arrive.
    up = received();
    down = received();
    upSent = new Map();
    downReceived = new Map();
    let frame = 0;
    const { RtpPacket, RtpHeader } = await import('werift');
    const timer = setInterval(() => {
      frame++;
      for (let i = 0; i < callers.length; i++) {
        const payload = probePayload(i, frame);
        const onWire = callers[i]!.send(
          new RtpPacket(
            new RtpHeader({ payloadType: OPUS_PT, sequenceNumber: frame & 0xffff, timestamp: frame * 960 }),
            payload,
          ),
        );
        if (!noCapture) upSent.set(onWire, `${i}:${frame}`);
      }
      for (const [j, c] of fakeCalls.entries()) {
        c.seq++;
        const d = c.destination!;
        c.source.send(rtpPacket(OPUS_PT, c.ssrc, c.seq, c.seq * 960, probePayload(j, frame)), d.port, d.host);
      }
    }, 20);
    await new Promise((r) => setTimeout(r, 1_000));
    // The ports that tell the sides apart: the SFU's WebRTC ports (callers' side) and the fake
    // tokenizer sinks / vocoder sources (the plain side).
    const sfuPorts = new Set(callers.flatMap((c) => c.sfuPorts));
    const tokenizerPorts = new Set(fakeCalls.map((c) => c.sink.address().port));
    const vocoderPorts = new Set(fakeCalls.map((c) => c.source.address().port));
    let capture: Capture | undefined;
    let captureError: string | undefined;
    if (!noCapture) {
      capture = await startCapture(join(tmpdir(), `duet-sfu-bench-${process.pid}-${n}.pcap`)).catch(
        (e: unknown) => {
          captureError = String(e);
          return undefined;
        },
      );
    }
    const cpu0 = pids.map(cpuTicks);
    const w0 = performance.now();
    const first = frame + 1;
    await new Promise((r) => setTimeout(r, seconds * 1_000));
    const last = frame;
    const wall = (performance.now() - w0) / 1000;
    const cpu1 = pids.map(cpuTicks);
    await new Promise((r) => setTimeout(r, 500));
    clearInterval(timer);
    await new Promise((r) => setTimeout(r, 200));
    const captured = await capture?.stop().catch((e: unknown) => {
      captureError = String(e);
      return undefined;
    });
    let fwd: ReturnType<typeof matchForwarding> | undefined;
    if (captured) {
      fwd = matchForwarding({
        packets: captured.packets,
        sfuPorts,
        tokenizerPorts,
        vocoderPorts,
        upSent,
        downReceived,
        probeOf: (d) => {
          const payload = rtpPayload(d);
          const p = payload && readProbe(payload);
          return p ? `${p.call}:${p.index}` : undefined;
        },
        inWindow: (id) => {
          const index = Number(id.slice(id.indexOf(':') + 1));
          return index >= first && index <= last;
        },
      });
      const f = (xs: number[]) =>
        `${pct(xs, 50).toFixed(3)}/${pct(xs, 99).toFixed(3)}/${(xs.length ? xs.reduce((m, x) => Math.max(m, x), -Infinity) : Number.NaN).toFixed(3)}`;
      console.log(
        `SFU forwarding (kernel timestamps at the SFU's sockets): up p50/p99/max ${f(fwd.up.latencies)} ms, down p50/p99/max ${f(fwd.down.latencies)} ms, matched ${fwd.up.matched + fwd.down.matched} of ${fwd.up.total + fwd.down.total} (up ${fwd.up.matched}/${fwd.up.total}, down ${fwd.down.matched}/${fwd.down.total}; ${captured.packets.length} UDP packets captured, link type ${captured.linkType}, ${captured.dropped} dropped by the kernel)`,
      );
    } else if (captureError) {
      console.log(`SFU forwarding from kernel timestamps: skipped at this level (${captureError})`);
    }
    const inWindow = (d: Received) => {
      const latencies = d.latency.filter((_, k) => d.index[k]! >= first && d.index[k]! <= last);
      return { received: latencies.length, latencies };
    };
    const sentPerDirection = (last - first + 1) * n;
    // The SFU's own view of the down direction (whole calls): packets from the vocoder in,
    // packets to the callers out. The callers' count above also includes the load generator.
    const sfuDown = { in: 0, out: 0 };
    for (const st of await Promise.all(callers.map((c) => c.stats()))) {
      for (const x of st.agentOut as { type: string; packetCount: number }[]) {
        if (x.type === 'inbound-rtp') sfuDown.in += x.packetCount;
        if (x.type === 'outbound-rtp') sfuDown.out += x.packetCount;
      }
    }
    const sfuDownLoss = Math.max(0, 1 - sfuDown.out / Math.max(1, sfuDown.in)) * 100;
    if (process.env.BENCH_DEBUG) {
      const got = new Set(down.index.map((x, k) => `${down.call[k]}:${x}`));
      const missing: string[] = [];
      for (let j = 0; j < n; j++)
        for (let f = first; f <= last; f++) if (!got.has(`${j}:${f}`)) missing.push(`${j}:${f}`);
      console.log(`down missing (call:frame, window ${first}-${last}): ${missing.slice(0, 20).join(' ')}`);
      const st = await callers[0]!.stats();
      const recvd = down.call.filter((c) => c === 0).length;
      console.log(
        `SFU stats of a call: ${JSON.stringify(st)}; the caller received ${recvd} agent probes in all`,
      );
    }
    const upW = inWindow(up);
    const downW = inWindow(down);
    const cpuPct =
      ((cpu1.reduce((a, b) => a + b, 0) - cpu0.reduce((a, b) => a + b, 0)) / ticksPerSecond / wall) * 100;
    const workerPct = ((cpu1[1]! - cpu0[1]!) / ticksPerSecond / wall) * 100;
    const lossUp = Math.max(0, 1 - upW.received / sentPerDirection) * 100;
    const lossDown = Math.max(0, 1 - downW.received / sentPerDirection) * 100;
    const r = {
      calls: n,
      connect_p50_ms: Math.round(pct(connectMs, 50)),
      connect_max_ms: Math.round(Math.max(...connectMs)),
      setup_s: Number(setupS.toFixed(1)),
      sfu_cpu_pct: Number(cpuPct.toFixed(1)),
      worker_cpu_pct: Number(workerPct.toFixed(1)),
      sfu_cpu_pct_per_call: Number((cpuPct / n).toFixed(3)),
      up_loss_pct: Number(lossUp.toFixed(3)),
      down_loss_pct: Number(sfuDownLoss.toFixed(3)),
      down_loss_at_caller_pct: Number(lossDown.toFixed(3)),
      up_p50_ms: Number(pct(upW.latencies, 50).toFixed(2)),
      up_p99_ms: Number(pct(upW.latencies, 99).toFixed(2)),
      down_p50_ms: Number(pct(downW.latencies, 50).toFixed(2)),
      down_p99_ms: Number(pct(downW.latencies, 99).toFixed(2)),
      sfu_fwd_up_p50_ms: fwd ? ms(pct(fwd.up.latencies, 50)) : null,
      sfu_fwd_up_p99_ms: fwd ? ms(pct(fwd.up.latencies, 99)) : null,
      sfu_fwd_down_p50_ms: fwd ? ms(pct(fwd.down.latencies, 50)) : null,
      sfu_fwd_down_p99_ms: fwd ? ms(pct(fwd.down.latencies, 99)) : null,
      sfu_fwd_matched: fwd ? fwd.up.matched + fwd.down.matched : null,
      sfu_fwd_probes: fwd ? fwd.up.total + fwd.down.total : null,
    };
    results.push(r);
    console.log(JSON.stringify(r));
    await Promise.all(callers.map((c) => c.hangup()));
    await new Promise((r) => setTimeout(r, 1_000));
  }

  const clean = results.filter((r) => r.up_loss_pct === 0 && r.down_loss_pct === 0);
  const best = clean.at(-1) ?? results[0]!;
  const perCall = best.sfu_cpu_pct_per_call!;
  console.log(
    '\ncalls | SFU CPU % | worker % | CPU %/call | loss up/down (SFU) % | down loss at caller % | up p50/p99 ms | down p50/p99 ms | SFU kernel up p50/p99 ms | SFU kernel down p50/p99 ms | matched | connect p50/max ms',
  );
  for (const r of results) {
    console.log(
      `${r.calls} | ${r.sfu_cpu_pct} | ${r.worker_cpu_pct} | ${r.sfu_cpu_pct_per_call} | ${r.up_loss_pct}/${r.down_loss_pct} | ${r.down_loss_at_caller_pct} | ${r.up_p50_ms}/${r.up_p99_ms} | ${r.down_p50_ms}/${r.down_p99_ms} | ${r.sfu_fwd_up_p50_ms ?? '-'}/${r.sfu_fwd_up_p99_ms ?? '-'} | ${r.sfu_fwd_down_p50_ms ?? '-'}/${r.sfu_fwd_down_p99_ms ?? '-'} | ${r.sfu_fwd_matched ?? '-'}/${r.sfu_fwd_probes ?? '-'} | ${r.connect_p50_ms}/${r.connect_max_ms}`,
    );
  }
  console.log(
    `largest level with zero loss: ${clean.at(-1)?.calls ?? 'none'} calls; SFU CPU per call ${perCall.toFixed(3)} % of a core -> ~${Math.floor(100 / perCall)} calls per core by CPU (the werift callers, in this process, are the load generator's limit)`,
  );
  await sfu.stop();
  await fakes.close();
  await nats.stop();
  console.log(
    JSON.stringify({
      calls: clean.at(-1)?.calls ?? 0,
      calls_per_core_by_cpu: Math.floor(100 / perCall),
      sfu_cpu_pct_per_call: perCall,
      forward_latency_p99_ms: Math.max(best.up_p99_ms!, best.down_p99_ms!),
      sfu_forward_p99_ms:
        best.sfu_fwd_up_p99_ms == null || best.sfu_fwd_down_p99_ms == null
          ? null
          : Math.max(best.sfu_fwd_up_p99_ms, best.sfu_fwd_down_p99_ms),
      sfu_forward_p99_up_ms: best.sfu_fwd_up_p99_ms ?? null,
      sfu_forward_p99_down_ms: best.sfu_fwd_down_p99_ms ?? null,
      loss_pct: Math.max(best.up_loss_pct!, best.down_loss_pct!),
      caller_loss_pct: best.down_loss_at_caller_pct,
      connect_p50_ms: best.connect_p50_ms,
    }),
  );
  process.exit(0);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
