// The signalling protocol between a caller and the SFU (JSON text frames over one WebSocket),
// documented in ../README.md. Pure: parsing, validation and the error/close codes, no I/O.
//
// caller -> SFU: requests `{ "id": <n>, "method": <m>, "data": {...} }`
// SFU -> caller: responses `{ "id": <n>, "ok": true, "data": {...} }` or
//                `{ "id": <n>, "ok": false, "error": { "code", "message" } }`,
//                notifications `{ "notification": <name>, "data": {...} }`.

import { z } from 'zod';

/** WebSocket close codes (4000-4999 are the application's) with their error names. */
export const CLOSE = {
  hangup: { code: 4000, reason: 'hangup' },
  callClosed: { code: 4001, reason: 'call_closed' },
  malformed: { code: 4400, reason: 'malformed_message' },
  tokenMissing: { code: 4401, reason: 'token_missing' },
  tokenInvalid: { code: 4403, reason: 'token_invalid' },
  tokenExpired: { code: 4419, reason: 'token_expired' },
  idle: { code: 4408, reason: 'idle_timeout' },
  callInUse: { code: 4409, reason: 'call_in_use' },
  tooLarge: { code: 4413, reason: 'message_too_large' },
  setupFailed: { code: 4502, reason: 'call_setup_failed' },
  noCapacity: { code: 4503, reason: 'no_capacity' },
  mediaFailed: { code: 4504, reason: 'media_worker_died' },
  shutdown: { code: 4505, reason: 'server_shutting_down' },
  internal: { code: 4500, reason: 'internal_error' },
} as const;

export type CloseKind = keyof typeof CLOSE;

const json = z.record(z.string(), z.unknown());

/** Every request a caller may send, by method. The mediasoup objects are passed through opaque. */
export const requestSchemas = {
  /** First message: the token. Answered with the router's capabilities and both transports. */
  join: z.object({ token: z.string().max(4096).optional() }).strict(),
  connectTransport: z.object({ transportId: z.string().max(64), dtlsParameters: json }).strict(),
  /** The caller's microphone (audio only). */
  produce: z
    .object({ transportId: z.string().max(64), kind: z.literal('audio'), rtpParameters: json })
    .strict(),
  /** The agent's audio; answered once the call is open on every service. */
  consume: z.object({ rtpCapabilities: json }).strict(),
  resumeConsumer: z.object({ consumerId: z.string().max(64) }).strict(),
  /** Transport and consumer statistics (what the server sees of the caller). */
  getStats: z.object({}).strict(),
  ping: z.object({ t: z.number().optional() }).strict(),
  hangup: z.object({}).strict(),
} as const;

export type Method = keyof typeof requestSchemas;
export type RequestOf<M extends Method> = {
  id: number;
  method: M;
  data: z.infer<(typeof requestSchemas)[M]>;
};
export type Request = { [M in Method]: RequestOf<M> }[Method];

const envelope = z
  .object({
    id: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
    method: z.string().max(32),
    data: z.unknown().optional(),
  })
  .strict();

export type ParseResult = { ok: true; request: Request } | { ok: false; id?: number; message: string };

/** Parses one text frame; never throws. */
export function parseRequest(text: string): ParseResult {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return { ok: false, message: 'not JSON' };
  }
  const env = envelope.safeParse(raw);
  if (!env.success) return { ok: false, message: `bad envelope: ${env.error.issues[0]?.message ?? '?'}` };
  const { id, method } = env.data;
  if (!Object.hasOwn(requestSchemas, method)) return { ok: false, id, message: `unknown method ${method}` };
  const schema = requestSchemas[method as Method];
  const data = schema.safeParse(env.data.data ?? {});
  if (!data.success) {
    const issue = data.error.issues[0];
    return {
      ok: false,
      id,
      message: `bad ${method}: ${issue?.path.join('.') ?? ''} ${issue?.message ?? ''}`.trim(),
    };
  }
  return { ok: true, request: { id, method, data: data.data } as Request };
}

export const response = (id: number, data: unknown): string => JSON.stringify({ id, ok: true, data });
export const errorResponse = (id: number, code: string, message: string): string =>
  JSON.stringify({ id, ok: false, error: { code, message } });
export const notification = (name: string, data: unknown): string =>
  JSON.stringify({ notification: name, data });
