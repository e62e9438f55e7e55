import type { Env } from '../config/load.js';

export interface CommandArgs {
  /** Positional arguments after the command name. */
  positionals: string[];
  config: string | undefined;
  ref: string | undefined;
  wait: boolean;
  /** sync, resume: --timeout as given (how long --wait follows), checked by the command. */
  timeout?: string;
  json: boolean;
  /** render: print Secret values instead of placeholders. */
  showSecrets?: boolean;
  /** diff: exit DIFF_FOUND_EXIT_CODE when a deploy would change something. */
  exitCode?: boolean;
  /** suspend: why (one line). */
  reason?: string;
  /** status: each --environment as given (a value may name several, comma-separated). */
  environments?: string[];
  /** status: --limit as given, checked by the command. */
  limit?: string;
  env: Env;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

/**
 * Resolves to the process exit code: 0 success, 1 failure of the thing asked, 2 bad usage or
 * config. A failure is thrown (a CliFailure where the command decides its code), for
 * runCommand to say on stderr, as text or, with --json, as JSON.
 */
export type Command = (args: CommandArgs) => Promise<number>;
