import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { tempDirs } from '../helpers/temp-dirs.js';

const LOAD_MODULE = fileURLToPath(new URL('../../dist/src/manifests/load.js', import.meta.url));
const newDir = tempDirs('pushgate-starved-');

interface LoadResult {
  code?: string;
  permanent?: boolean;
  message?: string;
}

/**
 * Loads `dir`'s manifests in a process of its own, stopped for `stoppedMs` of every 100 ms
 * (SIGSTOP/SIGCONT: what a CPU limit's throttling does to a pod), with `parseMs` for them all.
 */
function loadThrottled(dir: string, parseMs: number, stoppedMs: number): Promise<LoadResult> {
  const script = `
    import { loadManifestTree } from ${JSON.stringify(LOAD_MODULE)};
    loadManifestTree(${JSON.stringify(dir)}, 'env', { values: 1_000_000, parseMs: ${parseMs} }).then(
      () => console.log(JSON.stringify({})),
      (e) => console.log(JSON.stringify({ code: e.code, permanent: e.permanent, message: e.message })),
    );`;
  // A file, not --input-type=module -e: the parse thread would inherit those flags.
  const scriptFile = join(newDir(), 'load.mjs');
  writeFileSync(scriptFile, script);
  const child = spawn(process.execPath, [scriptFile], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  let running = true;
  const throttle = async (): Promise<void> => {
    while (running && stoppedMs > 0) {
      child.kill('SIGSTOP');
      await new Promise((resolve) => setTimeout(resolve, stoppedMs));
      child.kill('SIGCONT');
      await new Promise((resolve) => setTimeout(resolve, 100 - stoppedMs));
    }
  };
  const throttling = throttle();
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', () => {
      running = false;
      void throttling.then(() => {
        try {
          resolve(JSON.parse(out) as LoadResult);
        } catch {
          reject(new Error(`no result from the loading process: ${out}`));
        }
      });
    });
  });
}

/** A file whose shape yaml takes time quadratic in its bytes for: far more than the budgets below. */
function slowFileDir(): string {
  const dir = newDir();
  mkdirSync(join(dir, 'env'));
  writeFileSync(join(dir, 'env/slow.yaml'), `a: 1\n${'}'.repeat(256 * 1024)}`);
  return dir;
}

describe('reading YAML on a worker starved of CPU', () => {
  it('retries a file that ran out of time while the process had almost no CPU, rather than failing the commit for good', async () => {
    const result = await loadThrottled(slowFileDir(), 6_000, 92);

    expect(result.code).toBe('transient');
    expect(result.permanent).toBe(false);
    expect(result.message).toMatch(
      /^env\/slow\.yaml: not read in time, with this worker process given \d+% of a CPU core meanwhile \(throttled by its CPU limit, or a busy node\): the read is tried again/,
    );
  });

  it('still fails a file that is merely slow for good, when the process had the CPU', async () => {
    const result = await loadThrottled(slowFileDir(), 6_000, 0);

    expect(result.code).toBe('manifest_invalid');
    expect(result.permanent).toBe(true);
    expect(result.message).toContain('env/slow.yaml: not read: reading it took longer than it may');
  });
});
