// The extension's glue, against the mocked `vscode` API and LanguageClient.
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, beforeEach, test } from 'node:test';
import pkg from '../package.json';
import { activate } from '../src/extension';
import { serverDefaults } from '../src/settings';
import { LanguageClient } from './mock/languageclient';
import { mock } from './mock/vscode';

const scratch = mkdtempSync(join(tmpdir(), 'inkling-vscode-'));
const python = join(scratch, 'python');
after(() => rmSync(scratch, { recursive: true, force: true }));
writeFileSync(python, '#!/bin/sh\n');
chmodSync(python, 0o755);

const contexts: { subscriptions: { dispose(): unknown }[] }[] = [];

function context() {
  const created = { subscriptions: [] as { dispose(): unknown }[], extension: { packageJSON: pkg } };
  contexts.push(created);
  return created as never;
}

afterEach(() => {
  // What VS Code does on deactivation: dispose everything the extension registered.
  for (const done of contexts.splice(0)) {
    done.subscriptions.forEach((subscription) => subscription.dispose());
  }
});

const schemaDefaults = Object.fromEntries(
  Object.entries(pkg.contributes.configuration.properties).map(([key, schema]) => [key, (schema as { default: unknown }).default]),
);

beforeEach(() => {
  mock.reset(schemaDefaults);
  LanguageClient.instances = [];
  LanguageClient.statusReply = { state: 'loading', model: '', template: null, error: null, lastLatencyMs: null };
});

test('starts the configured interpreter with inline completion and only the explicit settings', async () => {
  mock.settings.global.set('inkling.interpreter', python);
  mock.settings.global.set('inkling.maxTokensInline', 24);
  await activate(context());
  const [client] = LanguageClient.instances;
  assert.deepEqual(client.serverOptions, { command: python, args: ['-m', 'lsp_server', 'serve'] });
  assert.equal(client.proposedFeatures, true); // inline completion (LSP 3.18) needs the proposed features
  assert.deepEqual(client.clientOptions.initializationOptions, { maxTokensInline: 24 });
  const languages = client.clientOptions.documentSelector.map((selector) => selector.language);
  assert.ok(languages.includes('python') && languages.includes('rust'));
  // The menu item is for other editors; VS Code shows ghost text only.
  assert.equal(client.clientOptions.middleware.provideCompletionItem?.(), undefined);
  assert.equal(mock.statusItems[0].text, '$(sync~spin) Inkling');
});

test('the status bar follows inkling/status', async () => {
  mock.settings.global.set('inkling.interpreter', python);
  await activate(context());
  const [client] = LanguageClient.instances;
  client.notify('inkling/status', { state: 'ready', model: '/m.gguf', template: 'qwen', error: null, lastLatencyMs: 87.6 });
  assert.equal(mock.statusItems[0].text, '$(sparkle) Inkling 88 ms');
  assert.equal(mock.statusItems[0].command, 'inkling.showMenu');
  client.notify('inkling/status', { state: 'failed', model: '/m.gguf', template: null, error: 'not a GGUF file', lastLatencyMs: null });
  assert.equal(mock.statusItems[0].text, '$(error) Inkling');
  assert.match(String(mock.statusItems[0].tooltip), /not a GGUF file/);
});

test('toggle turns completions off through the setting, and the server is told', async () => {
  mock.settings.global.set('inkling.interpreter', python);
  await activate(context());
  const [client] = LanguageClient.instances;
  client.notify('inkling/status', { state: 'ready', lastLatencyMs: 50 });
  await mock.commands.get('inkling.toggle')!();
  assert.equal(mock.settings.global.get('inkling.enable'), false);
  assert.deepEqual(client.notifications.at(-1), {
    method: 'workspace/didChangeConfiguration',
    params: { settings: { inkling: { enable: false } } },
  });
  assert.equal(mock.statusItems[0].text, '$(circle-slash) Inkling');
  await mock.commands.get('inkling.toggle')!();
  assert.equal(mock.statusItems[0].text, '$(sparkle) Inkling 50 ms');
});

test('a removed setting is sent back as the default', async () => {
  mock.settings.global.set('inkling.interpreter', python);
  mock.settings.global.set('inkling.threads', 2);
  await activate(context());
  const [client] = LanguageClient.instances;
  await mock.setUserSetting('inkling.threads', undefined);
  assert.deepEqual(client.notifications.at(-1)?.params, { settings: { inkling: { threads: serverDefaults(pkg).threads } } });
});

test('restart replaces the client; changing the server path restarts too', async () => {
  mock.settings.global.set('inkling.interpreter', python);
  await activate(context());
  await mock.commands.get('inkling.restart')!();
  assert.equal(LanguageClient.instances.length, 2);
  assert.equal(LanguageClient.instances[0].state, 1); // stopped
  await mock.setUserSetting('inkling.serverPath', python);
  assert.equal(LanguageClient.instances.length, 3);
  assert.deepEqual(LanguageClient.instances[2].serverOptions.args, ['serve']);
});

test('no server found: an error in the status bar and a message, no client', async () => {
  mock.settings.global.set('inkling.serverPath', '/nowhere/inkling');
  await activate(context());
  assert.equal(LanguageClient.instances.length, 0);
  assert.equal(mock.statusItems[0].text, '$(error) Inkling');
  assert.match(mock.errors[0], /nowhere/);
});

test('the status menu offers the actions and runs the chosen one', async () => {
  mock.settings.global.set('inkling.interpreter', python);
  await activate(context());
  mock.quickPickAnswer = 'Turn completions off';
  await mock.commands.get('inkling.showMenu')!();
  assert.ok(mock.quickPickOffered[0].includes('Restart the server'));
  assert.equal(mock.settings.global.get('inkling.enable'), false);
});

test('after each ghost text request the status (latency) is asked again', async () => {
  mock.settings.global.set('inkling.interpreter', python);
  await activate(context());
  const [client] = LanguageClient.instances;
  LanguageClient.statusReply = { state: 'ready', lastLatencyMs: 321 };
  const next = async () => ({ items: [] });
  const result = await client.clientOptions.middleware.provideInlineCompletionItems!(...([{}, {}, {}, {}, next] as never[]));
  assert.deepEqual(result, { items: [] });
  await new Promise((done) => setImmediate(done));
  assert.equal(mock.statusItems[0].text, '$(sparkle) Inkling 321 ms');
});
