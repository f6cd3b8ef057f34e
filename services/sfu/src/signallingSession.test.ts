import { EventEmitter } from 'node:events';
import { createLogger } from '@duet/runtime';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import type { WebSocket } from 'ws';
import { createSfuMetrics } from './metrics.js';
import { CallRequestError, type SfuCall } from './sfuCall.js';
import { type SessionHost, SignallingSession } from './signallingSession.js';
import type { Timeline } from './timeline.js';
import { mintCallToken } from './token.js';

const secret = 'session-secret-session-secret-0123456789';

/** A socket as the session sees it: frames in through emit('message'), frames out in `sent`. */
class FakeSocket extends EventEmitter {
  readonly OPEN = 1;
  readonly CONNECTING = 0;
  readyState = 1;
  readonly sent: Record<string, unknown>[] = [];
  closeCode: number | undefined;
  send(text: string): void {
    this.sent.push(JSON.parse(text) as Record<string, unknown>);
  }
  close(code: number): void {
    this.closeCode = code;
    this.readyState = 3;
  }
  terminate(): void {}
  request(id: number, method: string, data: Record<string, unknown> = {}): void {
    this.emit('message', Buffer.from(JSON.stringify({ id, method, data })), false);
  }
  answer(id: number) {
    return this.sent.find((m) => m.id === id);
  }
}

/** The parts of a call the session uses; resumeConsumer waits on `open` (the services opening). */
function fakeCall(open: Promise<void>) {
  let closed = false;
  return {
    callId: 'call-1',
    sendTransport: { id: 'send-t' },
    recvTransport: { id: 'recv-t' },
    get isClosed() {
      return closed;
    },
    joinAnswer: () => ({ callId: 'call-1' }),
    connectTransport: async () => undefined,
    produce: async () => 'producer-1',
    consume: async () => ({ id: 'consumer-1', producerId: 'agent', kind: 'audio', rtpParameters: {} }),
    resumeConsumer: async (consumerId: string) => {
      if (consumerId !== 'consumer-1') throw new CallRequestError('unknown_consumer', 'no such consumer');
      await open;
    },
    close: () => {
      closed = true;
    },
  };
}

const sessions: SignallingSession[] = [];
afterEach(() => {
  for (const s of sessions.splice(0)) s.shutdown();
});

function startSession(call: ReturnType<typeof fakeCall>) {
  const ws = new FakeSocket();
  let timeline: Timeline | undefined;
  const host: SessionHost = {
    tokenSecret: secret,
    joinTimeoutMs: 5_000,
    idleTimeoutMs: 30_000,
    maxMessageBytes: 16_384,
    joinExtras: {},
    metrics: createSfuMetrics(new Registry()),
    log: createLogger('sfu', 'test', 'silent'),
    openCall: async (_grant, _onEnded, t) => {
      timeline = t;
      return call as unknown as SfuCall;
    },
  };
  const session = new SignallingSession(ws as unknown as WebSocket, host, '127.0.0.1');
  sessions.push(session);
  return { ws, session, timeline: () => timeline };
}

const until = async (what: () => unknown) => {
  for (let i = 0; i < 200 && !what(); i++) await new Promise((r) => setTimeout(r, 5));
  expect(what()).toBeTruthy();
};

describe('signalling session', () => {
  it('serves requests sent while resumeConsumer waits for the call to open', async () => {
    let openCall!: () => void;
    const call = fakeCall(
      new Promise<void>((r) => {
        openCall = r;
      }),
    );
    const { ws, session, timeline } = startSession(call);
    ws.request(1, 'join', { token: await mintCallToken({ secret, callId: 'call-1' }) });
    await until(() => ws.answer(1));
    expect(ws.answer(1)).toMatchObject({ ok: true, data: { callId: 'call-1' } });
    ws.request(2, 'consume', { rtpCapabilities: {} });
    ws.request(3, 'resumeConsumer', { consumerId: 'consumer-1' });
    ws.request(4, 'connectTransport', { transportId: 'send-t', dtlsParameters: {} });
    ws.request(5, 'produce', { transportId: 'send-t', kind: 'audio', rtpParameters: {} });
    await until(() => ws.answer(5));
    expect(ws.answer(2)).toMatchObject({ ok: true, data: { id: 'consumer-1' } });
    expect(ws.answer(4)).toMatchObject({ ok: true });
    expect(ws.answer(3)).toBeUndefined(); // the call is not open yet
    openCall();
    await until(() => ws.answer(3));
    expect(ws.answer(3)).toMatchObject({ ok: true });
    expect(ws.closeCode).toBeUndefined();
    // The session's timeline went to the call, with the join's steps and the requests' arrivals.
    expect(timeline()).toBe(session.timeline);
    expect(Object.keys(session.timeline.toJSON())).toEqual(
      expect.arrayContaining([
        'joinReceived',
        'tokenVerified',
        'joinAnswered',
        'consumeReceived',
        'resumeConsumerReceived',
        'sendConnectReceived',
        'produceReceived',
      ]),
    );
  });

  it('answers a resumeConsumer it cannot serve with an error, and the call goes on', async () => {
    const { ws } = startSession(fakeCall(Promise.resolve()));
    ws.request(1, 'join', { token: await mintCallToken({ secret, callId: 'call-1' }) });
    await until(() => ws.answer(1));
    ws.request(2, 'resumeConsumer', { consumerId: 'nope' });
    ws.request(3, 'ping', { t: 1 });
    await until(() => ws.answer(3));
    expect(ws.answer(2)).toMatchObject({ ok: false, error: { code: 'unknown_consumer' } });
    expect(ws.closeCode).toBeUndefined();
  });

  it('still refuses a resumeConsumer before join', () => {
    const { ws } = startSession(fakeCall(Promise.resolve()));
    ws.request(1, 'resumeConsumer', { consumerId: 'consumer-1' });
    expect(ws.closeCode).toBe(4401);
  });
});
