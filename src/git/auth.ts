import type { Provider } from '../config/schema.js';

/** The child's variables the credential helper reads; git passes its environment on to it. */
const USER_VARIABLE = 'PUSHGATE_GIT_USERNAME';
const TOKEN_VARIABLE = 'PUSHGATE_GIT_PASSWORD';

/**
 * Answers git's `get` with the user and token from the environment; says nothing to `store`
 * and `erase` (exit 0 all the same: a helper's failure would stop git). It reads git's request
 * first, so git never writes to a helper that has gone.
 */
const CREDENTIAL_HELPER = `!f() { cat >/dev/null; if [ "$1" = get ]; then printf 'username=%s\\npassword=%s\\n' "$${USER_VARIABLE}" "$${TOKEN_VARIABLE}"; fi; }; f`;

/**
 * Environment variables that give git the token for HTTPS requests to the repository's
 * host, and only there. The token travels in the child's environment, never in argv, so it
 * is not in the process list. It is a credential helper scoped to the configured origin,
 * not a pre-set header: git asks for credentials per host when a server answers 401, so
 * after a redirect to another host (which git follows on its first request) the token is not
 * sent there, where an `http.<origin>.extraHeader` would still go out.
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
  return {
    GIT_CONFIG_COUNT: '1',
    GIT_CONFIG_KEY_0: `credential.${parsed.origin}.helper`,
    GIT_CONFIG_VALUE_0: CREDENTIAL_HELPER,
    [USER_VARIABLE]: user,
    [TOKEN_VARIABLE]: token,
  };
}
