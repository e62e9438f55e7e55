import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const BENCHMARKS_FILE = join(fileURLToPath(new URL('../../', import.meta.url)), 'BENCHMARKS.md');

/** The machine facts every bench section starts with, so figures can be compared fairly. */
export function machineFacts(): string {
  return [
    `- nproc: ${os.availableParallelism()}`,
    `- CPU: ${os.cpus()[0]?.model.trim() ?? 'unknown'}`,
    `- memory: ${(os.totalmem() / 1024 ** 3).toFixed(1)} GiB`,
    `- node: ${process.version}`,
    `- load average at start (1 min): ${os.loadavg()[0]!.toFixed(2)}`,
  ].join('\n');
}

/** Replaces (or appends) the `## <name>` section of BENCHMARKS.md, leaving other benches' sections alone. */
export function writeBenchSection(name: string, section: string): string {
  const current = existsSync(BENCHMARKS_FILE)
    ? readFileSync(BENCHMARKS_FILE, 'utf8')
    : '# Benchmarks\n\nWritten by `npm run bench`; each bench rewrites its own section.\n';
  const start = current.search(new RegExp(`^## ${name}\\s*$`, 'm'));
  let next: string;
  if (start === -1) {
    next = `${current.trimEnd()}\n\n${section}`;
  } else {
    const rest = current.slice(start + 1);
    const end = rest.search(/^## /m);
    next = `${current.slice(0, start)}${section}${end === -1 ? '' : `\n${rest.slice(end)}`}`;
  }
  writeFileSync(BENCHMARKS_FILE, `${next.trimEnd()}\n`);
  return BENCHMARKS_FILE;
}
