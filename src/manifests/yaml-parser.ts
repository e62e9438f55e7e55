import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { errorMessage } from '../lib/errors.js';
import { readYamlFile, type FileReading } from './yaml-documents.js';
import type { ParseRequest } from './yaml-parse-worker.js';

/**
 * Files up to this size are read on the main thread, where nothing can stop a read: yaml's
 * worst shapes (`}}}…`, `]!]!…`) take time and memory quadratic in the bytes, about 100 ms
 * and 50 MB at this size.
 */
const INLINE_PARSE_BYTES = 8 * 1024;

/**
 * Values (aliases expanded) a file read inline may make: about 20 ms and 10 MB. A merge key
 * (`<<: *a`) copies what it names, so 8 KiB of them can be millions.
 */
const INLINE_VALUES = 100_000;
/**
 * The heap of the thread that reads larger files: 4 MiB of typical manifests (19,000
 * ConfigMaps) takes about 200 MB; 4 MiB of `[{},{},…]` took 2 GB, which on the main thread
 * killed the worker process and every deploy it ran.
 */
export const PARSE_HEAP_MB = 256;
/**
 * The longest one file may take, whatever its environment has left: the thread reads for every
 * deploy of the process, and one environment's file must not hold the others' for a minute.
 */
export const MAX_FILE_PARSE_MS = 20_000;
/** An idle thread is stopped after this: its heap is the largest file it read. */
const IDLE_MS = 30_000;

/**
 * The time limits count the clock, so a process given little CPU (a throttled pod, a busy
 * node) runs out of time on a file it would read: a read timed out after at least this long...
 */
const STARVED_MIN_WALL_MS = 5_000;
/** ...while the whole process used less than this share of one core was starved, not slow. */
const STARVED_CPU_SHARE = 0.25;

/** How one file's read ended. */
export type ParseOutcome =
  | FileReading
  | { refused: 'memory' | 'crash'; detail?: string }
  /** `starvedCpuShare`: the share of one core the process had, when too little to judge the file. */
  | { refused: 'time'; starvedCpuShare?: number };

/** One file's read, and the time it took (waiting for the thread not counted). */
export interface TimedRead {
  outcome: ParseOutcome;
  spentMs: number;
}

interface Pending {
  request: ParseRequest;
  /** How long the read may take, counted from when the thread takes it. */
  budgetMs: number;
  resolve: (read: TimedRead) => void;
}

/**
 * One thread per process reads the larger files, one at a time, for every deploy the process
 * runs: what one file can cost is that thread's bounded heap, never the process (nor the
 * event loop that renews every running deploy's lock). A read past its time or memory stops
 * the thread; the next file gets a new one. A file waiting its turn is not charged the wait.
 */
class ParseThread {
  private worker: Worker | undefined;
  private readonly queue: Pending[] = [];
  private busy = false;
  private idleTimer: NodeJS.Timeout | undefined;

  read(request: ParseRequest, budgetMs: number): Promise<TimedRead> {
    return new Promise((resolve) => {
      this.queue.push({ request, budgetMs, resolve });
      this.next();
    });
  }

  private next(): void {
    if (this.busy) return;
    const pending = this.queue.shift();
    if (!pending) {
      this.idleTimer = setTimeout(() => void this.stop(), IDLE_MS).unref();
      return;
    }
    clearTimeout(this.idleTimer);
    this.busy = true;
    const started = Date.now();
    void this.run(pending).then((outcome) => {
      this.busy = false;
      pending.resolve({ outcome, spentMs: Date.now() - started });
      this.next();
    });
  }

  private async run(pending: Pending): Promise<ParseOutcome> {
    try {
      return await this.runOnThread(pending);
    } catch (error) {
      // The thread could not start (its script missing, say): this file's refusal, not a stall.
      await this.stop().catch(() => undefined);
      return { refused: 'crash', detail: errorMessage(error) };
    }
  }

