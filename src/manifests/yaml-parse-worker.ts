import { parentPort } from 'node:worker_threads';
import { readYamlFile } from './yaml-documents.js';

/** A file to read, and how many anchors and aliases, and values, its environment may still hold. */
export interface ParseRequest {
  text: string;
  referencesAllowed: number;
  valuesAllowed: number;
}

// The worker thread of yaml-parser: one file's text in, its reading out.
parentPort?.on('message', ({ text, referencesAllowed, valuesAllowed }: ParseRequest) => {
  parentPort?.postMessage(readYamlFile(text, referencesAllowed, valuesAllowed));
});
