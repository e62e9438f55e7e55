import { setFlagsFromString } from 'node:v8';

/**
 * Turns off Maglev, V8's mid-tier JIT (on by default since Node.js 22), for this process and
 * every thread it starts afterwards; hot code still reaches TurboFan. A worker pays Maglev's
 * compiled code and compile memory twice, in its main thread and in its YAML parse thread,
 * which on Node.js 24 put a 1,000-object deploy's peak over its budget (BENCHMARKS.md, deploy).
 * node takes `--no-maglev` on its command line only, not in NODE_OPTIONS; set here, before the
 * command's code runs hot, it holds however the worker was started: the bin, the image, a
 * Deployment of one's own. What node's module loader made hot before this is Maglev code
 * already (a handful of its own functions). Node's docs warn that flags changed after start may
 * do nothing: test/integration/cli-worker.test.ts checks, on each Node.js CI runs, that this one
 * takes effect.
 */
export function turnOffMaglev(): void {
  setFlagsFromString('--no-maglev');
}
