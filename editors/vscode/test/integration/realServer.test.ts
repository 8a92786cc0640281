// The extension as VS Code runs it, minus VS Code's UI: the real extension code
// and the real vscode-languageclient (inline completion through its proposed
// features) start the real `inkling serve` with the real model; the editor
// side is the small host in ../mock/vscode.ts. Needs a Python with Inkling:
// $INKLING_PYTHON, else the repository's .venv.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, test } from 'node:test';
import pkg from '../../package.json';
import { activate, InklingApi } from '../../src/extension';
import { CancellationTokenSource, InlineCompletionList, Position, TextDocument, Uri, mock } from '../mock/vscode';

// The bundle runs from out/test/integration.
const root = resolve(__dirname, '..', '..', '..', '..', '..');
const python = process.env.INKLING_PYTHON ?? join(root, '.venv', 'bin', 'python');
const skip = existsSync(python) ? false : `no Python with Inkling at ${python}`;

// Counts of accepted completions go to a throwaway state directory.
const state = mkdtempSync(join(tmpdir(), 'inkling-vscode-state-'));
process.env.INKLING_STATE = state;

const schemaDefaults = Object.fromEntries(
  Object.entries(pkg.contributes.configuration.properties).map(([key, schema]) => [key, (schema as { default: unknown }).default]),
);

async function until<T>(probe: () => T | undefined, what: string, seconds = 180): Promise<T> {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const value = probe();
    if (value !== undefined) {
      return value;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}`);
    }
    await new Promise((done) => setTimeout(done, 50));
  }
}

let api: InklingApi | undefined;
const subscriptions: { dispose(): unknown }[] = [];

after(async () => {
  await api?.client?.stop();
  subscriptions.forEach((subscription) => subscription.dispose());
  rmSync(state, { recursive: true, force: true });
});

test('ghost text from the real server, accepted and counted, status bar in step', { skip, timeout: 300_000 }, async () => {
  mock.reset(schemaDefaults);
  mock.settings.global.set('inkling.interpreter', python);
  // Generous budget: the machine is shared; this test is about the client, not speed.
  mock.settings.global.set('inkling.timeBudgetInlineMs', 60000);
  api = await activate({ subscriptions, extension: { packageJSON: pkg } } as never);
  const status = mock.statusItems[0];

  await until(() => (api?.status?.state === 'ready' ? true : undefined), 'the model to load');
  assert.match(status.text, /^\$\(sparkle\) Inkling/, String(status.tooltip));
  assert.match(String(status.tooltip), /prompt\)/);

  const text = readFileSync(join(root, 'examples', 'demo.py'), 'utf8');
  const document = new TextDocument(Uri.file('/work/demo.py'), 'python', text);
  await mock.openDocument(document);

  // VS Code asks the provider that vscode-languageclient registered for inline completion.
  const registered = mock.providers.get('InlineCompletionItemProvider');
  assert.ok(registered, 'the client registered an inline completion provider');
  const provider = registered.provider as {
    provideInlineCompletionItems(...args: unknown[]): Promise<InlineCompletionList | null>;
  };
  const line = text.split('\n').indexOf('    sy = ');
  const cursor = new Position(line, '    sy = '.length);
  const token = new CancellationTokenSource().token;
  const result = await provider.provideInlineCompletionItems(document, cursor, { triggerKind: 1 }, token);
  assert.ok(result && result.items.length === 1, 'one ghost text item');
  const [item] = result.items;
  assert.equal(typeof item.insertText, 'string');
  assert.match(item.insertText as string, /p\.y/); // the y twin of the line above
  assert.deepEqual(item.range?.start, cursor);

  // No duplicate in the suggest widget: the completion provider answers nothing.
  const menu = mock.providers.get('CompletionItemProvider')?.provider as
    | { provideCompletionItems(...args: unknown[]): Promise<unknown> }
    | undefined;
  assert.equal(await menu?.provideCompletionItems(document, cursor, token, { triggerKind: 0 }), undefined);

  // Accepting runs the item's command; the client forwards it to the server.
  assert.equal(item.command?.command, 'inkling.accepted');
  const run = mock.commands.get(item.command!.command);
  assert.ok(run, 'the client registered the server command with VS Code');
  await run(...(item.command!.arguments ?? []));
  const counted = await api.client!.sendRequest<{ acceptance: { shown: number; accepted: number } }>('inkling/status');
  assert.deepEqual([counted.acceptance.shown, counted.acceptance.accepted], [1, 1]);
  const stored = JSON.parse(readFileSync(join(process.env.INKLING_STATE!, 'acceptance.json'), 'utf8'));
  assert.equal(stored.byClient['Visual Studio Code (test host)'].accepted, 1);

  // Asked for (VS Code's Invoke, 0): the same answer first, then alternatives to cycle through.
  const asked = await provider.provideInlineCompletionItems(document, cursor, { triggerKind: 0 }, token);
  assert.ok(asked && asked.items.length >= 2, 'alternatives when asked');
  assert.equal(asked.items[0].insertText, item.insertText);

  // The status bar shows the last latency once a completion has been made.
  await until(() => (/ \d+ ms$/.test(status.text) ? true : undefined), 'the latency in the status bar', 10);

  // Toggle: the server is told and answers nothing while off.
  await mock.commands.get('inkling.toggle')!();
  assert.equal(status.text, '$(circle-slash) Inkling');
  const offItems = await provider.provideInlineCompletionItems(document, cursor, { triggerKind: 1 }, token);
  assert.ok(!offItems || offItems.items.length === 0);
});
