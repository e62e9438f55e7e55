import { watch, type FSWatcher } from 'node:fs';
import { readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { bytesFromEnv, millisecondsFromEnv } from '../lib/env-settings.js';
import { PushgateError } from '../lib/errors.js';
import { filesHeldOpen } from '../lib/live-processes.js';
import { fsckIgnoreFromEnv } from './fetch-fsck.js';

/**
 * The most one fetch may bring into a mirror: half of the 2 GiB cache volume of
 * deploy/kubernetes, so one push cannot get the worker evicted, and far above what an
 * environment repository's history weighs.
 */
export const DEFAULT_FETCH_MAX_BYTES = 1024 * 1024 * 1024;
export const FETCH_MAX_BYTES_VARIABLE = 'PUSHGATE_GIT_FETCH_MAX_BYTES';
export const FETCH_TIMEOUT_VARIABLE = 'PUSHGATE_GIT_FETCH_TIMEOUT_MS';
/**
 * How often a fetch's incoming pack is measured when the file system reports no writes
 * (inotify measures it as it is written): the most a fetch can run past its budget is what
 * arrives meanwhile.
 */
export const FETCH_BUDGET_POLL_MS = 100;

/**
 * git options that make every fetch write what it receives as one pack file,
 * `objects/pack/tmp_pack_*`, growing as the data arrives (below the unpack limit, git would
 * write loose objects all over `objects/`, which cannot be measured as cheaply).
 */
export const MEASURABLE_FETCH_CONFIG = ['-c', 'fetch.unpackLimit=1', '-c', 'transfer.unpackLimit=1'];
/** What index-pack writes while a pack arrives; renamed to `pack-<hash>.*` once it is whole. */
const INCOMING_PACK = /^tmp_(pack|idx)_/;
/** All git writes beside a pack before renaming it (reverse indexes, bitmaps, a cruft pack's mtimes). */
const PACK_TEMPORARY = /^tmp_(pack|idx|rev|bitmap|mtimes)_/;

/** A fetch stopped at its budget: permanent, as the same push would bring the same data again. */
export class FetchTooLargeError extends PushgateError {
  constructor(message: string) {
    super('git_failed', message, { permanent: true });
    this.name = 'FetchTooLargeError';
  }
}

export interface GitFetchLimits {
  fetchMaxBytes: number;
  /** Unset: MirrorCache's default. */
  fetchTimeoutMs?: number;
  /** fsck message ids let through besides IGNORED_FSCK_MESSAGES (PUSHGATE_GIT_FSCK_IGNORE). */
  fsckIgnore?: string[];
}

/**
 * `PUSHGATE_GIT_FETCH_MAX_BYTES` (else the default), `PUSHGATE_GIT_FETCH_TIMEOUT_MS` and
 * `PUSHGATE_GIT_FSCK_IGNORE`, for every command that fetches; a value that is not a positive
 * integer (or not a list of fsck message ids) is invalid configuration.
 */
export function gitFetchLimitsFromEnv(env: Record<string, string | undefined>): GitFetchLimits {
  const fetchTimeoutMs = millisecondsFromEnv(env, FETCH_TIMEOUT_VARIABLE);
  const fsckIgnore = fsckIgnoreFromEnv(env);
  return {
    fetchMaxBytes: bytesFromEnv(env, FETCH_MAX_BYTES_VARIABLE) ?? DEFAULT_FETCH_MAX_BYTES,
    ...(fetchTimeoutMs === undefined ? {} : { fetchTimeoutMs }),
    ...(fsckIgnore === undefined ? {} : { fsckIgnore }),
  };
}

function formatBytes(bytes: number): string {
  const mebibytes = bytes / (1024 * 1024);
  return mebibytes >= 1 ? `${Number(mebibytes.toFixed(2))} MiB` : `${bytes} bytes`;
}

export interface FetchWatch {
  /** Aborted, with a FetchTooLargeError as its reason, once the incoming data passes the budget. */
  signal: AbortSignal;
  /**
   * Stops measuring. After a fetch that did not complete (its budget, a timeout, an abort, a
   * lost connection), removes the partial packs it left: each retry would add its own.
   */
  stop(completed: boolean): Promise<void>;
}

/**
 * Measures the packs a fetch writes into `gitDir` while it runs. git has no size limit of
 * its own for fetches (`receive.maxInputSize` is for pushes), and anyone who can push to the
 * branch chooses what the fetch brings: without this, one push of a few gigabytes fills the
 * cache volume. Packs already there when the fetch starts are not counted (they belong to
 * another process's fetch of the same mirror, which is then counted twice at worst).
 */
export async function watchFetch(
  gitDir: string,
  maxBytes: number,
  what: string,
  staleBefore: number,
): Promise<FetchWatch> {
  const packDir = path.join(gitDir, 'objects', 'pack');
  const before = new Set(await removeStaleIncomingPacks(packDir, staleBefore));
  const seen = new Set<string>();
  const aborter = new AbortController();
  let measuring = false;

  const measure = async (): Promise<void> => {
    if (measuring || aborter.signal.aborted) return;
    measuring = true;
    try {
      let total = 0;
      for (const name of await incomingPacks(packDir)) {
        if (before.has(name)) continue;
        seen.add(name);
        total += await stat(path.join(packDir, name)).then(
          (info) => info.size,
          () => 0,
        );
      }
      if (total > maxBytes && !aborter.signal.aborted) {
        aborter.abort(
          new FetchTooLargeError(
            `git ${what}: stopped after ${formatBytes(total)}: the push brings more than the ` +
              `${formatBytes(maxBytes)} one fetch may write (${FETCH_MAX_BYTES_VARIABLE})`,
          ),
        );
      }
    } finally {
      measuring = false;
    }
  };
  const timer = setInterval(() => void measure(), FETCH_BUDGET_POLL_MS);
  timer.unref();
  let watcher: FSWatcher | undefined;
  try {
    watcher = watch(packDir, { persistent: false }, () => void measure());
    watcher.on('error', () => watcher?.close());
  } catch {
    // No file-change events here (a network file system, say): the timer alone measures.
  }

  return {
    signal: aborter.signal,
    async stop(completed) {
      clearInterval(timer);
      watcher?.close();
      const overBudget = aborter.signal.aborted;
      if (completed && !overBudget) return;
      // git stopped mid-pack: nothing refers to what it wrote, and git would keep it for weeks.
      // (Names git wrote after the last measure are new since the start too.) Another process
      // fetching into the mirror meanwhile (`pushgate render`) still holds its own open: kept.
      for (const name of await incomingPacks(packDir)) if (!before.has(name)) seen.add(name);
      const held = await filesHeldOpen(packDir);
      // Without /proc, which process a pack is of cannot be told: only the budget's kill is sure.
      if (!held && !overBudget) return;
      // Packs only: index-pack closes a finished `.idx` before it renames it into place (after
      // the pack's fsync), so another process's may be unheld for a while; the sweep of stale
      // files takes ours, which are small.
      const ours = [...seen].filter(
        (name) => name.startsWith('tmp_pack_') && !held?.has(path.join(packDir, name)),
      );
      await Promise.all(ours.map((name) => rm(path.join(packDir, name), { force: true })));
    },
  };
}

async function incomingPacks(packDir: string, pattern = INCOMING_PACK): Promise<string[]> {
  const names = await readdir(packDir).catch(() => [] as string[]);
  return names.filter((name) => pattern.test(name));
}

/**
 * Removes the partial packs, and what git writes beside them, last written before `staleBefore`
 * (left by a process killed mid-fetch or mid-gc, which ran no cleanup; a git still writing
 * keeps its file's time fresh) and returns the names of those left.
 */
async function removeStaleIncomingPacks(packDir: string, staleBefore: number): Promise<string[]> {
  const left: string[] = [];
  let held: Set<string> | undefined;
  let heldRead = false;
  for (const name of await incomingPacks(packDir, PACK_TEMPORARY)) {
    const file = path.join(packDir, name);
    const info = await stat(file).catch(() => undefined);
    if (!info) continue;
    // index-pack writes nothing for a while as it resolves a large pack's deltas: a pack some
    // process holds open is kept, however old.
    if (info.mtimeMs < staleBefore) {
      if (!heldRead) [held, heldRead] = [await filesHeldOpen(packDir), true];
      const gone = held ? !held.has(file) : info.mtimeMs < staleBefore - STALE_WITHOUT_PROC_MS;
      if (gone) {
        await rm(file, { force: true });
        continue;
      }
    }
    left.push(name);
  }
  return left;
}

/** Where /proc cannot tell whether a git still writes a pack: that much older again. */
const STALE_WITHOUT_PROC_MS = 3600_000;
