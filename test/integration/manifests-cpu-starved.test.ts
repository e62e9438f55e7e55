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
  /** The objects read, when the load succeeded. */
  objects?: number;
}

/**
 * Loads `dir`'s manifests in a process of its own, stopped for `stoppedMs` of every 100 ms
 * (SIGSTOP/SIGCONT: what a CPU limit's throttling does to a pod), with `parseMs` of CPU time
 * for them all; `busyThread` adds a thread that spins beside them (another deploy's work).
 */
function loadThrottled(
  dir: string,
  parseMs: number,
  stoppedMs: number,
  busyThread = false,
): Promise<LoadResult> {
  const script = `
    import { Worker } from 'node:worker_threads';
    import { loadManifestTree } from ${JSON.stringify(LOAD_MODULE)};
    if (${busyThread}) new Worker('for (;;) {}', { eval: true }).unref();
    loadManifestTree(${JSON.stringify(dir)}, 'env', { values: 1_000_000, parseMs: ${parseMs} }).then(
      (tree) => {
        console.log(JSON.stringify({ objects: tree.manifests.length }));
        process.exit(0);
      },
      (e) => {
        console.log(JSON.stringify({ code: e.code, permanent: e.permanent, message: e.message }));
        process.exit(0);
      },
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

/** `count` ordinary ConfigMaps of about 60 KB each: files the parse thread reads, not inline. */
function ordinaryFilesDir(count: number): string {
  const dir = newDir();
  mkdirSync(join(dir, 'env'));
  const data = Array.from({ length: 1_000 }, (_, i) => `  key-${i}: value-${i}-${'x'.repeat(40)}`).join('\n');
  for (let n = 0; n < count; n++) {
    const name = `config-${String(n).padStart(2, '0')}`;
    writeFileSync(
      join(dir, `env/${name}.yaml`),
      `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ${name}\ndata:\n${data}\n`,
    );
  }
  return dir;
}

describe('reading YAML on a worker starved of CPU', () => {
  it('reads an environment of many ordinary files on a throttled worker, however long the clock says it took', async () => {
    // 20 files of about 60 KB: about 1 s of CPU in all, some 5 s by the clock at a fifth of a core.
    const result = await loadThrottled(ordinaryFilesDir(20), 3_000, 80);

    expect(result).toEqual({ objects: 20 });
  });

  it('retries a file the reading thread got almost no CPU for, beside a busy thread, rather than failing the commit for good', async () => {
    const result = await loadThrottled(slowFileDir(), 2_000, 90, true);

    expect(result.code).toBe('transient');
    expect(result.permanent).toBe(false);
    expect(result.message).toMatch(
      /^env\/slow\.yaml: not read in time: the thread reading it was given \d+% of a CPU core \(its process throttled by a CPU limit, or a busy node\), too little to judge the file; a deploy tries again/,
    );
  });

  it('still fails a file that is merely slow for good, when the process had the CPU', async () => {
    const result = await loadThrottled(slowFileDir(), 1_000, 0);

    expect(result.code).toBe('manifest_invalid');
    expect(result.permanent).toBe(true);
    expect(result.message).toContain('env/slow.yaml: not read: reading it took more CPU time than it may');
  });
});
