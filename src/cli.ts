#!/usr/bin/env -S node --max-semi-space-size=2
// A 2 MiB young generation: a deploy's garbage is short-lived, and the default 16 MiB
// semi-spaces alone would push a worker past its memory budget (see BENCHMARKS.md). The
// container image sets it per role instead (a receiver runs faster with 32 MiB).
import { parseArgs } from 'node:util';
import { UsageError, errorMessage } from './lib/errors.js';
import { reportFailure, runCommand } from './commands/run-command.js';
import { turnOffMaglev } from './lib/no-maglev.js';
import type { Command, CommandArgs } from './commands/command.js';

/** The options some commands take and others refuse (all but --config and --help). */
const COMMAND_OPTIONS = [
  'ref',
  'reason',
  'wait',
  'timeout',
  'json',
  'version',
  'show-secrets',
  'environment',
  'limit',
  'exit-code',
] as const;

type CommandOption = (typeof COMMAND_OPTIONS)[number];

interface CommandSpec {
  /**
   * Each command is loaded only when asked for: `check` and `status` need neither the
   * Kubernetes client nor the deploy pipeline, and `serve` starts in a third of the time
   * and memory without them.
   */
  load: () => Promise<Command>;
  /** What `pushgate <command> --help` prints above the common options. */
  help: string;
  /** The options besides --config and --help it takes; any other is refused (exit 2), not ignored. */
  options: readonly CommandOption[];
  /** Positional arguments it takes at most; more is bad usage. */
  maxPositionals: number;
  /**
   * Runs until a signal and then has stopped for good: a connection still retrying an
   * unreachable Redis (one of BullMQ's own) must not keep the process, and its pod, alive
   * until SIGKILL once everything that matters is closed.
   */
  exitsWhenStopped?: boolean;
}

/** How long a stopped service lets open handles close by themselves before it exits anyway. */
const EXIT_AFTER_STOP_MS = 1_000;

