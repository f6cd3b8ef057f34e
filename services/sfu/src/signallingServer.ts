// The SFU's HTTP server: the browser client (GET /), the routers' RTP capabilities
// (GET /rtp-capabilities), the signalling WebSocket (/ws) with origin allowlist and per-IP
// connection rate limit, and (for tests only) a mediasoup dump.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { KeyedRateLimiter, type Logger } from '@duet/runtime';
import { type WebSocket, WebSocketServer } from 'ws';
import type { ClientAssets } from './clientBundle.js';
import type { SfuMetrics } from './metrics.js';
import { originAllowed } from './originAllowlist.js';

export interface SignallingServerOptions {
  readonly host: string;
  readonly port: number;
  readonly allowedOrigins: readonly string[];
  readonly connectionsPerMinute: number;
  readonly maxMessageBytes: number;
  readonly assets: ClientAssets;
  /** Served at GET /rtp-capabilities (the router's, the same for every call). */
  readonly routerRtpCapabilities?: unknown;
  readonly metrics: SfuMetrics;
  readonly log: Logger;
  /** A new, authorised-origin socket: the session takes it from here. */
  readonly onSocket: (ws: WebSocket, req: IncomingMessage) => void;
  /** GET /debug/mediasoup (undefined: 404). */
  readonly debugDump?: () => Promise<unknown>;
}

export interface SignallingServer {
  readonly port: number;
  readonly http: Server;
  close(): Promise<void>;
}

function refuse(socket: Duplex, status: number, text: string): void {
  socket.end(
    `HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: ${text.length}\r\n\r\n${text}`,
  );
}

export async function startSignallingServer(options: SignallingServerOptions): Promise<SignallingServer> {
  const { metrics, log, assets } = options;
  const limiter = new KeyedRateLimiter(options.connectionsPerMinute, 60_000, options.connectionsPerMinute);
  // Frames above maxPayload are cut by ws itself (1009); between the limit and that, 4413 names it.
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: options.maxMessageBytes * 2,
    perMessageDeflate: false,
  });

  const send = (res: ServerResponse, status: number, type: string, body: string | Buffer) => {
    res.writeHead(status, {
      'Content-Type': type,
      'Cache-Control': 'no-store',
      'X-Content-Type-Options': 'nosniff',
      'Content-Security-Policy':
        "default-src 'self'; connect-src 'self' ws: wss:; media-src 'self' blob:; style-src 'self'; img-src 'self' data:",
    });
    res.end(body);
  };

  const http = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET') return send(res, 405, 'text/plain', 'method not allowed');
    if (path === '/' || path === '/index.html')
      return send(res, 200, 'text/html; charset=utf-8', assets.html);
    if (path === '/client.js') return send(res, 200, 'text/javascript; charset=utf-8', assets.js);
    if (path === '/style.css') return send(res, 200, 'text/css; charset=utf-8', assets.css);
    if (path === '/rtp-capabilities' && options.routerRtpCapabilities)
      return send(
        res,
        200,
        'application/json',
        JSON.stringify({ routerRtpCapabilities: options.routerRtpCapabilities }),
      );
    if (path === '/debug/mediasoup' && options.debugDump) {
      options.debugDump().then(
        (dump) => send(res, 200, 'application/json', JSON.stringify(dump)),
        (error: unknown) => send(res, 500, 'text/plain', String(error)),
      );
      return;
    }
    send(res, 404, 'text/plain', 'not found');
  });

  http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => undefined);
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/ws') {
      metrics.rejected.inc({ reason: 'bad_path' });
      return refuse(socket, 404, 'Not Found');
    }
    if (!originAllowed(req.headers.origin, req.headers.host, options.allowedOrigins)) {
      metrics.rejected.inc({ reason: 'origin' });
      log.warn({ origin: req.headers.origin }, 'signalling: origin not allowed');
      return refuse(socket, 403, 'Forbidden');
    }
    const ip = req.socket.remoteAddress ?? 'unknown';
    if (!limiter.take(ip, Date.now())) {
      metrics.rejected.inc({ reason: 'rate_limited' });
      return refuse(socket, 429, 'Too Many Requests');
    }
    wss.handleUpgrade(req, socket, head, (ws) => options.onSocket(ws, req));
  });

  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(options.port, options.host, () => resolve());
  });
  const address = http.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  return {
    port,
    http,
    async close() {
      for (const ws of wss.clients) ws.terminate();
      wss.close();
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
}
