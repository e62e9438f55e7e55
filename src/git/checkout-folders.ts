import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ownProcessIdentity, processRunning, type ProcessIdentity } from '../lib/live-processes.js';

const TREE_PREFIX = 'pushgate-tree-';
/**
 * `pushgate-tree-<pid>-<start ticks>-<mkdtemp's 6 characters>`: the process that owns it.
 * Folders made before owners were named (`pushgate-tree-XXXXXX`) have no dash past the prefix.
 */
const OWNED_TREE = /^pushgate-tree-(\d+)-(\d+)-[^-]+$/;
/**
 * A checkout lives for one deploy; one untouched this long was left by a process killed
 * mid-deploy. The rule for folders whose owner /proc cannot tell.
 */
export const STALE_TREE_MS = 6 * 3600_000;
/** How often a long-running worker looks for checkouts of processes that were killed since it started. */
export const TREE_SWEEP_INTERVAL_MS = 10 * 60_000;

/** A fresh, private (mkdtemp: 0700) folder in the temporary folder, named for this process. */
export async function makeCheckoutFolder(): Promise<string> {
  const owner = await ownProcessIdentity();
  const prefix = owner ? `${TREE_PREFIX}${owner.pid}-${owner.startTicks}-` : TREE_PREFIX;
  return mkdtemp(path.join(tmpdir(), prefix));
}

function treeOwner(name: string): ProcessIdentity | undefined {
  const match = OWNED_TREE.exec(name);
  return match ? { pid: Number(match[1]), startTicks: match[2]! } : undefined;
}

/**
 * Removes the checkouts that killed processes left in `dir` (a SIGKILLed or OOM-killed worker
 * runs no cleanup, and /tmp may be a volume that outlives the container): this user's
 * `pushgate-tree-*` folders whose owner no longer runs, and, where /proc cannot tell (an old
 * folder's name, no /proc), those older than STALE_TREE_MS. A folder of a process that runs
 * (another worker, `pushgate render`, this one) is never removed, however old. Best effort;
 * returns how many went.
 */
export async function removeStaleTrees(dir = tmpdir(), now = Date.now()): Promise<number> {
  const names = await readdir(dir).catch(() => [] as string[]);
  let removed = 0;
  for (const name of names) {
    if (!name.startsWith(TREE_PREFIX)) continue;
    const folder = path.join(dir, name);
    const info = await stat(folder).catch(() => undefined);
    if (!info?.isDirectory() || info.uid !== process.getuid?.()) continue;
    const owner = treeOwner(name);
    const running = owner ? await processRunning(owner) : undefined;
    const stale = running === undefined ? now - info.mtimeMs >= STALE_TREE_MS : !running;
    if (!stale) continue;
    await rm(folder, { recursive: true, force: true }).then(
      () => removed++,
      () => undefined,
    );
  }
  return removed;
}