const COMMANDS: Record<string, CommandSpec> = {
  serve: {
    load: () => import('./commands/serve.js').then((m) => m.runServe),
    help: `Usage: pushgate serve [--config F]

The HTTP receiver: webhooks (POST /webhooks/github, /webhooks/gitlab) and the status API,
on server.port (PORT overrides it), until SIGTERM/SIGINT. Needs REDIS_URL (redis.url).
`,
    options: [],
    maxPositionals: 0,
    exitsWhenStopped: true,
  },
  worker: {
    load: () => {
      turnOffMaglev();
      return import('./commands/worker.js').then((m) => m.runWorker);
    },
    help: `Usage: pushgate worker [--config F]

A deploy worker: takes jobs from Redis and applies them to the clusters, until SIGTERM/SIGINT
(it finishes or hands back its current job). Run as many as you like. Needs REDIS_URL
(redis.url); WORKER_METRICS_PORT serves /metrics and /healthz.
`,
    options: [],
    maxPositionals: 0,
    exitsWhenStopped: true,
  },
  start: {
    load: () => {
      turnOffMaglev();
      return import('./commands/start.js').then((m) => m.runStart);
    },
    help: `Usage: pushgate start [--config F]

Receiver and worker in one process, until SIGTERM/SIGINT. Without REDIS_URL (redis.url) it
runs a private redis-server (found on PATH) on a free loopback port with a new password, data
under .pushgate/redis/; status and sync run from the same folder find it by themselves.
`,
    options: [],
    maxPositionals: 0,
    exitsWhenStopped: true,
  },
  check: {
    load: () => import('./commands/check.js').then((m) => m.runCheck),
    help: `Usage: pushgate check [--config F]

Validates the configuration (exit 2 naming the file, the field and the reason) and prints
the environments; warns about missing webhook secrets and about clusters whose kubeconfig or
context cannot be loaded here. Starts nothing.
`,
    options: [],
    maxPositionals: 0,
  },
  render: {
    load: () => import('./commands/render.js').then((m) => m.runRender),
    help: `Usage: pushgate render ENV [--ref SHA] [--show-secrets] [--config F]

Fetches ENV's branch head (or commit SHA), validates and policy-checks its manifests,
dry-runs them on ENV's cluster and prints the objects as YAML. Applies nothing. Needs the
cluster, not Redis.

  --ref SHA              the commit to render instead of the branch head: a full sha, or 7+
                         digits of one in the branch's history
  --show-secrets         print the values of Secrets' data and stringData; by default each is
                         replaced by '[redacted: N bytes]', as render output ends up in CI logs
`,
    options: ['ref', 'show-secrets'],
    maxPositionals: 1,
  },
  diff: {
    load: () => import('./commands/diff.js').then((m) => m.runDiff),
    help: `Usage: pushgate diff ENV [--ref SHA] [--show-secrets] [--json] [--exit-code] [--config F]

What a deploy of ENV's branch head (or commit SHA) would change in its cluster, as kubectl
diff shows it: a unified diff of each object's live copy against the server-side dry-run of
the commit's, then the objects prune would delete. Applies nothing. Needs the cluster, not
Redis. A summary goes to stderr; exit 0 whether or not anything differs (unless
--exit-code), 1 when the commit would fail before its first write (its manifests, the
policy or the dry-run).

  --ref SHA              the commit to compare instead of the branch head: a full sha, or 7+
                         digits of one in the branch's history
  --show-secrets         print the values of Secrets' data and stringData; by default each is
                         replaced by '[redacted: N bytes]', '(changed)' where it changes
  --json                 print one JSON object: {"environment", "sha", "changes": [{"action",
                         "apiVersion", "kind", "namespace", "name", "note", "diff"}],
                         "unchanged", "notCompared", "keptFromPrune"}; each diff as the text.
                         A failure is one line {"error": {"code", "message"}} on stderr
                         (commit_rejected: the commit would be refused; pushgate --help: codes)
  --exit-code            exit 3 when a deploy would change anything (an object to create,
                         change, replace or prune, or one that could not be compared), 0 when
                         not: a drift check or a CI gate; 1 and 2 keep their meanings
`,
    options: ['ref', 'show-secrets', 'json', 'exit-code'],
    maxPositionals: 1,
  },
  sync: {
    load: () => import('./commands/sync.js').then((m) => m.runSync),
    help: `Usage: pushgate sync ENV [--wait [--timeout DURATION]] [--json] [--config F]

Queues a deploy of ENV's branch head now (trigger "manual") and prints the job id. Needs
REDIS_URL: the Redis of the running receiver; without it, that of a pushgate start running
from the current folder.

  --wait                 follow the job and, when it is superseded (a newer push came), the
                         deploy that took its place; exit 0 when that succeeded, 1 when it
                         failed, or when Redis stays unreachable for 60 s or loses the job's record
  --timeout DURATION     how long --wait follows (30s, 5m, 1h; default 5m; 0: no limit); then
                         exit 1 saying the job's state: it goes on (no worker running, or a
                         backlog), pushgate status ID follows it
  --json                 print {"jobs": [...]} as one JSON line, and with --wait the job whose
                         end decided the exit code (or, stopped early, as it was then) as a
                         second (JSON Lines: jq reads both; jq -s for one array). A failure is
                         one line {"error": {"code", "message"}} on stderr, stdout keeping only
                         the job lines: suspended, deploy_failed, timeout, interrupted,
                         environment_not_found, unavailable... (pushgate --help lists them)

A sync of ENV while an earlier one is queued and has not started answers with that job (and
says so on stderr): it deploys the branch head as it is when it starts, so it covers this one
too; however often sync is run, one deploy waits. Once that job has started, a sync queues a
new one: the branch may have moved since the job fetched it.

Ctrl-C (SIGINT) or SIGTERM stops --wait, not the deploy: it says the job continues and exits
130 or 143. Refused (exit 1) while ENV is suspended: pushgate resume ENV deploys its branch head.
`,
    options: ['wait', 'timeout', 'json'],
    maxPositionals: 1,
  },
  suspend: {
    load: () => import('./commands/suspend.js').then((m) => m.runSuspend),
    help: `Usage: pushgate suspend ENV [--reason TEXT] [--json] [--config F]

Holds ENV's deploys, as flux suspend does: a deploy running now finishes; pushes are still
taken and their jobs stay queued (held); re-syncs do not run and syncs are refused; what the
cluster runs, hand-made changes included, is left as it is. pushgate resume ENV lifts it.
Suspending again keeps when it began, and the reason unless --reason gives a new one.
A suspension is kept in Redis: use one that persists (docs/production.md). Needs
REDIS_URL, as sync does.

  --reason TEXT          why, shown by pushgate status, the API and held jobs (one line,
                         200 characters at most)
  --json                 print {"environment", "suspended": {"at", "reason"}}; a failure as one
                         line {"error": {"code", "message"}} on stderr (pushgate --help: codes)
`,
    options: ['reason', 'json'],
    maxPositionals: 1,
  },
  resume: {
    load: () => import('./commands/sync.js').then((m) => m.runResume),
    help: `Usage: pushgate resume ENV [--wait [--timeout DURATION]] [--json] [--config F]

Lifts ENV's suspension and deploys its branch head at once (a job of trigger "manual", always
a new one, which syncs after it join while it waits), then starts the jobs held meanwhile,
which that deploy supersedes; prints the job id as sync does. Needs REDIS_URL.

  --wait                 follow the job (and what supersedes it), as for sync
  --timeout DURATION     how long --wait follows, as for sync (default 5m; 0: no limit)
  --json                 as for sync; the first line also has "resumed": the suspension lifted
                         ({"at", "reason"}), null when there was none, as the API answers; a
                         failure as one line {"error": {"code", "message"}} on stderr
`,
    options: ['wait', 'timeout', 'json'],
    maxPositionals: 1,
  },
  status: {
    load: () => import('./commands/status.js').then((m) => m.runStatus),
    help: `Usage: pushgate status [JOB_ID] [--environment NAME]... [--limit N] [--json] [--config F]

One job (exit 1 if unknown), or every environment: the commit of its last successful deploy
(LAST APPLIED), its last job and the commit that job tried (after a failed deploy the cluster
may run part of that commit), then its latest jobs. Needs REDIS_URL: the Redis of the
running receiver; without it, that of a pushgate start running from the current folder.

  --environment NAME     only this environment; repeat it, or give NAME,NAME,... for several
                         (an unknown name is bad usage, exit 2)
  --limit N              the latest N jobs of each environment, 0 to 100 (default 5); 0 prints
                         the environments alone, one line each, as for a large fleet
  --json                 print the job, or the environments with their jobs, as JSON (with
                         --limit 0, without "jobs", as GET /environments shows them); a failure
                         as one line {"error": {"code", "message"}} on stderr: job_not_found,
                         environment_not_found, unavailable... (pushgate --help lists them)

  pushgate status --limit 0                          what every environment runs
  pushgate status --environment production --limit 20
`,
    options: ['environment', 'limit', 'json'],
    maxPositionals: 1,
  },
  version: {
    load: () => import('./commands/version.js').then((m) => m.runVersion),
    help: `Usage: pushgate version

Prints the version of pushgate (also: pushgate --version).
`,
    options: ['version'],
    maxPositionals: 0,
  },
};

