// A small stand-in for the `vscode` API: records what the extension does with it,
// and hosts the real vscode-languageclient well enough to talk to the real server
// (documents, providers, commands; no UI).

type Listener<T> = (value: T) => unknown;

interface Disposal {
  dispose(): unknown;
}

export class Disposable {
  constructor(private readonly onDispose: () => unknown) {}
  static from(...items: { dispose(): unknown }[]): Disposable {
    return new Disposable(() => items.forEach((item) => item.dispose()));
  }
  dispose(): void {
    this.onDispose();
  }
}

export class EventEmitter<T> {
  private listeners: Listener<T>[] = [];
  event = (listener: Listener<T>): Disposal => {
    this.listeners.push(listener);
    return { dispose: () => (this.listeners = this.listeners.filter((l) => l !== listener)) };
  };
  async fire(value: T): Promise<void> {
    for (const listener of this.listeners) {
      await listener(value);
    }
  }
  dispose(): void {
    this.listeners = [];
  }
}

export class Uri {
  private constructor(
    readonly scheme: string,
    readonly path: string,
  ) {}
  static file(path: string): Uri {
    return new Uri('file', path);
  }
  static parse(value: string): Uri {
    const match = /^([a-z-]+):(?:\/\/)?(.*)$/.exec(value);
    return match ? new Uri(match[1], decodeURIComponent(match[2])) : new Uri('file', value);
  }
  get fsPath(): string {
    return this.path;
  }
  toString(): string {
    return `${this.scheme}://${encodeURI(this.path)}`;
  }
}

export class Position {
  constructor(
    readonly line: number,
    readonly character: number,
  ) {}
}

export class Range {
  readonly start: Position;
  readonly end: Position;
  constructor(a: Position | number, b: Position | number, c?: number, d?: number) {
    this.start = typeof a === 'number' ? new Position(a, b as number) : a;
    this.end = typeof a === 'number' ? new Position(c as number, d as number) : (b as Position);
  }
}

export class SnippetString {
  constructor(readonly value: string) {}
}

export class MarkdownString {
  constructor(readonly value: string = '') {}
}

export class InlineCompletionItem {
  filterText?: string;
  constructor(
    readonly insertText: string | SnippetString,
    readonly range?: Range,
    readonly command?: { title: string; command: string; arguments?: unknown[] },
  ) {}
}

export class InlineCompletionList {
  constructor(readonly items: InlineCompletionItem[]) {}
}

export class CancellationError extends Error {}

export class CancellationTokenSource {
  private cancelled = new EventEmitter<void>();
  token = {
    isCancellationRequested: false,
    onCancellationRequested: this.cancelled.event,
  };
  cancel(): void {
    this.token.isCancellationRequested = true;
    void this.cancelled.fire();
  }
  dispose(): void {
    this.cancelled.dispose();
  }
}

export enum InlineCompletionTriggerKind {
  Invoke = 0,
  Automatic = 1,
}

export enum ProgressLocation {
  SourceControl = 1,
  Window = 10,
  Notification = 15,
}

/** An open text document as the client sees it. */
export class TextDocument {
  version = 1;
  isClosed = false;
  isDirty = false;
  isUntitled = false;
  eol = 1;
  constructor(
    readonly uri: Uri,
    readonly languageId: string,
    private text: string,
  ) {}
  get fileName(): string {
    return this.uri.fsPath;
  }
  get lineCount(): number {
    return this.text.split('\n').length;
  }
  getText(): string {
    return this.text;
  }
  offsetAt(position: Position): number {
    const lines = this.text.split('\n');
    let offset = 0;
    for (let line = 0; line < position.line; line++) {
      offset += lines[line].length + 1;
    }
    return offset + position.character;
  }
  positionAt(offset: number): Position {
    const before = this.text.slice(0, offset).split('\n');
    return new Position(before.length - 1, before[before.length - 1].length);
  }
  lineAt(line: number) {
    const text = this.text.split('\n')[line];
    return { lineNumber: line, text, range: new Range(line, 0, line, text.length) };
  }
}

