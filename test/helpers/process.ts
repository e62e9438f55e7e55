import { readdir, readFile } from 'node:fs/promises';

/** Whether a process with this pid exists (signal 0 checks without signalling). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

interface ProcessStat {
  command: string;
  state: string;
  ppid: number;
  group: number;
}

/** /proc/<pid>/stat, read after the command name, which may itself hold spaces and parentheses. */
async function processStat(pid: string): Promise<ProcessStat | undefined> {
  const text = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  const [state = '', ppid, group] = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const command = text.slice(text.indexOf('(') + 1, text.lastIndexOf(')'));
  return { command, state, ppid: Number(ppid), group: Number(group) };
}

async function processIds(): Promise<string[]> {
  return (await readdir('/proc')).filter((name) => /^\d+$/.test(name));
}

/** The pid of a child of `parent` running `command` (its name as /proc gives it), if one runs. */
export async function childRunning(parent: number, command: string): Promise<number | undefined> {
  return (await childrenRunning(parent, command))[0];
}

/** The pids of the live children of `parent` running `command` (its name as /proc gives it). */
export async function childrenRunning(parent: number, command: string): Promise<number[]> {
  const found: number[] = [];
  for (const pid of await processIds()) {
    const stat = await processStat(pid);
    if (stat?.command === command && stat.ppid === parent && stat.state !== 'Z') found.push(Number(pid));
  }
  return found;
}

/** The command lines of the processes of process group `group` that have not ended (zombies have). */
export async function liveInGroup(group: number): Promise<string[]> {
  const live: string[] = [];
  for (const pid of await processIds()) {
    const stat = await processStat(pid);
    if (stat?.group !== group || stat.state === 'Z') continue;
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    live.push(cmdline.split('\0').join(' ').trim());
  }
  return live;
}
