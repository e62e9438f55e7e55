import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { liveInGroup } from '../helpers/process.js';
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

    await until(async () => (await liveInGroup(group)).length === 0, 3_000).catch(() => undefined);
    expect(await liveInGroup(group)).toEqual([]);
  });
});
