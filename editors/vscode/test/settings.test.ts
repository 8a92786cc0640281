import assert from 'node:assert/strict';
import { test } from 'node:test';
import pkg from '../package.json';
import { CLIENT_KEYS, explicitSettings, languagesOf, serverDefaults, settingsUpdate } from '../src/settings';

test('server settings and their defaults come from package.json, without the client-only ones', () => {
  const defaults = serverDefaults(pkg);
  assert.equal(defaults.maxTokensInline, 48);
  assert.equal(defaults.enable, true);
  assert.deepEqual(defaults.languages, {});
  for (const key of CLIENT_KEYS) {
    assert.ok(!(key in defaults));
  }
});

test('only values the user set are sent, the most specific scope first', () => {
  const inspected: Record<string, object> = {
    threads: { defaultValue: 0, globalValue: 4 },
    enable: { defaultValue: true, globalValue: true, workspaceValue: false },
    maxTokensInline: { defaultValue: 48 },
  };
  const values = explicitSettings(['threads', 'enable', 'maxTokensInline'], (key) => inspected[key]);
  assert.deepEqual(values, { threads: 4, enable: false });
});

test('a removed setting goes back to its default on the server', () => {
  const update = settingsUpdate({ threads: 4, enable: false }, { enable: false }, { threads: 0, enable: true });
  assert.deepEqual(update, { enable: false, threads: 0 });
});

test('languages come from the activation events', () => {
  const languages = languagesOf(pkg);
  assert.ok(languages.includes('python') && languages.includes('typescriptreact'));
});
