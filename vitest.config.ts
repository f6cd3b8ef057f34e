import { defineConfig } from 'vitest/config';

// Tests that start real processes (nats-server, the services, Chromium, SIP peers) and check
// timing run one file at a time, after the unit tests: on a 2-core machine two such suites side
// by side (a dozen processes each) starve each other's ticks and fail for the machine's sake.
const SYSTEM = ['**/*.integration.test.ts', 'test/**/*.e2e.test.ts', 'test/scaleout.test.ts'];
const ALL = ['packages/*/src/**/*.test.ts', 'services/*/src/**/*.test.ts', 'test/**/*.test.ts'];

export default defineConfig({
  test: {
    testTimeout: 120_000,
    hookTimeout: 300_000,
    // onnxruntime sessions and python reference runs are CPU heavy; 2 cores here.
    pool: 'forks',
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ALL,
          exclude: ['**/node_modules/**', '**/dist/**', ...SYSTEM],
          poolOptions: { forks: { maxForks: 2, minForks: 1 } },
          sequence: { groupOrder: 0 },
        },
      },
      {
        extends: true,
        test: {
          name: 'system',
          include: SYSTEM,
          exclude: ['**/node_modules/**', '**/dist/**'],
          poolOptions: { forks: { maxForks: 1, minForks: 1 } },
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
