import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Discovery, findServerCommand } from '../src/serverCommand';

function machine(executables: string[], overrides: Partial<Discovery> = {}): Discovery {
  return {
    serverPath: '',
    interpreter: '',
    workspaceFolders: [],
    envPath: '/usr/local/bin:/usr/bin',
    platform: 'linux',
    isExecutable: (file) => executables.includes(file),
    ...overrides,
  };
}

test('the serverPath setting wins', () => {
  const found = findServerCommand(machine(['/opt/ink/bin/inkling', '/usr/bin/inkling'], { serverPath: '/opt/ink/bin/inkling' }));
  assert.deepEqual(found, { command: '/opt/ink/bin/inkling', args: ['serve'], source: 'setting inkling.serverPath' });
});

test('a configured interpreter runs the module', () => {
  const found = findServerCommand(machine(['/venv/bin/python'], { interpreter: '/venv/bin/python' }));
  assert.deepEqual(found, { command: '/venv/bin/python', args: ['-m', 'lsp_server', 'serve'], source: 'setting inkling.interpreter' });
});

test('a configured path that is not there is an error, not a silent fallback', () => {
  const found = findServerCommand(machine(['/usr/bin/inkling'], { serverPath: '/missing/inkling' }));
  assert.ok('error' in found && found.error.includes('/missing/inkling'));
});

test("discovered: beside the Python extension's interpreter, then a workspace .venv, then $PATH", () => {
  const all = ['/envs/a/bin/inkling', '/work/project/.venv/bin/inkling', '/usr/bin/inkling'];
  const withPython = machine(all, { pythonExtensionInterpreter: '/envs/a/bin/python', workspaceFolders: ['/work/project'] });
  assert.equal((findServerCommand(withPython) as { command: string }).command, '/envs/a/bin/inkling');
  const withVenv = machine(all.slice(1), { pythonExtensionInterpreter: '/envs/a/bin/python', workspaceFolders: ['/work/project'] });
  assert.equal((findServerCommand(withVenv) as { command: string }).command, '/work/project/.venv/bin/inkling');
  const onPath = machine(all.slice(2), { workspaceFolders: ['/work/project'] });
  assert.deepEqual(findServerCommand(onPath), { command: '/usr/bin/inkling', args: ['serve'], source: '$PATH' });
});

test('nothing found says what to set', () => {
  const found = findServerCommand(machine([]));
  assert.ok('error' in found && found.error.includes('inkling.serverPath'));
});

test('Windows layout', () => {
  const found = findServerCommand(
    machine(['C:\\p\\.venv\\Scripts\\inkling.exe'], { platform: 'win32', workspaceFolders: ['C:\\p'], envPath: '' }),
  );
  assert.ok('command' in found && found.command.endsWith('inkling.exe'));
});
