import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

/** A service started as its own process (as in production), for integration tests. */
export interface ServiceProcess {
  readonly name: string;
  readonly child: ChildProcess;
  readonly grpcPort: number;
  readonly httpPort: number;
  /** Structured log lines seen so far (parsed JSON). */
  readonly logs: Record<string, unknown>[];
  /** GET /metrics as text. */
  metrics(): Promise<string>;
  /** SIGTERM and wait for exit (graceful drain). */
  stop(timeoutMs?: number): Promise<number | null>;
  /** SIGKILL (a crash). */
  kill(): Promise<void>;
}

/**
 * Runs `node <entry>` with `env`, waits for its "ready" log line and returns its ports.
 * Rejects with the process's output if it exits or does not become ready in time.
 */
export async function startServiceProcess(options: {
  name: string;
  entry: string;
  env: Record<string, string>;
  timeoutMs?: number;
  /** Echo the service's log lines to stderr (debugging; or DUET_ECHO_SERVICE_LOGS=1). */
  echo?: boolean;
  /** Called with every structured log line. */
  onLog?: (entry: Record<string, unknown>) => void;
  /** Extra node arguments (e.g. --cpu-prof). */
  nodeArgs?: readonly string[];
}): Promise<ServiceProcess> {
  const echo = options.echo ?? process.env.DUET_ECHO_SERVICE_LOGS === '1';
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), options.entry], {
    env: {
      ...process.env,
      DUET_HTTP_PORT: '0',
      DUET_GRPC_PORT: '0',
      DUET_BIND_HOST: '127.0.0.1',
      ...options.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Record<string, unknown>[] = [];
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-8000);
    if (echo) process.stderr.write(d);
  });
  const ready = new Promise<{ grpcPort: number; httpPort: number }>((resolve, reject) => {
    const timer = setTimeout(() => {
      // Never leave a half-started process behind (it would outlive the test run).
      child.kill('SIGKILL');
      reject(new Error(`${options.name} not ready after ${options.timeoutMs ?? 30_000} ms:\n${stderr}`));
    }, options.timeoutMs ?? 30_000);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (echo) process.stderr.write(`[${options.name}] ${line}\n`);
      let entry: Record<string, unknown>;
      try {
        entry = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return;
      }
      logs.push(entry);
      options.onLog?.(entry);
      if (logs.length > 5_000) logs.splice(0, 1_000);
      if (entry.msg === 'ready') {
        clearTimeout(timer);
        resolve({ grpcPort: Number(entry.grpcPort), httpPort: Number(entry.httpPort) });
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${options.name} exited with ${code} before ready:\n${stderr}`));
    });
  });
  const { grpcPort, httpPort } = await ready;
  const exited = new Promise<number | null>((resolve) => {
    if (child.exitCode !== null) resolve(child.exitCode);
    else child.once('exit', (code) => resolve(code));
  });
  return {
    name: options.name,
    child,
    grpcPort,
    httpPort,
    logs,
    async metrics() {
      const res = await fetch(`http://127.0.0.1:${httpPort}/metrics`);
      return res.text();
    },
    async stop(timeoutMs = 15_000) {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
    async kill() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGKILL');
      await exited;
    },
  };
}

/** Reads one sample of a metric from Prometheus text (sum over series whose labels include `labels`). */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  let found = false;
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const labelText = m[2] ?? '';
    if (!Object.entries(labels).every(([k, v]) => labelText.includes(`${k}="${v}"`))) continue;
    sum += Number(m[3]);
    found = true;
  }
  return found ? sum : Number.NaN;
}
