import {
  Server,
  ServerCredentials,
  type ServiceDefinition,
  type status,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import { HealthImplementation, type ServingStatus } from 'grpc-health-check';

export interface GrpcServer {
  readonly port: number;
  /** Sets the grpc.health.v1 status of the whole server ('') and of each registered service. */
  setServing(serving: boolean): void;
  /** Stops taking new RPCs, lets running ones finish (up to `graceMs`), then forces. */
  close(graceMs?: number): Promise<void>;
}

/** A gRPC control server with the standard health service. */
export async function startGrpcServer(options: {
  host: string;
  port: number;
  services: readonly {
    name: string;
    definition: ServiceDefinition;
    implementation: UntypedServiceImplementation;
  }[];
}): Promise<GrpcServer> {
  const server = new Server({ 'grpc.max_receive_message_length': 1 << 20 });
  const names = ['', ...options.services.map((s) => s.name)];
  const health = new HealthImplementation(Object.fromEntries(names.map((n) => [n, 'NOT_SERVING'])));
  health.addToServer(server);
  for (const s of options.services) server.addService(s.definition, s.implementation);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${options.host}:${options.port}`, ServerCredentials.createInsecure(), (error, bound) =>
      error ? reject(error) : resolve(bound),
    ),
  );
  return {
    port,
    setServing(serving) {
      const st: ServingStatus = serving ? 'SERVING' : 'NOT_SERVING';
      for (const n of names) health.setStatus(n, st);
    },
    close(graceMs = 2_000) {
      return new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, graceMs);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    },
  };
}

/** A gRPC error with a status code (what unary handlers pass to their callback). */
export function grpcError(code: status, message: string): Error & { code: status; details: string } {
  return Object.assign(new Error(message), { code, details: message });
}

export { status as GrpcStatus } from '@grpc/grpc-js';
