import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { parseYamlDocuments, type ParsedDocument } from './yaml-documents.js';

/**
 * Files up to this size are read on the main thread: yaml's worst shapes (`}}}…`, `[,,,…]`)
 * take time and memory quadratic in the bytes, 5 s and ~60 MB at 64 KiB, about 80 ms at this.
 */
const INLINE_PARSE_BYTES = 8 * 1024;
/**
 * The heap a worker thread reads one larger file in: 4 MiB of typical manifests (19,000
 * ConfigMaps) takes about 200 MB; 4 MiB of `[{},{},…]` took 2 GB, which on the main thread
 * killed the worker process and every deploy it ran.
 */
export const PARSE_HEAP_MB = 256;

/** How one file's read ended. */
export type ParseOutcome =
  { documents: ParsedDocument[] } | { refused: 'memory' | 'time' | 'crash'; detail?: string };

/**
 * Reads YAML files, the larger ones in a worker thread whose heap is bounded and which is
 * stopped at the caller's deadline: what one file can cost is that thread, never the process
 * (nor the event loop that renews every running deploy's lock). One thread per parser, started
 * at the first large file and reused for the next; close() stops it.
 */
export class YamlParser {
  private worker: Worker | undefined;

  async parse(text: string, deadline: number): Promise<ParseOutcome> {
    if (text.length <= INLINE_PARSE_BYTES) return { documents: parseYamlDocuments(text) };
    const worker = (this.worker ??= startWorker());
    const outcome = await new Promise<ParseOutcome>((resolve) => {
      const settle = (result: ParseOutcome): void => {
        clearTimeout(timer);
        worker.off('message', onMessage).off('error', onError).off('exit', onExit);
        resolve(result);
      };
      const timer = setTimeout(() => settle({ refused: 'time' }), Math.max(deadline - Date.now(), 0));
      const onMessage = (documents: ParsedDocument[]): void => settle({ documents });
      const onError = (error: Error & { code?: string }): void =>
        settle(
          error.code === 'ERR_WORKER_OUT_OF_MEMORY'
            ? { refused: 'memory' }
            : { refused: 'crash', detail: error.message },
        );
      const onExit = (code: number): void => settle({ refused: 'crash', detail: `exit code ${code}` });
      worker.on('message', onMessage).on('error', onError).on('exit', onExit);
      worker.postMessage(text);
    });
    // A thread that ran out of memory or time is stopped; the next large file gets a new one.
    if ('refused' in outcome) await this.close();
    return outcome;
  }

  async close(): Promise<void> {
    const worker = this.worker;
    this.worker = undefined;
    if (worker) await worker.terminate();
  }
}

function startWorker(): Worker {
  const worker = new Worker(workerScript(), {
    resourceLimits: { maxOldGenerationSizeMb: PARSE_HEAP_MB, maxYoungGenerationSizeMb: 16 },
  });
  // Idle between files, it must not keep the process alive.
  worker.unref();
  return worker;
}

/** The compiled worker beside this module; from the TypeScript sources (vitest), the one `npm run build` wrote. */
function workerScript(): URL {
  const beside = new URL('./yaml-parse-worker.js', import.meta.url);
  if (existsSync(fileURLToPath(beside))) return beside;
  return new URL('../../dist/src/manifests/yaml-parse-worker.js', import.meta.url);
}
