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
 * How the loading process is held back, by SIGSTOP/SIGCONT: stopped for `stoppedMs` of every
 * 100 ms (a CPU limit's throttling), or once for `pauseMs`, PAUSE_AFTER_MS after its parse
 * thread has started (a pod throttled for a long stretch, a VM paused). A busy machine
 * stretches the first's running slices (the timers here run late), never the second's pause.
 */
type HeldBack = { stoppedMs: number } | { pauseMs: number };
/**
 * How long after its parse thread's first message (the thread has started, and is handed the
 * file at once) the process is paused: the thread is reading by then, however busy the machine.
 */
const PAUSE_AFTER_MS = 400;

/** Loads `dir`'s manifests in a process of its own, held back so, with `parseMs` of CPU time for them all. */
function loadHeldBack(dir: string, parseMs: number, heldBack: HeldBack): Promise<LoadResult> {
  const script = `
    import { loadManifestTree } from ${JSON.stringify(LOAD_MODULE)};
    process.on('worker', (thread) => thread.once('message', () => console.log('reading')));
    console.log('loading');
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
  let running = true;
  const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
  let holding: Promise<void> = Promise.resolve();
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    const reading = !out.includes('reading') && (out + chunk).includes('reading');
    out += chunk;
    if (!reading || !('pauseMs' in heldBack)) return;
    const { pauseMs } = heldBack;
    // Once the parse thread has its file: a pause before that would not be the read's.
    holding = pause(PAUSE_AFTER_MS)
      .then(() => child.kill('SIGSTOP'))
      .then(() => pause(pauseMs))
      .then(() => void child.kill('SIGCONT'));
  });
  if ('stoppedMs' in heldBack && heldBack.stoppedMs > 0) {
    holding = (async () => {
      while (running) {
        child.kill('SIGSTOP');
        await pause(heldBack.stoppedMs);
        child.kill('SIGCONT');
        await pause(100 - heldBack.stoppedMs);
      }
    })();
  }
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    // 'close': the output is all read by then ('exit' may come before its last chunk).
    child.on('close', () => {
      running = false;
      void holding.then(() => {
        try {
          resolve(JSON.parse(out.trim().split('\n').at(-1) ?? '') as LoadResult);
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
    const result = await loadHeldBack(ordinaryFilesDir(20), 3_000, { stoppedMs: 80 });

    expect(result).toEqual({ objects: 20 });
  }, 120_000);

  it('retries a file the reading thread got almost no CPU for, rather than failing the commit for good', async () => {
    // Past 12 s by the clock (four times the 3 s, at least 10) with far less than 3 s of CPU.
    const result = await loadHeldBack(slowFileDir(), 3_000, { pauseMs: 12_500 });

    expect(result.code).toBe('transient');
    expect(result.permanent).toBe(false);
    expect(result.message).toMatch(
      /^env\/slow\.yaml: not read in time: the thread reading it was given \d+% of a CPU core \(its process throttled by a CPU limit, or a busy node\), too little to judge the file; a deploy tries again/,
    );
  });

  it('still fails a file that is merely slow for good, when the process had the CPU', async () => {
    // A small budget: the busiest CI machine gives the thread far more than it in the 10 s a
    // read may take by the clock before it counts as starved.
    const result = await loadHeldBack(slowFileDir(), 300, { stoppedMs: 0 });

    expect(result.code).toBe('manifest_invalid');
    expect(result.permanent).toBe(true);
    expect(result.message).toContain('env/slow.yaml: not read: reading it took more CPU time than it may');
  });
});