const COMMON_OPTIONS = `Options of every command:
  --config F             configuration file (default: $PUSHGATE_CONFIG, else config/pushgate.yaml)
  -h, --help             this help

Exit codes: 0 success, 1 the thing asked failed, 2 bad usage or invalid configuration;
130 or 143 when SIGINT or SIGTERM stops sync --wait or resume --wait (the job goes on).
`;

export const USAGE = `Usage: pushgate <command> [options]

Commands:
  serve                  HTTP receiver only (webhooks and the status API)
  worker                 deploy worker only; run as many as you like
  start                  receiver and worker in one process (embedded redis-server without REDIS_URL)
  check                  validate the configuration and print the environments
  render ENV [--ref SHA] print what ENV would apply, as YAML; applies nothing (Secret values
                         redacted unless --show-secrets)
  diff ENV [--ref SHA]   what a deploy of ENV would change in its cluster, as a unified diff;
                         applies nothing
  sync ENV [--wait]      deploy the branch head of ENV now; --wait follows the job (for
                         --timeout DURATION, default 5m)
  suspend ENV            hold ENV's deploys (--reason TEXT), as flux suspend
  resume ENV [--wait]    lift the suspension and deploy ENV's branch head now
  status [JOB_ID]        one job, or the latest jobs of every environment (--environment NAME,
                         --limit N jobs each; --limit 0 for the environments alone)
  version                print the version of pushgate

Options:
  --config F             configuration file (default: $PUSHGATE_CONFIG, else config/pushgate.yaml)
  --json                 machine-readable output (status, sync, suspend, resume, diff)
  -h, --help             this help; pushgate <command> --help for one command
  --version              print the version of pushgate

Exit codes: 0 success, 1 the thing asked failed, 2 bad usage or invalid configuration;
130 or 143 when SIGINT or SIGTERM stops sync --wait or resume --wait (the job goes on);
3 from diff --exit-code when a deploy would change something.

With --json, a failure is one JSON line on stderr, its last: {"error": {"code", "message"}};
stdout keeps only the command's own output. The codes, each with its exit code:
  usage, config_invalid, environment_not_found                                 2
  job_not_found, unavailable, suspended, deploy_failed, timeout,               1
  commit_rejected, git_failed, failed (anything else: the message says)
  interrupted                                                                  130, 143
`;