/** Any `onDid...`/`onWill...` event the host does not model: never fires. */
const silentEvents = <T extends object>(target: T): T =>
  new Proxy(target, {
    get(object, key) {
      if (key in object) {
        return (object as Record<string | symbol, unknown>)[key];
      }
      if (typeof key === 'string' && /^on(Did|Will)/.test(key)) {
        return () => ({ dispose: () => undefined });
      }
      return undefined;
    },
  });

const documentOpened = new EventEmitter<TextDocument>();

export enum StatusBarAlignment {
  Left = 1,
  Right = 2,
}

export enum ConfigurationTarget {
  Global = 1,
  Workspace = 2,
  WorkspaceFolder = 3,
}

export class ThemeColor {
  constructor(public readonly id: string) {}
}

export interface FakeStatusBarItem {
  text: string;
  tooltip: string | undefined;
  command: string | undefined;
  backgroundColor: ThemeColor | undefined;
  visible: boolean;
  show(): void;
  dispose(): void;
}

const configChanged = new EventEmitter<{ affectsConfiguration(section: string): boolean }>();

export const mock = {
  /** Values by full key ('inkling.enable'), per target. */
  settings: { global: new Map<string, unknown>(), workspace: new Map<string, unknown>() },
  defaults: new Map<string, unknown>(),
  commands: new Map<string, (...args: unknown[]) => unknown>(),
  statusItems: [] as FakeStatusBarItem[],
  errors: [] as string[],
  output: [] as string[],
  quickPickAnswer: undefined as string | undefined,
  quickPickOffered: [] as string[][],
  workspaceFolders: [] as string[],
  documents: [] as TextDocument[],
  providers: new Map<string, { selector: unknown; provider: unknown }>(),
  /** Open a document as the editor would: the client sends didOpen to the server. */
  async openDocument(document: TextDocument): Promise<void> {
    this.documents.push(document);
    await documentOpened.fire(document);
  },
  reset(defaults: Record<string, unknown>): void {
    this.settings.global.clear();
    this.settings.workspace.clear();
    this.defaults = new Map(Object.entries(defaults));
    this.commands.clear();
    this.statusItems = [];
    this.errors = [];
    this.output = [];
    this.quickPickAnswer = undefined;
    this.quickPickOffered = [];
    this.workspaceFolders = [];
    this.documents = [];
    this.providers.clear();
  },
  /** Change a setting as the user would in the settings editor. */
  async setUserSetting(key: string, value: unknown): Promise<void> {
    if (value === undefined) {
      this.settings.global.delete(key);
    } else {
      this.settings.global.set(key, value);
    }
    await configChanged.fire({ affectsConfiguration: (section: string) => key === section || key.startsWith(section + '.') });
  },
};

export const window = silentEvents({
  activeTextEditor: undefined,
  visibleTextEditors: [],
  tabGroups: silentEvents({ all: [] }),
  async showInformationMessage(message: string) {
    mock.output.push(message);
    return undefined;
  },
  async showWarningMessage(message: string) {
    mock.output.push(message);
    return undefined;
  },
  async withProgress<T>(
    _options: unknown,
    task: (progress: { report(): void }, token: CancellationTokenSource['token']) => Promise<T>,
  ) {
    return task({ report: () => undefined }, new CancellationTokenSource().token);
  },
  createOutputChannel(name: string) {
    return {
      name,
      appendLine: (line: string) => mock.output.push(line),
      append: (text: string) => mock.output.push(text),
      show: () => undefined,
      dispose: () => undefined,
    };
  },
  createStatusBarItem(): FakeStatusBarItem {
    const item: FakeStatusBarItem = {
      text: '',
      tooltip: undefined,
      command: undefined,
      backgroundColor: undefined,
      visible: false,
      show() {
        item.visible = true;
      },
      dispose() {
        item.visible = false;
      },
    };
    mock.statusItems.push(item);
    return item;
  },
  async showErrorMessage(message: string) {
    mock.errors.push(message);
    return undefined;
  },
  async showQuickPick(items: string[]) {
    mock.quickPickOffered.push(items);
    return mock.quickPickAnswer;
  },
});

