import { PushgateError } from '../lib/errors.js';
import { killProcessGroup, spawnProcessGroup } from '../lib/process-group.js';
import { redactSecret, stripUrlCredentials } from './redact.js';

export interface RunGitOptions {
  /** Working directory; git's own `--git-dir` flags go in args. */
  cwd?: string;
  /** Extra environment (credentials travel here, never in argv). */
  env?: NodeJS.ProcessEnv;
  timeoutMs: number;
  /** Secret to scrub from any stderr that ends up in an error message. */
  secret?: string;
  /** What the command was for, for error messages: "fetch env/production". */
  what: string;
  /** Where PATH, HOME and the network settings below are taken from; default process.env. */
  processEnv?: Record<string, string | undefined>;
  /** Kills git's process group when aborted; the command then fails with the signal's reason. */
  abort?: AbortSignal;
  /** What git reads on its stdin (`cat-file --batch`); none without. */
  input?: string | Buffer;
}

/**
 * A git command that ran and failed: with what it printed on stderr, credentials removed, for
 * a caller that tells its failures apart by more than the few lines the message keeps.
 */
export class GitCommandError extends PushgateError {
  constructor(
    message: string,
    readonly stderr: string,
    permanent: boolean,
  ) {
    super('git_failed', message, { permanent });
    this.name = 'GitCommandError';
  }
}

export interface GitResult {
  stdout: string;
  stderr: string;
}

/** Phrases git prints when the thing asked for does not exist or is refused: retrying will not help. */
const PERMANENT_STDERR = [
  /couldn't find remote ref/i,
  /not a valid object name/i,
  /unknown revision/i,
  /does not appear to be a git repository/i,
  /repository .* not found/i,
  /authentication failed/i,
  /invalid username or password/i,
  // Refused credentials, or none where some are needed: the same fetch gets the same answer.
  // (429 and 5xx from the server are transient and stay out.)
  /the requested url returned error: 40[13]\b/i,
  /could not read (username|password) for/i,
];

/**
 * How to reach the server, as an operator sets it for every tool on the host: proxies, an
 * internal CA, an SSH agent or key. None of them changes what is fetched. (Upper-case
 * HTTP_PROXY is left out, as curl itself ignores it: a CGI request header could set it.)
 */
const NETWORK_ENV = [
  'http_proxy',
  'https_proxy',
  'HTTPS_PROXY',
  'all_proxy',
  'ALL_PROXY',
  'no_proxy',
  'NO_PROXY',
  'GIT_SSL_CAINFO',
  'GIT_SSL_CAPATH',
  'SSL_CERT_FILE',
  'SSL_CERT_DIR',
  'GIT_SSH_COMMAND',
  'SSH_AUTH_SOCK',
] as const;

/**
 * git runs its automatic gc (after a fetch, say) as a daemon of its own by default: outside
 * the process group this process kills on a timeout, an abort or its own death, with no
 * deadline, and racing the next fetch into the same mirror. In the foreground it is all
 * three; MirrorCache turns it off on fetches and runs it itself (collectGarbage).
 */
const NO_DETACHED_MAINTENANCE = ['-c', 'gc.autoDetach=false', '-c', 'maintenance.autoDetach=false'];

/**
 * Runs git with a scrubbed environment: no terminal prompt (a missing credential fails at
 * once instead of hanging), no user/system config that could rewrite URLs, and a deadline
 * after which the whole process group (git and its remote helpers) is killed, as it is when
 * this process dies.
 */
export async function runGit(args: readonly string[], options: RunGitOptions): Promise<GitResult> {
  const stdout: Buffer[] = [];
  const { stderr } = await streamGit(args, options, (chunk) => {
    stdout.push(chunk);
    return 'more';
  });
  return { stdout: Buffer.concat(stdout).toString('utf8'), stderr };
}

/** What a reader of git's output answers to each chunk: go on, or stop git there. */
export type StreamVerdict = 'more' | 'enough';

export interface StreamResult {
  stderr: string;
  /** True when the reader stopped git before it finished (its exit status then says nothing). */
  stopped: boolean;
}

/**
 * runGit for output too large to hold: each chunk of stdout goes to `read` as it arrives, and
 * when `read` answers 'enough', git's process group is killed at once, so the cost is what
 * was read rather than what git would have printed.
 */
export function streamGit(
  args: readonly string[],
  options: RunGitOptions,
  read: (chunk: Buffer) => StreamVerdict,
): Promise<StreamResult> {
  return new Promise((resolve, reject) => {
    const inherited = options.processEnv ?? process.env;
    const child = spawnProcessGroup('git', [...NO_DETACHED_MAINTENANCE, ...args], {
      cwd: options.cwd,
      env: {
        PATH: inherited.PATH,
        HOME: inherited.HOME,
        ...Object.fromEntries(NETWORK_ENV.map((name) => [name, inherited[name]])),
        LANG: 'C',
        LC_ALL: 'C',
        GIT_TERMINAL_PROMPT: '0',
        GIT_CONFIG_NOSYSTEM: '1',
        GIT_CONFIG_GLOBAL: '/dev/null',
        GIT_ASKPASS: '',
        SSH_ASKPASS: '',
        ...options.env,
      },
      input: options.input,
    });
    let stderr = '';
    let stopped = false;
    child.stdout.on('data', (chunk: Buffer) => {
      if (stopped || read(chunk) === 'more') return;
      stopped = true;
      killProcessGroup(child.pid);
      child.stdout.destroy();
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      // Keep only the tail: progress lines of a large fetch are of no use in an error.
      stderr = (stderr + chunk).slice(-8_192);
    });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      killProcessGroup(child.pid);
    }, options.timeoutMs);
    const { abort } = options;
    const onAbort = (): void => killProcessGroup(child.pid);
    abort?.addEventListener('abort', onAbort, { once: true });
    // Aborted before it started (a gc queued behind a shutdown's): no 'abort' event comes.
    if (abort?.aborted) onAbort();
    child.on('error', (error) => {
      clearTimeout(timer);
      abort?.removeEventListener('abort', onAbort);
      reject(
        new PushgateError('git_failed', `git ${options.what}: cannot run git (${error.message})`, {
          cause: error,
        }),
      );
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      abort?.removeEventListener('abort', onAbort);
      const cleanStderr = stripUrlCredentials(redactSecret(stderr, options.secret)).trim();
      if (abort?.aborted && abort.reason instanceof Error) {
        reject(abort.reason);
        return;
      }
      if (stopped) {
        resolve({ stderr: cleanStderr, stopped });
        return;
      }
      if (timedOut) {
        reject(
          new PushgateError('git_failed', `git ${options.what}: timed out after ${options.timeoutMs} ms`, {
            permanent: false,
          }),
        );
        return;
      }
      if (code !== 0) {
        const permanent = PERMANENT_STDERR.some((pattern) => pattern.test(cleanStderr));
        const detail = errorLines(cleanStderr) || (signal ? `killed by ${signal}` : `exit code ${code}`);
        reject(new GitCommandError(`git ${options.what}: ${detail}`, cleanStderr, permanent));
        return;
      }
      resolve({ stderr: cleanStderr, stopped });
    });
  });
}

/**
 * What git said went wrong: its `error:`/`fatal:` lines when it printed any (the advice that
 * follows them, "remove the file manually", says less), else its last lines.
 */
function errorLines(text: string): string {
  const lines = text.split('\n').filter((line) => line.trim() !== '');
  const errors = lines.filter((line) => /^(error|fatal): /.test(line));
  return (errors.length > 0 ? errors : lines).slice(-3).join('; ');
}
