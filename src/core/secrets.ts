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

/** Registry passwords and tokens passed by environment are masked wherever they might be echoed. */
export function secretsFromEnv(env: NodeJS.ProcessEnv): string[] {
  return Object.entries(env)
    .filter(([k, v]) => v && /^MESHDEMO_.*(PASSWORD|TOKEN|SECRET)$/.test(k))
    .map(([, v]) => v as string);
}

/** Masks every secret (of at least 4 characters; the longest first, so none is left half-shown) in a text. */
export function makeRedactor(secrets: Set<string>): (text: string) => string {
  return (text) => {
    const ordered = [...secrets].filter((s) => s.length >= 4).sort((a, b) => b.length - a.length);
    let out = text;
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
