// Shared by the SFU's end-to-end tests: the SFU started by the launcher next to the system,
// a fake-microphone WAV, headless Chromium (Debian's, driven by playwright-core), and the
// mediasoup dump the SFU serves to tests.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LaunchOptions, RunningSystem } from '@duet/cli';
import type { ServiceProcess } from '@duet/runtime/testing';
import { type BrowserContext, chromium } from 'playwright-core';

export const TOKEN_SECRET = 'sfu-e2e-secret-sfu-e2e-secret-0123456789';

export interface SfuProcess {
  readonly proc: ServiceProcess;
  readonly port: number;
  readonly url: string;
  dump(): Promise<SfuDump>;
}

export interface SfuDump {
  calls: {
    callId: string;
    router: {
      transportIds: string[];
      mapProducerIdConsumerIds: Record<string, string[]> | [string, string[]][];
    };
    plainPorts: number[];
    transports: { id: string; consumerIds: string[]; producerIds: string[] }[];
  }[];
  workers: {
    index: number;
    pid: number;
    dump: { routerIds: string[] };
    webRtcServer: {
      webRtcTransportIds: string[];
      localIceUsernameFragments: unknown[];
      tupleHashes: unknown[];
    };
  }[];
}

/**
 * The launcher's SFU options for these tests (`launchSystem({ sfu: sfuLaunch(...) })`): one
 * worker, an RTC port range of its own per run (parallel runs on one machine do not collide) and
 * the mediasoup debug dump. The SFU starts as `duet start` starts it, not by a copy of its wiring.
 */
export function sfuLaunch(env: Record<string, string> = {}): NonNullable<LaunchOptions['sfu']> {
  const base = 45_000 + Math.floor(Math.random() * 40) * 100;
  return {
    tokenSecret: TOKEN_SECRET,
    env: {
      DUET_SFU_WORKERS: '1',
      DUET_SFU_RTC_PORT_MIN: String(base),
      DUET_SFU_RTC_PORT_MAX: String(base + 99),
      DUET_SFU_DEBUG_DUMP: 'true',
      ...env,
    },
  };
}

/** The SFU of a system launched with `sfu: sfuLaunch(...)`. */
export function sfuOf(system: RunningSystem): SfuProcess {
  if (!system.sfu) throw new Error('the system was launched without an SFU (sfu: sfuLaunch())');
  const { process: proc, port } = system.sfu;
  const url = `http://127.0.0.1:${port}`;
  return {
    proc,
    port,
    url,
    async dump() {
      const res = await fetch(`${url}/debug/mediasoup`);
      if (!res.ok) throw new Error(`dump: ${res.status}`);
      return (await res.json()) as SfuDump;
    },
  };
}

export function writeCallerWav(path: string, seconds = 6, rate = 48_000): void {
  const n = rate * seconds;
  const buf = Buffer.alloc(44 + n * 2);
  buf.write('RIFF', 0);
  buf.writeUInt32LE(36 + n * 2, 4);
  buf.write('WAVEfmt ', 8);
  buf.writeUInt32LE(16, 16);
  buf.writeUInt16LE(1, 20);
  buf.writeUInt16LE(1, 22);
  buf.writeUInt32LE(rate, 24);
  buf.writeUInt32LE(rate * 2, 28);
  buf.writeUInt16LE(2, 32);
  buf.writeUInt16LE(16, 34);
  buf.write('data', 36);
  buf.writeUInt32LE(n * 2, 40);
  let phase = 0;
  for (let i = 0; i < n; i++) {
    const t = i / rate;
    phase += (2 * Math.PI * (140 + 40 * Math.sin(2 * Math.PI * 0.7 * t))) / rate;
    let s = 0;
    for (let h = 1; h <= 12; h++) s += Math.sin(h * phase) / h;
    buf.writeInt16LE(
      Math.max(-32768, Math.min(32767, Math.round(8000 * (0.5 + 0.5 * Math.sin(8 * Math.PI * t)) * s))),
      44 + i * 2,
    );
  }
  writeFileSync(path, buf);
}

export interface Browser {
  readonly context: BrowserContext;
  close(): Promise<void>;
}

/** Headless Chromium with a fake microphone playing `wav`, in a fresh profile. */
export async function launchChromium(wav: string): Promise<Browser> {
  const profile = mkdtempSync(join(tmpdir(), 'duet-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.DUET_CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--autoplay-policy=no-user-gesture-required',
      '--use-fake-ui-for-media-stream',
      '--use-fake-device-for-media-stream',
      `--use-file-for-fake-audio-capture=${wav}`,
    ],
  });
  return {
    context,
    async close() {
      await context.close().catch(() => undefined);
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 20_000,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v;
    } catch (error) {
      last = error;
      // A probe that reports a failure (e.g. the call failed) ends the wait at once.
      if (error instanceof Error && error.message.startsWith('call failed')) throw error;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
