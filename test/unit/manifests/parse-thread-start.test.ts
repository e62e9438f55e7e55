import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { ParseThread } from '../../../src/manifests/yaml-parser.js';

const START_LIMIT_MS = 300;
/** The thread's compiled script (`npm test` builds it first). */
const PARSE_WORKER = pathToFileURL('dist/src/manifests/yaml-parse-worker.js').href;
const request = { text: 'a: 1\n', referencesAllowed: 100, valuesAllowed: 100 };

/** A real thread that runs but never sends its first message, as one hung while starting. */
function silentThread(started: Worker[]): () => Worker {
  return () => {
    const worker = new Worker('setInterval(() => {}, 1000);', { eval: true });
    started.push(worker);
    return worker;
  };
}

function exited(worker: Worker): Promise<number> {
  return new Promise((resolve) => {
    if (worker.threadId === -1) resolve(0);
    else worker.once('exit', resolve);
  });
}

describe('the YAML parse thread at its start', () => {
  it('stops a thread that never says it started and counts the read as starved, not as the file’s fault', async () => {
    const started: Worker[] = [];
    const thread = new ParseThread(silentThread(started), START_LIMIT_MS);
    const startedAt = performance.now();

    const read = await thread.read(request, 5_000);

    expect(performance.now() - startedAt).toBeGreaterThanOrEqual(START_LIMIT_MS - 5);
    // Starved (its share given): the loader retries the deploy instead of refusing the file for good.
    expect(read).toEqual({ outcome: { refused: 'time', starvedCpuShare: 0 }, spentMs: 0 });
    expect(started).toHaveLength(1);
    await exited(started[0]!);
    expect(started[0]!.threadId).toBe(-1);
  });

  it('starts a new thread for the next read', async () => {
    const started: Worker[] = [];
    const thread = new ParseThread(silentThread(started), START_LIMIT_MS);

    await thread.read(request, 5_000);
    const second = await thread.read(request, 5_000);

    expect(second.outcome).toEqual({ refused: 'time', starvedCpuShare: 0 });
    expect(started).toHaveLength(2);
    expect(started[1]).not.toBe(started[0]);
  });

  it('reads the file with a thread that starts slowly but within the limit', async () => {
    // Slower than the limit above, within its own (generous: the import is slow on a busy machine).
    const slowStart = (): Worker =>
      new Worker(`setTimeout(() => import(${JSON.stringify(PARSE_WORKER)}), ${START_LIMIT_MS * 2});`, {
        eval: true,
      });
    const thread = new ParseThread(slowStart, 20_000);

    const read = await thread.read(request, 5_000);

    expect(read.outcome).toMatchObject({ documents: [{ value: { a: 1 } }] });
  });
});
