// Shared by the SIP bridge's end-to-end tests: the bridge started by the launcher next to the
// system, SIPp (Debian's sip-tester) runs of the scenarios in test/sipp, and caller audio files.

import { execFileSync, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LaunchOptions, RunningSystem } from '@duet/cli';
import { repoRoot } from '@duet/engine/tiny';
import type { ServiceProcess } from '@duet/runtime/testing';

export const SIPP_DIR = join(repoRoot, 'test/sipp');

export interface SipBridgeProcess {
  readonly proc: ServiceProcess;
  readonly port: number;
  /** Answered calls: SIP Call-ID -> Duet call id (from the bridge's log). */
  readonly answered: Map<string, string>;
  /** Calls open on every call service with their audio wired: SIP Call-ID -> Duet call id. */
  readonly ready: Map<string, string>;
  /** Every "SIP call ended" log line so far. */
  readonly ended: Record<string, unknown>[];
}

/** What the tests read off the bridge's log as it runs (filled by `sipLaunch`'s onLog). */
export interface SipCallLog {
  readonly answered: Map<string, string>;
  readonly ready: Map<string, string>;
  readonly ended: Record<string, unknown>[];
}

/**
 * The launcher's options for the SIP bridge in these tests (`launchSystem({ ...sip.options })`):
 * loopback only, one worker, RTP and mediasoup port ranges of their own per run (parallel runs on
 * one machine do not collide), and a log watcher for the calls. The bridge starts as `duet start`
 * starts it, not by a copy of its wiring.
 */
export function sipLaunch(env: Record<string, string> = {}): {
  options: Pick<LaunchOptions, 'sip' | 'onLog'>;
  calls: SipCallLog;
} {
  const calls: SipCallLog = { answered: new Map(), ready: new Map(), ended: [] };
  const base = 50_000 + Math.floor(Math.random() * 50) * 200;
  return {
    calls,
    options: {
      sip: {
        env: {
          DUET_SIP_LISTEN_IP: '127.0.0.1',
          DUET_SIP_WORKERS: '1',
          DUET_SIP_RTP_PORT_MIN: String(base),
          DUET_SIP_RTP_PORT_MAX: String(base + 99),
          DUET_SIP_MS_PORT_MIN: String(base + 100),
          DUET_SIP_MS_PORT_MAX: String(base + 199),
          ...env,
        },
      },
      onLog: (service, entry) => {
        if (!service.startsWith('sip-bridge')) return;
        if (entry.msg === 'SIP call answered')
          calls.answered.set(String(entry.sipCallId), String(entry.callId));
        if (entry.msg === 'SIP call services ready')
          calls.ready.set(String(entry.sipCallId), String(entry.callId));
        if (entry.msg === 'SIP call ended') calls.ended.push(entry);
      },
    },
  };
}

/** The SIP bridge of a system launched with `sipLaunch(...)`'s options. */
export function sipBridgeOf(system: RunningSystem, calls: SipCallLog): SipBridgeProcess {
  if (!system.sip) throw new Error('the system was launched without the SIP bridge (sipLaunch().options)');
  return { proc: system.sip.process, port: system.sip.port, ...calls };
}

export interface SippResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface SippOptions {
  readonly scenario: string;
  readonly port: number;
  readonly cwd: string;
  readonly transport?: 'udp' | 'tcp';
  /** Calls to place (-m), at most this many at once (-l), at this rate per second (-r). */
  readonly calls?: number;
  readonly limit?: number;
  readonly rate?: number;
  readonly timeoutS?: number;
  readonly extra?: readonly string[];
}

