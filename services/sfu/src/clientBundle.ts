// The browser client: src/client/{index.html,style.css,main.ts}, main.ts bundled with
// mediasoup-client by esbuild once at start (offline, ~100 ms), served from memory.

import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

export interface ClientAssets {
  readonly html: string;
  readonly css: string;
  readonly js: string;
}

/** services/sfu/src/client, from src/ (vitest) or dist/ (the service). */
export function clientDir(): string {
  return join(dirname(fileURLToPath(import.meta.url)), '..', 'src', 'client');
}

export async function bundleClient(dir = clientDir()): Promise<ClientAssets> {
  const result = await build({
    entryPoints: [join(dir, 'main.ts')],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: ['chrome110', 'firefox115', 'safari16'],
    minify: true,
    sourcemap: false,
    write: false,
    logLevel: 'silent',
    define: { 'process.env.NODE_ENV': '"production"' },
  });
  const js = result.outputFiles[0]?.text;
  if (!js) throw new Error('esbuild produced no client bundle');
  return {
    html: readFileSync(join(dir, 'index.html'), 'utf8'),
    css: readFileSync(join(dir, 'style.css'), 'utf8'),
    js,
  };
}
