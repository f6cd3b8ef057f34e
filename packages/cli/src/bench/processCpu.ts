import { readFileSync } from 'node:fs';

/** CPU time (user + system, ms) a process has used so far, from /proc (Linux). */
export function processCpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may contain spaces) start after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  const ticksPerSecond = 100; // USER_HZ on Linux
  return ((utime + stime) * 1000) / ticksPerSecond;
}
