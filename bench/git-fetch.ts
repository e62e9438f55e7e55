/**
 * Git fetch memory benchmark: the peak resident memory of git's index-pack, the process that
 * takes in what a fetch receives, when a worker's mirror fetches a push of large files:
 * pushgate's own fetch (MirrorCache.fetchBranch) beside the same `git fetch` with git's
 * defaults, in the same run. Writes the `## git-fetch` section of BENCHMARKS.md.
 *
 *   npm run bench -- git-fetch
 */
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import {
  createWriteStream,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
} from 'node:fs';
import { appendFile } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { MirrorCache } from '../src/git/mirror-cache.js';
import { BENCH_GIT_ENV } from './local-services.js';
import { machineFacts, writeBenchSection } from './report.js';

const execFileAsync = promisify(execFile);
const FILE_MB = Number(process.env.BENCH_GIT_FETCH_MB ?? 200);
const BRANCH = 'env/bench';
const SAMPLE_MS = 5;

async function git(args: string[], cwd?: string): Promise<string> {
  const { stdout } = await execFileAsync('git', args, { cwd, env: BENCH_GIT_ENV, maxBuffer: 1024 * 1024 });
  return stdout.trim();
}

/** A file of `megabytes` MB of one byte repeated: it compresses to almost nothing, so a push of it is small. */
async function writeRepeated(file: string, byte: string, megabytes: number): Promise<void> {
  const chunk = Buffer.alloc(1024 * 1024, byte);
  const out = createWriteStream(file);
  for (let written = 0; written < megabytes; written++) {
    if (!out.write(chunk)) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
}

function readOrEmpty(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

/**
 * The highest VmHWM (peak resident set) seen of any index-pack whose parent's command line
 * names `under`, sampled every few ms while `work` runs. VmHWM only grows, so the last
 * sample of each process is its peak up to then.
 */
async function peakIndexPackKiB(under: string, work: () => Promise<unknown>): Promise<number> {
  let peak = 0;
  let running = true;
  const sampler = (async () => {
    while (running) {
      for (const entry of readdirSync('/proc')) {
        if (!/^\d+$/.test(entry)) continue;
        const cmdline = readOrEmpty(`/proc/${entry}/cmdline`);
        if (!cmdline.includes('index-pack')) continue;
        const status = readOrEmpty(`/proc/${entry}/status`);
        const parent = /^PPid:\s+(\d+)/m.exec(status)?.[1];
        const owner = parent ? readOrEmpty(`/proc/${parent}/cmdline`) : '';
        let cwd = '';
        try {
          cwd = readlinkSync(`/proc/${entry}/cwd`);
        } catch {
          // Gone meanwhile.
        }
        if (!owner.includes(under) && !cwd.startsWith(under)) continue;
        const hwm = Number(/^VmHWM:\s+(\d+) kB/m.exec(status)?.[1] ?? 0);
        peak = Math.max(peak, hwm);
      }
      await new Promise((resolve) => setTimeout(resolve, SAMPLE_MS));
    }
  })();
  try {
    await work();
  } finally {
    running = false;
    await sampler;
  }
  return peak;
}

interface Measured {
  peakKiB: number;
  ms: number;
}

async function measure(under: string, work: () => Promise<unknown>): Promise<Measured> {
  const started = Date.now();
  const peakKiB = await peakIndexPackKiB(under, work);
  return { peakKiB, ms: Date.now() - started };
}

/** `git fetch` as pushgate runs it (mirror-cache.ts), with git's own settings for large blobs. */
async function plainFetch(mirror: string, url: string): Promise<void> {
  const ref = `refs/heads/${BRANCH}`;
  await git([
    '--git-dir',
    mirror,
    '-c',
    'fetch.unpackLimit=1',
    '-c',
    'transfer.unpackLimit=1',
    '-c',
    'fetch.fsckObjects=true',
    '-c',
    'gc.auto=0',
    'fetch',
    '--quiet',
    '--no-tags',
    '--prune',
    '--no-write-fetch-head',
    '--end-of-options',
    url,
    `+${ref}:${ref}`,
  ]);
}

const mib = (kib: number): string => `${(kib / 1024).toFixed(0)} MiB`;

export async function run(): Promise<void> {
  const loadAtStart = os.loadavg()[0]!;
  const root = mkdtempSync(join(os.tmpdir(), 'pushgate-bench-git-fetch-'));
  try {
    const origin = join(root, 'origin');
    mkdirSync(join(origin, 'manifests'), { recursive: true });
    mkdirSync(join(origin, 'assets'));
    await git(['init', '--quiet', '--initial-branch', BRANCH, origin]);
    await appendFile(
      join(origin, 'manifests', 'a.yaml'),
      'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n',
    );
    await git(['add', '-A'], origin);
    await git(['commit', '--quiet', '-m', 'manifests'], origin);
    const url = `file://${origin}`;

    const pushgateMirrors = join(root, 'pushgate-mirrors');
    const cache = new MirrorCache({ dir: pushgateMirrors });
    const plainMirror = join(root, 'plain-mirror.git');
    await git(['init', '--quiet', '--bare', plainMirror]);
    // Both mirrors hold the first commit, as after earlier deploys.
    await cache.fetchBranch({ url, provider: 'github' }, BRANCH);
    await plainFetch(plainMirror, url);

    // A push adding two large files, sent whole (nothing to make them deltas of).
    await writeRepeated(join(origin, 'assets', 'one.bin'), 'a', FILE_MB);
    await writeRepeated(join(origin, 'assets', 'two.bin'), 'b', FILE_MB);
    await git(['add', '-A'], origin);
    await git(['commit', '--quiet', '-m', 'large files'], origin);
    const addedPushgate = await measure(pushgateMirrors, () =>
      cache.fetchBranch({ url, provider: 'github' }, BRANCH),
    );
    const addedPlain = await measure(plainMirror, () => plainFetch(plainMirror, url));

    // The next push changes one byte of each: the server sends them as deltas.
    await appendFile(join(origin, 'assets', 'one.bin'), 'x');
    await appendFile(join(origin, 'assets', 'two.bin'), 'y');
    await git(['commit', '--quiet', '-a', '-m', 'one byte more'], origin);
    const changedPushgate = await measure(pushgateMirrors, () =>
      cache.fetchBranch({ url, provider: 'github' }, BRANCH),
    );
    const changedPlain = await measure(plainMirror, () => plainFetch(plainMirror, url));

    // A new mirror (a worker's first fetch after a restart: its cache is an emptyDir) takes
    // the whole history in one pack, each file whole and its next version as a delta.
    const freshCache = new MirrorCache({ dir: join(root, 'fresh-pushgate-mirrors') });
    const freshPushgate = await measure(join(root, 'fresh-pushgate-mirrors'), () =>
      freshCache.fetchBranch({ url, provider: 'github' }, BRANCH),
    );
    const freshPlainMirror = join(root, 'fresh-plain-mirror.git');
    await git(['init', '--quiet', '--bare', freshPlainMirror]);
    const freshPlain = await measure(freshPlainMirror, () => plainFetch(freshPlainMirror, url));

    const section = [
      '## git-fetch',
      '',
      "The peak resident memory (VmHWM) of git's `index-pack`, the process that takes in what a fetch",
      "receives, as a worker's mirror fetches pushes of large files: pushgate's fetch",
      "(`MirrorCache.fetchBranch`, compiled) beside the same `git fetch` with git's default settings",
      `(\`core.bigFileThreshold\` 512 MiB), each into its own mirror of one repository over file://.`,
      `The first push adds two files of ${FILE_MB} MB (one byte repeated: the push itself is a few`,
      'hundred KB); the next appends one byte to each, which the server sends as deltas; then a new',
      "mirror (a worker's first fetch after a restart) fetches both at once. The server",
      "side (git's upload-pack, here on the same machine) is not counted. Sampled every",
      `${SAMPLE_MS} ms; times are the whole fetch.`,
      '',
      `Measured ${new Date().toISOString()} with \`npm run bench -- git-fetch\` (\`BENCH_GIT_FETCH_MB\` sets the size) on:`,
      '',
      machineFacts().replace(
        /load average at start \(1 min\): [\d.]+/,
        `load average at start (1 min): ${loadAtStart.toFixed(2)}`,
      ),
      `- git: ${await git(['--version'])}`,
      '',
      '| push | pushgate index-pack peak | git defaults index-pack peak | pushgate fetch | git defaults fetch |',
      '|---|---|---|---|---|',
      `| adds two ${FILE_MB} MB files | ${mib(addedPushgate.peakKiB)} | ${mib(addedPlain.peakKiB)} | ${addedPushgate.ms} ms | ${addedPlain.ms} ms |`,
      `| changes them by one byte (deltas) | ${mib(changedPushgate.peakKiB)} | ${mib(changedPlain.peakKiB)} | ${changedPushgate.ms} ms | ${changedPlain.ms} ms |`,
      `| both pushes into a new mirror | ${mib(freshPushgate.peakKiB)} | ${mib(freshPlain.peakKiB)} | ${freshPushgate.ms} ms | ${freshPlain.ms} ms |`,
      '',
      'pushgate fetches with `core.bigFileThreshold=16m`: index-pack streams a blob over 16 MiB to',
      'the pack instead of holding it whole; and with `pack.threads=1`, so that deltas are resolved',
      'one at a time. A blob sent as a delta is still built whole, base and result, to be hashed:',
      'git has no setting that bounds that short of `GIT_ALLOC_LIMIT`, which',
      'would refuse any repository holding a file over the limit anywhere in its history (a partial',
      'clone that leaves large blobs on the server would avoid it, and is not done). Size worker memory',
      'for twice the largest file your environment repositories hold, per concurrent deploy (fetches',
      'of different repositories run side by side), if they hold large files at all.',
      '',
    ].join('\n');
    const file = writeBenchSection('git-fetch', section);
    process.stdout.write(`bench git-fetch: wrote ${file}\n`);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}
