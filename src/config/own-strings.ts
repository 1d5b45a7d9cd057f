/**
 * The settings with strings of their own. The loaded ones are slices of the file's text (V8 keeps a
 * substring of 13 characters or more as a view of the string it was cut from), so a daemon kept the whole
 * text for its life through its agents. Each string is copied, and strings of equal text (every agent's
 * image, `512m`, ...) made one. Measured on a file of 10,000 agents of 15 lines (3.5 MB): the settings'
 * live heap 18.3 MB with the text, 13.4 MB once copied. A reload's agents cross from its thread as copies
 * already. Changes `settings` in place.
 */
export function ownStrings<T extends object>(settings: T): T {
  const seen = new Map<string, string>();
  const own = (value: unknown): unknown => {
    if (typeof value === 'string') {
      const found = seen.get(value);
      if (found !== undefined) return found;
      // A string that is a JSON text is made anew, exactly (a lone surrogate as its escape and back).
      const copy = JSON.parse(JSON.stringify(value)) as string;
      seen.set(copy, copy);
      return copy;
    }
    if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) value[i] = own(value[i]);
    } else if (value !== null && typeof value === 'object') {
      const record = value as Record<string, unknown>;
      for (const key of Object.keys(record)) record[key] = own(record[key]);
    }
    return value;
  };
  return own(settings) as T;
}
