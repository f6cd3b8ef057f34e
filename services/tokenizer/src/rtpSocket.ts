// Binding a call's UDP socket for RTP.

import { createSocket, type Socket } from 'node:dgram';
import { isIPv6 } from 'node:net';

/** Binds a UDP socket on host:port; rejects (and closes the socket) if the port is taken. */
export function bindRtpSocket(host: string, port: number): Promise<Socket> {
  const socket = createSocket({ type: isIPv6(host) ? 'udp6' : 'udp4', reuseAddr: false });
  return new Promise((resolve, reject) => {
    const onError = (error: Error) => {
      try {
        socket.close();
      } catch {
        // never bound: nothing to close
      }
      reject(error);
    };
    socket.once('error', onError);
    socket.bind(port, host, () => {
      socket.off('error', onError);
      resolve(socket);
    });
  });
}
