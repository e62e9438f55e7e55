import { describe, expect, it } from 'vitest';
import { stripUrlCredentials, urlWithoutCredentials } from '../../../src/git/redact.js';

describe('repository URLs in messages', () => {
  it('drops the user name and password (a token) of a URL, and leaves other URLs as written', () => {
    expect(urlWithoutCredentials('https://x-access-token:ghp_abc@github.com/acme/env.git')).toBe(
      'https://github.com/acme/env.git',
    );
    expect(urlWithoutCredentials('https://ghp_abc@github.com/acme/env.git')).toBe(
      'https://github.com/acme/env.git',
    );
    for (const url of [
      'https://github.com/acme/env.git',
      'git@github.com:acme/env.git',
      'file:///srv/env.git',
    ])
      expect(urlWithoutCredentials(url)).toBe(url);
  });

  it('strips the userinfo of every URL git quotes in its output', () => {
    expect(
      stripUrlCredentials(
        "fatal: unable to access 'https://user:s3cret@git.example/a.git/': error\nssh://git@host/x",
      ),
    ).toBe("fatal: unable to access 'https://git.example/a.git/': error\nssh://host/x");
  });
});
