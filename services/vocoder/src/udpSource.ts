// Binds a call's UDP source socket inside the configured port range.

import { createSocket, type Socket } from 'node:dgram';

function bindOne(host: string, port: number): Promise<Socket | undefined> {
  return new Promise((resolve) => {
    const socket = createSocket({ type: host.includes(':') ? 'udp6' : 'udp4' });
    const onError = () => {
      socket.close();
      resolve(undefined);
    };
    socket.once('error', onError);
    socket.bind({ address: host, port, exclusive: true }, () => {
      socket.off('error', onError);
      resolve(socket);
    });
  });
}

/**
 * Binds `preferred` if given and free, else the first free port of [min, max] starting at a
 * random offset (so replicas on one host rarely race for the same port). Undefined when the
 * range is full.
 */
export async function bindSource(
  host: string,
  range: { min: number; max: number },
  inUse: ReadonlySet<number>,
  preferred?: number,
): Promise<Socket | undefined> {
  if (preferred !== undefined && preferred > 0 && !inUse.has(preferred)) {
    const s = await bindOne(host, preferred);
    if (s) return s;
  }
  const span = range.max - range.min + 1;
  const offset = Math.floor(Math.random() * span);
  for (let i = 0; i < span; i++) {
    const port = range.min + ((offset + i) % span);
    if (inUse.has(port)) continue;
    const s = await bindOne(host, port);
    if (s) return s;
  }
  return undefined;
}
