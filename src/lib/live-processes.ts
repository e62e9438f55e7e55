import { readdir, readFile, readlink, realpath } from 'node:fs/promises';
import path from 'node:path';

/**
 * A process as /proc tells it apart from any later one given the same pid: its start time,
 * in clock ticks since boot (field 22 of /proc/<pid>/stat). In a container a restarted
 * pushgate often gets the pid of the one that was killed (tini is 1, pushgate 7), never
 * its start time.
 */
export interface ProcessIdentity {
  pid: number;
  startTicks: string;
}

/** `/proc/<pid>/stat` fields from the state on (the command name before it may hold spaces and parentheses). */
async function statFields(pid: number): Promise<string[] | undefined> {
  const text = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  return text?.slice(text.lastIndexOf(')') + 2).split(' ');
}

/** Field 22, counted from the state (field 3). */
const START_TICKS_FROM_STATE = 22 - 3;

let own: Promise<ProcessIdentity | undefined> | undefined;

/** This process's identity; undefined where /proc cannot be read. */
export function ownProcessIdentity(): Promise<ProcessIdentity | undefined> {
  // /proc/self, not /proc/<process.pid>: in a PID namespace that did not mount its own /proc,
  // the two name different processes, and this /proc is the one every check reads.
  own ??= readFile('/proc/self/stat', 'utf8').then(
    (text) => {
      const pid = Number(text.slice(0, text.indexOf(' ')));
      const startTicks = text.slice(text.lastIndexOf(')') + 2).split(' ')[START_TICKS_FROM_STATE];
      return Number.isInteger(pid) && pid > 0 && startTicks && /^\d+$/.test(startTicks)
        ? { pid, startTicks }
        : undefined;
    },
    () => undefined,
  );
  return own;
}

/**
 * Whether the process still runs: false once it ended, even if its pid went to another
 * process since (a zombie has ended: it only waits for its parent to read its status);
 * undefined where /proc cannot tell (not Linux, or not mounted), and the caller decides
 * another way.
 */
export async function processRunning(identity: ProcessIdentity): Promise<boolean | undefined> {
  if ((await ownProcessIdentity()) === undefined) return undefined;
  const fields = await statFields(identity.pid);
  if (!fields) return false;
  return fields[0] !== 'Z' && fields[START_TICKS_FROM_STATE] === identity.startTicks;
}

/**
 * The files under `dir` that some process of this user holds open, from /proc (Linux); undefined
 * where /proc cannot be read.
 */
export async function filesHeldOpen(dir: string): Promise<Set<string> | undefined> {
  const pids = await readdir('/proc').catch(() => undefined);
  if (!pids) return undefined;
  // /proc names files by their real path: a folder reached through a symlink differs.
  const real = await realpath(dir).catch(() => dir);
  const held = new Set<string>();
  for (const pid of pids) {
    if (!/^\d+$/.test(pid)) continue;
    const fds = await readdir(`/proc/${pid}/fd`).catch(() => [] as string[]);
    for (const fd of fds) {
      const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '');
      if (target.startsWith(real + path.sep)) held.add(path.join(dir, path.relative(real, target)));
    }
  }
  return held;
}
