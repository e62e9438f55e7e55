import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { errorMessage } from '../lib/errors.js';
import { readYamlFile, type FileReading } from './yaml-documents.js';
import type { ParseRequest, ThreadAnnouncement } from './yaml-parse-worker.js';

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
 * The most CPU time one file may take, whatever its environment has left: the thread reads for
 * every deploy of the process, and one environment's file must not hold the others' for a minute.
 */
export const MAX_FILE_PARSE_MS = 20_000;
/** An idle thread is stopped after this: its heap is the largest file it read. */
const IDLE_MS = 30_000;

/**
 * The limits count the reading thread's CPU time (Linux; the clock elsewhere), so a worker
 * throttled by its CPU limit or on a busy node reads slower instead of refusing a file it would
 * read. A read still short of its CPU time after this many times as long by the clock...
 */
const STARVED_WALL_FACTOR = 4;
/** ...and at least this long, was starved of CPU: retried, not blamed on the file. */
const STARVED_MIN_WALL_MS = 10_000;
/**
 * A new thread that has not said it started after this long (its imports take well under a
 * second of CPU) is stopped, and the read counted as starved: retried, not blamed on the file.
 */
export const THREAD_START_LIMIT_MS = 30_000;
/** How often a read's CPU time is looked at. */
const CPU_CHECK_MS = 50;
/** /proc reports CPU time in clock ticks of 1/100 s (USER_HZ, fixed for user space). */
const TICKS_PER_SECOND = 100;

/** How one file's read ended. */
export type ParseOutcome =
  | FileReading
  | { refused: 'memory' | 'crash'; detail?: string }
  /** `starvedCpuShare`: the share of one core the thread had, when too little to judge the file. */
  | { refused: 'time'; starvedCpuShare?: number };

/** One file's read, and the CPU time it took (waiting for the thread not counted). */
export interface TimedRead {
  outcome: ParseOutcome;
  spentMs: number;
}

interface Pending {
  request: ParseRequest;
  /** The CPU time the read may take, counted from when the thread takes it. */
  budgetMs: number;
  resolve: (read: TimedRead) => void;
}

/**
 * One thread per process reads the larger files, one at a time, for every deploy the process
 * runs: what one file can cost is that thread's bounded heap, never the process (nor the
 * event loop that renews every running deploy's lock). A read past its time or memory stops
 * the thread; the next file gets a new one. A file waiting its turn is not charged the wait.
 */
export class ParseThread {
  private worker: Worker | undefined;
  /** The thread's kernel id, once it has said (its first message). */
  private tid: number | undefined;
  private readonly queue: Pending[] = [];
  private busy = false;
  private idleTimer: NodeJS.Timeout | undefined;

