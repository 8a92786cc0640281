// The server's settings as the user set them. Only explicit values are sent,
// so that the server's own sources (INKLING_* variables, flags) still count
// for everything the user left alone in VS Code.

/** Settings of the extension itself; every other `inkling.*` property is the server's. */
export const CLIENT_KEYS = ['serverPath', 'interpreter', 'trace.server'];
export const SECTION = 'inkling';

export interface Inspected {
  defaultValue?: unknown;
  globalValue?: unknown;
  workspaceValue?: unknown;
  workspaceFolderValue?: unknown;
}

interface PackageJson {
  contributes: { configuration: { properties: Record<string, { default?: unknown }> } };
  activationEvents?: string[];
}

/** The server's setting keys and defaults, read from the extension's one schema (package.json). */
export function serverDefaults(pkg: PackageJson): Record<string, unknown> {
  const defaults: Record<string, unknown> = {};
  for (const [property, schema] of Object.entries(pkg.contributes.configuration.properties)) {
    const key = property.slice(SECTION.length + 1);
    if (!CLIENT_KEYS.includes(key)) {
      defaults[key] = schema.default;
    }
  }
  return defaults;
}

/** The languages the extension serves, from its `onLanguage:` activation events. */
export function languagesOf(pkg: PackageJson): string[] {
  return (pkg.activationEvents ?? [])
    .filter((event) => event.startsWith('onLanguage:'))
    .map((event) => event.slice('onLanguage:'.length));
}

export function explicitSettings(
  keys: string[],
  inspect: (key: string) => Inspected | undefined,
): Record<string, unknown> {
  const values: Record<string, unknown> = {};
  for (const key of keys) {
    const found = inspect(key);
    const value = found?.workspaceFolderValue ?? found?.workspaceValue ?? found?.globalValue;
    if (value !== undefined) {
      values[key] = value;
    }
  }
  return values;
}

/** What to send after a change: the explicit values, and the default for each value the user removed. */
export function settingsUpdate(
  previous: Record<string, unknown>,
  current: Record<string, unknown>,
  defaults: Record<string, unknown>,
): Record<string, unknown> {
  const update = { ...current };
  for (const key of Object.keys(previous)) {
    if (!(key in current)) {
      update[key] = defaults[key];
    }
  }
  return update;
}