function commandHelp(spec: CommandSpec): string {
  return `${spec.help}\n${COMMON_OPTIONS}`;
}

const OPTIONS = {
  config: { type: 'string' },
  ref: { type: 'string' },
  reason: { type: 'string' },
  wait: { type: 'boolean' },
  timeout: { type: 'string' },
  json: { type: 'boolean' },
  'show-secrets': { type: 'boolean' },
  'exit-code': { type: 'boolean' },
  environment: { type: 'string', multiple: true },
  limit: { type: 'string' },
  help: { type: 'boolean', short: 'h', default: false },
  version: { type: 'boolean' },
} as const;

type OptionName = keyof typeof OPTIONS;

/** Options that take a value and keep one: given twice, which one counts is a guess. */
const SINGLE_VALUE_OPTIONS = new Set<string>(
  (Object.keys(OPTIONS) as OptionName[]).filter((name) => {
    const option: { type: string; multiple?: boolean } = OPTIONS[name];
    return option.type === 'string' && option.multiple !== true;
  }),
);

/**
 * `--limit -1`: parseArgs refuses a value that starts with a dash as ambiguous (a forgotten
 * value before another option). No option looks like a negative number, so one is taken as
 * the value, and the command says what is wrong with it, as it does for `--limit=-1`.
 */
function joinNegativeValues(argv: readonly string[]): string[] {
  const joined: string[] = [];
  for (let index = 0; index < argv.length; index++) {
    const arg = argv[index]!;
    const next = argv[index + 1];
    if (arg === '--') return [...joined, ...argv.slice(index)];
    if (arg.startsWith('--') && SINGLE_VALUE_OPTIONS.has(arg.slice(2)) && next && /^-\d/.test(next)) {
      joined.push(`${arg}=${next}`);
      index++;
    } else joined.push(arg);
  }
  return joined;
}

/**
 * What is wrong with arguments parseArgs refused, said to the command they were meant for:
 * Node's own text for an unknown option (`'-- "--bogus"`, a hint about positionals) helps
 * nobody who mistyped an option. `json`: --json is among them, so the answer is JSON too.
 */
function refusedArguments(
  argv: string[],
  error: unknown,
): { name: string | undefined; spec: CommandSpec | undefined; problem: string; json: boolean } {
  // Read again leniently, only to find the command and the option at fault.
  const { tokens } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: OPTIONS,
    strict: false,
    tokens: true,
  });
  const name = tokens.find((token) => token.kind === 'positional')?.value;
  const unknown = tokens.find((token) => token.kind === 'option' && !Object.hasOwn(OPTIONS, token.name));
  const problem = unknown?.kind === 'option' ? `unknown option ${unknown.rawName}` : errorMessage(error);
  const spec = name !== undefined && Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  const json = tokens.some((token) => token.kind === 'option' && token.name === 'json');
  return { name: spec ? name : undefined, spec, problem, json };
}

