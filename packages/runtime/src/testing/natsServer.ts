import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A real nats-server with JetStream for tests and `pnpm start`. */
export interface NatsServerHandle {
  readonly url: string;
  readonly port: number;
  /** 'binary': the Debian nats-server on a free port; 'container': testcontainers. */
  readonly kind: 'binary' | 'container';
  /** Stops the server and removes its JetStream store. */
  stop(): Promise<void>;
}

export interface NatsServerOptions {
  /** Port to listen on (default: a free one). */
  readonly port?: number;
  /** JetStream store directory (default: a fresh temporary one, removed on stop). */
  readonly storeDir?: string;
  /** 'auto' (default): a container when a Docker engine answers, else the binary. */
  readonly prefer?: 'auto' | 'binary' | 'container';
  /** Extra nats-server arguments (cluster routes in scale-out tests). */
  readonly args?: readonly string[];
  /** Server name (needed in a cluster). */
  readonly name?: string;
}

export function natsServerBinary(): string | undefined {
  for (const p of [
    process.env.NATS_SERVER_BIN,
    '/usr/sbin/nats-server',
    '/usr/bin/nats-server',
    '/usr/local/bin/nats-server',
  ])
    if (p && existsSync(p)) return p;
  return undefined;
}

function dockerAvailable(): boolean {
  if (!process.env.DOCKER_HOST && !existsSync('/var/run/docker.sock')) return false;
  const r = spawnSync('docker', ['info', '--format', '{{.ServerVersion}}'], {
    timeout: 5_000,
    encoding: 'utf8',
  });
  return r.status === 0 && r.stdout.trim().length > 0;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Starts nats-server with JetStream: through testcontainers where a Docker engine exists,
 * otherwise the nats-server binary from Debian. Both paths live here so tests do not care.
 */
export async function startNatsServer(options: NatsServerOptions = {}): Promise<NatsServerHandle> {
  const prefer = options.prefer ?? 'auto';
  if (prefer === 'container' || (prefer === 'auto' && !natsServerBinary() && dockerAvailable())) {
    return startContainer();
  }
  if (prefer === 'auto' && process.env.DUET_NATS_PREFER_CONTAINER === '1' && dockerAvailable())
    return startContainer();
  return startBinary(options);
}

async function startBinary(options: NatsServerOptions): Promise<NatsServerHandle> {
  const bin = natsServerBinary();
  if (!bin)
    throw new Error(
      'nats-server is not installed (apt-get install nats-server) and no Docker engine answers',
    );
  const port = options.port ?? (await freePort());
  const ownStore = options.storeDir === undefined;
  const storeDir = options.storeDir ?? (await mkdtemp(join(tmpdir(), 'duet-nats-')));
  const args = [
    '-a',
    '127.0.0.1',
    '-p',
    String(port),
    '-js',
    '-sd',
    storeDir,
    ...(options.name ? ['-n', options.name] : []),
    ...(options.args ?? []),
  ];
  // Its own process group: a Ctrl-C in the terminal signals the services (which drain) but not
  // the server they drain into; stop() ends it after them. Killed anyway when this process exits.
  const child: ChildProcess = spawn(bin, args, { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  child.once('exit', () => process.off('exit', killOnExit));
  let log = '';
  child.stderr?.on('data', (d: Buffer) => {
    log = (log + d.toString()).slice(-8000);
  });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`nats-server did not start on ${port}:\n${log}`)),
      10_000,
    );
    const onData = () => {
      if (log.includes('Server is ready')) {
        clearTimeout(timer);
        child.stderr?.off('data', onData);
        resolve();
      }
    };
    child.stderr?.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`nats-server exited with ${code}:\n${log}`));
    });
  });
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    kind: 'binary',
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 3_000))]);
        if (child.exitCode === null) child.kill('SIGKILL');
      }
      if (ownStore) await rm(storeDir, { recursive: true, force: true });
    },
  };
}

async function startContainer(): Promise<NatsServerHandle> {
  const { GenericContainer, Wait } = await import('testcontainers');
  const container = await new GenericContainer('nats:2.10-alpine')
    .withCommand(['-js'])
    .withExposedPorts(4222)
    .withWaitStrategy(Wait.forLogMessage(/Server is ready/))
    .start();
  const port = container.getMappedPort(4222);
  return {
    url: `nats://${container.getHost()}:${port}`,
    port,
    kind: 'container',
    async stop() {
      await container.stop();
    },
  };
}
