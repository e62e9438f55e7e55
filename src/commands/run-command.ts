import type { Env } from '../config/load.js';
import { cliErrorOf, jsonErrorLine, withoutSecrets } from './cli-failure.js';
import type { Command, CommandArgs } from './command.js';

/**
 * Says why a command failed and returns its exit code: with --json as one JSON line
 * (cli-failure.ts), else as `pushgate <command>: <message>`, then `usage` when given (bad
 * usage). Either way on stderr, last, and without any secret pushgate was given.
 */
export function reportFailure(
  error: unknown,
  context: {
    name: string | undefined;
    json: boolean;
    env: Env;
    stderr: NodeJS.WritableStream;
    usage?: string;
  },
): number {
  const failure = cliErrorOf(error);
  const message = withoutSecrets(failure.message, context.env);
  if (context.json) context.stderr.write(jsonErrorLine({ code: failure.code, message }));
  else if (!failure.shown)
    context.stderr.write(
      `pushgate${context.name === undefined ? '' : ` ${context.name}`}: ${message}\n` +
        (context.usage === undefined ? '' : `\n${context.usage}`),
    );
  return failure.exitCode;
}

/**
 * Runs `command` as the CLI does: its exit code, or, when it throws, the failure said on its
 * stderr (reportFailure) and the exit code that failure calls for.
 */
export async function runCommand(name: string, command: Command, args: CommandArgs): Promise<number> {
  try {
    return await command(args);
  } catch (error) {
    return reportFailure(error, { name, json: args.json, env: args.env, stderr: args.stderr });
  }
}
