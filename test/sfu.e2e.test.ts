import { createSocket } from 'node:dgram';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { launchSystem, type RunningSystem } from '@duet/cli';
import { metricValue } from '@duet/runtime/testing';
import { mintCallToken } from '@duet/sfu/token';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { mediaTestModel } from './mediaModel.js';
import {
  type Browser,
  launchChromium,
  type SfuProcess,
  sfuLaunch,
  sfuOf,
  TOKEN_SECRET,
  waitFor,
  writeCallerWav,
} from './sfuHarness.js';

// A browser caller end to end: headless Chromium (fake microphone from a WAV) -> WebRTC -> the
// SFU (mediasoup) -> plain RTP -> tokenizer / inference / vocoder -> back to the page.

let system: RunningSystem;
let sfu: SfuProcess;
let browser: Browser;
let dir: string;
const figures: Record<string, unknown> = {};

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'duet-sfu-e2e-'));
  writeCallerWav(join(dir, 'caller.wav'));
  system = await launchSystem({
    dialogueModel: await mediaTestModel(),
    sfu: sfuLaunch({ DUET_SFU_JOIN_TIMEOUT_MS: '1500' }),
  });
  sfu = sfuOf(system);
  browser = await launchChromium(join(dir, 'caller.wav'));
});

afterAll(async () => {
  if (Object.keys(figures).length) console.log(`[sfu e2e] ${JSON.stringify(figures)}`);
  await browser?.close();
  await system?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const token = (callId: string, ttlSeconds = 120, now?: number) =>
  mintCallToken({ secret: TOKEN_SECRET, callId, ttlSeconds, ...(now !== undefined ? { now } : {}) });

type PageState = {
  state: string;
  connectMs?: number;
  firstAudioMs?: number;
  connectPhases?: Record<string, number>;
  clickAt?: number;
  pagePhases?: Record<string, number>;
  agentPeakDb: number;
  inbound?: { packetsReceived: number; packetsLost: number };
  outbound?: { packetsSent: number };
  rttMs?: number;
  mouthToEarMs?: number;
  error?: { code?: number; reason?: string };
};
const state = (page: Page) => page.evaluate(() => (window as unknown as { duet: PageState }).duet);

async function openCall(callId: string, tokenValue?: string): Promise<Page> {
  const page = await browser.context.newPage();
  const t = tokenValue ?? (await token(callId));
  await page.goto(`${sfu.url}/?token=${encodeURIComponent(t)}`);
  await page.click('#call');
  return page;
}

/** The SFU's side of a call's setup (its 'call timings' log line: ms since the socket opened). */
async function sfuTimings(callId: string): Promise<Record<string, number>> {
  const entry = await waitFor('the SFU to log the call timings', () =>
    sfu.proc.logs.find((e) => e.msg === 'call timings' && e.callId === callId),
  );
  return entry.at as Record<string, number>;
}

/** A call's connect-time breakdown: the page's steps since the click, the SFU's since the socket opened. */
async function breakdown(callId: string, s: PageState) {
  return {
    connectMs: Math.round(s.connectMs!),
    pageLoadToMediaMs: Math.round(s.clickAt! + s.connectMs!),
    clickAt: s.clickAt,
    beforeClick: s.pagePhases,
    page: s.connectPhases,
    sfu: await sfuTimings(callId),
  };
}

const activeCalls = async (service: 'inference' | 'tokenizer' | 'vocoder') =>
  metricValue(await system.processes[service][0]!.metrics(), `duet_${service}_active_calls`);

/** True when nothing of any call is left in mediasoup (routers, transports, ICE fragments, tuples). */
async function mediasoupEmpty(): Promise<boolean> {
  const d = await sfu.dump();
  return (
    d.calls.length === 0 &&
    d.workers.every(
      (w) =>
        w.dump.routerIds.length === 0 &&
        w.webRtcServer.webRtcTransportIds.length === 0 &&
        w.webRtcServer.localIceUsernameFragments.length === 0 &&
        w.webRtcServer.tupleHashes.length === 0,
    )
  );
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createSocket('udp4');
    s.once('error', () => resolve(false));
    s.bind(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

describe('a browser call through the SFU', () => {
  it('connects, plays the agent, shows in every service, and hang-up releases everything', async () => {
    const callId = `web-e2e-${Date.now()}`;
    const page = await openCall(callId);
    // Generous: the first call of a fresh browser and system on a loaded 2-core machine.
    const live = await waitFor(
      'the call to be live',
      async () => {
        const s = await state(page);
        if (s.state === 'error') throw new Error(`call failed: ${JSON.stringify(s.error)}`);
        return s.state === 'live' ? s : undefined;
      },
      60_000,
    );
    figures.connectMs = Math.round(live.connectMs!);
    expect(live.connectMs).toBeLessThan(10_000);
    expect(live.connectPhases).toMatchObject({ joined: expect.any(Number), live: expect.any(Number) });
    // The Device the page loaded ahead (GET /rtp-capabilities) fits the call's router: reused.
    expect(live.connectPhases).toHaveProperty('deviceReady');
    expect(live.connectPhases).not.toHaveProperty('deviceLoaded');

    // The agent's audio plays in the page: RTP packets arrive and WebAudio hears a non-silent level.
    const playing = await waitFor(
      'agent audio',
      async () => {
        const s = await state(page);
        return (s.inbound?.packetsReceived ?? 0) > 100 && s.agentPeakDb > -60 ? s : undefined;
      },
      30_000,
    );
    figures.agentPeakDb = Math.round(playing.agentPeakDb);
    figures.packetsReceived = playing.inbound!.packetsReceived;
    if (playing.rttMs !== undefined) figures.rttMs = Math.round(playing.rttMs * 10) / 10;
    if (playing.mouthToEarMs !== undefined) figures.mouthToEarEstMs = Math.round(playing.mouthToEarMs);
    expect((await state(page)).outbound?.packetsSent ?? 0).toBeGreaterThan(50);

    // The session in the services' metrics, and the SFU's media objects for it.
    expect(metricValue(await sfu.proc.metrics(), 'duet_sfu_active_calls')).toBe(1);
    for (const s of ['inference', 'tokenizer', 'vocoder'] as const) expect(await activeCalls(s), s).toBe(1);
    // The tokenizer hears the caller through the SFU's plain transport.
    const tokenizerMetrics = await system.processes.tokenizer[0]!.metrics();
    expect(
      metricValue(tokenizerMetrics, 'duet_tokenizer_rtp_packets_total', { result: 'ok' }),
    ).toBeGreaterThan(50);
    const during = await sfu.dump();
    expect(during.calls.map((c) => c.callId)).toEqual([callId]);
    const call = during.calls[0]!;
    expect(call.router.transportIds).toHaveLength(4);
    const consumers = call.transports.flatMap((t) => t.consumerIds);
    const producers = call.transports.flatMap((t) => t.producerIds);
    expect(consumers).toHaveLength(2); // caller -> tokenizer, agent -> caller
    expect(producers).toHaveLength(2); // the caller's microphone, the vocoder's audio
    for (const port of call.plainPorts) expect(await portFree(port), `port ${port} in use`).toBe(false);

    await page.click('#hangup');
    await waitFor('the page to end the call', async () =>
      (await state(page)).state === 'ended' ? true : undefined,
    );
    await waitFor('mediasoup to release the call', () => mediasoupEmpty());
    for (const port of call.plainPorts) expect(await portFree(port), `port ${port} still bound`).toBe(true);
    await waitFor('the services to close the call', async () => {
      const counts = await Promise.all((['inference', 'tokenizer', 'vocoder'] as const).map(activeCalls));
      return counts.every((c) => c === 0) ? true : undefined;
    });
    expect(metricValue(await sfu.proc.metrics(), 'duet_sfu_active_calls')).toBe(0);
    expect(metricValue(await sfu.proc.metrics(), 'duet_sfu_calls_total', { reason: 'hangup' })).toBe(1);
    figures.firstCall = await breakdown(callId, await state(page));
    await page.close();

    // A later call (same browser and system, a fresh page) for the breakdown of a warm call.
    const laterId = `web-e2e-later-${Date.now()}`;
    const later = await openCall(laterId);
    const laterLive = await waitFor('the later call to be live', async () => {
      const s = await state(later);
      if (s.state === 'error') throw new Error(`call failed: ${JSON.stringify(s.error)}`);
      return s.state === 'live' ? s : undefined;
    });
    expect(laterLive.connectMs).toBeLessThan(10_000);
    await waitFor('the later call to hear the agent', async () =>
      (await state(later)).firstAudioMs !== undefined ? true : undefined,
    );
    figures.laterCall = await breakdown(laterId, await state(later));
    await later.click('#hangup');
    await waitFor('mediasoup to release the later call', () => mediasoupEmpty());
    await waitFor('the services to close the later call', async () => {
      const counts = await Promise.all((['inference', 'tokenizer', 'vocoder'] as const).map(activeCalls));
      return counts.every((c) => c === 0) ? true : undefined;
    });
    expect(metricValue(await sfu.proc.metrics(), 'duet_sfu_calls_total', { reason: 'hangup' })).toBe(2);
    await later.close();
  });

  it('refuses a call without a valid token, with a clear code, leaving nothing behind', async () => {
    const cases = [
      { name: 'none', token: '', reason: 'token_missing', code: 4401 },
      { name: 'garbled', token: 'not-a-token', reason: 'token_invalid', code: 4403 },
      {
        name: 'foreign',
        token: await mintCallToken({ secret: 'x'.repeat(40), callId: 'refused-1' }),
        reason: 'token_invalid',
        code: 4403,
      },
      {
        name: 'expired',
        token: await token('refused-2', 60, Math.floor(Date.now() / 1000) - 3600),
        reason: 'token_expired',
        code: 4419,
      },
    ];
    for (const c of cases) {
      const page = await browser.context.newPage();
      await page.goto(`${sfu.url}/${c.token ? `?token=${encodeURIComponent(c.token)}` : ''}`);
      await page.evaluate((t) => {
        localStorage.clear();
        (document.getElementById('token') as HTMLTextAreaElement).value = t;
      }, c.token);
      await page.click('#call');
      const s = await waitFor(`refusal (${c.name})`, async () => {
        const st = await state(page);
        return st.state === 'error' ? st : undefined;
      });
      expect(s.error?.reason, c.name).toBe(c.reason);
      expect(s.error?.code, c.name).toBe(c.code);
      expect(await page.locator('#error').textContent()).toMatch(/token/i);
      await page.close();
    }
    expect(await mediasoupEmpty()).toBe(true);
    expect(metricValue(await sfu.proc.metrics(), 'duet_sfu_active_calls')).toBe(0);
  });
});

describe('the signalling socket', () => {
  /** Opens /ws, sends `frames`, resolves with the close code and the last error notification. */
  function session(frames: (string | Buffer)[], headers: Record<string, string> = {}) {
    return new Promise<{ code: number; error?: { reason: string } }>((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${sfu.port}/ws`, { headers });
      let error: { reason: string } | undefined;
      ws.on('open', () => {
        for (const f of frames) ws.send(f);
      });
      ws.on('message', (d) => {
        const m = JSON.parse(String(d));
        if (m.notification === 'error') error = m.data;
      });
      ws.on('close', (code) => resolve({ code, ...(error ? { error } : {}) }));
      ws.on('unexpected-response', (_req, res) => resolve({ code: res.statusCode ?? 0 }));
      ws.on('error', reject);
    });
  }

  it('closes with a code for each kind of bad input', async () => {
    expect((await session(['{not json'])).code).toBe(4400);
    expect((await session([JSON.stringify({ id: 1, method: 'nope' })])).code).toBe(4400);
    expect((await session([JSON.stringify({ id: 1, method: 'ping', data: {} })])).code).toBe(4401);
    expect((await session([])).code).toBe(4401); // no join within DUET_SFU_JOIN_TIMEOUT_MS
    expect(
      (await session([JSON.stringify({ id: 1, method: 'join', data: { token: 'x'.repeat(20_000) } })])).code,
    ).toBe(4413);
    expect((await session([Buffer.from([1, 2, 3])])).code).toBe(4400);
    expect((await session([], { Origin: 'https://evil.example' })).code).toBe(403);
    expect(await mediasoupEmpty()).toBe(true);
  });

  it('refuses a second socket for a call that is already active', async () => {
    const callId = `dup-${Date.now()}`;
    const t = await token(callId);
    const first = new WebSocket(`ws://127.0.0.1:${sfu.port}/ws`);
    await new Promise((r) => first.once('open', r));
    const joined = new Promise((r) => first.once('message', r));
    first.send(JSON.stringify({ id: 1, method: 'join', data: { token: t } }));
    await joined;
    const second = await session([JSON.stringify({ id: 1, method: 'join', data: { token: t } })]);
    expect(second.code).toBe(4409);
    first.close();
    await waitFor('the first call to be released', () => mediasoupEmpty());
    await waitFor('the services to close the call', async () =>
      (await activeCalls('inference')) === 0 ? true : undefined,
    );
  });
});

describe('a mediasoup worker that dies', () => {
  it('ends its calls with a reason, is replaced, and new calls work', async () => {
    const page = await openCall(`crash-${Date.now()}`);
    await waitFor('the call to be live', async () =>
      (await state(page)).state === 'live' ? true : undefined,
    );
    const { pid } = (await sfu.dump()).workers[0]!;
    process.kill(pid, 'SIGKILL');
    const ended = await waitFor('the page to see the call end', async () => {
      const s = await state(page);
      return s.state === 'error' ? s : undefined;
    });
    expect(ended.error).toMatchObject({ code: 4504, reason: 'media_worker_died' });
    expect(await page.locator('#error').textContent()).toMatch(/media server/i);
    await waitFor('a new worker', async () => {
      const d = await sfu.dump();
      return d.workers.length === 1 && d.workers[0]!.pid !== pid ? true : undefined;
    });
    await waitFor('the services to close the dead call', async () =>
      (await activeCalls('inference')) === 0 ? true : undefined,
    );
    expect(metricValue(await sfu.proc.metrics(), 'duet_sfu_worker_deaths_total')).toBe(1);
    await page.close();

    const again = await openCall(`after-crash-${Date.now()}`);
    const second = await waitFor('a new call to be live', async () => {
      const s = await state(again);
      if (s.state === 'error') throw new Error(`call failed: ${JSON.stringify(s.error)}`);
      return s.state === 'live' ? s : undefined;
    });
    figures.connectAfterWorkerReplacedMs = Math.round(second.connectMs!);
    await again.click('#hangup');
    await waitFor('mediasoup to release the call', () => mediasoupEmpty());
    await again.close();
  });
});

describe('the per-IP connection rate limit', () => {
  // Last: it spends this IP's budget.
  it('answers 429 once an IP opened its connections for the minute', async () => {
    const codes: number[] = [];
    for (let i = 0; i < 40; i++) {
      codes.push(
        await new Promise<number>((resolve) => {
          const ws = new WebSocket(`ws://127.0.0.1:${sfu.port}/ws`);
          ws.on('open', () => {
            ws.close();
            resolve(101);
          });
          ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
          ws.on('error', () => resolve(-1));
        }),
      );
    }
    expect(codes).toContain(429);
    expect(codes.filter((c) => c === 101).length).toBeLessThanOrEqual(30);
  });
});