  private async runOnThread({ request, budgetMs }: Pending): Promise<ParseOutcome> {
    const worker = (this.worker ??= startWorker());
    const cpuBefore = process.cpuUsage();
    const wallBefore = performance.now();
    const outcome = await new Promise<ParseOutcome>((resolve) => {
      const settle = (result: ParseOutcome): void => {
        clearTimeout(timer);
        worker.off('message', onMessage).off('messageerror', onMessageError);
        worker.off('error', onError).off('exit', onExit);
        resolve(result);
      };
      const timer = setTimeout(
        () => settle(timedOut(cpuBefore, wallBefore)),
        Math.max(Math.min(budgetMs, MAX_FILE_PARSE_MS), 0),
      );
      const onMessage = (reading: FileReading): void => settle(reading);
      // What the thread could copy and this one could not (nested past this thread's stack).
      const onMessageError = (error: Error): void => settle({ refused: 'crash', detail: error.message });
      const onError = (error: Error & { code?: string }): void =>
        settle(
          error.code === 'ERR_WORKER_OUT_OF_MEMORY'
            ? { refused: 'memory' }
            : { refused: 'crash', detail: error.message },
        );
      const onExit = (code: number): void => settle({ refused: 'crash', detail: `exit code ${code}` });
      worker
        .on('message', onMessage)
        .on('messageerror', onMessageError)
        .on('error', onError)
        .on('exit', onExit);
      worker.postMessage(request);
    });
    // A thread past its time or memory is stopped; one that refused a file for its anchors or nesting is fine.
    if (
      'refused' in outcome &&
      (outcome.refused === 'memory' || outcome.refused === 'time' || outcome.refused === 'crash')
    )
      await this.stop();
    return outcome;
  }

  private async stop(): Promise<void> {
    const worker = this.worker;
    this.worker = undefined;
    // Waits for the thread's exit, so nothing of it outlives the read it ran.
    if (worker) await worker.terminate();
  }
}

/**
 * A read past its time, saying whether the process was starved of CPU meanwhile. The
 * process's CPU counts every thread, so a share this low means the parse thread had less.
 */
function timedOut(cpuBefore: NodeJS.CpuUsage, wallBefore: number): ParseOutcome {
  const wallMs = performance.now() - wallBefore;
  const used = process.cpuUsage(cpuBefore);
  const share = (used.user + used.system) / 1000 / wallMs;
  return wallMs >= STARVED_MIN_WALL_MS && share < STARVED_CPU_SHARE
    ? { refused: 'time', starvedCpuShare: share }
    : { refused: 'time' };
}

function startWorker(): Worker {
  const worker = new Worker(workerScript(), {
    resourceLimits: { maxOldGenerationSizeMb: PARSE_HEAP_MB, maxYoungGenerationSizeMb: 16 },
  });
  // Never unhandled: an out-of-memory error may still come after a read's time ran out.
  worker.on('error', () => undefined);
  // Idle between files, it must not keep the process alive.
  worker.unref();
  return worker;
}

/** The compiled worker beside this module; from the TypeScript sources (vitest), the one `npm run build` wrote. */
function workerScript(): URL {
  const beside = new URL('./yaml-parse-worker.js', import.meta.url);
  if (existsSync(fileURLToPath(beside))) return beside;
  const built = new URL('../../dist/src/manifests/yaml-parse-worker.js', import.meta.url);
  if (existsSync(fileURLToPath(built))) return built;
  throw new Error(
    `${fileURLToPath(built)} is missing: run npm run build (the YAML reader's thread runs compiled code)`,
  );
}

const thread = new ParseThread();

/**
 * Reads one file of an environment: inline when small, else in the process's parse thread,
 * for at most `budget.parseMs` once the thread takes it. A small file whose aliases expand it
 * past what the main thread may make is read again in the thread.
 */
export async function readYaml(
  text: string,
  budget: { references: number; values: number; parseMs: number },
): Promise<TimedRead> {
  const request = { text, referencesAllowed: budget.references, valuesAllowed: budget.values };
  if (text.length > INLINE_PARSE_BYTES) return thread.read(request, budget.parseMs);
  const started = Date.now();
  const outcome = readYamlFile(text, budget.references, Math.min(budget.values, INLINE_VALUES));
  const spentMs = Date.now() - started;
  if (!('refused' in outcome && outcome.refused === 'values' && budget.values > INLINE_VALUES))
    return { outcome, spentMs };
  const again = await thread.read(request, budget.parseMs - spentMs);
  return { outcome: again.outcome, spentMs: spentMs + again.spentMs };
}
