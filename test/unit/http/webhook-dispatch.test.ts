import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import type { AppDeps } from '../../../src/http/deps.js';
import { createWebhookReceiver } from '../../../src/http/routes/webhooks.js';

// Only the secrets and the body limit are read when the receiver is built; nothing here
// touches Redis.
const receiver = createWebhookReceiver({
  config: { server: { bodyLimit: 1024 } },
  secrets: {
    githubWebhookSecrets: ['github-secret'],
    gitlabWebhookTokens: ['gitlab-token'],
    gitlabSigningTokens: [],
    apiTokens: [],
  },
} as unknown as AppDeps);

const request = (method: string, url: string): IncomingMessage => ({ method, url }) as IncomingMessage;

describe('webhook dispatch in front of express', () => {
  it('takes webhook posts in the spellings express routes to them', () => {
    for (const url of ['/webhooks/github', '/webhooks/github/', '/Webhooks/GitHub', '/webhooks/github?x=1'])
      expect(receiver.providerFor(request('POST', url))?.name, url).toBe('github');
    expect(receiver.providerFor(request('POST', '/webhooks/gitlab'))?.name).toBe('gitlab');
  });

  it('leaves other methods and paths to express', () => {
    for (const [method, url] of [
      ['GET', '/webhooks/github'],
      ['POST', '/webhooks/bitbucket'],
      ['POST', '/webhooks/github//'],
      ['POST', '/webhooks/githubx'],
      ['POST', '/jobs'],
    ] as const)
      expect(receiver.providerFor(request(method, url)), `${method} ${url}`).toBeUndefined();
  });
});
