import { parentPort } from 'node:worker_threads';
import { readYamlFile } from './yaml-documents.js';

/** A file to read, and how many anchors and aliases its environment may still hold. */
export interface ParseRequest {
  text: string;
  referencesAllowed: number;
}

// The worker thread of yaml-parser: one file's text in, its reading out.
parentPort?.on('message', ({ text, referencesAllowed }: ParseRequest) => {
  parentPort?.postMessage(readYamlFile(text, referencesAllowed));
});
