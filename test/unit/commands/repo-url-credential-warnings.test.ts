import { describe, expect, it } from 'vitest';
import { configSchema } from '../../../src/config/schema.js';
import { repoUrlCredentialWarnings } from '../../../src/commands/repo-url-credential-warnings.js';

function config(...urls: string[]) {
  return configSchema.parse({
    clusters: [{ name: 'local' }],
    environments: urls.map((url, index) => ({
      name: `env${index}`,
      repo: { provider: 'github', name: `acme/env${index}`, url },
      branch: 'main',
      cluster: 'local',
    })),
  });
}

const TOKEN = 'ghp_Xy7s3cr3tT0k3nValue';

describe('repoUrlCredentialWarnings', () => {
  it('warns about a user name and password in an https URL, naming the field and the URL without them', () => {
    const warnings = repoUrlCredentialWarnings(
      config(`https://x-access-token:${TOKEN}@github.com/acme/env.git`),
    );

    expect(warnings).toEqual([
      "environments[0].repo.url has a user name and password in it: git is given the URL on its command line, where anyone on the worker's machine can read it (ps); " +
        'set https://github.com/acme/env.git and the token in GIT_TOKEN or GIT_TOKEN_FILE, which git gets in its environment and sends only to that host when it asks',
    ]);
  });

  it('warns about a token as the user name over http(s), and about a password over ssh', () => {
    const warnings = repoUrlCredentialWarnings(
      config(`https://${TOKEN}@github.com/acme/env.git`, 'ssh://git:hunter2@git.example.com/acme/env.git'),
    );

    expect(warnings).toHaveLength(2);
    expect(warnings[0]).toMatch(
      /^environments\[0\]\.repo\.url has what looks like a token as its user name in it: .* set https:\/\/github\.com\/acme\/env\.git and /,
    );
    expect(warnings[1]).toMatch(
      /^environments\[1\]\.repo\.url has a user name and password in it: .* set ssh:\/\/git\.example\.com\/acme\/env\.git and /,
    );
  });

  it('says nothing of URLs without credentials, nor of a login (ssh, or a short user name over https)', () => {
    expect(
      repoUrlCredentialWarnings(
        config(
          'https://github.com/acme/one.git',
          'ssh://git@github.com/acme/two.git',
          'git@github.com:acme/three.git',
          'file:///srv/git/four.git',
          // Bitbucket's clone URLs carry the user's login.
          'https://alice@bitbucket.org/acme/five.git',
        ),
      ),
    ).toEqual([]);
  });

  it('never prints the user name or the password, percent-encoded or not', () => {
    const password = 'p@ss/w:rd';
    const warnings = repoUrlCredentialWarnings(
      config(`https://deploy-bot:${encodeURIComponent(password)}@gitlab.example.com/acme/env.git`),
    ).join('\n');

    expect(warnings).toContain('set https://gitlab.example.com/acme/env.git and');
    for (const secret of ['deploy-bot', password, encodeURIComponent(password)])
      expect(warnings).not.toContain(secret);
  });
});
