import { fileURLToPath } from 'node:url';

/** The built CLI the integration tests run as a user would (npm test builds it first). */
export const CLI = fileURLToPath(new URL('../../dist/src/cli.js', import.meta.url));

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
