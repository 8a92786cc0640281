// Inkling for VS Code: starts `inkling serve`, shows its completions as ghost
// text (LSP inline completion), and the model's state in the status bar.
import * as fs from 'fs';
import * as vscode from 'vscode';
import {
  DidChangeConfigurationNotification,
  LanguageClient,
  LanguageClientOptions,
  ServerOptions,
  State,
} from 'vscode-languageclient/node';
import { Discovery, findServerCommand } from './serverCommand';
import { SECTION, explicitSettings, languagesOf, serverDefaults, settingsUpdate } from './settings';
import { ServerStatus, present } from './status';

const STATUS = 'inkling/status';
const RESTART_KEYS = ['serverPath', 'interpreter'];

export interface InklingApi {
  readonly client: LanguageClient | undefined;
  readonly status: ServerStatus | undefined;
  restart(): Promise<void>;
}

function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

async function pythonExtensionInterpreter(): Promise<string | undefined> {
  const python = vscode.extensions.getExtension('ms-python.python');
  if (!python) {
    return undefined;
  }
  try {
    const api = python.isActive ? python.exports : await python.activate();
    const active = api?.environments?.getActiveEnvironmentPath?.();
    return typeof active?.path === 'string' ? active.path : undefined;
  } catch {
    return undefined;
  }
}

export async function activate(context: vscode.ExtensionContext): Promise<InklingApi> {
  const pkg = context.extension.packageJSON;
  const defaults = serverDefaults(pkg);
  const keys = Object.keys(defaults);
  const languages = languagesOf(pkg);
  const output = vscode.window.createOutputChannel('Inkling');
  const item = vscode.window.createStatusBarItem(vscode.StatusBarAlignment.Right, 100);
  item.command = 'inkling.showMenu';
  item.show();
  context.subscriptions.push(output, item);

  let client: LanguageClient | undefined;
  let status: ServerStatus | undefined;
  let problem: string | undefined;
  let sent: Record<string, unknown> = {};

  const config = () => vscode.workspace.getConfiguration(SECTION);
  const enabled = () => config().get<boolean>('enable', true);
  const userSettings = () => explicitSettings(keys, (key) => config().inspect(key));

  const render = () => {
    const shown = present(status, enabled(), client?.state === State.Running, problem);
    item.text = shown.text;
    item.tooltip = shown.tooltip;
    item.backgroundColor = shown.problem ? new vscode.ThemeColor('statusBarItem.errorBackground') : undefined;
  };

  async function refreshStatus(): Promise<void> {
    try {
      status = (await client?.sendRequest<ServerStatus>(STATUS)) ?? status;
    } catch (error) {
      output.appendLine(`inkling/status: ${String(error)}`);
    }
    render();
  }

  async function start(): Promise<void> {
    problem = undefined;
    const discovery: Discovery = {
      serverPath: config().get<string>('serverPath', ''),
      interpreter: config().get<string>('interpreter', ''),
      pythonExtensionInterpreter: await pythonExtensionInterpreter(),
      workspaceFolders: (vscode.workspace.workspaceFolders ?? []).map((folder) => folder.uri.fsPath),
      envPath: process.env.PATH ?? '',
      platform: process.platform,
      isExecutable,
    };
    const found = findServerCommand(discovery);
    if ('error' in found) {
      problem = found.error;
      render();
      void vscode.window.showErrorMessage(`Inkling: ${found.error}`);
      return;
    }
    output.appendLine(`starting ${found.command} ${found.args.join(' ')} (from ${found.source})`);
    const serverOptions: ServerOptions = { command: found.command, args: found.args };
    sent = userSettings();
    const clientOptions: LanguageClientOptions = {
      documentSelector: languages.flatMap((language) => [
        { scheme: 'file', language },
        { scheme: 'untitled', language },
      ]),
      initializationOptions: sent,
      outputChannel: output,
      middleware: {
        // Ghost text only: the menu item the server also offers (for Helix and
        // older Neovim) would show the same completion twice.
        provideCompletionItem: () => undefined,
        // The server reports its latency in `inkling/status`; ask after each completion.
        provideInlineCompletionItems: async (document, position, context, token, next) => {
          // vscode-languageclient 9 sends VS Code's trigger kind as it is, and VS Code numbers
          // them Invoke 0, Automatic 1 where LSP has Invoked 1, Automatic 2: typing would read
          // as an explicit request (which asks the model for alternatives to cycle through).
          const invoked = context.triggerKind === vscode.InlineCompletionTriggerKind.Invoke;
          const lspContext = { ...context, triggerKind: invoked ? 1 : 2 } as unknown as typeof context;
          const result = await next(document, position, lspContext, token);
          void refreshStatus();
          return result;
        },
      },
    };
    const created = new LanguageClient('inkling', 'Inkling', serverOptions, clientOptions);
    // Inline completion is a proposed (LSP 3.18) feature in vscode-languageclient 9.
    created.registerProposedFeatures();
    created.onNotification(STATUS, (params: ServerStatus) => {
      status = params;
      render();
    });
    created.onDidChangeState(render);
    client = created;
    try {
      await created.start();
      status = await created.sendRequest<ServerStatus>(STATUS);
    } catch (error) {
      problem = `the server did not start: ${error instanceof Error ? error.message : String(error)}`;
    }
    render();
  }

  async function stop(): Promise<void> {
    const running = client;
    client = undefined;
    status = undefined;
    if (running) {
      try {
        await running.stop();
      } catch (error) {
        output.appendLine(`stopping the server: ${String(error)}`);
      }
    }
  }

  async function restart(): Promise<void> {
    await stop();
    await start();
  }

  async function toggle(): Promise<void> {
    const inspected = config().inspect<boolean>('enable');
    const target =
      inspected?.workspaceFolderValue !== undefined
        ? vscode.ConfigurationTarget.WorkspaceFolder
        : inspected?.workspaceValue !== undefined
          ? vscode.ConfigurationTarget.Workspace
          : vscode.ConfigurationTarget.Global;
    await config().update('enable', !enabled(), target);
  }

  async function showMenu(): Promise<void> {
    const actions: Record<string, () => unknown> = {
      [enabled() ? 'Turn completions off' : 'Turn completions on']: toggle,
      'Restart the server': restart,
      'Show the log': () => output.show(),
    };
    const picked = await vscode.window.showQuickPick(Object.keys(actions), {
      title: present(status, enabled(), client?.state === State.Running, problem).tooltip.split('\n')[0],
    });
    if (picked) {
      await actions[picked]();
    }
  }

  context.subscriptions.push(
    vscode.commands.registerCommand('inkling.restart', restart),
    vscode.commands.registerCommand('inkling.toggle', toggle),
    vscode.commands.registerCommand('inkling.showMenu', showMenu),
    vscode.workspace.onDidChangeConfiguration(async (event) => {
      if (!event.affectsConfiguration(SECTION)) {
        return;
      }
      if (RESTART_KEYS.some((key) => event.affectsConfiguration(`${SECTION}.${key}`))) {
        await restart();
        return;
      }
      const current = userSettings();
      const update = settingsUpdate(sent, current, defaults);
      sent = current;
      if (client?.state === State.Running) {
        await client.sendNotification(DidChangeConfigurationNotification.type, { settings: { [SECTION]: update } });
      }
      render();
    }),
    { dispose: () => void stop() },
  );

  render();
  await start();
  return {
    get client() {
      return client;
    },
    get status() {
      return status;
    },
    restart,
  };
}

export async function deactivate(): Promise<void> {
  // The client is stopped through the disposable registered in activate().
}