/** Runs sipp as a UAC against 127.0.0.1:port; resolves with its exit code (0: every call passed). */
export function runSipp(o: SippOptions): Promise<SippResult> {
  const args = [
    `127.0.0.1:${o.port}`,
    '-sf',
    join(SIPP_DIR, o.scenario),
    '-i',
    '127.0.0.1',
    '-mi',
    '127.0.0.1',
    '-p',
    '0',
    '-mp',
    String(30_000 + Math.floor(Math.random() * 500) * 20),
    '-t',
    o.transport === 'tcp' ? 't1' : 'u1',
    '-m',
    String(o.calls ?? 1),
    '-l',
    String(o.limit ?? o.calls ?? 1),
    '-r',
    String(o.rate ?? 10),
    '-timeout',
    `${o.timeoutS ?? 30}s`,
    '-timeout_error',
    '-nostdin',
    '-trace_err',
    '-error_file',
    join(o.cwd, `sipp-${o.scenario}.err`),
    '-s',
    'duet',
    ...(o.extra ?? []),
  ];
  return new Promise((resolve, reject) => {
    const child = spawn('sipp', args, { cwd: o.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout = (stdout + d.toString()).slice(-20_000);
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-20_000);
    });
    child.once('error', reject);
    child.once('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

/** 8 kHz mu-law WAVs for SIPp's rtp_stream: a gliding tone (caller.wav) and one RFC 4733 "5" packet (dtmf.wav). */
export function writeSippAudio(dir: string): void {
  execFileSync('sox', [
    '-n',
    '-r',
    '8000',
    '-c',
    '1',
    '-e',
    'u-law',
    join(dir, 'caller.wav'),
    'synth',
    '4',
    'sine',
    '200-800',
    'tremolo',
    '4',
    '60',
  ]);
  // One 160-byte frame: event 5, end bit set, volume 10, duration 800 (the rest is padding).
  const frame = Buffer.alloc(160);
  frame.set([5, 0x80 | 10, 0x03, 0x20]);
  writeFileSync(join(dir, 'dtmf.wav'), wavHeader(frame));
}

function wavHeader(data: Buffer): Buffer {
  const h = Buffer.alloc(44);
  h.write('RIFF', 0);
  h.writeUInt32LE(36 + data.length, 4);
  h.write('WAVEfmt ', 8);
  h.writeUInt32LE(16, 16);
  h.writeUInt16LE(7, 20); // mu-law
  h.writeUInt16LE(1, 22);
  h.writeUInt32LE(8000, 24);
  h.writeUInt32LE(8000, 28);
  h.writeUInt16LE(1, 32);
  h.writeUInt16LE(8, 34);
  h.write('data', 36);
  h.writeUInt32LE(data.length, 40);
  return Buffer.concat([h, data]);
}

/**
 * A pcap (Ethernet/IPv4/UDP) of one RFC 4733 event for SIPp's play_pcap_audio: digit `event`
 * (0-15), three packets with one timestamp, the last with the end bit, payload type `pt`.
 */
export function writeDtmfPcap(path: string, event: number, pt = 101): void {
  const records: Buffer[] = [];
  for (let i = 0; i < 3; i++) {
    const rtp = Buffer.alloc(16);
    rtp[0] = 0x80;
    rtp[1] = (i === 0 ? 0x80 : 0) | pt; // marker on the first packet of the event
    rtp.writeUInt16BE(1000 + i, 2);
    rtp.writeUInt32BE(160_000, 4);
    rtp.writeUInt32BE(0x0d7e0d7e, 8);
    rtp[12] = event;
    rtp[13] = (i === 2 ? 0x80 : 0) | 10;
    rtp.writeUInt16BE(160 * (i + 1), 14);
    const udp = Buffer.alloc(8);
    udp.writeUInt16BE(6000, 0);
    udp.writeUInt16BE(6002, 2);
    udp.writeUInt16BE(8 + rtp.length, 4);
    const ip = Buffer.alloc(20);
    ip[0] = 0x45;
    ip.writeUInt16BE(20 + 8 + rtp.length, 2);
    ip[8] = 64;
    ip[9] = 17;
    ip.set([127, 0, 0, 1], 12);
    ip.set([127, 0, 0, 1], 16);
    const eth = Buffer.alloc(14);
    eth.writeUInt16BE(0x0800, 12);
    const frame = Buffer.concat([eth, ip, udp, rtp]);
    const rec = Buffer.alloc(16);
    rec.writeUInt32LE(1, 0);
    rec.writeUInt32LE(i * 20_000, 4);
    rec.writeUInt32LE(frame.length, 8);
    rec.writeUInt32LE(frame.length, 12);
    records.push(rec, frame);
  }
  const global = Buffer.alloc(24);
  global.writeUInt32LE(0xa1b2c3d4, 0);
  global.writeUInt16LE(2, 4);
  global.writeUInt16LE(4, 6);
  global.writeUInt32LE(65_535, 16);
  global.writeUInt32LE(1, 20);
  writeFileSync(path, Buffer.concat([global, ...records]));
}
