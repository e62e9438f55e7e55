import { parentPort } from 'node:worker_threads';
import { parseYamlDocuments } from './yaml-documents.js';

// The worker thread of yaml-parser: one file's text in, its documents out.
parentPort?.on('message', (text: string) => {
  parentPort?.postMessage(parseYamlDocuments(text));
});
