import { type ChildProcess, spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { launchSystem, type RunningSystem } from '@duet/cli';
import { repoRoot } from '@duet/engine/tiny';
import { CallEvent, CallEventKind } from '@duet/protocol';
import { connectNats, createLogger, DuetControl, type NatsConnection, subjects } from '@duet/runtime';
import { metricValue } from '@duet/runtime/testing';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { mediaTestModel } from './mediaModel.js';
import { exportedSampleNames, metricNames } from './promqlNames.js';
import {
  runSipp,
  type SipBridgeProcess,
  type SippOptions,
  sipBridgeOf,
  sipLaunch,
  writeDtmfPcap,
  writeSippAudio,
} from './sipHarness.js';

// Phone callers end to end: SIPp (sip-tester) and baresip, two independent SIP stacks, call the
// bridge; their RTP goes through mediasoup to the tokenizer / inference / vocoder and back.

let system: RunningSystem;
let bridge: SipBridgeProcess;
let control: DuetControl;
let nc: NatsConnection;
let dir: string;
const dtmf: string[] = [];
const SLOTS = 8;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'duet-sip-e2e-'));
  writeSippAudio(dir);
  writeDtmfPcap(join(dir, 'dtmf.pcap'), 7);
  const sip = sipLaunch({
    DUET_SIP_RTP_TIMEOUT_MS: '3000',
    // Rings before answering, so that a CANCEL can arrive first.
    DUET_SIP_ANSWER_DELAY_MS: '800',
    DUET_SIP_T1_MS: '200',
  });
  system = await launchSystem({
    dialogueModel: await mediaTestModel(),
    env: { inference: { DUET_INFERENCE_SLOTS: String(SLOTS) } },
    ...sip.options,
  });
  bridge = sipBridgeOf(system, sip.calls);
  control = new DuetControl(system.addresses);
  nc = await connectNats({
    url: system.natsUrl,
    name: 'sip-e2e',
    log: createLogger('sip-e2e', 'test', 'warn'),
  });
  nc.subscribe(subjects.allCallEvents, {
    callback: (_, msg) => {
      const e = CallEvent.decode(msg.data);
      if (e.kind === CallEventKind.CALL_EVENT_KIND_DTMF) dtmf.push(e.detail);
    },
  });
});

