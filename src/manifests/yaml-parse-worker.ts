import { readFileSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';
import { readYamlFile } from './yaml-documents.js';

/** A file to read, and how many anchors and aliases, and values, its environment may still hold. */
export interface ParseRequest {
  text: string;
  referencesAllowed: number;
  valuesAllowed: number;
}

/** The thread's first message: its id in the kernel, whose CPU time the budgets count. */
export interface ThreadAnnouncement {
  threadTid: number | undefined;
}

/** This thread's kernel id (Linux), from /proc/thread-self; undefined elsewhere. */
function ownTid(): number | undefined {
  try {
    const tid = Number(readFileSync('/proc/thread-self/stat', 'utf8').split(' ')[0]);
    return Number.isInteger(tid) && tid > 0 ? tid : undefined;
  } catch {
    return undefined;
  }
}

parentPort?.postMessage({ threadTid: ownTid() } satisfies ThreadAnnouncement);

// The worker thread of yaml-parser: one file's text in, its reading out.
parentPort?.on('message', ({ text, referencesAllowed, valuesAllowed }: ParseRequest) => {
  parentPort?.postMessage(readYamlFile(text, referencesAllowed, valuesAllowed));
});
