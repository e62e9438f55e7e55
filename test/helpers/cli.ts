import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The built CLI the integration tests run as a user would (npm test builds it first). */
export const CLI = fileURLToPath(new URL('../../dist/src/cli.js', import.meta.url));

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs the built CLI to its end. `timeoutMs`: a command that took its arguments and went on
 * serving is killed then, so it never outlives the test.
 */
export function runBuiltCli(
  args: string[],
  options: { env: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number },
): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      cwd: options.cwd,
      env: options.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const timer =
      options.timeoutMs === undefined
        ? undefined
        : setTimeout(() => child.kill('SIGKILL'), options.timeoutMs);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/**
 * A config of one GitHub environment, `staging`, whose repository is never fetched, with
 * `url` (default `${REDIS_URL}`), the queue prefix when given, and `environmentLines`
 * appended to the environment (each indented by four spaces).
 */
export function cliConfigText(
  options: { prefix?: string; url?: string; environmentLines?: string[] } = {},
): string {
  const { prefix, url = '${REDIS_URL}', environmentLines = [] } = options;
  return `
server:
  host: 127.0.0.1
  port: 0
redis:
  url: ${url}
${prefix === undefined ? '' : `  prefix: ${prefix}\n`}clusters:
  - name: local
environments:
  - name: staging
    repo:
      provider: github
      name: acme/env-config
      url: https://git.example.invalid/acme/env-config.git
    branch: env/staging
    cluster: local
${environmentLines.map((line) => `    ${line}\n`).join('')}`;
}