export async function main(given: string[], env = process.env): Promise<number> {
  const argv = joinNegativeValues(given);
  let parsed;
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, options: OPTIONS, tokens: true });
  } catch (error) {
    const { name, spec, problem, json } = refusedArguments(argv, error);
    const usage = spec ? commandHelp(spec) : USAGE;
    return reportFailure(new UsageError(problem), { name, json, env, stderr: process.stderr, usage });
  }
  const json = parsed.values.json === true;
  let [name, ...positionals] = parsed.positionals;
  let help = parsed.values.help;
  // `pushgate --version` is `pushgate version`; given to another command it is refused below.
  if (parsed.values.version === true) name ??= 'version';
  // `pushgate help sync` reads as `pushgate sync --help`.
  if (name === 'help') {
    help = true;
    [name, ...positionals] = positionals;
  }
  if (help && name === undefined) {
    process.stdout.write(USAGE);
    return 0;
  }
  const spec = name === undefined || !Object.hasOwn(COMMANDS, name) ? undefined : COMMANDS[name];
  if (!spec || name === undefined) {
    const problem = name === undefined ? 'a command is required' : `unknown command "${name}"`;
    return reportFailure(new UsageError(problem), {
      name: undefined,
      json,
      env,
      stderr: process.stderr,
      usage: USAGE,
    });
  }
  if (help) {
    process.stdout.write(commandHelp(spec));
    return 0;
  }
  // An option a command does not take is refused rather than ignored: `sync ENV --ref SHA`
  // must not quietly deploy the branch head instead of SHA.
  const options = COMMAND_OPTIONS.filter((option) => parsed.values[option] !== undefined);
  const refused = options.find((option) => !spec.options.includes(option));
  const extra = positionals[spec.maxPositionals];
  // parseArgs keeps the last of `--limit 1 --limit 2`: refused, as the API refuses `?limit=1&limit=2`.
  const repeated = parsed.tokens.find(
    (token, index) =>
      token.kind === 'option' &&
      SINGLE_VALUE_OPTIONS.has(token.name) &&
      parsed.tokens.some((other, at) => at < index && other.kind === 'option' && other.name === token.name),
  );
  if (refused !== undefined || extra !== undefined || repeated?.kind === 'option') {
    const problem =
      refused !== undefined
        ? `--${refused} is not an option of ${name}`
        : repeated?.kind === 'option'
          ? `--${repeated.name} is given more than once: give it once`
          : `unexpected argument "${extra}"`;
    return reportFailure(new UsageError(problem), {
      name,
      json,
      env,
      stderr: process.stderr,
      usage: commandHelp(spec),
    });
  }
  const args: CommandArgs = {
    positionals,
    config: parsed.values.config,
    ref: parsed.values.ref,
    wait: parsed.values.wait ?? false,
    timeout: parsed.values.timeout,
    json,
    showSecrets: parsed.values['show-secrets'] ?? false,
    exitCode: parsed.values['exit-code'] ?? false,
    reason: parsed.values.reason,
    environments: parsed.values.environment,
    limit: parsed.values.limit,
    env,
    stdout: process.stdout,
    stderr: process.stderr,
  };
  try {
    return await runCommand(name, await spec.load(), args);
  } catch (error) {
    // The command's module would not load.
    return reportFailure(error, { name, json, env, stderr: process.stderr });
  } finally {
    // Armed on failure too: a service that throws after opening a connection it did not
    // close (a port taken once Redis was dialled) must still exit, not hang after its message.
    if (spec.exitsWhenStopped) setTimeout(() => process.exit(), EXIT_AFTER_STOP_MS).unref();
  }
}

// `pushgate sync --wait | head -1`: once the reader is gone, output stops but the command
// goes on, so its exit code still tells how the job ended.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code !== 'EPIPE' && error.code !== 'ERR_STREAM_DESTROYED') throw error;
});

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`pushgate: ${errorMessage(error)}\n`);
    process.exitCode = 1;
  },
);
