// SIP over UDP (one datagram, one message) and TCP (a byte stream framed by Content-Length), on
// one port number. Oversized datagrams are dropped; a TCP connection whose stream cannot be
// framed (no Content-Length, too large) is closed. Connections are bounded in number and idle time.

import { createSocket, type Socket } from 'node:dgram';
import { createServer, type Server, type Socket as TcpSocket } from 'node:net';
import { frameStream } from './sipMessage.js';
import type { Flow } from './uas.js';

export interface SipTransportOptions {
  readonly host: string;
  readonly port: number;
  readonly udp: boolean;
  readonly tcp: boolean;
  readonly maxMessageBytes: number;
  readonly maxConnections?: number;
  /** A TCP connection with no message for this long is closed. */
  readonly idleTimeoutMs?: number;
  readonly onMessage: (data: Buffer, flow: Flow) => void;
  /** A message the transport itself refused (too large, unframeable stream). */
  readonly onRefused: (reason: 'too_large' | 'malformed') => void;
}

export interface SipTransport {
  readonly port: number;
  close(): Promise<void>;
}

export async function startSipTransport(o: SipTransportOptions): Promise<SipTransport> {
  const v6 = o.host.includes(':');
  let udp: Socket | undefined;
  let tcp: Server | undefined;
  const connections = new Set<TcpSocket>();
  let port = o.port;

  if (o.udp) {
    const socket = createSocket({ type: v6 ? 'udp6' : 'udp4' });
    udp = socket;
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(port, o.host, () => {
        socket.off('error', reject);
        resolve();
      });
    });
    port = socket.address().port;
    socket.on('error', () => undefined);
    socket.on('message', (data, rinfo) => {
      if (data.length > o.maxMessageBytes) return o.onRefused('too_large');
      // Keep-alive CRLFs (RFC 5626) carry no message.
      if (data.length <= 4 && /^[\r\n]*$/.test(data.toString('latin1'))) return;
      const flow: Flow = {
        transport: 'UDP',
        address: rinfo.address,
        port: rinfo.port,
        isOpen: true,
        send: (d) => socket.send(d, rinfo.port, rinfo.address),
      };
      o.onMessage(data, flow);
    });
  }

  if (o.tcp) {
    const server = createServer((conn) => {
      if (connections.size >= (o.maxConnections ?? 1_000)) {
        conn.destroy();
        return;
      }
      connections.add(conn);
      conn.setNoDelay(true);
      conn.setTimeout(o.idleTimeoutMs ?? 600_000, () => conn.destroy());
      let open = true;
      const flow: Flow = {
        transport: 'TCP',
        address: conn.remoteAddress ?? '',
        port: conn.remotePort ?? 0,
        get isOpen() {
          return open;
        },
        send: (d) => {
          if (open) conn.write(d);
        },
      };
      let pending: Buffer = Buffer.alloc(0);
      conn.on('data', (chunk: Buffer) => {
        pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
        let framed: ReturnType<typeof frameStream>;
        try {
          framed = frameStream(pending, o.maxMessageBytes);
        } catch (error) {
          o.onRefused(/large/.test((error as Error).message) ? 'too_large' : 'malformed');
          conn.destroy();
          return;
        }
        pending = Buffer.from(framed.rest);
        for (const m of framed.messages) o.onMessage(m, flow);
      });
      conn.on('error', () => undefined);
      conn.on('close', () => {
        open = false;
        connections.delete(conn);
      });
    });
    tcp = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, o.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    port = (server.address() as { port: number }).port;
  }

  return {
    port,
    async close() {
      udp?.close();
      for (const c of connections) c.destroy();
      await new Promise<void>((resolve) => (tcp ? tcp.close(() => resolve()) : resolve()));
    },
  };
}
