-- Inkling for Neovim: starts `inkling serve` and shows its completions.
--
-- Neovim >= 0.12 shows them as ghost text (vim.lsp.inline_completion);
-- older versions (0.7 to 0.11) get one item in the insert-mode completion
-- menu that carries the whole, possibly multi-line, completion. The accept
-- key inserts it in both cases and tells the server (for the local
-- acceptance rate). :InklingToggle turns completions off and on,
-- :InklingStatus shows the model state, the last latency and the rate.

local M = {}

local uv = vim.uv or vim.loop
local NAME = 'inkling'
local ACCEPT_COMMAND = 'inkling.accepted'

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
  -- Insert mode key that accepts Inkling's completion (falls back to the key itself).
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

local has = function(feature) return vim.fn.has(feature) == 1 end

-- Client methods moved from `client.request(...)` to `client:request(...)` in 0.11.
local function request(client, method, params, handler, bufnr)
  if has('nvim-0.11') then
    return client:request(method, params, handler, bufnr)
  end
  return client.request(method, params, handler, bufnr)
end

local function notify(client, method, params)
  if has('nvim-0.11') then
    return client:notify(method, params)
  end
  return client.notify(method, params)
end

--- The Inkling clients attached to a buffer (or all of them).
function M.clients(bufnr)
  if vim.lsp.get_clients then
    return vim.lsp.get_clients({ name = NAME, bufnr = bufnr })
  end
  local found = {}
  local all = bufnr and vim.lsp.buf_get_clients(bufnr) or vim.lsp.get_active_clients()
  for _, client in pairs(all) do
    if client.name == NAME then
      table.insert(found, client)
    end
  end
  return found
end

local function ghost_text()
  if config.display == 'menu' then
    return false
  end
  return vim.lsp.inline_completion ~= nil
end

