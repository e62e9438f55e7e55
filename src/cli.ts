#!/usr/bin/env -S node --max-semi-space-size=2
// A 2 MiB young generation: a deploy's garbage is short-lived, and the default 16 MiB
// semi-spaces alone would push a worker past its memory budget (see BENCHMARKS.md). The
// container image sets it per role instead (a receiver runs faster with 32 MiB).
import { parseArgs } from 'node:util';
import { PushgateError, errorMessage } from './lib/errors.js';
import type { Command, CommandArgs } from './commands/command.js';
/**
 * Each command is loaded only when asked for: `check` and `status` need neither the
 * Kubernetes client nor the deploy pipeline, and `serve` starts in a third of the time
 * and memory without them.
 */
const COMMANDS: Record<string, () => Promise<Command>> = {
  serve: () => import('./commands/serve.js').then((m) => m.runServe),
  worker: () => import('./commands/worker.js').then((m) => m.runWorker),
  start: () => import('./commands/start.js').then((m) => m.runStart),
  check: () => import('./commands/check.js').then((m) => m.runCheck),
  render: () => import('./commands/render.js').then((m) => m.runRender),
  sync: () => import('./commands/sync.js').then((m) => m.runSync),
  status: () => import('./commands/status.js').then((m) => m.runStatus),
};

export const USAGE = `Usage: pushgate <command> [options]

Commands:
  serve                  HTTP receiver only (webhooks and the status API)
  worker                 deploy worker only; run as many as you like
  start                  receiver and worker in one process (embedded redis-server without REDIS_URL)
  check                  validate the configuration and print the environments
  render ENV [--ref SHA] print what ENV would apply, as YAML; applies nothing
  sync ENV [--wait]      deploy the branch head of ENV now; --wait follows the job
  status [JOB_ID]        one job, or the latest jobs of every environment

Options:
  --config F             configuration file (default: $PUSHGATE_CONFIG, else config/pushgate.yaml)
  --json                 machine-readable output (status, sync)
  -h, --help             this help

Exit codes: 0 success, 1 the thing asked failed, 2 bad usage or invalid configuration.
`;

export async function main(argv: string[], env = process.env): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        config: { type: 'string' },
        ref: { type: 'string' },
        wait: { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (error) {
    process.stderr.write(`pushgate: ${errorMessage(error)}\n\n${USAGE}`);
    return 2;
  }
  const [name, ...positionals] = parsed.positionals;
  if (parsed.values.help || name === 'help') {
    process.stdout.write(USAGE);
    return 0;
  }
  const load = name === undefined ? undefined : COMMANDS[name];
  if (!load) {
    process.stderr.write(
      `pushgate: ${name === undefined ? 'a command is required' : `unknown command "${name}"`}\n\n${USAGE}`,
    );
    return 2;
  }
  const args: CommandArgs = {
    positionals,
    config: parsed.values.config,
    ref: parsed.values.ref,
    wait: parsed.values.wait,
    json: parsed.values.json,
    env,
    stdout: process.stdout,
    stderr: process.stderr,
  };
  try {
    const command = await load();
    return await command(args);
  } catch (error) {
    process.stderr.write(`pushgate ${name}: ${errorMessage(error)}\n`);
    if (error instanceof PushgateError && (error.code === 'config_invalid' || error.code === 'usage'))
      return 2;
    return 1;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`pushgate: ${errorMessage(error)}\n`);
    process.exitCode = 1;
  },
);
