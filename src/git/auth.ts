import type { Provider } from '../config/schema.js';

/**
 * Environment variables that make git send `Authorization: Basic …` for HTTPS requests to
 * the repository's host, and only there. The token travels in the child's environment
 * (GIT_CONFIG_COUNT/KEY/VALUE), never in argv, so it is not in the process list, and the
 * header is scoped to the configured origin so a redirect elsewhere does not carry it.
 */
export function gitAuthEnv(url: string, provider: Provider, token: string | undefined): NodeJS.ProcessEnv {
  if (!token) return {};
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return {};
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') return {};
  // GitHub accepts any user name with a token as password; GitLab wants oauth2 for OAuth
  // and accepts it for personal access tokens too.
  const user = provider === 'gitlab' ? 'oauth2' : 'x-access-token';
  const basic = Buffer.from(`${user}:${token}`).toString('base64');
  return {
    GIT_CONFIG_COUNT: '1',
    GIT_CONFIG_KEY_0: `http.${parsed.origin}/.extraHeader`,
    GIT_CONFIG_VALUE_0: `Authorization: Basic ${basic}`,
  };
}
