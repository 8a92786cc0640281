// Where the Inkling server comes from: a setting, else discovered. Pure: the
// file system and environment are passed in, so tests can describe machines.
import * as path from 'path';

export interface Discovery {
  serverPath: string; // setting inkling.serverPath
  interpreter: string; // setting inkling.interpreter
  pythonExtensionInterpreter?: string; // the Python extension's selected interpreter
  workspaceFolders: string[];
  envPath: string;
  platform: NodeJS.Platform;
  isExecutable(file: string): boolean;
}

export type Found =
  | { command: string; args: string[]; source: string }
  | { error: string };

const SERVE = ['serve'];
const MODULE_SERVE = ['-m', 'lsp_server', 'serve'];

function executableName(platform: NodeJS.Platform): string {
  return platform === 'win32' ? 'inkling.exe' : 'inkling';
}

function venvBin(platform: NodeJS.Platform): string {
  return platform === 'win32' ? 'Scripts' : 'bin';
}

function expandHome(file: string): string {
  const home = process.env.HOME ?? process.env.USERPROFILE;
  return home && (file === '~' || file.startsWith('~/')) ? path.join(home, file.slice(1)) : file;
}

export function findServerCommand(d: Discovery): Found {
  const name = executableName(d.platform);
  const paths = d.platform === 'win32' ? path.win32 : path.posix;
  if (d.serverPath.trim()) {
    const file = expandHome(d.serverPath.trim());
    if (!d.isExecutable(file)) {
      return { error: `inkling.serverPath: ${file} is not an executable file` };
    }
    return { command: file, args: SERVE, source: 'setting inkling.serverPath' };
  }
  if (d.interpreter.trim()) {
    const file = expandHome(d.interpreter.trim());
    if (!d.isExecutable(file)) {
      return { error: `inkling.interpreter: ${file} is not an executable file` };
    }
    return { command: file, args: MODULE_SERVE, source: 'setting inkling.interpreter' };
  }
  if (d.pythonExtensionInterpreter) {
    const beside = paths.join(paths.dirname(d.pythonExtensionInterpreter), name);
    if (d.isExecutable(beside)) {
      return { command: beside, args: SERVE, source: "the Python extension's interpreter" };
    }
  }
  for (const folder of d.workspaceFolders) {
    const candidate = paths.join(folder, '.venv', venvBin(d.platform), name);
    if (d.isExecutable(candidate)) {
      return { command: candidate, args: SERVE, source: `${folder}/.venv` };
    }
  }
  const separator = d.platform === 'win32' ? ';' : ':';
  for (const dir of d.envPath.split(separator).filter(Boolean)) {
    const candidate = paths.join(dir, name);
    if (d.isExecutable(candidate)) {
      return { command: candidate, args: SERVE, source: '$PATH' };
    }
  }
  return {
    error:
      'no Inkling server found: set inkling.serverPath to .../.venv/bin/inkling, ' +
      'or inkling.interpreter to a Python that has Inkling installed',
  };
}
