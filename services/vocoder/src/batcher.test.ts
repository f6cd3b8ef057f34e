import { describe, expect, it } from 'vitest';
import { ChunkBatcher } from './batcher.js';

describe('ChunkBatcher', () => {
  it('runs what arrives within the window as one batch, one item per key, in order', async () => {
    const batches: string[][] = [];
    const batcher = new ChunkBatcher<{ key: string; v: string }>(
      5,
      async (batch) => {
        batches.push(batch.map((b) => b.v));
        await new Promise((r) => setTimeout(r, 10));
      },
      () => undefined,
    );
    batcher.add({ key: 'a', v: 'a1' });
    batcher.add({ key: 'b', v: 'b1' });
    batcher.add({ key: 'a', v: 'a2' });
    await new Promise((r) => setTimeout(r, 2));
    batcher.add({ key: 'c', v: 'c1' });
    await new Promise((r) => setTimeout(r, 60));
    expect(batches).toEqual([['a1', 'b1', 'c1'], ['a2']]);
  });

  it('reports a failed run and carries on', async () => {
    const errors: unknown[] = [];
    let runs = 0;
    const batcher = new ChunkBatcher<{ key: string }>(
      0,
      async () => {
        runs += 1;
        if (runs === 1) throw new Error('boom');
      },
      (e) => errors.push(e),
    );
    batcher.add({ key: 'a' });
    await new Promise((r) => setTimeout(r, 20));
    batcher.add({ key: 'a' });
    await new Promise((r) => setTimeout(r, 20));
    expect(runs).toBe(2);
    expect(errors.length).toBe(1);
    batcher.close();
  });
});