afterAll(async () => {
  await nc?.close();
  control?.close();
  await system?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** A metric of the bridge (0 while the series does not exist yet). */
async function sip(name: string, labels?: Record<string, string>): Promise<number> {
  const v = metricValue(await bridge.proc.metrics(), name, labels);
  return Number.isFinite(v) ? v : 0;
}
const finite = (v: number) => (Number.isFinite(v) ? v : 0);
const activeCalls = async (service: 'inference' | 'tokenizer' | 'vocoder') =>
  finite(metricValue(await system.processes[service][0]!.metrics(), `duet_${service}_active_calls`));
const tokenizerPackets = async () =>
  finite(
    metricValue(await system.processes.tokenizer[0]!.metrics(), 'duet_tokenizer_rtp_packets_total', {
      result: 'ok',
    }),
  );

async function sipp(options: Omit<SippOptions, 'port' | 'cwd'>) {
  const r = await runSipp({ ...options, port: bridge.port, cwd: dir });
  if (r.code !== 0) {
    let errors = '';
    for (const f of readdirSync(dir)) if (f.endsWith('.err')) errors += readFileSync(join(dir, f), 'utf8');
    throw new Error(
      `sipp ${options.scenario} exited ${r.code}:\n${errors.slice(-4000)}\n${r.stderr.slice(-2000)}`,
    );
  }
  return r;
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Every service and the bridge have released every call. */
const allReleased = () =>
  waitFor('every call to be released', async () => {
    const counts = await Promise.all([
      sip('duet_sip_active_calls'),
      ...(['inference', 'tokenizer', 'vocoder'] as const).map(activeCalls),
    ]);
    return counts.every((c) => c === 0) ? true : undefined;
  });

describe('SIPp calls', () => {
  for (const transport of ['udp', 'tcp'] as const) {
    it(`a call over ${transport.toUpperCase()}: RTP both ways through the loop, DTMF as call events, the caller hangs up`, async () => {
      const before = {
        in: await sip('duet_sip_rtp_packets_total', { direction: 'in' }),
        out: await sip('duet_sip_rtp_packets_total', { direction: 'out' }),
        tokenizer: await tokenizerPackets(),
        accepted: await sip('duet_sip_calls_accepted_total'),
        bye: await sip('duet_sip_calls_ended_total', { reason: 'caller_bye' }),
      };
      dtmf.length = 0;
      await sipp({ scenario: 'call-caller-bye.xml', transport });
      await allReleased();
      expect(await sip('duet_sip_calls_accepted_total')).toBe(before.accepted + 1);
      expect(await sip('duet_sip_calls_ended_total', { reason: 'caller_bye' })).toBe(before.bye + 1);
      // ~4.5 s of 20 ms packets each way; the caller's reached the tokenizer through mediasoup.
      expect(await sip('duet_sip_rtp_packets_total', { direction: 'in' })).toBeGreaterThan(before.in + 150);
      expect(await sip('duet_sip_rtp_packets_total', { direction: 'out' })).toBeGreaterThan(before.out + 100);
      expect(await tokenizerPackets()).toBeGreaterThan(before.tokenizer + 150);
      // RFC 4733 "7" in band (three packets, one event) and "5" by SIP INFO, each published once.
      await waitFor('DTMF events', async () => (dtmf.length >= 2 ? true : undefined));
      expect([...dtmf].sort()).toEqual(['5', '7']);
    });
  }

  for (const transport of ['udp', 'tcp'] as const) {
    it(`a call service drops the call: the bridge hangs up with a BYE over ${transport.toUpperCase()} and releases everything`, async () => {
      const known = new Set(bridge.answered.values());
      const before = await sip('duet_sip_calls_ended_total', { reason: 'closed_by_service' });
      const run = sipp({ scenario: 'call-bridge-bye.xml', transport });
      const callId = await waitFor('the call to be answered', async () =>
        [...bridge.answered.values()].find((id) => !known.has(id)),
      );
      // The 200 OK may precede the call services (DUET_SIP_ANSWER_ON=media): the agent hangs up a
      // call that is open on them.
      await waitFor('the call services to open the call', async () =>
        [...bridge.ready.values()].includes(callId) ? true : undefined,
      );
      await new Promise((r) => setTimeout(r, 1_000));
      await control.closeCall(callId, 'test: the agent hangs up');
      await run;
      await allReleased();
      expect(await sip('duet_sip_calls_ended_total', { reason: 'closed_by_service' })).toBe(before + 1);
    });
  }

  it('a caller that sends no RTP is hung up after the inactivity timeout', async () => {
    await sipp({ scenario: 'call-silent.xml' });
    await allReleased();
    expect(await sip('duet_sip_calls_ended_total', { reason: 'rtp_timeout' })).toBe(1);
  });

  it('hold and resume by re-INVITE: the answers mirror the direction (a=recvonly, then a=sendrecv)', async () => {
    await sipp({ scenario: 'hold-resume.xml' });
    await allReleased();
  });

  it('CANCEL before the answer: 200 to the CANCEL, 487 to the INVITE, nothing left open', async () => {
    const before = await sip('duet_sip_errors_total', { reason: 'cancelled' });
    await sipp({ scenario: 'cancel.xml' });
    await allReleased();
    expect(await sip('duet_sip_errors_total', { reason: 'cancelled' })).toBe(before + 1);
    expect(await sip('duet_sip_responses_total', { code: '487' })).toBeGreaterThanOrEqual(1);
  });

  it('OPTIONS over UDP and TCP is answered with the allowed methods', async () => {
    await sipp({ scenario: 'options.xml' });
    await sipp({ scenario: 'options.xml', transport: 'tcp' });
  });

  it('malformed and unsupported requests get 400 / 405 / 481 / 488 and the bridge goes on', async () => {
    const before = await sip('duet_sip_errors_total', { reason: 'malformed' });
    await sipp({ scenario: 'malformed.xml' });
    expect(await sip('duet_sip_errors_total', { reason: 'malformed' })).toBeGreaterThanOrEqual(before + 5);
  });

  it(`a burst of ${3 * SLOTS} simultaneous INVITEs: calls within capacity carry audio, the rest get 503 + Retry-After at once`, async () => {
    const before = {
      accepted: await sip('duet_sip_calls_accepted_total'),
      refused: await sip('duet_sip_errors_total', { reason: 'no_capacity' }),
      out: await sip('duet_sip_rtp_packets_total', { direction: 'out' }),
      r503: await sip('duet_sip_responses_total', { code: '503' }),
      failedAfterAnswer: await sip('duet_sip_errors_total', { reason: 'setup_failed_after_answer' }),
    };
    const calls = 3 * SLOTS;
    // Each call either plays 3 s of audio and hangs up or checks the 503's Retry-After (burst.xml).
    await sipp({ scenario: 'burst.xml', calls, limit: calls, rate: 1_000, timeoutS: 60 });
    await allReleased();
    const accepted = (await sip('duet_sip_calls_accepted_total')) - before.accepted;
    const refused = (await sip('duet_sip_errors_total', { reason: 'no_capacity' })) - before.refused;
    expect(accepted + refused).toBe(calls);
    expect(accepted).toBeGreaterThan(0);
    expect(accepted).toBeLessThanOrEqual(SLOTS);
    expect((await sip('duet_sip_responses_total', { code: '503' })) - before.r503).toBe(refused);
    // Answered (DUET_SIP_ANSWER_ON=media: possibly before the call services opened): none of them
    // was then refused by the services (capacity is admitted before the 200, not after).
    expect(await sip('duet_sip_errors_total', { reason: 'setup_failed_after_answer' })).toBe(
      before.failedAfterAnswer,
    );
    // Every answered call heard the agent for most of its 3 s.
    expect((await sip('duet_sip_rtp_packets_total', { direction: 'out' })) - before.out).toBeGreaterThan(
      accepted * 80,
    );
  });
});

describe('hostile traffic against the running bridge', () => {
  it('thousands of mutated SIP datagrams and TCP streams never crash it', async () => {
    const seed = readFileSync(join(repoRoot, 'test/sipp/call-caller-bye.xml'), 'utf8');
    const invite = `${seed
      .slice(seed.indexOf('INVITE sip:'), seed.indexOf(']]>'))
      .split('\n')
      .map((l) => l.trim())
      .join('\r\n')
      .trim()
      .replaceAll('[service]', 'duet')
      .replaceAll('[remote_ip]', '127.0.0.1')
      .replaceAll('[remote_port]', String(bridge.port))
      .replaceAll('[local_ip]', '127.0.0.1')
      .replaceAll('[local_port]', '5999')
      .replaceAll('[transport]', 'UDP')
      .replaceAll('[media_ip]', '127.0.0.1')
      .replaceAll('[media_ip_type]', '4')
      .replaceAll('[local_ip_type]', '4')
      .replaceAll('[media_port]', '9')
      .replaceAll('[call_number]', '1')
      .replaceAll('[pid]', '1')
      .replaceAll('[call_id]', 'fuzz')}\r\n`;
    const base = Buffer.from(invite.replace('[len]', '0'), 'latin1');
    const mutation = fc
      .array(
        fc.oneof(
          fc.record({
            kind: fc.constant('flip' as const),
            at: fc.nat(),
            byte: fc.integer({ min: 0, max: 255 }),
          }),
          fc.record({ kind: fc.constant('cut' as const), at: fc.nat() }),
          fc.record({ kind: fc.constant('dup' as const), at: fc.nat(), len: fc.nat(400) }),
        ),
        { minLength: 1, maxLength: 8 },
      )
      .map((ops) => {
        let b = Buffer.from(base);
        for (const op of ops) {
          const at = op.at % Math.max(1, b.length);
          if (op.kind === 'flip') b[at] = op.byte;
          else if (op.kind === 'cut') b = b.subarray(0, at);
          else b = Buffer.concat([b.subarray(0, at), b.subarray(at, at + op.len), b.subarray(at)]);
        }
        return b;
      });
    const samples = fc.sample(mutation, { numRuns: 3_000, seed: 42 });
    const udp = createSocket('udp4');
    for (let i = 0; i < samples.length; i++) {
      udp.send(samples[i]!, bridge.port, '127.0.0.1');
      if (i % 50 === 49) await new Promise((r) => setTimeout(r, 5));
    }
    for (let i = 0; i < 100; i++) {
      await new Promise<void>((resolve) => {
        const s = connect(bridge.port, '127.0.0.1', () => {
          s.end(Buffer.concat(samples.slice(i * 5, i * 5 + 5)));
        });
        s.on('error', () => resolve());
        s.on('close', () => resolve());
        s.resume();
        setTimeout(() => s.destroy(), 500);
      });
    }
    udp.close();
    // Still alive and answering; the errors were counted.
    await sipp({ scenario: 'options.xml' });
    expect(bridge.proc.child.exitCode).toBeNull();
    expect(await sip('duet_sip_errors_total', { reason: 'malformed' })).toBeGreaterThan(100);
    await allReleased();
  });
});

describe('baresip, an independent user agent', () => {
  for (const codec of ['PCMU', 'opus'] as const) {
    it(`places a ${codec} call and hears the agent`, async () => {
      const home = join(dir, `baresip-${codec}`);
      mkdirSync(home);
      const wav = join(home, 'caller.wav');
      // aufile takes 16-bit WAV in the codec's format (8 kHz mono for G.711, 48 kHz stereo for Opus).
      const [rate, channels] = codec === 'opus' ? ['48000', '2'] : ['8000', '1'];
      await run('sox', [
        '-n',
        '-r',
        rate,
        '-c',
        channels,
        '-b',
        '16',
        '-e',
        'signed',
        wav,
        'synth',
        '8',
        'sine',
        '200-700',
      ]);
      writeFileSync(
        join(home, 'config'),
        [
          'poll_method epoll',
          'sip_listen 127.0.0.1:0',
          'net_interface 127.0.0.1',
          `audio_source aufile,${wav}`,
          'audio_player alsa,null',
          'audio_alert alsa,null',
          'module_path /usr/lib/baresip/modules',
          'module g711.so',
          'module opus.so',
          'module aufile.so',
          'module alsa.so',
          'module sndfile.so',
          'module_app account.so',
          'module_app menu.so',
          `snd_path ${home}`,
          '',
        ].join('\n'),
      );
      const codecParam = codec === 'opus' ? 'opus/48000/2' : 'PCMU';
      writeFileSync(join(home, 'accounts'), `<sip:caller@127.0.0.1>;regint=0;audio_codecs=${codecParam}\n`);
      const before = await sip('duet_sip_calls_accepted_total');
      const out = await run(
        'baresip',
        ['-f', home, '-e', `/dial sip:duet@127.0.0.1:${bridge.port}`, '-t', '7'],
        30_000,
      );
      expect(out, out).toMatch(/Call established/);
      expect(await sip('duet_sip_calls_accepted_total')).toBe(before + 1);
      await allReleased();
      // sndfile dumped what baresip decoded from the bridge: the agent's voice, not silence.
      const dump = readdirSync(home).find((f) => f.endsWith('-dec.wav'));
      expect(dump).toBeDefined();
      const pcm = readFileSync(join(home, dump!)).subarray(44);
      let sum = 0;
      const n = Math.floor(pcm.length / 2);
      for (let i = 0; i < n; i++) sum += pcm.readInt16LE(i * 2) ** 2;
      const rms = Math.sqrt(sum / Math.max(1, n)) / 32768;
      expect(n / (codec === 'opus' ? 96_000 : 8_000)).toBeGreaterThan(3);
      expect(rms).toBeGreaterThan(0.005);
    });
  }
});

describe('Prometheus rules', () => {
  it('the duet.sip rules use only metrics the bridge exports', async () => {
    const rules = parse(readFileSync(join(repoRoot, 'deploy/prometheus/rules/duet.rules.yml'), 'utf8')) as {
      groups: { name: string; rules: { expr: string }[] }[];
    };
    const sipRules = rules.groups.find((g) => g.name === 'duet.sip')!.rules;
    const used = sipRules.flatMap((r) => metricNames(r.expr)).filter((n) => n.startsWith('duet_sip_'));
    expect(used.length).toBeGreaterThan(5);
    const exported = exportedSampleNames(await bridge.proc.metrics());
    expect(used.filter((n) => !exported.has(n))).toEqual([]);
  });
});

describe('docs/metrics.md', () => {
  it('documents exactly the metrics the SIP bridge exports', async () => {
    const doc = readFileSync(join(repoRoot, 'docs/metrics.md'), 'utf8');
    const documented = [...doc.matchAll(/^\| sip-bridge \| `(duet_sip_\w+)` \|/gm)].map((m) => m[1]!);
    const exported = [...(await bridge.proc.metrics()).matchAll(/^# TYPE (duet_sip_\w+) /gm)].map(
      (m) => m[1]!,
    );
    expect(exported.sort()).toEqual(documented.sort());
  });
});

function run(cmd: string, args: string[], timeoutMs = 20_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const child: ChildProcess = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.stderr?.on('data', (d: Buffer) => {
      out += d.toString();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', reject);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(out);
    });
  });
}