  /** `spawn` and `startLimitMs` are the tests' to change: a thread that never starts, a shorter wait. */
  constructor(
    private readonly spawn: () => Worker = startWorker,
    private readonly startLimitMs = THREAD_START_LIMIT_MS,
  ) {}

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
    void this.run(pending).then((read) => {
      this.busy = false;
      pending.resolve(read);
      this.next();
    });
  }

  private async run(pending: Pending): Promise<TimedRead> {
    try {
      return await this.runOnThread(pending);
    } catch (error) {
      // The thread could not start (its script missing, say): this file's refusal, not a stall.
      await this.stop().catch(() => undefined);
      return { outcome: { refused: 'crash', detail: errorMessage(error) }, spentMs: 0 };
    }
  }

  /** The thread's CPU time so far in ms; `fallbackMs` while it cannot be read. */
  private threadCpuMs(fallbackMs: number): number {
    return (this.tid === undefined ? undefined : threadCpuMs(this.tid)) ?? fallbackMs;
  }

  private async runOnThread({ request, budgetMs }: Pending): Promise<TimedRead> {
    if (!this.worker) {
      this.tid = undefined;
      this.worker = this.spawn();
      // Before the read's clock starts: the thread's start (its imports, slow on a starved
      // CPU or in a paused process) is not the file's, and its CPU time is readable from then.
      const started = await announcement(this.worker, this.startLimitMs);
      if (!started) {
        await this.stop();
        return { outcome: { refused: 'time', starvedCpuShare: 0 }, spentMs: 0 };
      }
      this.tid = started.tid;
    }
    const worker = this.worker;
    const wallBefore = performance.now();
    const processCpuBefore = process.cpuUsage();
    const cpuBefore = this.threadCpuMs(0);
    const limitMs = Math.max(Math.min(budgetMs, MAX_FILE_PARSE_MS), 0);
    const starvedAfterMs = Math.max(limitMs * STARVED_WALL_FACTOR, STARVED_MIN_WALL_MS);
    const spent = (): { cpuMs: number; wallMs: number } => {
      const wallMs = performance.now() - wallBefore;
      // Where the thread's own time cannot be read (off Linux), the least of two bounds of it:
      // the clock, and the whole process's CPU time (the clock alone charges a stall).
      const processCpu = process.cpuUsage(processCpuBefore);
      const fallbackMs = Math.min(wallMs, (processCpu.user + processCpu.system) / 1000);
      return { cpuMs: Math.max(0, this.threadCpuMs(cpuBefore + fallbackMs) - cpuBefore), wallMs };
    };
    const outcome = await new Promise<ParseOutcome>((resolve) => {
      const settle = (result: ParseOutcome): void => {
        clearInterval(timer);
        worker.off('message', onMessage).off('messageerror', onMessageError);
        worker.off('error', onError).off('exit', onExit);
        resolve(result);
      };
      const timer = setInterval(() => {
        const { cpuMs, wallMs } = spent();
        if (cpuMs >= limitMs) settle({ refused: 'time' });
        else if (wallMs >= starvedAfterMs) settle({ refused: 'time', starvedCpuShare: cpuMs / wallMs });
      }, CPU_CHECK_MS);
      const onMessage = (message: FileReading): void => settle(message);
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
    // Read while the thread is there: once stopped, its CPU time can no longer be read.
    const { cpuMs } = spent();
    // A thread past its time or memory is stopped; one that refused a file for its anchors or nesting is fine.
    if (
      'refused' in outcome &&
      (outcome.refused === 'memory' || outcome.refused === 'time' || outcome.refused === 'crash')
    )
      await this.stop();
    return { outcome, spentMs: cpuMs };
  }

  private async stop(): Promise<void> {
    const worker = this.worker;
    this.worker = undefined;
    // Waits for the thread's exit, so nothing of it outlives the read it ran.
    if (worker) await worker.terminate();
  }
}

/**
 * A new thread's first message: its kernel id (undefined off Linux); undefined if it has not
 * come within `limitMs`. Rejects if the thread fails to start.
 */
function announcement(worker: Worker, limitMs: number): Promise<{ tid: number | undefined } | undefined> {
  return new Promise((resolve, reject) => {
    const stopListening = (): void => {
      clearTimeout(timer);
      worker.off('message', onMessage).off('error', onError).off('exit', onExit);
    };
    const timer = setTimeout(() => {
      stopListening();
      resolve(undefined);
    }, limitMs);
    const onMessage = (message: ThreadAnnouncement): void => {
      stopListening();
      resolve({ tid: message.threadTid });
    };
    const onError = (error: Error): void => {
      stopListening();
      reject(error);
    };
    const onExit = (code: number): void => {
      stopListening();
      reject(new Error(`the reading thread exited with code ${code} as it started`));
    };
    worker.on('message', onMessage).on('error', onError).on('exit', onExit);
  });
}

/** CPU time (user + system) thread `tid` of this process has used, in ms; undefined off Linux. */
function threadCpuMs(tid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
    // After the command name, which may hold spaces: state is field 3, utime 14, stime 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    return Number.isFinite(ticks) ? (ticks * 1000) / TICKS_PER_SECOND : undefined;
  } catch {
    return undefined;
  }
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
  // The process's CPU time, in µs: the read holds the main thread; what another thread (the
  // parse thread, reading another environment's file) used meanwhile only overstates it.
  const before = process.cpuUsage();
  const outcome = readYamlFile(text, budget.references, Math.min(budget.values, INLINE_VALUES));
  const used = process.cpuUsage(before);
  const spentMs = (used.user + used.system) / 1000;
  if (!('refused' in outcome && outcome.refused === 'values' && budget.values > INLINE_VALUES))
    return { outcome, spentMs };
  const again = await thread.read(request, budget.parseMs - spentMs);
  return { outcome: again.outcome, spentMs: spentMs + again.spentMs };
}
