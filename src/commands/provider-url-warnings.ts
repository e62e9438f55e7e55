import type { Config } from '../config/schema.js';
import { isLoopbackAddress } from '../http/endpoints.js';

/**
 * Provider API and repository addresses that will work badly, for the providers the
 * environments use: a token sent in clear text (GIT_TOKEN or a URL's own credentials to a repository too), and the common slips with self-hosted instances (each otherwise
 * shows only as a failed commit status, in a worker's log).
 */
export function providerUrlWarnings(config: Config, gitTokenSet = false): string[] {
  const used = new Set(config.environments.map((environment) => environment.repo.provider));
  const warnings: string[] = [];
  // A local stand-in (a test double, a tunnel) is nobody's mistake.
  const isLocal = (url: URL): boolean => {
    const host = url.hostname.replace(/^\[|\]$/g, '');
    return host === 'localhost' || isLoopbackAddress(host);
  };
  const cleartext = (url: URL, field: string, token: string): void => {
    if (url.protocol === 'http:' && !isLocal(url))
      warnings.push(`${field} is http://: ${token} would cross the network unencrypted; use https://`);
  };
  config.environments.forEach((environment, index) => {
    const url = environment.repo.url;
    // A URL, scp-like (git@host:path: a colon before any slash) or an absolute path.
    if (url.includes('://') || /^[^/]*:/.test(url) || url.startsWith('/')) return;
    // A scheme dropped from https://token@host/… leaves the token in front: not to be printed.
    const shown = url.replace(/^[^/]*@/, '…@');
    warnings.push(
      `environments[${index}].repo.url "${shown}" is neither a URL (https://…, ssh://…, file://…) nor ` +
        "scp-like (git@host:path): git reads it as a folder relative to the worker's working directory",
    );
  });
  config.environments.forEach((environment, index) => {
    let url: URL;
    try {
      url = new URL(environment.repo.url);
    } catch {
      return; // an scp-like ssh address (git@host:path) carries no token
    }
    // Credentials in the URL go as basic auth, GIT_TOKEN or not (repo-url-credential-warnings.ts).
    const inUrl = url.username !== '' || url.password !== '';
    if (inUrl || gitTokenSet)
      cleartext(url, `environments[${index}].repo.url`, inUrl ? 'the credentials in it' : 'GIT_TOKEN');
  });
  if (used.has('github')) {
    const url = new URL(config.providers.github.apiUrl);
    cleartext(url, 'providers.github.apiUrl', 'GITHUB_TOKEN');
    const root = url.pathname.replace(/\/+$/, '') === '';
    if (root && !isLocal(url) && url.hostname !== 'api.github.com' && !url.hostname.startsWith('api.'))
      warnings.push(
        `providers.github.apiUrl ${url.origin} has no path: GitHub Enterprise Server serves its API at ${url.origin}/api/v3`,
      );
  }
  if (used.has('gitlab')) {
    const url = new URL(config.providers.gitlab.url);
    cleartext(url, 'providers.gitlab.url', 'GITLAB_TOKEN');
    if (/\/api\/v4\/?$/.test(url.pathname))
      warnings.push(
        // A GitLab served under a path keeps it (https://code.example.com/gitlab).
        `providers.gitlab.url ends in /api/v4: give the instance's address (${url.origin}${url.pathname.replace(/\/api\/v4\/?$/, '')}); /api/v4 is added to it`,
      );
  }
  return warnings;
}
