/**
 * The secrets this process knows (tokens, passwords, keys), to be masked in everything it prints: those passed
 * by environment at start, and whatever the kubeconfig and the options add. One set per process, so that the
 * last-resort error handler in src/cli.ts masks with it too.
 */
const known = new Set<string>();

export function processSecrets(env: NodeJS.ProcessEnv = process.env): Set<string> {
  for (const s of secretsFromEnv(env)) known.add(s);
  return known;
}

/** Adds the credentials a URL carries in its userinfo (a mirror given as http://user:password@host) to the set. */
export function rememberUrlCredentials(url: string, secrets: Set<string> = known): void {
  for (const s of urlCredentials(url)) secrets.add(s);
}

/**
 * Registry passwords and tokens passed by environment are masked wherever they might be echoed, and so are the
 * credentials of a proxy URL (HTTPS_PROXY=http://user:password@proxy:3128).
 */
export function secretsFromEnv(env: NodeJS.ProcessEnv): string[] {
  const named = Object.entries(env)
    .filter(([k, v]) => v && /^MESHDEMO_.*(PASSWORD|TOKEN|SECRET)$/.test(k))
    .map(([, v]) => v as string);
  const proxies = Object.entries(env)
    .filter(([k, v]) => v && /^(https?|all)_proxy$/i.test(k))
    .flatMap(([, v]) => urlCredentials(v as string));
  return [...named, ...proxies];
}

/**
 * The password of a URL as written and decoded — or, with no password, the user name, which then is the
 * credential (a token given as https://TOKEN@host).
 */
export function urlCredentials(text: string): string[] {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return [];
  }
  const raw = url.password || url.username;
  if (!raw) return [];
  let decoded = raw;
  try {
    decoded = decodeURIComponent(raw);
  } catch {
    /* not valid percent-encoding: the raw form is what can show up */
  }
  return [...new Set([raw, decoded])];
}

/**
 * The userinfo (`user:password@`) of every URL in a text, as `***@`: the one place where a URL's credentials are
 * removed from what is shown — mirrors, proxies, API servers, redirect targets, in messages, errors and --json.
 * The authority ends at the first "/", "?", "#" or white space; its last "@" ends the userinfo (a password with
 * an unescaped "@" is masked whole).
 */
const URL_USERINFO = /\b([a-z][a-z0-9+.-]*:\/\/)[^\s/?#]*@/gi;

export function maskUrlUserinfo(text: string): string {
  return text.includes('@') ? text.replace(URL_USERINFO, '$1***@') : text;
}

/**
 * One URL given on the command line, for a message about it even when it does not parse: everything between
 * "://" and its last "@" is masked (a password holding "/" ends no authority for the pattern above).
 */
export function displayUrlArgument(v: string): string {
  return v.replace(/^([a-z][a-z0-9+.-]*:\/\/).*@/is, '$1***@');
}

/**
 * Masks every secret (of at least 4 characters; the longest first, so none is left half-shown) in a text, and the
 * userinfo of every URL in it.
 */
export function makeRedactor(secrets: Set<string>): (text: string) => string {
  return (text) => {
    const ordered = [...secrets].filter((s) => s.length >= 4).sort((a, b) => b.length - a.length);
    let out = maskUrlUserinfo(text);
    for (const secret of ordered) if (out.includes(secret)) out = out.split(secret).join('***');
    return out;
  };
}

/**
 * A copy of a value with every string in it (keys too) masked: done before JSON.stringify, so that a secret with
 * characters JSON escapes (`"`, `\`, control characters) is still found.
 */
export function maskDeep<T>(value: T, redact: (text: string) => string): T {
  if (typeof value === 'string') return redact(value) as T;
  if (Array.isArray(value)) return value.map((v) => maskDeep(v, redact)) as T;
  if (value && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [redact(k), maskDeep(v, redact)])) as T;
  }
  return value;
}

/** `--istio-set` keys that name a credential: their values are secrets (masked in output, never recorded). */
const SECRET_KEY = /password|passwd|token|secret|key/i;

export function secretSetValues(sets: string[]): string[] {
  return sets.flatMap((s) => {
    const i = s.indexOf('=');
    return i > 0 && SECRET_KEY.test(s.slice(0, i)) && s.slice(i + 1) ? [s.slice(i + 1)] : [];
  });
}

/** `key=value` pairs as the record may keep them: a value whose key names a credential becomes `***`. */
export function maskSecretSets(sets: string[]): string[] {
  return sets.map((s) => {
    const i = s.indexOf('=');
    return i > 0 && SECRET_KEY.test(s.slice(0, i)) && s.slice(i + 1) ? `${s.slice(0, i)}=***` : s;
  });
}