-- A position's character (in the client's encoding) as a byte column of `line`.
local function byte_col(line, character, encoding)
  if encoding == 'utf-8' then
    return math.min(character, #line)
  end
  local ok, col
  if has('nvim-0.11') then
    ok, col = pcall(vim.str_byteindex, line, encoding, character, false)
  else
    ok, col = pcall(vim.str_byteindex, line, character, encoding == 'utf-16')
  end
  return ok and col or #line
end

local function run_accept_command(client, command, bufnr)
  if command and command.command == ACCEPT_COMMAND then
    request(client, 'workspace/executeCommand', command, function() end, bufnr)
  end
end

-- The completion menu (Neovim < 0.12) ----------------------------------------------

local function show_menu(client, bufnr, result, cursor, tick)
  if vim.api.nvim_get_current_buf() ~= bufnr or not vim.api.nvim_get_mode().mode:match('^i') then
    return
  end
  local now = vim.api.nvim_win_get_cursor(0)
  if vim.b[bufnr].changedtick ~= tick or now[1] ~= cursor[1] or now[2] ~= cursor[2] then
    return -- the user moved on; a newer request follows
  end
  local line = vim.api.nvim_get_current_line()
  local startcol, words = nil, {}
  for _, item in ipairs(result and (result.items or result) or {}) do
    local edit = item.textEdit
    if edit and edit.range and edit.range.start.line == cursor[1] - 1 then
      local col = byte_col(line, edit.range.start.character, client.offset_encoding)
      startcol = startcol or col
      local first_line = vim.split(edit.newText, '\n', { plain = true })[1]
      table.insert(words, {
        word = first_line,
        abbr = item.label,
        menu = '[Inkling]',
        info = edit.newText,
        icase = 1,
        dup = 1,
        user_data = {
          inkling = {
            client_id = client.id,
            new_text = edit.newText,
            startcol = col,
            command = item.command,
          },
        },
      })
    end
  end
  if startcol and #words > 0 then
    vim.fn.complete(startcol + 1, words)
  end
end

--- Ask the server for a completion at the cursor (menu mode), or for ghost text.
function M.trigger()
  local bufnr = vim.api.nvim_get_current_buf()
  local client = M.clients(bufnr)[1]
  if not client or not state.enabled then
    return
  end
  if ghost_text() then
    vim.lsp.inline_completion.get() -- requests a candidate when none is shown
    return
  end
  local params = vim.lsp.util.make_position_params(0, client.offset_encoding)
  local cursor = vim.api.nvim_win_get_cursor(0)
  local tick = vim.b[bufnr].changedtick
  request(client, 'textDocument/completion', params, function(err, result)
    if err == nil then
      show_menu(client, bufnr, result, cursor, tick)
    end
  end, bufnr)
end

-- After an accepted menu item: put in the whole text (the menu inserted its
-- first line only) and tell the server.
local function on_complete_done()
  local item = vim.v.completed_item
  local data = type(item) == 'table' and type(item.user_data) == 'table' and item.user_data.inkling
  if not data then
    return
  end
  local event = vim.v.event
  if type(event) == 'table' and event.reason ~= nil and event.reason ~= 'accept' then
    return -- cancelled or discarded (Neovim >= 0.11 tells)
  end
  local client = vim.lsp.get_client_by_id(data.client_id)
  local bufnr = vim.api.nvim_get_current_buf()
  local row, col = unpack(vim.api.nvim_win_get_cursor(0))
  local lines = vim.split(data.new_text, '\n', { plain = true })
  if #lines > 1 and col == data.startcol + #item.word then
    vim.api.nvim_buf_set_text(bufnr, row - 1, data.startcol, row - 1, col, lines)
    vim.api.nvim_win_set_cursor(0, { row + #lines - 1, #lines[#lines] })
  end
  if client then
    run_accept_command(client, data.command, bufnr)
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

-- Keys and commands ------------------------------------------------------------------

local function termcodes(keys)
  return vim.api.nvim_replace_termcodes(keys, true, false, true)
end

-- Whether an Inkling item is in the visible completion menu, and its index.
local function menu_item_index()
  if vim.fn.pumvisible() == 0 then
    return nil
  end
  local info = vim.fn.complete_info({ 'items', 'selected' })
  for index, item in ipairs(info.items or {}) do
    if type(item.user_data) == 'table' and item.user_data.inkling then
      return index - 1, info.selected
    end
  end
  return nil
end

-- The accept key's own meaning, for when there is nothing to accept.
local function fallback()
  return config.accept_key and termcodes(config.accept_key) or ''
end

--- Accept the shown completion; returns the keys to feed (the key itself when there is none).
function M.accept()
  if ghost_text() then
    if vim.lsp.inline_completion.get() then
      return ''
    end
    return fallback()
  end
  local index, selected = menu_item_index()
  if index == nil then
    return fallback()
  end
  local keys = ''
  if selected ~= index then
    local steps = selected == -1 and index + 1 or index - selected
    keys = string.rep(steps >= 0 and '<C-n>' or '<C-p>', math.abs(steps))
  end
  return termcodes(keys .. '<C-y>')
end

local function send_enabled(client)
  notify(client, 'workspace/didChangeConfiguration', { settings = { inkling = { enable = state.enabled } } })
  if vim.lsp.inline_completion and config.display ~= 'menu' then
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
  for _, client in ipairs(M.clients()) do
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
    local client = M.clients()[1]
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

local function refresh_status(callback)
  for _, client in ipairs(M.clients()) do
    request(client, 'inkling/status', nil, function(err, result)
      if err == nil and result then
        state.status[client.id] = result
      end
      if callback then
        callback(state.status[client.id])
      end
    end)
  end
end

-- Attaching ----------------------------------------------------------------------------

local function on_attach(client, bufnr)
  if ghost_text() then
    vim.lsp.inline_completion.enable(state.enabled, { client_id = client.id, bufnr = bufnr })
  end
  local group = vim.api.nvim_create_augroup('inkling_buffer_' .. bufnr, { clear = true })
  vim.api.nvim_create_autocmd('CompleteDone', { group = group, buffer = bufnr, callback = on_complete_done })
  vim.api.nvim_create_autocmd({ 'TextChangedI', 'TextChangedP' }, {
    group = group,
    buffer = bufnr,
    callback = schedule_trigger,
  })
  local opts = { buffer = bufnr, silent = true }
  if config.accept_key then
    vim.keymap.set('i', config.accept_key, M.accept, vim.tbl_extend('force', opts, { expr = true }))
  end
  if config.trigger_key then
    vim.keymap.set('i', config.trigger_key, M.trigger, opts)
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
    name = NAME,
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
  if vim.lsp.start then -- 0.8 to 0.10 (0.11+ uses vim.lsp.enable)
    vim.lsp.start(vim.tbl_extend('force', lsp_config, { root_dir = vim.fn.getcwd() }), { bufnr = bufnr })
    return
  end
  -- 0.7: one client for every buffer.
  local existing = M.clients()[1]
  local client_id = existing and existing.id
  if not client_id then
    client_id = vim.lsp.start_client(vim.tbl_extend('force', lsp_config, { root_dir = vim.fn.getcwd() }))
  end
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
    vim.lsp.config(NAME, lsp_config)
    vim.lsp.enable(NAME)
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
  vim.api.nvim_create_user_command('InklingStatus', function()
    refresh_status(function(status) vim.notify(describe(status)) end)
  end, { desc = 'Show the model state, last latency and acceptance count' })
end

return M
