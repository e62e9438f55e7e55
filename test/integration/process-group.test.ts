import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { killProcessGroup, spawnProcessGroup } from '../../src/lib/process-group.js';
import { childrenRunning, liveInGroup } from '../helpers/process.js';
import { until } from '../helpers/until.js';

const PROCESS_GROUP = fileURLToPath(new URL('../../dist/src/lib/process-group.js', import.meta.url));

/**
 * A node process that runs `script` (a shell command) through spawnProcessGroup, as the worker
 * runs git and credential plugins; resolves to that node process and the group's id.
 */
async function spawnGroupInChild(script: string): Promise<{ parent: number; group: number }> {
  const program = `
    import { spawnProcessGroup } from ${JSON.stringify(pathToFileURL(PROCESS_GROUP).href)};
    const child = spawnProcessGroup('sh', ['-c', ${JSON.stringify(script)}], { env: process.env });
    console.log(child.pid);
    setInterval(() => {}, 60_000);`;
  const parent = spawn(process.execPath, ['--input-type=module', '-e', program], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const group = await new Promise<number>((resolve, reject) => {
    parent.stdout.setEncoding('utf8').once('data', (line: string) => resolve(Number(line)));
    parent.once('exit', (code) => reject(new Error(`the node process exited (${code}) before spawning`)));
  });
  return { parent: parent.pid!, group };
}

describe('spawnProcessGroup (real processes, /proc)', () => {
  const groups: number[] = [];

  afterEach(() => {
    for (const group of groups.splice(0)) {
      try {
        process.kill(-group, 'SIGKILL');
      } catch {
        // Gone, as it should be.
      }
    }
  });

  it('kills a group that ignores TERM a second after its spawner is SIGKILLed', async () => {
    if (!existsSync(PROCESS_GROUP)) throw new Error(`${PROCESS_GROUP} is missing: run npm run build first`);
    // Ignored signals stay ignored across fork and exec: neither sleep ends on TERM.
    const { parent, group } = await spawnGroupInChild("trap '' TERM; sleep 60 & sleep 60");
    groups.push(group);
    await until(async () => (await liveInGroup(group)).length === 3);

    process.kill(parent, 'SIGKILL');

    await until(async () => (await liveInGroup(group)).length === 0, 10_000).catch(() => undefined);
    expect(await liveInGroup(group)).toEqual([]);
  });

  it('stops a group with TERM first, so git can remove its lock files, then KILL', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'pushgate-group-'));
    try {
      const said = path.join(dir, 'said');
      // `wait` returns on a trapped signal; the trap writes, then the shell ends; its sleep ignores TERM.
      const child = spawnProcessGroup(
        'sh',
        ['-c', `trap 'echo term > "${said}"; exit 0' TERM; (trap '' TERM; sleep 60) & wait`],
        { env: process.env },
      );
      groups.push(child.pid!);
      await until(async () => (await liveInGroup(child.pid!)).length >= 2);

      killProcessGroup(child.pid);

      await until(() => Promise.resolve(existsSync(said)));
      expect(await readFile(said, 'utf8')).toBe('term\n');
      // What ignores TERM goes a second later.
      await until(async () => (await liveInGroup(child.pid!)).length === 0, 10_000);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('replaces a watchdog killed by someone else while a group is live', async () => {
    if (!existsSync(PROCESS_GROUP)) throw new Error(`${PROCESS_GROUP} is missing: run npm run build first`);
    const { parent, group } = await spawnGroupInChild('sleep 60 & sleep 60');
    groups.push(group);
    await until(async () => (await liveInGroup(group)).length >= 2);
    // The watchdog is the other shell the node process runs (the group's leader is one too).
    const watchdogs = async () => (await childrenRunning(parent, 'sh')).filter((pid) => pid !== group);
    const [first] = await until(async () => ((await watchdogs()).length === 1 ? watchdogs() : undefined));
    // Started a moment ago: give it the age a watchdog has by the time anyone would kill it.
    await until(async () => Date.now() - (await startedAtMs(first!)) >= 1_100);

    process.kill(first!, 'SIGKILL');
    const [second] = await until(async () => {
      const replacements = (await watchdogs()).filter((pid) => pid !== first);
      return replacements.length > 0 && replacements;
    });
    // Its spawner hands it the group list just after it starts: a moment for that to happen.
    await until(async () => Date.now() - (await startedAtMs(second!)) >= 500);
    process.kill(parent, 'SIGKILL');

    await until(async () => (await liveInGroup(group)).length === 0, 10_000).catch(() => undefined);
    expect(await liveInGroup(group)).toEqual([]);
  });
});

/** When the process started, from /proc (clock ticks since boot, at 100 a second). */
async function startedAtMs(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const startTicks = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
  const uptimeSeconds = Number((await readFile('/proc/uptime', 'utf8')).split(' ')[0]);
  return Date.now() - (uptimeSeconds * 1000 - startTicks * 10);
}
