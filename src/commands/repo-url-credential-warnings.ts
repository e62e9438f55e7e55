import type { Config } from '../config/schema.js';
import { urlWithoutCredentials } from '../git/redact.js';

/**
 * Repository URLs with credentials in them (`https://user:token@host/…`). They work, and
 * pushgate never prints them, but git is given the URL on its command line, which anyone on
 * the worker's machine can read, and a rotated token is a new URL (a new mirror, cloned
 * again). GIT_TOKEN is the documented way: git gets it in its environment, and only when the
 * repository's own host asks. The warnings name the field, never the user name or password.
 */
/** A user name of 16 or more token characters: GitHub's (ghp_…, ghs_…) and GitLab's (glpat-…) are longer. */
const TOKEN_LIKE = /^[A-Za-z0-9_-]{16,}$/;

export function repoUrlCredentialWarnings(config: Config): string[] {
  const warnings: string[] = [];
  config.environments.forEach((environment, index) => {
    let url: URL;
    try {
      url = new URL(environment.repo.url);
    } catch {
      return; // scp-like (git@host:path): its user is an SSH login
    }
    const http = url.protocol === 'https:' || url.protocol === 'http:';
    // Over ssh a user name (ssh://git@host/…) is the login, no secret; a password is. Over
    // http(s) a short name is a login too (Bitbucket's clone URLs carry one); one long enough
    // to be a token is taken for one (GitHub takes a token there alone).
    const what =
      url.password !== ''
        ? 'a user name and password'
        : http && TOKEN_LIKE.test(decodeURIComponent(url.username))
          ? 'what looks like a token as its user name'
          : undefined;
    if (!what) return;
    warnings.push(
      `environments[${index}].repo.url has ${what} in it: git is given the URL on its command line, ` +
        `where anyone on the worker's machine can read it (ps); set ${urlWithoutCredentials(environment.repo.url)} ` +
        'and the token in GIT_TOKEN or GIT_TOKEN_FILE, which git gets in its environment and sends only to that host when it asks',
    );
  });
  return warnings;
}
