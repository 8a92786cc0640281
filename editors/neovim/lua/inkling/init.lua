-- Inkling for Neovim: starts `inkling serve` and shows its completions.
--
-- Neovim >= 0.12 shows them as ghost text (vim.lsp.inline_completion);
-- older versions (0.7 to 0.11) get one item in the insert-mode completion
-- menu that carries the whole, possibly multi-line, completion (menu.lua).
-- The accept key inserts it in both cases and tells the server (for the
-- local acceptance rate). :InklingToggle turns completions off and on,
-- :InklingStatus shows the model state, the last latency and the rate.

local compat = require('inkling.compat')
local menu = require('inkling.menu')

local M = {}

local uv = vim.uv or vim.loop

local defaults = {
  -- The server command. Default: `inkling` found on $PATH.
  cmd = nil,
  -- Filetypes to attach to: the languages Inkling has grammars for.
  filetypes = {
    'python', 'javascript', 'javascriptreact', 'typescript', 'typescriptreact',
    'go', 'rust', 'java', 'c', 'cpp',
  },
  -- Server settings (the README's configuration reference), sent as initializationOptions.
  settings = {},
  -- 'auto': ghost text on Neovim >= 0.12, the completion menu before; 'menu' or 'ghost' to force.
  display = 'auto',
  -- Insert mode key that accepts Inkling's completion (falls back to the key itself);
  -- false: map require('inkling').accept yourself (as an expr mapping).
  accept_key = '<Tab>',
  -- Insert mode key that asks for a completion now.
  trigger_key = '<M-\\>',
  -- Menu mode: ask by itself after this many milliseconds without typing (false: only on the key).
  auto_trigger_ms = 300,
}

local config = vim.deepcopy(defaults)
local state = {
  enabled = true,
  status = {}, -- last inkling/status per client id
  timer = nil,
}

M.clients = compat.clients

local function ghost_text()
  return config.display ~= 'menu' and vim.lsp.inline_completion ~= nil
end

--- Ask for a completion at the cursor now (menu), or for ghost text.
function M.trigger()
  local bufnr = vim.api.nvim_get_current_buf()
  local client = compat.clients(bufnr)[1]
  if not client or not state.enabled then
    return
  end
  if ghost_text() then
    vim.lsp.inline_completion.get() -- requests a candidate when none is shown
  else
    menu.request(client, bufnr)
  end
end

local function schedule_trigger()
  if config.auto_trigger_ms == false or ghost_text() or not state.enabled then
    return
  end
  if state.timer then
    state.timer:stop()
  else
    state.timer = uv.new_timer()
  end
  state.timer:start(config.auto_trigger_ms, 0, vim.schedule_wrap(function()
    if vim.api.nvim_get_mode().mode:match('^i') then
      M.trigger()
    end
  end))
end

local function termcodes(keys)
  return vim.api.nvim_replace_termcodes(keys, true, false, true)
end

-- The accept key's own meaning, for when there is nothing to accept.
local function fallback()
  return config.accept_key and termcodes(config.accept_key) or ''
end

--- Accept the shown completion; returns the keys to feed (the key itself when there is none).
function M.accept()
  if ghost_text() then
    return vim.lsp.inline_completion.get() and '' or fallback()
  end
  local keys = menu.accept_keys()
  return keys and termcodes(keys) or fallback()
end

local function send_enabled(client)
  compat.notify(client, 'workspace/didChangeConfiguration', { settings = { inkling = { enable = state.enabled } } })
  if ghost_text() then
    vim.lsp.inline_completion.enable(state.enabled, { client_id = client.id })
  end
end

--- Turn completions off or on (all buffers; the server is told).
function M.toggle(enabled)
  if enabled == nil then
    state.enabled = not state.enabled
  else
    state.enabled = enabled
  end
  for _, client in ipairs(compat.clients()) do
    send_enabled(client)
  end
  vim.notify('Inkling completions ' .. (state.enabled and 'on' or 'off'))
end

function M.enabled()
  return state.enabled
end

--- The last inkling/status the server sent (model state, latency, acceptance).
function M.status(client_id)
  if client_id == nil then
    local client = compat.clients()[1]
    client_id = client and client.id
  end
  return client_id and state.status[client_id] or nil
end

local function describe(status)
  if not status then
    return 'Inkling: not running'
  end
  local parts = { 'Inkling: model ' .. tostring(status.state) }
  if status.error ~= nil and status.error ~= vim.NIL then
    table.insert(parts, tostring(status.error))
  end
  if type(status.lastLatencyMs) == 'number' then
    table.insert(parts, string.format('last completion %.0f ms', status.lastLatencyMs))
  end
  local acceptance = status.acceptance
  if type(acceptance) == 'table' and (acceptance.shown or 0) > 0 then
    table.insert(parts, string.format('accepted %d of %d', acceptance.accepted, acceptance.shown))
  end
  table.insert(parts, state.enabled and 'on' or 'off')
  return table.concat(parts, ', ')
end

local function show_status()
  local clients = compat.clients()
  if #clients == 0 then
    vim.notify(describe(nil))
  end
  for _, client in ipairs(clients) do
    compat.request(client, 'inkling/status', nil, function(err, result)
      if err == nil and result then
        state.status[client.id] = result
      end
      vim.notify(describe(state.status[client.id]))
    end)
  end
end

local function on_attach(client, bufnr)
  if ghost_text() then
    vim.lsp.inline_completion.enable(state.enabled, { client_id = client.id, bufnr = bufnr })
  end
  local group = vim.api.nvim_create_augroup('inkling_buffer_' .. bufnr, { clear = true })
  vim.api.nvim_create_autocmd('CompleteDone', { group = group, buffer = bufnr, callback = menu.on_complete_done })
  vim.api.nvim_create_autocmd({ 'TextChangedI', 'TextChangedP' }, {
    group = group,
    buffer = bufnr,
    callback = schedule_trigger,
  })
  if config.accept_key then
    vim.keymap.set('i', config.accept_key, M.accept, { buffer = bufnr, silent = true, expr = true })
  end
  if config.trigger_key then
    vim.keymap.set('i', config.trigger_key, M.trigger, { buffer = bufnr, silent = true })
  end
  if not state.enabled then
    send_enabled(client)
  end
end

local function server_config()
  local cmd = config.cmd
  if cmd == nil then
    if vim.fn.executable('inkling') == 0 then
      vim.notify('Inkling: `inkling` is not on $PATH; pass cmd = { "/path/to/.venv/bin/inkling", "serve" }',
        vim.log.levels.ERROR)
      return nil
    end
    cmd = { 'inkling', 'serve' }
  end
  return {
    name = compat.NAME,
    cmd = cmd,
    filetypes = config.filetypes,
    init_options = config.settings,
    on_attach = on_attach,
    handlers = {
      ['inkling/status'] = function(_, result, ctx)
        state.status[ctx.client_id] = result
      end,
    },
  }
end

local function start_for_buffer(lsp_config, bufnr)
  local with_root = vim.tbl_extend('force', lsp_config, { root_dir = vim.fn.getcwd() })
  if vim.lsp.start then -- 0.8 to 0.10 (0.11+ uses vim.lsp.enable)
    vim.lsp.start(with_root, { bufnr = bufnr })
    return
  end
  -- 0.7: one client for every buffer.
  local existing = compat.clients()[1]
  local client_id = existing and existing.id or vim.lsp.start_client(with_root)
  if client_id then
    vim.lsp.buf_attach_client(bufnr, client_id)
  end
end

--- Set up Inkling; see `defaults` above for the options.
function M.setup(opts)
  config = vim.tbl_deep_extend('force', vim.deepcopy(defaults), opts or {})
  local lsp_config = server_config()
  if not lsp_config then
    return
  end
  if vim.lsp.config and vim.lsp.enable then -- 0.11+
    vim.lsp.config(compat.NAME, lsp_config)
    vim.lsp.enable(compat.NAME)
  else
    vim.api.nvim_create_autocmd('FileType', {
      group = vim.api.nvim_create_augroup('inkling_start', { clear = true }),
      pattern = config.filetypes,
      callback = function(args)
        start_for_buffer(lsp_config, args.buf)
      end,
    })
    for _, bufnr in ipairs(vim.api.nvim_list_bufs()) do
      if vim.api.nvim_buf_is_loaded(bufnr) and vim.tbl_contains(config.filetypes, vim.bo[bufnr].filetype) then
        start_for_buffer(lsp_config, bufnr)
      end
    end
  end
  vim.api.nvim_create_user_command('InklingToggle', function() M.toggle() end,
    { desc = 'Turn Inkling completions off or on' })
  vim.api.nvim_create_user_command('InklingStatus', show_status,
    { desc = 'Show the model state, last latency and acceptance count' })
end

return M
