import { describe, expect, it } from 'vitest';
import { PortAllocator } from './portAllocator.js';

describe('PortAllocator', () => {
  it('hands out ports round-robin and refuses when full', () => {
    const ports = new PortAllocator(100, 102);
    expect([ports.acquire(), ports.acquire(), ports.acquire()]).toEqual([100, 101, 102]);
    expect(ports.acquire()).toBeUndefined();
    ports.release(101);
    expect(ports.acquire()).toBe(101);
    ports.release(100);
    ports.release(102);
    // The cursor moved on: 102 comes before the earlier-released 100.
    expect(ports.acquire()).toBe(102);
    expect(ports.acquire()).toBe(100);
    expect(ports.inUse).toBe(3);
  });

  it('reserves a specific port once, only inside the range', () => {
    const ports = new PortAllocator(100, 105);
    expect(ports.reserve(103)).toBe(true);
    expect(ports.reserve(103)).toBe(false);
    expect(ports.reserve(99)).toBe(false);
    expect(ports.isUsed(103)).toBe(true);
    const got = new Set<number>();
    for (let i = 0; i < 5; i++) got.add(ports.acquire()!);
    expect(got.has(103)).toBe(false);
    expect(ports.acquire()).toBeUndefined();
  });

  it('rejects a bad range', () => {
    expect(() => new PortAllocator(10, 9)).toThrow(RangeError);
    expect(() => new PortAllocator(0, 9)).toThrow(RangeError);
    expect(() => new PortAllocator(1, 70000)).toThrow(RangeError);
  });
});
