// Stand-ins for inference, tokenizer and vocoder in the SFU benchmark: the control API answers
// at once, the "tokenizer" is a UDP sink per call that timestamps what the SFU forwards, and the
// "vocoder" sends paced RTP into the SFU. So the benchmark measures the SFU alone.

import { createSocket, type Socket } from 'node:dgram';
import { InferenceControlService, TokenizerControlService, VocoderControlService } from '@duet/protocol';
import { type GrpcServer, GrpcStatus, grpcError, startGrpcServer } from '@duet/runtime';
import type { ServerErrorResponse } from '@grpc/grpc-js';

/** Payload of benchmark packets: magic, call index, packet index, send time (ms, epoch). */
export const PROBE_BYTES = 20;
const MAGIC = 0x44554554; // "DUET"

export function probePayload(call: number, index: number): Buffer {
  const b = Buffer.alloc(PROBE_BYTES + 60); // ~ an Opus frame at 32 kb/s
  b.writeUInt32BE(MAGIC, 0);
  b.writeUInt32BE(call, 4);
  b.writeUInt32BE(index, 8);
  b.writeDoubleBE(performance.timeOrigin + performance.now(), 12);
  return b;
}

export function readProbe(payload: Buffer): { call: number; index: number; sentAt: number } | undefined {
  if (payload.length < PROBE_BYTES || payload.readUInt32BE(0) !== MAGIC) return undefined;
  return { call: payload.readUInt32BE(4), index: payload.readUInt32BE(8), sentAt: payload.readDoubleBE(12) };
}

export function rtpPacket(pt: number, ssrc: number, seq: number, timestamp: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(12);
  h[0] = 0x80;
  h[1] = pt & 0x7f;
  h.writeUInt16BE(seq & 0xffff, 2);
  h.writeUInt32BE(timestamp >>> 0, 4);
  h.writeUInt32BE(ssrc >>> 0, 8);
  return Buffer.concat([h, payload]);
}

/** The payload of a plain RTP datagram (undefined for RTCP). */
export function rtpPayload(d: Buffer): Buffer | undefined {
  if (d.length < 12 || d[0]! >> 6 !== 2) return undefined;
  const pt = d[1]! & 0x7f;
  if (pt >= 72 && pt <= 76) return undefined; // RTCP (rtcp-mux)
  let off = 12 + 4 * (d[0]! & 0x0f);
  if (d[0]! & 0x10) off += 4 + 4 * d.readUInt16BE(off + 2);
  return d.subarray(off);
}

export interface FakeCall {
  readonly callId: string;
  readonly sink: Socket;
  readonly source: Socket;
  destination?: { host: string; port: number };
  ssrc: number;
  seq: number;
}

export interface FakeCallServices {
  readonly address: string;
  readonly calls: Map<string, FakeCall>;
  onTokenizerPacket: (call: FakeCall, payload: Buffer, at: number) => void;
  close(): Promise<void>;
}

export async function startFakeCallServices(): Promise<FakeCallServices> {
  const calls = new Map<string, FakeCall>();
  const fakes: FakeCallServices = {
    address: '',
    calls,
    onTokenizerPacket: () => undefined,
    close: async () => undefined,
  };
  const bind = (s: Socket) => new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  const closeCall = (id: string) => {
    const c = calls.get(id);
    if (!c) return;
    calls.delete(id);
    c.sink.close();
    c.source.close();
  };
  const unary = <Req, Res>(fn: (req: Req) => Promise<Res> | Res) => {
    return (call: { request: Req }, cb: (e: ServerErrorResponse | null, r?: Res) => void) => {
      Promise.resolve()
        .then(() => fn(call.request))
        .then(
          (r) => cb(null, r),
          (e: unknown) => cb(e as ServerErrorResponse),
        );
    };
  };
  const unimplemented = unary(() => {
    throw grpcError(GrpcStatus.UNIMPLEMENTED, 'not in the benchmark');
  });
  const server: GrpcServer = await startGrpcServer({
    host: '127.0.0.1',
    port: 0,
    services: [
      {
        name: 'duet.v1.InferenceControl',
        definition: InferenceControlService,
        implementation: {
          openCall: unary((r: { callId: string }) => ({
            callId: r.callId,
            firstTick: 0n,
            chunkMs: 160,
            unitsPerChunk: 4,
            workerId: 'bench',
          })),
          closeCall: unary(() => ({})),
          describeCall: unimplemented,
          getModelInfo: unimplemented,
        },
      },
      {
        name: 'duet.v1.TokenizerControl',
        definition: TokenizerControlService,
        implementation: {
          openCall: unary(async (r: { callId: string }) => {
            const sink = createSocket('udp4');
            const source = createSocket('udp4');
            await Promise.all([bind(sink), bind(source)]);
            const call: FakeCall = { callId: r.callId, sink, source, ssrc: 0, seq: 0 };
            sink.on('message', (d) => {
              const at = performance.timeOrigin + performance.now();
              const p = rtpPayload(d);
              if (p) fakes.onTokenizerPacket(call, p, at);
            });
            calls.set(r.callId, call);
            return { rtp: { host: '127.0.0.1', port: sink.address().port } };
          }),
          closeCall: unary((r: { callId: string }) => {
            closeCall(r.callId);
            return {};
          }),
          describeCall: unimplemented,
          getModelInfo: unimplemented,
        },
      },
      {
        name: 'duet.v1.VocoderControl',
        definition: VocoderControlService,
        implementation: {
          openCall: unary(
            (r: { callId: string; destination?: { host: string; port: number }; ssrc?: number }) => {
              const call = calls.get(r.callId);
              if (!call || !r.destination) throw grpcError(GrpcStatus.NOT_FOUND, 'open the tokenizer first');
              call.destination = r.destination;
              // As the vocoder: the SSRC the edge asks for, else one of its own.
              call.ssrc = r.ssrc ? r.ssrc >>> 0 : (Math.random() * 0xffffffff) >>> 0;
              return { source: { host: '127.0.0.1', port: call.source.address().port }, ssrc: call.ssrc };
            },
          ),
          closeCall: unary(() => ({})),
          describeCall: unimplemented,
          getModelInfo: unimplemented,
        },
      },
    ],
  });
  return Object.assign(fakes, {
    address: `127.0.0.1:${server.port}`,
    close: async () => {
      for (const id of [...calls.keys()]) closeCall(id);
      await server.close();
    },
  });
}