export const workspace = silentEvents({
  get textDocuments() {
    return mock.documents;
  },
  notebookDocuments: [],
  onDidOpenTextDocument: documentOpened.event,
  createFileSystemWatcher: () => silentEvents({ dispose: () => undefined }),
  get workspaceFolders() {
    return mock.workspaceFolders.map((fsPath) => ({ uri: { fsPath } }));
  },
  getConfiguration(section: string) {
    const full = (key: string) => `${section}.${key}`;
    return {
      has: (key: string) => mock.defaults.has(full(key)),
      get<T>(key: string, fallback?: T): T {
        const k = full(key);
        for (const value of [mock.settings.workspace.get(k), mock.settings.global.get(k), mock.defaults.get(k)]) {
          if (value !== undefined) {
            return value as T;
          }
        }
        return fallback as T;
      },
      inspect<T>(key: string) {
        const k = full(key);
        return {
          key: k,
          defaultValue: mock.defaults.get(k) as T | undefined,
          globalValue: mock.settings.global.get(k) as T | undefined,
          workspaceValue: mock.settings.workspace.get(k) as T | undefined,
          workspaceFolderValue: undefined as T | undefined,
        };
      },
      async update(key: string, value: unknown, target: ConfigurationTarget) {
        const store = target === ConfigurationTarget.Global ? mock.settings.global : mock.settings.workspace;
        store.set(full(key), value);
        await configChanged.fire({ affectsConfiguration: (s: string) => full(key) === s || full(key).startsWith(s + '.') });
      },
    };
  },
  onDidChangeConfiguration: configChanged.event,
});

export const extensions = {
  getExtension: (_id: string) => undefined,
};

export const commands = {
  registerCommand(id: string, run: (...args: unknown[]) => unknown): Disposal {
    mock.commands.set(id, run);
    return { dispose: () => mock.commands.delete(id) };
  },
  async executeCommand(id: string, ...args: unknown[]) {
    const run = mock.commands.get(id);
    if (!run) {
      throw new Error(`command ${id} not registered`);
    }
    return run(...args);
  },
};

function selectorMatches(selector: unknown, document: TextDocument): boolean {
  const filters = Array.isArray(selector) ? selector : [selector];
  return filters.some((filter) => {
    if (typeof filter === 'string') {
      return filter === document.languageId;
    }
    const f = filter as { language?: string; scheme?: string };
    return (!f.language || f.language === document.languageId) && (!f.scheme || f.scheme === document.uri.scheme);
  });
}

const providerRegistry = (kind: string) => (selector: unknown, provider: unknown) => {
  mock.providers.set(kind, { selector, provider });
  return { dispose: () => mock.providers.delete(kind) };
};

export const languages = new Proxy(
  {
    match: (selector: unknown, document: TextDocument) => (selectorMatches(selector, document) ? 10 : 0),
    createDiagnosticCollection: () => silentEvents({ set: () => undefined, delete: () => undefined, clear: () => undefined, dispose: () => undefined }),
  } as Record<string, unknown>,
  {
    get(object, key) {
      if (typeof key === 'string' && key in object) {
        return object[key];
      }
      if (typeof key === 'string' && key.startsWith('register')) {
        return providerRegistry(key.slice('register'.length));
      }
      return undefined;
    },
  },
);

export const env = { appName: 'Visual Studio Code (test host)', language: 'en', openExternal: async () => false };
export const version = '1.82.0';

// Base classes vscode-languageclient extends when it loads (not used by Inkling's features).
export class CompletionItem {
  constructor(readonly label: string) {}
}
export class CodeLens {}
export class CodeAction {}
export class Diagnostic {}
export class DocumentLink {}
export class InlayHint {}
export class SymbolInformation {}
export class CallHierarchyItem {}
export class TypeHierarchyItem {}

/** Enums the client's converters read when they are created: any member is its own name. */
const anyMember = () => new Proxy({}, { get: (_target, key) => String(key) });
export const CodeActionKind = anyMember();
